"""API keys (broker.core.keys, `wyoming-voice-broker keys`) and per-key limits (broker.core.limits).

Keys: a real SQLite file shared with the site settings, the CLI run as a subprocess the way
an operator runs it. Limits: the arithmetic on a fake clock, so no test waits or depends on
how fast the machine is.
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys

import pytest
from helpers import REPO

from broker.core.keys import SHOWN_CHARS, TOKEN_RE, KeyLimits, KeyStore, KeyStoreError, digest_of
from broker.core.limits import KeyLimiters, RateLimit, StreamLimitReached, StreamSlots, retry_after_header

from broker.core.settings import SettingsStore


def keys_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m broker keys ARGS` from the repository root, without the caller's BROKER_* settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_")}
    return subprocess.run([sys.executable, "-m", "broker", "keys", *args], cwd=REPO, env={**clean, **(env or {})},
                          capture_output=True, text=True, timeout=60)


def create(db, name: str, *limits: str) -> str:
    out = keys_cli("create", name, "--db", str(db), *limits)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 1, out.stdout  # the token, alone on its line
    assert "only this once" in out.stderr and lines[0] not in out.stderr
    return lines[0]


def database_bytes(db) -> bytes:
    """The database file and any journal SQLite left beside it."""
    return b"".join(path.read_bytes() for path in db.parent.iterdir() if path.name.startswith(db.name))


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeKey:
    """What KeyLimiters reads of a broker.core.keys.Key."""

    def __init__(self, key_id: int, limits: KeyLimits) -> None:
        self.id = key_id
        self.limits = limits


# --- keys --------------------------------------------------------------------------------------


def test_create_prints_a_token_that_check_accepts(tmp_path):
    db = tmp_path / "settings.sqlite3"
    token = create(db, "kitchen-panel", "--requests-per-minute", "30", "--audio-seconds-per-hour", "600",
                   "--streams", "2")
    assert TOKEN_RE.fullmatch(token), token
    store = KeyStore(str(db))
    key = store.check(token)
    assert key is not None and key.name == "kitchen-panel" and key.shown == token[:SHOWN_CHARS]
    assert key.limits == KeyLimits(requests_per_minute=30, audio_seconds_per_hour=600.0, streams=2)
    assert store.check(token[:-1] + ("A" if token[-1] != "A" else "B")) is None  # one character off
    store.close()


def test_the_database_holds_only_a_hash(tmp_path):
    db = tmp_path / "settings.sqlite3"
    token = create(db, "alice")
    store = KeyStore(str(db))
    assert store.check(token) is not None
    store.close()
    data = database_bytes(db)
    assert digest_of(token).encode() in data  # the right file: its hash is there ...
    assert token.encode() not in data and token[SHOWN_CHARS:].encode() not in data  # ... the token is not


def test_list_shows_names_and_prefixes_never_tokens(tmp_path):
    db = tmp_path / "settings.sqlite3"
    alice, bob = create(db, "alice", "--streams", "3"), create(db, "bob", "--requests-per-minute", "60")
    out = keys_cli("list", "--db", str(db))
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.splitlines()
    assert header.split()[:2] == ["NAME", "KEY"]
    assert [row.split()[:2] for row in rows] == [["alice", alice[:SHOWN_CHARS] + "..."],
                                                 ["bob", bob[:SHOWN_CHARS] + "..."]]
    for token in (alice, bob):
        assert token[SHOWN_CHARS:SHOWN_CHARS + 6] not in out.stdout + out.stderr
    assert [info.name for info in KeyStore(str(db)).list()] == ["alice", "bob"]


def test_revoke_refuses_the_key_at_once_in_an_open_store(tmp_path):
    db = tmp_path / "settings.sqlite3"
    token = create(db, "alice")
    other = create(db, "bob")
    # As in a running bridge: the site settings and the keys open on the one file.
    settings = SettingsStore(str(db))
    settings.update("kitchen", {"mode": "tts_only"}, max_sites=8)
    store = KeyStore(str(db))
    assert store.check(token) is not None

    out = keys_cli("revoke", "alice", "--db", str(db))
    assert out.returncode == 0, out.stderr
    assert store.check(token) is None  # the very next check, without reopening
    assert store.check(other) is not None  # only that key
    listed = {info.name: info for info in store.list()}
    assert listed["alice"].revoked is not None and listed["bob"].revoked is None

    renewed = create(db, "alice")  # the name is free again, with a new token
    assert store.check(renewed) is not None and store.check(token) is None
    assert settings.get("kitchen").mode == "tts_only"
    settings.close()
    assert SettingsStore(str(db)).get("kitchen").mode == "tts_only"
    store.close()


def test_store_revoke_and_duplicates_in_process(tmp_path):
    store = KeyStore(str(tmp_path / "keys.sqlite3"))
    token = store.create("alice", KeyLimits(streams=1))
    with pytest.raises(KeyStoreError, match="exists"):
        store.create("alice")
    store.revoke("alice")
    assert store.check(token) is None
    with pytest.raises(KeyStoreError, match="no active key"):
        store.revoke("alice")
    with pytest.raises(KeyStoreError):
        KeyLimits(requests_per_minute=0)
    store.close()


@pytest.mark.parametrize("text", ["", "wvb_", "Bearer wvb_x", "sk-" + "a" * 43, "wvb_" + "a" * 44,
                                  "wvb_" + "a" * 42 + "!", "x" * 10_000])
def test_check_refuses_what_is_not_a_key(tmp_path, text):
    store = KeyStore(str(tmp_path / "keys.sqlite3"))
    store.create("alice")
    assert store.check(text) is None
    store.close()


def test_keys_are_never_logged(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    db = tmp_path / "settings.sqlite3"
    store = KeyStore(str(db))
    token = store.create("alice")
    assert store.check(token) is not None
    store.revoke("alice")
    assert "alice" in caplog.text and token[SHOWN_CHARS:] not in caplog.text  # it logs, and not the key

    out = keys_cli("create", "bob", "--db", str(db), env={"BROKER_LOG_LEVEL": "DEBUG"})
    assert out.returncode == 0, out.stderr
    cli_token = out.stdout.strip()
    assert "bob" in out.stderr and cli_token[SHOWN_CHARS:] not in out.stderr


def test_the_bridge_settings_find_the_database(tmp_path):
    """BROKER_DB and the bridge's --config file name the database as they do for the bridge."""
    db = tmp_path / "by-env.sqlite3"
    out = keys_cli("create", "alice", env={"BROKER_DB": str(db)})
    assert out.returncode == 0, out.stderr
    assert KeyStore(str(db)).check(out.stdout.strip()) is not None

    config = tmp_path / "broker.toml"
    config.write_text(f'mqtt_host = "127.0.0.1"\nmax_sessions = 4\ndb = "{tmp_path / "by-file.sqlite3"}"\n')
    out = keys_cli("create", "bob", "--config", str(config))
    assert out.returncode == 0, out.stderr
    assert KeyStore(str(tmp_path / "by-file.sqlite3")).check(out.stdout.strip()) is not None


def test_mistakes_are_one_line_and_exit_2(tmp_path):
    db = tmp_path / "settings.sqlite3"
    create(db, "alice")
    (tmp_path / "a-file").write_text("not a directory")
    (tmp_path / "garbage.sqlite3").write_bytes(b"this is not a database" * 100)
    cases = {
        "unknown key": (["revoke", "nobody", "--db", str(db)], "no active key named 'nobody'"),
        "duplicate": (["create", "alice", "--db", str(db)], "an active key named 'alice' exists"),
        "bad number": (["create", "bob", "--db", str(db), "--streams", "two"], "'two' is not a whole number"),
        "zero": (["create", "bob", "--db", str(db), "--requests-per-minute", "0"], "above 0"),
        "bad name": (["create", "bob smith", "--db", str(db)], "a key name is"),
        "unwritable": (["create", "bob", "--db", str(tmp_path / "a-file" / "x.sqlite3")], "cannot use"),
        "not a database": (["list", "--db", str(tmp_path / "garbage.sqlite3")], "not a database"),
        "no database": (["list", "--db", str(tmp_path / "missing.sqlite3")], "no key database"),
        "no command": ([], "required"),
        "unknown command": (["rotate", "alice"], "invalid choice"),
    }
    for name, (args, expected) in cases.items():
        out = keys_cli(*args)
        assert out.returncode == 2, (name, out.stdout, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1 and expected in out.stderr, (name, out.stderr)
        assert "Traceback" not in out.stderr and out.stdout == "", name
    assert not (tmp_path / "missing.sqlite3").exists()  # `list` does not make an empty database
    assert [info.name for info in KeyStore(str(db)).list()] == ["alice"]  # nothing changed by a mistake


# --- limits ------------------------------------------------------------------------------------


def test_requests_per_minute_refuse_with_exact_retry_after():
    clock = FakeClock()
    rate = RateLimit(2, 60.0, clock)  # 2 per minute: a burst of 2, then one every 30 s
    assert rate.take() is None and rate.take() is None
    assert rate.take() == 30.0
    assert rate.take() == 30.0  # a refusal charges nothing
    clock.now = 10.0
    assert rate.peek() == 20.0 and rate.take() == 20.0
    clock.now = 30.0
    assert rate.take() is None  # exactly when it said
    assert rate.take() == 30.0
    clock.now = 200.0  # a long pause refills to the burst, not beyond
    assert rate.take() is None and rate.take() is None and rate.take() == 30.0
    assert retry_after_header(30.0) == "30" and retry_after_header(0.25) == "1" and retry_after_header(29.5) == "30"


def test_audio_seconds_per_hour():
    clock = FakeClock(1000.0)
    limiter = KeyLimiters(clock=clock).for_key(FakeKey(1, KeyLimits(audio_seconds_per_hour=60)))
    assert limiter.admit_audio(30) is None  # a 30 s upload of a 60 s/hour allowance
    assert limiter.admit_audio(40) == 600.0  # 10 s too many: one second comes back per minute
    assert limiter.admit_audio(30) is None  # what fits still passes
    assert limiter.admit_audio(61) == math.inf  # more than an hour's allowance never will
    with pytest.raises(ValueError):
        retry_after_header(math.inf)
    clock.now = 1000.0 + 3600
    limiter.charge_audio(90)  # a stream used more than allowed: the key is in debt ...
    assert limiter.admit_audio(1) == 1860.0  # ... 30 s over the hour's 60, plus the second asked for
    assert limiter.admit_request() is None  # no request limit on this key


def test_limiters_are_per_key_and_follow_the_key():
    clock = FakeClock()
    limiters = KeyLimiters(clock=clock)
    alice, bob = FakeKey(1, KeyLimits(requests_per_minute=1)), FakeKey(2, KeyLimits(requests_per_minute=1))
    assert limiters.for_key(alice).admit_request() is None
    assert limiters.for_key(alice).admit_request() == 60.0
    assert limiters.for_key(bob).admit_request() is None  # bob has his own bucket
    assert limiters.for_key(FakeKey(3, KeyLimits(requests_per_minute=1))).admit_request() is None  # a new key
    unlimited = limiters.for_key(FakeKey(4, KeyLimits()))
    assert all(unlimited.admit_request() is None for _ in range(1000))
    assert unlimited.admit_audio(10**6) is None


def test_streams_cap():
    limiters = KeyLimiters(default_streams=3)
    own = limiters.for_key(FakeKey(1, KeyLimits(streams=2))).streams
    with own.hold(), own.hold():
        assert own.in_use == 2
        with pytest.raises(StreamLimitReached) as refused:
            with own.hold():
                pass
        assert refused.value.limit == 2
    assert own.in_use == 0
    with pytest.raises(RuntimeError), own.hold():
        raise RuntimeError("the stream failed")
    assert own.in_use == 0  # released on the way out

    default = limiters.for_key(FakeKey(2, KeyLimits())).streams
    assert [default.try_acquire() for _ in range(4)] == [True, True, True, False]
    default.release()
    assert default.try_acquire() is True

    free = KeyLimiters().for_key(FakeKey(3, KeyLimits())).streams
    assert all(free.try_acquire() for _ in range(100))
    with pytest.raises(RuntimeError):
        StreamSlots(1).release()  # never acquired
