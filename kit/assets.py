"""Files the platform reads at run time that are not Python: the SQL migrations, the descriptor
set and OpenAPI document generated from proto/, the built web terminal and Swagger UI's bundle.

In a source checkout (or an editable install) they are read where they live in the repository.
An installed wheel carries them as package data in `exness_assets`, laid out the same way
(setup.py copies them in at build time), so the same repository-relative name finds them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# Only a checkout has the project file next to the packages (site-packages never does).
IN_CHECKOUT = (REPO_ROOT / "pyproject.toml").exists()


def asset(relative: str) -> Path:
    """The path of a repository-relative file or directory, e.g. "migrations"."""
    if IN_CHECKOUT:
        return REPO_ROOT / relative
    spec = importlib.util.find_spec("exness_assets")
    if spec is None or not spec.submodule_search_locations:
        return REPO_ROOT / relative  # not packaged: let the caller report the missing path
    return Path(next(iter(spec.submodule_search_locations))) / relative
