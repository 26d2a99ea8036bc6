"""API keys for the bridge's HTTP front, kept hashed in the site settings' SQLite file.

A key is `wvb_` + 32 random bytes (urlsafe base64): the prefix makes a leaked key easy to
recognise (secret scanners, logs), the 256 random bits make guessing hopeless. The token is
shown once, by `create`; the database keeps only its SHA-256 digest, the first 8
characters (to tell keys apart in `keys list`), the name, the time it was made, its limits
and, once revoked, when.

Why a fast hash and not bcrypt/scrypt/argon2: slow hashes exist to protect low-entropy
secrets (passwords) against offline guessing. A 256-bit random token cannot be guessed
whatever the hash costs, so SHA-256 is as safe here and costs microseconds on every request
instead of tens of milliseconds; and because it is unsalted and deterministic, the digest
is the lookup index. The stored digest is compared with `hmac.compare_digest` (constant
time) after the lookup; what a lookup's timing could reveal is a digest's prefix, which
does not help find a 256-bit preimage.

`check` reads the database on every call (one indexed SELECT): a key revoked by another
process (`wyoming-voice-broker keys revoke` while the bridge runs) is refused on the very
next request. The store has its own connection and its own table, so it can be open in the
same process as `SettingsStore` on the same file.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import logging
import math
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

_LOGGER = logging.getLogger(__name__)

TOKEN_PREFIX = "wvb_"
TOKEN_BYTES = 32
#: How much of a token `list` shows (and the database keeps in clear): "wvb_" + 4 characters.
SHOWN_CHARS = 8
#: Longer input is refused before it is hashed (a key is 47 characters).
MAX_TOKEN_CHARS = 128
#: Unpadded urlsafe base64 of TOKEN_BYTES bytes: 43 characters.
TOKEN_CHARS = (TOKEN_BYTES * 8 + 5) // 6
TOKEN_RE = re.compile(rf"{TOKEN_PREFIX}[A-Za-z0-9_-]{{{TOKEN_CHARS}}}")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS api_keys ("
    " id INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " shown TEXT NOT NULL,"
    " digest TEXT NOT NULL UNIQUE,"
    " created REAL NOT NULL,"
    " requests_per_minute INTEGER,"
    " audio_seconds_per_hour REAL,"
    " streams INTEGER,"
    " revoked REAL)",
    # One active key per name; revoked keys stay listed (who had access, and until when).
    "CREATE UNIQUE INDEX IF NOT EXISTS api_keys_active_name ON api_keys (name) WHERE revoked IS NULL",
)
_COLUMNS = "id, name, shown, created, requests_per_minute, audio_seconds_per_hour, streams, revoked"


class KeyStoreError(ValueError):
    """A mistake with keys (duplicate name, unknown key, bad limit, unusable database file);
    the message says what is wrong and never contains a token."""


@dataclass(frozen=True)
class KeyLimits:
    """A key's own limits; None is no limit of its own (for streams: the front's default)."""

    requests_per_minute: int | None = None
    audio_seconds_per_hour: float | None = None
    streams: int | None = None

    def __post_init__(self) -> None:
        for name in ("requests_per_minute", "audio_seconds_per_hour", "streams"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise KeyStoreError(f"{name.replace('_', ' ')} must be a finite number above 0, got {value}")


@dataclass(frozen=True)
class Key:
    """An active key, as `check` returns it: who is calling, and their limits (no secret)."""

    id: int
    name: str
    shown: str
    created: float
    limits: KeyLimits


@dataclass(frozen=True)
class KeyInfo(Key):
    """A key as `list` shows it: `revoked` is when it was revoked, None while it is active."""

    revoked: float | None = None


def digest_of(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _row_to_info(row: tuple) -> KeyInfo:
    key_id, name, shown, created, rpm, audio, streams, revoked = row
    return KeyInfo(key_id, name, shown, created, KeyLimits(rpm, audio, streams), revoked)


class KeyStore:
    """API keys in table `api_keys` of the SQLite file at `path` (the bridge's `--db`).

    `create=False` refuses a file that does not exist yet (for `keys list`/`revoke`, where a
    new empty file would only hide a mistyped `--db`). Safe to call from several threads.
    """

    def __init__(self, path: str, *, create: bool = True, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        try:
            if path == ":memory:":
                self._db = sqlite3.connect(path, check_same_thread=False)
            else:
                file = Path(path).expanduser()
                if create:
                    file.parent.mkdir(parents=True, exist_ok=True)
                elif not file.is_file():
                    raise KeyStoreError(f"no key database at {path} (`keys create` makes one)")
                mode = "rwc" if create else "rw"
                self._db = sqlite3.connect(f"file:{quote(str(file))}?mode={mode}", uri=True,
                                           check_same_thread=False)
            with self._db:
                for statement in _SCHEMA:
                    self._db.execute(statement)
        except (sqlite3.Error, OSError) as err:
            raise KeyStoreError(f"cannot use {path} as the key database: {err}") from err

    def create(self, name: str, limits: KeyLimits | None = None) -> str:
        """A new key named `name`; returns the token (the only time it exists in clear)."""
        if not NAME_RE.fullmatch(name):
            raise KeyStoreError(f"a key name is 1-64 letters, digits and . _ @ -, starting with a letter or "
                                f"digit: {name!r}")
        limits = limits or KeyLimits()
        token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
        try:
            with self._lock, self._db:
                self._db.execute(
                    "INSERT INTO api_keys (name, shown, digest, created, requests_per_minute, "
                    "audio_seconds_per_hour, streams) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (name, token[:SHOWN_CHARS], digest_of(token), self._clock(), limits.requests_per_minute,
                     limits.audio_seconds_per_hour, limits.streams),
                )
        except sqlite3.IntegrityError as err:
            raise KeyStoreError(f"an active key named {name!r} exists (revoke it first)") from err
        except sqlite3.Error as err:
            raise KeyStoreError(f"cannot store the key: {err}") from err
        _LOGGER.info("API key %r created", name)
        return token

    def list(self) -> builtins.list[KeyInfo]:
        """Every key, revoked ones too, oldest first (never a token or a digest)."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created, id").fetchall()
        return [_row_to_info(row) for row in rows]

    def revoke(self, name: str) -> None:
        """Revoke the active key `name`: `check` refuses it from the next call on, in every process."""
        try:
            with self._lock, self._db:
                cursor = self._db.execute("UPDATE api_keys SET revoked = ? WHERE name = ? AND revoked IS NULL",
                                          (self._clock(), name))
        except sqlite3.Error as err:
            raise KeyStoreError(f"cannot revoke the key: {err}") from err
        if cursor.rowcount == 0:
            raise KeyStoreError(f"no active key named {name!r}")
        _LOGGER.info("API key %r revoked", name)

    def check(self, token: str) -> Key | None:
        """The active key whose token this is, or None (unknown, revoked, malformed).

        One indexed SELECT (tens of microseconds; fine on the event loop). A database that
        cannot be read (locked past sqlite's 5 s busy timeout, removed) raises sqlite3.Error:
        the front answers 503, not 401, so a client does not throw away a good key."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or not TOKEN_RE.fullmatch(token):
            return None
        digest = digest_of(token)
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS}, digest FROM api_keys WHERE digest = ? AND revoked IS NULL", (digest,)
            ).fetchone()
        if row is None or not hmac.compare_digest(row[-1], digest):
            return None
        info = _row_to_info(row[:-1])
        return Key(info.id, info.name, info.shown, info.created, info.limits)

    def close(self) -> None:
        with self._lock:
            self._db.close()
