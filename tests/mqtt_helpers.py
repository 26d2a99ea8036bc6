"""Helpers for the broker tests: a private Mosquitto (password + TLS), the bridge process, a probe client.

Mosquitto runs from a generated configuration on free loopback ports with a
password file (mosquitto_passwd) and a TLS listener whose CA, server and client
certificates are made here with openssl. The system instance on 1883 is never used.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import getpass
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from helpers import JFK_FLAC, REPO, ServerProcess, decode_audio, free_port, wait_for_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
USER, PASSWORD = "bridge", "s3cret-bridge"
DEVICE, DEVICE_PASSWORD = "device", "s3cret-device"


def _run(*cmd: str, cwd: Path) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_certificates(folder: Path) -> None:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=voice-test-ca", cwd=folder)
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, ext in (("server", ["-extfile", "san.ext"]), ("client", [])):
        _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=folder)
        _run("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-out", f"{name}.crt", *ext, cwd=folder)


class Mosquitto:
    """A private broker: plain listener (passwords) and TLS listener (passwords + client cert)."""

    def __init__(self, persistence: bool = False) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mosquitto-"))
        self.port = free_port()
        self.tls_port = free_port()
        make_certificates(self.dir)
        passwd = self.dir / "passwd"
        _run("mosquitto_passwd", "-b", "-c", str(passwd), USER, PASSWORD, cwd=self.dir)
        _run("mosquitto_passwd", "-b", str(passwd), DEVICE, DEVICE_PASSWORD, cwd=self.dir)
        lines = [
            f"user {getpass.getuser()}",  # as root, mosquitto would switch to a user that cannot read self.dir
            "per_listener_settings false",
            "allow_anonymous false",
            f"password_file {passwd}",
            "max_packet_size 2000000",
            f"listener {self.port} 127.0.0.1",
            f"listener {self.tls_port} 127.0.0.1",
            f"cafile {self.dir / 'ca.crt'}",
            f"certfile {self.dir / 'server.crt'}",
            f"keyfile {self.dir / 'server.key'}",
            "require_certificate true",
        ]
        if persistence:
            lines[:0] = ["persistence true", f"persistence_location {self.dir}/"]
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.log_path = self.dir / "mosquitto.log"
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf), "-v"], stdout=log, stderr=log)
        log.close()
        wait_for_port(self.port, self.proc, 60)
        wait_for_port(self.tls_port, self.proc, 60)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self, down_seconds: float = 0.5) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def cli_auth(self) -> list[str]:
        return ["-h", "127.0.0.1", "-p", str(self.port), "-u", DEVICE, "-P", DEVICE_PASSWORD]


class Bridge:
    """`python -m broker` against a Mosquitto, with /healthz on a free port."""

    def __init__(self, broker: Mosquitto, *args: str, db: Path | None = None, env: dict | None = None,
                 protocol: str = "5") -> None:
        self.broker = broker
        self.args = list(args)
        self.db = db or Path(tempfile.mkdtemp(prefix="bridge-")) / "settings.sqlite3"
        self.protocol = protocol
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "BROKER_MQTT_PASSWORD": PASSWORD, **(env or {})}
        self.log_path = Path(tempfile.mkstemp(prefix="bridge-", suffix=".log")[1])
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> "Bridge":
        self.launch()
        self.wait_healthy(timeout)
        return self

    def launch(self) -> "Bridge":
        """Start the process without waiting for it to become healthy."""
        self.http_port = free_port()
        cmd = [
            sys.executable, "-m", "broker", "--mqtt-port", str(self.broker.port),
            "--mqtt-username", USER, "--mqtt-protocol", self.protocol,
            "--http", f"127.0.0.1:{self.http_port}", "--db", str(self.db),
            "--reconnect-min", "0.3", "--reconnect-max", "1", "--no-discover", *self.args,
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=REPO)
        return self

    def healthy(self) -> bool:
        return self.health_status() == 200

    def health_status(self) -> int | None:
        """The HTTP status of /healthz (200 connected, 503 not), None while nothing answers."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/healthz", timeout=5) as resp:
                return resp.status
        except urllib.error.HTTPError as err:
            return err.code
        except OSError:
            return None

    def wait_log(self, text: str, count: int = 1, timeout: float = 60.0) -> str:
        """Until `text` is in the log `count` times (the bridge's own word, not a sleep)."""
        deadline = time.monotonic() + timeout
        while self.log().count(text) < count:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"bridge exited with {self.proc.returncode}\n{self.log()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} not {count} times in the log within {timeout} s\n{self.log()}")
            time.sleep(0.1)
        return self.log()

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"bridge exited with {self.proc.returncode}\n{self.log()}")
            if self.healthy():
                return
            time.sleep(0.1)
        raise TimeoutError(f"bridge not healthy within {timeout} s\n{self.log()}")

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=10) as resp:
            return resp.read().decode()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    properties: Any

    def json(self) -> Any:
        return json.loads(self.payload)

    def user(self) -> dict[str, str]:
        return dict(getattr(self.properties, "UserProperty", None) or [])

    @property
    def type(self) -> str | None:
        return self.user().get("type")


class Probe:
    """An async MQTT client for tests: subscribe, publish, wait for messages."""

    def __init__(self, broker: Mosquitto, *topics: str, v5: bool = True, client_id: str | None = None,
                 clean: bool = True, **kwargs: Any) -> None:
        self._client = aiomqtt.Client(
            "127.0.0.1", broker.port, username=DEVICE, password=DEVICE_PASSWORD, identifier=client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            clean_session=None if v5 else clean, clean_start=clean if v5 else MQTT_CLEAN_START_FIRST_ONLY, **kwargs,
        )
        self.v5 = v5
        self.topics = topics
        self.inbox: asyncio.Queue[Received] = asyncio.Queue()
        self._reader: asyncio.Task | None = None

    async def __aenter__(self) -> "Probe":
        await self._client.__aenter__()
        for topic in self.topics:
            await self._client.subscribe(topic, qos=1)
        self._reader = asyncio.ensure_future(self._read())
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        with contextlib.suppress(Exception):
            await self._client.__aexit__(None, None, None)

    async def _read(self) -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            async for msg in self._client.messages:
                payload = msg.payload if isinstance(msg.payload, bytes) else str(msg.payload).encode()
                await self.inbox.put(Received(msg.topic.value, payload, bool(msg.retain), msg.properties))

    async def publish(self, topic: str, payload: bytes | str | dict = b"", *, qos: int = 1, retain: bool = False,
                      response_topic: str | None = None, correlation: bytes | None = None,
                      expiry: int | None = None) -> None:
        if isinstance(payload, dict):
            payload = json.dumps(payload)
        props = None
        if self.v5 and (response_topic or correlation or expiry):
            props = Properties(PacketTypes.PUBLISH)
            if response_topic:
                props.ResponseTopic = response_topic
            if correlation:
                props.CorrelationData = correlation
            if expiry:
                props.MessageExpiryInterval = expiry
        await self._client.publish(topic, payload, qos=qos, retain=retain, properties=props)

    async def next(self, pattern: str = "*", timeout: float = 60.0) -> Received:
        """The next message whose topic matches the glob `pattern` (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no message on {pattern} within {timeout} s")
            try:
                msg = await asyncio.wait_for(self.inbox.get(), left)
            except asyncio.TimeoutError:
                raise TimeoutError(f"no message on {pattern} within {timeout} s") from None
            if fnmatch.fnmatchcase(msg.topic, pattern):
                return msg

    async def until(self, pattern: str, timeout: float = 60.0) -> list[Received]:
        """Messages (all topics) up to and including the first one matching `pattern`."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                msg = await asyncio.wait_for(self.inbox.get(), max(0.01, left))
            except asyncio.TimeoutError:
                raise TimeoutError(f"no message on {pattern} within {timeout} s; got "
                                   f"{[m.topic for m in seen]}") from None
            seen.append(msg)
            if fnmatch.fnmatchcase(msg.topic, pattern):
                return seen

    async def quiet(self, seconds: float) -> list[Received]:
        """Everything that arrives within `seconds`."""
        await asyncio.sleep(seconds)
        out = []
        while not self.inbox.empty():
            out.append(self.inbox.get_nowait())
        return out


async def retained_then(probe: Probe) -> list[Received]:
    """What arrived up to a marker published after subscribing: every retained message.

    The broker queues a subscription's retained messages before it handles anything the
    subscriber publishes next, so the marker's arrival ends them; no quiet spell is waited for.
    """
    marker = f"pytest-marker/{os.getpid()}-{id(probe)}"
    await probe._client.subscribe(marker, qos=1)
    await probe.publish(marker, b"end", qos=1)
    return [m for m in await probe.until(marker, 60) if m.topic != marker]


async def send_audio(probe: Probe, site: str, sid: str, pcm: bytes, *, rate: int = 16000, chunk_ms: int = 40,
                     pace: float = 0.0, start: dict | None = None, stop: bool = True, prefix: str = "voice",
                     **props: Any) -> int:
    """start, raw PCM chunks (QoS 0), stop with the chunk count; returns the number of chunks."""
    step = rate * 2 * chunk_ms // 1000
    base = f"{prefix}/stt/{site}/{sid}"
    await probe.publish(f"{base}/start",
                        {"rate": rate, "width": 2, "channels": 1, "language": "en", **(start or {})}, **props)
    chunks = 0
    for i in range(0, len(pcm), step):
        await probe.publish(f"{base}/audio", pcm[i:i + step], qos=0)
        chunks += 1
        if pace:
            await asyncio.sleep(chunk_ms / 1000 / pace)
    if stop:
        await probe.publish(f"{base}/stop", {"chunks": chunks, "bytes": len(pcm)})
    return chunks


def audio_of(messages: list[Received]) -> bytes:
    return b"".join(m.payload for m in messages if m.topic.endswith("/result/audio") or m.type == "audio")


# -- pytest fixtures (import them into a test module to use them) ---------------------------
# Several modules import these; the processes behind them start once per test run.
_SHARED: dict[str, Any] = {}


def _once(request: pytest.FixtureRequest, name: str, start, stop):
    if name not in _SHARED:
        _SHARED[name] = start()
        request.config.add_cleanup(lambda: stop(_SHARED.pop(name)))
    return _SHARED[name]


def _stop_server(server: ServerProcess) -> None:
    code = server.terminate()
    assert code == 0, server.log()


#: Limits of the shared bridge, small enough for the abuse tests to reach quickly.
SHARED_BRIDGE_ARGS = (
    "--sites", "kitchen", "--idle-timeout", "2", "--max-audio-seconds", "20", "--max-sessions", "4",
    "--chat-timeout", "3", "--max-text-chars", "500",
)


@pytest.fixture(scope="session")
def mosquitto(request) -> Mosquitto:
    return _once(request, "mosquitto", Mosquitto, Mosquitto.close)


@pytest.fixture(scope="session")
def stt_server(request) -> ServerProcess:
    return _once(request, "stt", lambda: ServerProcess("wyoming_stt", "--max-sessions", "4").wait_ready(),
                 _stop_server)


@pytest.fixture(scope="session")
def tts_server(request) -> ServerProcess:
    return _once(request, "tts", lambda: ServerProcess("wyoming_tts", "--max-sessions", "4").wait_ready(),
                 _stop_server)


@pytest.fixture(scope="session")
def bridge(request, mosquitto, stt_server, tts_server) -> Bridge:
    def start() -> Bridge:
        return Bridge(mosquitto, "--stt", stt_server.uri, "--tts", tts_server.uri, *SHARED_BRIDGE_ARGS).start()

    def stop(b: Bridge) -> None:
        assert b.stop() == 0, b.log()
        log = b.log()
        assert "Traceback" not in log, log
        # Privacy: at INFO the bridge never logs transcripts.
        assert "fellow Americans" not in log

    return _once(request, "bridge", start, stop)


@pytest.fixture(scope="session")
def jfk_pcm() -> bytes:
    return decode_audio(JFK_FLAC)


def run(coro):
    """Run one async test body (the bound only detects a hang: generous for loaded CPUs)."""
    return asyncio.run(asyncio.wait_for(coro, 300))
