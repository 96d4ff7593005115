"""`python -m bench`: lists the benchmarks, or runs the ones named (`python -m bench NAME...`)."""

from __future__ import annotations

import pkgutil
import runpy
import sys
from pathlib import Path


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))


def main() -> None:
    names = sys.argv[1:]
    if not names:
        print("benchmarks (run with `python -m bench NAME...` or `python -m bench.NAME`):")
        for name in available():
            print(f"  {name}")
        return
    for name in names:
        if name not in available():
            raise SystemExit(f"unknown benchmark {name!r}; known: {', '.join(available())}")
        print(f"== {name}")
        runpy.run_module(f"bench.{name}", run_name="__main__")


if __name__ == "__main__":
    main()
