"""`exness migrate`: applies migrations/*.sql to DATABASE_URL (or the embedded database)."""

from __future__ import annotations

import argparse

from kit.data.migrations import migrate
from kit.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="PostgreSQL URL (default: $DATABASE_URL)")


def run(args: argparse.Namespace) -> int:
    url = args.database_url or Settings.from_env().database_url
    if not url:
        print(
            "exness migrate: set DATABASE_URL or pass --database-url "
            "(`exness up` migrates the embedded database itself)"
        )
        return 2
    applied = migrate(url)
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")
    return 0
