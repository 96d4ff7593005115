"""Trader and operator commands (`exness account`, `exness order buy BTCUSD 0.01`, ...): the
Python SDK (exness_client) through the edge, with rich tables (or --json for scripts).

The edge is --edge, else $EXNESS_EDGE, else the one a running `exness up` with the same data
directory recorded, else localhost:8080. The session (tokens) is kept in the data directory.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import betterproto2
from exness_client import Code, ExnessClient, ExnessError, SessionStore
from exness_client.contracts.exness.market.v1 import Quote
from exness_client.contracts.exness.trading.v1 import (
    Account,
    AccountKind,
    Order,
    OrderSide,
    Position,
)
from rich.console import Console
from rich.live import Live
from rich.table import Table

from cli.devstack.children import SERVICES, STATE_FILE
from cli.figures import ServiceFigures, read_figures
from kit.rpc.probes import grpc_serving, http_ok
from kit.settings import Settings

console = Console(highlight=False)


def _data_dir() -> Path:
    return Settings.from_env().data_dir


def _up_state() -> dict[str, Any]:
    path = _data_dir() / STATE_FILE
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return state


def _edge(args: argparse.Namespace) -> str:
    return str(
        args.edge or os.environ.get("EXNESS_EDGE") or _up_state().get("edge") or "localhost:8080"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    command = parser.get_default("command")
    parser.add_argument("--edge", help="host:port of the edge (default: see `exness --help`)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add = parser.add_argument
    if command in _ON_AN_ACCOUNT:
        add("--account", default="", help="account id (see `exness accounts`; default: yours)")
    if command in ("register", "login"):
        add("email")
        add("--password", help="default: $EXNESS_PASSWORD, else asked for")
    elif command in ("deposit", "withdraw"):
        add("amount", help="USD, e.g. 1000 or 250.50")
    elif command == "create-account":
        add("type", help="account type: standard, pro, raw_spread or zero")
        add("--real", action="store_true", help='labelled "real" (default: demo)')
        add("--leverage", type=int, default=0, help="e.g. 500 for 1:500")
        add("--swap-free", action="store_true", help="no swaps at the rollover")
    elif command == "transactions":
        add("--limit", type=int, default=20)
    elif command == "leverage":
        add("leverage", type=int, help="e.g. 100 for 1:100")
    elif command == "order":
        add("side", choices=["buy", "sell"])
        add("symbol")
        add("volume", nargs="?", help="lots (or give --margin)")
        add("--margin", help="USD of margin to commit instead of a volume")
        add("--leverage", type=int, default=0, help="leverage for this order")
        kind = parser.add_mutually_exclusive_group()
        kind.add_argument("--limit", metavar="PRICE", help="a pending LIMIT order at PRICE")
        kind.add_argument("--stop", metavar="PRICE", help="a pending STOP order at PRICE")
        add("--sl", help="stop-loss price")
        add("--tp", help="take-profit price")
        add("--id", help="idempotency key (default: generated, reused on retries)")
    elif command in ("cancel",):
        add("order_id")
    elif command == "modify":
        add("position_id")
        add("--sl", default="", help="stop-loss price (omit to remove)")
        add("--tp", default="", help="take-profit price (omit to remove)")
    elif command == "close":
        add("position_id")
        add("--volume", help="lots to close (default: all)")
    elif command == "trades":
        add("--symbol", default="")
        add("--limit", type=int, default=20)
    elif command == "quotes":
        add("symbols", nargs="*", help="default: every instrument")
        add("--type", default="", help="with this account type's spread, e.g. raw_spread")
        add("--follow", "-f", action="store_true", help="keep streaming")


# Commands that act on one trading account (--account).
_ON_AN_ACCOUNT = {
    "account",
    "deposit",
    "withdraw",
    "leverage",
    "order",
    "orders",
    "cancel",
    "positions",
    "modify",
    "close",
    "trades",
    "transactions",
}

# --- output -------------------------------------------------------------------------------

_SIDE = {OrderSide.BUY: "BUY", OrderSide.SELL: "SELL"}


def _print_json(items: betterproto2.Message | Iterable[betterproto2.Message]) -> None:
    if isinstance(items, betterproto2.Message):
        print(json.dumps(items.to_dict(), indent=2))
    else:
        print(json.dumps([item.to_dict() for item in items], indent=2))


def _table(title: str, columns: list[str], rows: Iterable[list[str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, justify="right" if column in _NUMERIC else "left")
    for row in rows:
        table.add_row(*row)
    return table


_NUMERIC = {
    "balance",
    "equity",
    "margin",
    "free margin",
    "level %",
    "volume",
    "price",
    "open",
    "current",
    "SL",
    "TP",
    "P&L",
    "bid",
    "ask",
    "close",
    "leverage",
    "floating P&L",
    "amount",
    "balance after",
    "commission",
    "margin call %",
    "stop out %",
}


def _account_table(account: Account | None) -> Table:
    account = account or Account()
    return _table(
        "account",
        ["balance", "equity", "margin", "free margin", "level %", "floating P&L", "leverage"],
        [
            [
                account.balance,
                account.equity,
                account.margin,
                account.free_margin,
                account.margin_level or "-",
                account.floating_pnl,
                f"1:{account.leverage}",
            ]
        ],
    )


def _positions_table(positions: list[Position]) -> Table:
    return _table(
        "open positions",
        ["id", "symbol", "side", "volume", "open", "current", "SL", "TP", "margin", "P&L"],
        [
            [
                p.position_id,
                p.symbol,
                _SIDE.get(p.side, "?"),
                p.volume,
                p.open_price,
                p.current_price,
                p.stop_loss or "-",
                p.take_profit or "-",
                p.margin,
                p.unrealized_pnl,
            ]
            for p in positions
        ],
    )


def _orders_table(orders: list[Order], title: str = "orders") -> Table:
    return _table(
        title,
        ["id", "symbol", "side", "type", "status", "volume", "price", "SL", "TP"],
        [
            [
                o.order_id,
                o.symbol,
                _SIDE.get(o.side, "?"),
                o.type.name,
                o.status.name,
                o.volume,
                o.price or o.fill_price or "-",
                o.stop_loss or "-",
                o.take_profit or "-",
            ]
            for o in orders
        ],
    )


def _quotes_table(quotes: dict[str, Quote]) -> Table:
    return _table(
        "quotes",
        ["symbol", "bid", "ask", "time"],
        [
            [q.symbol, q.bid, q.ask, q.time.strftime("%H:%M:%S.%f")[:-3] if q.time else "-"]
            for _, q in sorted(quotes.items())
        ],
    )


# --- commands -----------------------------------------------------------------------------


def _password(args: argparse.Namespace) -> str:
    return str(args.password or os.environ.get("EXNESS_PASSWORD") or getpass.getpass())


async def _register(client: ExnessClient, args: argparse.Namespace) -> None:
    reply = await client.register(args.email, _password(args))
    user = reply.user
    assert user is not None
    console.print(f"registered and signed in as {user.email} (user {user.user_id})")


async def _login(client: ExnessClient, args: argparse.Namespace) -> None:
    await client.login(args.email, _password(args))
    console.print(f"signed in as {args.email.strip().lower()}")


async def _logout(client: ExnessClient, args: argparse.Namespace) -> None:
    await client.logout()
    console.print("signed out")


async def _account(client: ExnessClient, args: argparse.Namespace) -> None:
    account = await client.account(args.account)
    _print_json(account) if args.json else console.print(_account_table(account))


def _accounts_table(accounts: list[Account]) -> Table:
    return _table(
        "trading accounts",
        ["id", "type", "kind", "default", "balance", "equity", "leverage"],
        [
            [
                a.account_id,
                a.account_type,
                "real" if a.kind is AccountKind.REAL else "demo",
                "yes" if a.is_default else "",
                a.balance,
                a.equity,
                f"1:{a.leverage}",
            ]
            for a in accounts
        ],
    )


async def _accounts(client: ExnessClient, args: argparse.Namespace) -> None:
    accounts = await client.accounts()
    _print_json(accounts) if args.json else console.print(_accounts_table(accounts))


async def _create_account(client: ExnessClient, args: argparse.Namespace) -> None:
    account = await client.create_account(
        args.type, real=args.real, leverage=args.leverage, swap_free=args.swap_free
    )
    _print_json(account) if args.json else console.print(_accounts_table([account]))


async def _account_types(client: ExnessClient, args: argparse.Namespace) -> None:
    types = await client.account_types()
    if args.json:
        _print_json(types)
        return
    console.print(
        _table(
            "account types",
            ["name", "margin call %", "stop out %", "leverage", "symbol", "markup", "commission"],
            [
                [
                    t.name if n == 0 else "",
                    t.margin_call_level if n == 0 else "",
                    t.stop_out_level if n == 0 else "",
                    f"1:{t.max_leverage}" if n == 0 else "",
                    x.symbol,
                    x.spread_markup,
                    x.commission_per_lot,
                ]
                for t in types
                for n, x in enumerate(t.terms)
            ],
        )
    )


async def _deposit(client: ExnessClient, args: argparse.Namespace) -> None:
    reply = await client.deposit(args.amount, args.account)
    _print_json(reply) if args.json else console.print(_account_table(reply.account))


async def _withdraw(client: ExnessClient, args: argparse.Namespace) -> None:
    reply = await client.withdraw(args.amount, args.account)
    _print_json(reply) if args.json else console.print(_account_table(reply.account))


async def _transactions(client: ExnessClient, args: argparse.Namespace) -> None:
    reply = await client.transactions(page_size=args.limit, account_id=args.account)
    if args.json:
        _print_json(reply.entries)
        return
    console.print(
        _table(
            "transactions",
            ["id", "time", "kind", "amount", "balance after", "reference"],
            [
                [
                    e.entry_id,
                    e.create_time.strftime("%Y-%m-%d %H:%M:%S") if e.create_time else "-",
                    e.kind.name,
                    e.amount,
                    e.balance_after,
                    e.reference_id or "-",
                ]
                for e in reply.entries
            ],
        )
    )


async def _leverage(client: ExnessClient, args: argparse.Namespace) -> None:
    account = await client.set_leverage(args.leverage, args.account)
    _print_json(account) if args.json else console.print(_account_table(account))


async def _order(client: ExnessClient, args: argparse.Namespace) -> None:
    if not args.volume and not args.margin:
        raise SystemExit("exness order: give a volume (lots) or --margin")
    kind, price = (
        ("limit", args.limit)
        if args.limit
        else (("stop", args.stop) if args.stop else ("market", None))
    )
    reply = await client.place_order(
        args.symbol,
        args.side,
        volume=args.volume,
        margin=args.margin,
        leverage=args.leverage,
        order_type=kind,
        price=price,
        stop_loss=args.sl,
        take_profit=args.tp,
        client_order_id=args.id,
        account_id=args.account,
    )
    if args.json:
        _print_json(reply)
        return
    if reply.order is not None:
        console.print(_orders_table([reply.order], "order"))
    if reply.position is not None:
        console.print(_positions_table([reply.position]))


async def _orders(client: ExnessClient, args: argparse.Namespace) -> None:
    orders = await client.orders(args.account)
    _print_json(orders) if args.json else console.print(_orders_table(orders, "pending orders"))


async def _cancel(client: ExnessClient, args: argparse.Namespace) -> None:
    order = await client.cancel_order(args.order_id, args.account)
    _print_json(order) if args.json else console.print(_orders_table([order], "cancelled"))


async def _positions(client: ExnessClient, args: argparse.Namespace) -> None:
    positions = await client.positions(args.account)
    _print_json(positions) if args.json else console.print(_positions_table(positions))


async def _modify(client: ExnessClient, args: argparse.Namespace) -> None:
    position = await client.modify_position(args.position_id, args.sl, args.tp, args.account)
    _print_json(position) if args.json else console.print(_positions_table([position]))


async def _close(client: ExnessClient, args: argparse.Namespace) -> None:
    reply = await client.close_position(args.position_id, args.volume, args.account)
    if args.json:
        _print_json(reply)
        return
    trade = reply.trade
    assert trade is not None
    console.print(
        f"closed {trade.volume} {trade.symbol} at {trade.close_price}: P&L {trade.realized_pnl}"
    )
    console.print(_account_table(reply.account))


async def _trades(client: ExnessClient, args: argparse.Namespace) -> None:
    reply = await client.trades(page_size=args.limit, symbol=args.symbol, account_id=args.account)
    if args.json:
        _print_json(reply.trades)
        return
    console.print(
        _table(
            "closed trades",
            ["id", "symbol", "side", "volume", "open", "close", "P&L", "commission", "reason"],
            [
                [
                    t.trade_id,
                    t.symbol,
                    _SIDE.get(t.side, "?"),
                    t.volume,
                    t.open_price,
                    t.close_price,
                    t.realized_pnl,
                    t.commission,
                    t.close_reason.name,
                ]
                for t in reply.trades
            ],
        )
    )


async def _instruments(client: ExnessClient, args: argparse.Namespace) -> None:
    instruments = await client.instruments()
    if args.json:
        _print_json(instruments)
        return
    console.print(
        _table(
            "instruments",
            ["symbol", "description", "contract", "volume min/step/max", "max leverage"],
            [
                [
                    i.symbol,
                    i.description,
                    i.contract_size,
                    f"{i.volume_min} / {i.volume_step} / {i.volume_max}",
                    f"1:{i.max_leverage}",
                ]
                for i in instruments
            ],
        )
    )


async def _quotes(client: ExnessClient, args: argparse.Namespace) -> None:
    symbols = [s.upper() for s in args.symbols] or [i.symbol for i in await client.instruments()]
    if not args.follow:
        # One GetQuote per symbol, side by side; symbols without a quote yet are left out.
        replies = await asyncio.gather(
            *(client.quote(symbol, args.type) for symbol in symbols), return_exceptions=True
        )
        quotes: dict[str, Quote] = {}
        for symbol, reply in zip(symbols, replies, strict=True):
            if isinstance(reply, ExnessError) and reply.reason == "NO_QUOTE":
                continue
            if isinstance(reply, BaseException):
                raise reply
            quotes[symbol] = reply
        _print_json(quotes.values()) if args.json else console.print(_quotes_table(quotes))
        return
    latest: dict[str, Quote] = {}
    if args.json:
        async for quote in client.stream_quotes(symbols, account_type=args.type):
            print(json.dumps(quote.to_dict()), flush=True)
        return
    with Live(_quotes_table(latest), console=console, refresh_per_second=8) as live:
        async for quote in client.stream_quotes(symbols, account_type=args.type):
            latest[quote.symbol] = quote
            live.update(_quotes_table(latest))


def _rate(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.2f}{unit}"


def _status(args: argparse.Namespace) -> int:
    state = _up_state()
    if not state:
        console.print(f"no running `exness up` recorded in {_data_dir()}")
        return 1
    figures = read_figures(state["prometheus"]) if state.get("prometheus") else None
    services = figures.services if figures else {}
    rows = []
    # Every instance: MarketData replicas and engine shards are listed by `exness up`.
    instances = {"market": "market_replicas", "trading": "trading_shards"}
    for spec in SERVICES:
        addresses = state.get(instances.get(spec.state_key, ""), [state[spec.state_key]])
        # The figures are per service (every instance of it together).
        seen = services.get(spec.state_key, ServiceFigures())
        p99_ms = None if seen.p99_s is None else seen.p99_s * 1000
        for n, where in enumerate(addresses):
            name = spec.state_key if len(addresses) == 1 else f"{spec.state_key} {n}"
            ok = grpc_serving(where, spec.health_service)
            rows.append(
                [
                    name,
                    where,
                    "SERVING" if ok else "NOT SERVING",
                    _rate(seen.rps),
                    _rate(p99_ms, " ms"),
                    _rate(seen.errors_per_s),
                ]
            )
    edge_ok = http_ok(f"http://{state['edge']}/healthz", timeout_s=2)
    rows.append(["edge", state["edge_url"], "SERVING" if edge_ok else "NOT SERVING", "", "", ""])
    columns = ["component", "where", "health", "req/s", "p99", "errors/s"]
    console.print(_table("status", columns, rows))
    if figures is None:
        console.print("figures: Prometheus is not running (scripts/setup.sh installs it)")
    elif figures.oldest_quote is None:
        console.print("oldest quote: none yet")
    else:
        symbol, age = figures.oldest_quote
        console.print(f"oldest quote: {symbol} {age:.1f} s old")
    return 0 if all(row[2] == "SERVING" for row in rows) else 1


COMMANDS: dict[str, Callable[[ExnessClient, argparse.Namespace], Awaitable[None]]] = {
    "register": _register,
    "login": _login,
    "logout": _logout,
    "account": _account,
    "deposit": _deposit,
    "leverage": _leverage,
    "order": _order,
    "orders": _orders,
    "cancel": _cancel,
    "positions": _positions,
    "modify": _modify,
    "close": _close,
    "trades": _trades,
    "accounts": _accounts,
    "account-types": _account_types,
    "create-account": _create_account,
    "withdraw": _withdraw,
    "transactions": _transactions,
    "instruments": _instruments,
    "quotes": _quotes,
}


async def _run(args: argparse.Namespace) -> None:
    store = SessionStore(_data_dir() / "session.json")
    async with ExnessClient(_edge(args), store=store) as client:
        await COMMANDS[args.command](client, args)


def run(args: argparse.Namespace) -> int:
    if args.command == "status":
        return _status(args)
    try:
        asyncio.run(_run(args))
    except ExnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        for field, problem in exc.fields.items():
            print(f"  {field}: {problem}", file=sys.stderr)
        if exc.code == Code.UNAVAILABLE and not exc.reason:
            print(
                f"  (is the platform running? edge: {_edge(args)}; start it with `exness up`)",
                file=sys.stderr,
            )
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
