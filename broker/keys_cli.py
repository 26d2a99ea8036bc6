"""`wyoming-voice-broker keys create|list|revoke`: manage the HTTP API's keys (broker.core.keys).

The keys live in the bridge's settings database, found as the bridge finds it (`--db`,
`BROKER_DB`, `db` in the `--config` file, or the default), so the same flags work for both.
`create` prints the token on stdout, alone on its line, and only then; the database keeps
only its hash. A mistake (unknown key, duplicate name, bad number, unusable database) is one
line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import math
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from voice_common.app import setup_logging
from voice_common.config import resolve

from .config import OPTIONS
from .core.keys import KeyInfo, KeyLimits, KeyStore, KeyStoreError

PROG = "wyoming-voice-broker keys"


def _fail(message: str) -> NoReturn:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


class _OneLineParser(argparse.ArgumentParser):
    """A mistake is one line (the usage is in --help), as for the bridge's own options."""

    def error(self, message: str) -> NoReturn:
        _fail(f"{message} (see {self.prog} --help)")


def _number_type(kind: type[int] | type[float], what: str) -> Callable[[str], Any]:
    """An argparse type: a number of `kind` above 0, with a plain message when it is not."""
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
        return value
    return convert


def build_parser() -> argparse.ArgumentParser:
    where = _OneLineParser(add_help=False)
    where.add_argument("--db", metavar="PATH", help="the bridge's SQLite file [env BROKER_DB; default as the bridge's]")
    where.add_argument("--config", metavar="PATH", help="the bridge's TOML file, for its `db` [env BROKER_CONFIG]")
    parser = _OneLineParser(prog=PROG, description="Manage the API keys of the bridge's HTTP front.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{create,list,revoke}")
    create = commands.add_parser("create", parents=[where], help="make a key and print it (once)")
    create.add_argument("name", help="who or what the key is for (letters, digits, . _ @ -)")
    create.add_argument("--requests-per-minute", type=_number_type(int, "a whole number"), metavar="N",
                        help="API calls per minute (default: no limit)")
    create.add_argument("--audio-seconds-per-hour", type=_number_type(float, "a number"), metavar="N",
                        help="seconds of audio per hour, heard and spoken (default: no limit)")
    create.add_argument("--streams", type=_number_type(int, "a whole number"), metavar="N",
                        help="streams open at once (default: the bridge's --api-max-streams-per-key)")
    commands.add_parser("list", parents=[where], help="list the keys (never the tokens)")
    revoke = commands.add_parser("revoke", parents=[where], help="revoke a key at once, also in a running bridge")
    revoke.add_argument("name")
    return parser


def _database(args: argparse.Namespace) -> tuple[str, str]:
    """(the settings database, the log level) as the bridge would resolve them."""
    argv = [*(["--db", args.db] if args.db else []), *(["--config", args.config] if args.config else [])]
    config = resolve("wyoming-voice-broker", "keys", "BROKER", OPTIONS, argv)
    return config.db, config.log_level


def _when(stamp: float | None) -> str:
    return "-" if stamp is None else time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(stamp))


def _number(value: float | None, unset: str = "-") -> str:
    return unset if value is None else f"{value:g}"


def table(keys: Sequence[KeyInfo]) -> str:
    """`keys list`: one row per key, with the first characters of its token, never all of it."""
    rows = [("NAME", "KEY", "CREATED", "REQUESTS/MIN", "AUDIO S/HOUR", "STREAMS", "REVOKED")]
    for key in keys:
        rows.append((key.name, key.shown + "...", _when(key.created), _number(key.limits.requests_per_minute),
                     _number(key.limits.audio_seconds_per_hour), _number(key.limits.streams, "default"),
                     _when(key.revoked)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def run(args: argparse.Namespace, store: KeyStore) -> None:
    if args.command == "create":
        limits = KeyLimits(args.requests_per_minute, args.audio_seconds_per_hour, args.streams)
        token = store.create(args.name, limits)
        print(token, flush=True)
        print(f"{PROG}: key {args.name!r} created; the line above is its token, shown only this once "
              "(only its hash is stored): keep it now", file=sys.stderr)
    elif args.command == "list":
        print(table(store.list()))
    else:
        store.revoke(args.name)
        print(f"{PROG}: key {args.name!r} revoked", file=sys.stderr)


def main(argv: Sequence[str]) -> None:
    """`argv` is what follows `keys`; exits 0, or 2 with one line on stderr."""
    args = build_parser().parse_args(argv)
    db, log_level = _database(args)
    # The notes on stderr say what happened; the store's own INFO lines are for the bridge's log.
    setup_logging(log_level if log_level == "DEBUG" else "WARNING")
    try:
        store = KeyStore(db, create=args.command == "create")
        try:
            run(args, store)
        finally:
            store.close()
    except (KeyStoreError, sqlite3.Error, OSError) as err:
        _fail(str(err))
    raise SystemExit(0)
