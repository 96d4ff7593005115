"""Benchmarks: each module is standalone (`python -m bench.<name>`), starts the real parts it
needs, and prints its measurement next to a baseline measured in the same run, as a ratio.
They are not tests: nothing here asserts a time."""
