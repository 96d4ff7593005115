"""`exness`: one command with a subcommand per service and per operator or trader task.

Each subcommand lives in its own module, imported only when used (so `exness auth` does not
load the engine). A module provides `run(args) -> int | None` and may provide
`add_arguments(parser)`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "up": ("services.cli.up", "run the whole platform on this machine"),
    "migrate": ("services.cli.migrate", "apply database migrations"),
    "auth": ("services.auth.main", "run the Auth service"),
    "market": ("services.market.main", "run the MarketData service and its tick writer"),
    "poller": ("services.poller.main", "run the price feed poller"),
    "engine": ("services.trading.main", "run the Trading engine"),
}


def _usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    lines = ["usage: exness COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_text}" for name, (_, help_text) in SUBCOMMANDS.items()]
    lines += ["", "`exness COMMAND --help` describes a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if not args_in or args_in[0] in ("-h", "--help"):
        print(_usage())
        sys.exit(0 if args_in else 2)
    name = args_in[0]
    if name not in SUBCOMMANDS:
        print(f"exness: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        sys.exit(2)
    module_name, help_text = SUBCOMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"exness {name}", description=help_text)
    if hasattr(module, "add_arguments"):
        module.add_arguments(parser)
    args = parser.parse_args(args_in[1:])
    sys.exit(module.run(args) or 0)


if __name__ == "__main__":
    main()
