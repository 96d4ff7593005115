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
    "up": ("cli.devstack.up", "run the whole platform on this machine"),
    "migrate": ("cli.migrate", "apply database migrations"),
    "auth": ("services.auth.main", "run the Auth service"),
    "market": ("services.market.main", "run the MarketData service and its tick writer"),
    "poller": ("services.poller.main", "run the price feed poller"),
    "trading": ("services.trading.main", "run the Trading service (the engine)"),
    # Trader and operator commands, through the Python SDK (services/client) and the edge.
    "register": ("cli.trader", "create a user and sign in"),
    "login": ("cli.trader", "sign in (tokens are kept in the data directory)"),
    "logout": ("cli.trader", "sign out"),
    "account": ("cli.trader", "show balance, equity, margin and levels"),
    "deposit": ("cli.trader", "add demo funds"),
    "leverage": ("cli.trader", "set the account leverage"),
    "order": ("cli.trader", "place an order: exness order buy BTCUSD 0.01 --sl .. --tp .."),
    "orders": ("cli.trader", "list pending orders"),
    "cancel": ("cli.trader", "cancel a pending order"),
    "positions": ("cli.trader", "list open positions"),
    "modify": ("cli.trader", "set a position's stop-loss and take-profit"),
    "close": ("cli.trader", "close a position, whole or in part"),
    "trades": ("cli.trader", "list closed trades"),
    "accounts": ("cli.trader", "list your trading accounts"),
    "account-types": ("cli.trader", "list account types and their trading conditions"),
    "create-account": ("cli.trader", "open another trading account: exness create-account pro"),
    "withdraw": ("cli.trader", "take demo funds out (at most the free margin)"),
    "transactions": ("cli.trader", "list balance operations with the balance after each"),
    "instruments": ("cli.trader", "list instruments and trading conditions"),
    "quotes": ("cli.trader", "show quotes; --follow streams them"),
    "status": ("cli.trader", "health of every service of a running `exness up`"),
    "trace": ("cli.trace", "show one trace as a waterfall (embedded default's span files)"),
    "trace-sink": ("cli.trace", "receive Envoy's spans over OTLP into the span files"),
    "probe": ("cli.probe", "gRPC health check of one server (exit code 0 = SERVING)"),
    "edge": ("gateway.cli", "render, validate or run the Envoy edge config"),
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
    parser.set_defaults(command=name)  # for modules that serve several commands
    if hasattr(module, "add_arguments"):
        module.add_arguments(parser)
    args = parser.parse_args(args_in[1:])
    sys.exit(module.run(args) or 0)


if __name__ == "__main__":
    main()
