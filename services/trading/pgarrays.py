"""PostgreSQL array literals ('{1,2,NULL}') for the group commit's column parameters.

psycopg adapts a Python list element by element in Python (type lookup, struct packing per
value); for a batch that is most of the writer's CPU. These encoders build the literal with
str()/join, which run in C, and the statement casts the text (e.g. %t::numeric[]), so the server
parses it exactly as it would the same array typed by hand. Quoting follows the array input
syntax: elements in double quotes with backslash and double quote escaped, NULL bare.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal


def ints(values: Iterable[int | None]) -> str:
    return "{" + ",".join("NULL" if v is None else str(int(v)) for v in values) + "}"


def numerics(values: Iterable[Decimal | None]) -> str:
    # str(Decimal) may use exponent notation ("1E+2"), which numeric input accepts.
    return "{" + ",".join("NULL" if v is None else str(v) for v in values) + "}"


def bools(values: Iterable[bool]) -> str:
    return "{" + ",".join("t" if v else "f" for v in values) + "}"


def timestamps(values: Iterable[datetime | None]) -> str:
    """Aware datetimes (ISO 8601 with offset); a naive one would be read in the session's zone."""
    return "{" + ",".join("NULL" if v is None else v.isoformat() for v in values) + "}"


def texts(values: Iterable[str | None]) -> str:
    return (
        "{"
        + ",".join(
            "NULL" if v is None else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
            for v in values
        )
        + "}"
    )


def byteas(values: Iterable[bytes]) -> str:
    # bytea hex input (\x...), its backslash escaped for the array syntax.
    return "{" + ",".join('"\\\\x' + v.hex() + '"' for v in values) + "}"
