"""Shared benchmark plumbing: server processes with RSS sampling and a memory watchdog,
Wyoming describe probes, statistics and the machine description."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
MB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict:
    return {"n": len(values), "min": pct(values, 0), "p50": pct(values, 0.5),
            "p95": pct(values, 0.95), "max": pct(values, 1.0)}


def distribution(values: list[float]) -> dict:
    """summary() plus every value (what the charts draw)."""
    return {**summary(values), "values_ms": [round(v, 2) for v in values]}


async def describe(port: int, timeout: float = 2.0) -> Info:
    """Connect, send describe, return the info (raises on timeout/refusal)."""
    async def _go() -> Info:
        client = AsyncTcpClient(HOST, port)
        await client.connect()
        try:
            await client.write_event(Describe().event())
            while True:
                event = await client.read_event()
                if event is None:
                    raise ConnectionError("connection closed before info")
                if Info.is_type(event.type):
                    return Info.from_event(event)
        finally:
            with contextlib.suppress(Exception):
                await client.disconnect()
    return await asyncio.wait_for(_go(), timeout)


@dataclass
class MemoryWatch:
    peak_bytes: int = 0
    killed_at_bytes: int = 0
    samples: int = 0


class Server:
    """One server process (ours or the reference) on a free loopback port.

    Samples the RSS of the whole process tree every 50 ms (peak kept), and kills the tree
    when it passes `kill_above_mb` (so a runaway reference cannot take the machine down).
    Always use as a context manager, or call stop(): the process never outlives the bench.
    """

    def __init__(self, name: str, argv: list[str], *, env: dict | None = None,
                 kill_above_mb: float = 4096.0, log_dir: Path | None = None) -> None:
        self.name = name
        self.port = free_port()
        self.argv = [a.replace("{PORT}", str(self.port)) for a in argv]
        log_dir = log_dir or Path(tempfile.gettempdir())
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}-{self.port}.log"
        self._log = open(self.log_path, "wb")
        self.kill_above = int(kill_above_mb * MB)
        self.watch = MemoryWatch()
        self._stop_sampling = threading.Event()
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(
            self.argv, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", **(env or {})},
            start_new_session=True,
        )
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    # -- memory ---------------------------------------------------------------------
    def rss_bytes(self) -> int:
        try:
            root = psutil.Process(self.proc.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0
        total = 0
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def _sample(self) -> None:
        while not self._stop_sampling.is_set() and self.proc.poll() is None:
            rss = self.rss_bytes()
            self.watch.samples += 1
            self.watch.peak_bytes = max(self.watch.peak_bytes, rss)
            if rss > self.kill_above and not self.watch.killed_at_bytes:
                self.watch.killed_at_bytes = rss
                self._kill_tree()
                return
            self._stop_sampling.wait(0.05)

    def reset_peak(self) -> None:
        self.watch.peak_bytes = self.rss_bytes()

    @property
    def peak_mb(self) -> float:
        return self.watch.peak_bytes / MB

    @property
    def killed(self) -> bool:
        return bool(self.watch.killed_at_bytes)

    # -- lifecycle ------------------------------------------------------------------
    async def wait_ready(self, timeout: float = 120.0) -> float:
        """Seconds from process start until the port answers `describe`."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with code {self.proc.returncode}\n{self.log_tail()}")
            try:
                await describe(self.port, timeout=2.0)
                return time.perf_counter() - self.started_at
            except (OSError, asyncio.TimeoutError, ConnectionError):
                await asyncio.sleep(0.02)
        raise TimeoutError(f"{self.name} did not answer describe within {timeout:.0f} s\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(Exception):
            self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def _kill_tree(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def stop(self) -> None:
        self._stop_sampling.set()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self._kill_tree()
                self.proc.wait(10)
        self._kill_tree()  # stragglers in the process group
        self._log.close()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


async def measure(servers: dict[str, list[str]], body, *, alone: bool, log_dir: Path,
                  kill_above_mb: float = 4096.0) -> None:
    """Run the coroutine `body(running)` (running: name -> ready Server) over `servers`.

    Side by side (default): every server is up at once and `body` runs once with all of them,
    interleaving its requests server by server, so that load from elsewhere on the machine
    falls on all alike. Alone: one server at a time is started, given `body` on its own and
    stopped before the next starts, so that no other server process exists while it is
    measured. `body` is the same code in both modes (hence the same results and table).
    """
    groups = [[name] for name in servers] if alone else [list(servers)]
    for group in groups:
        running: dict[str, Server] = {}
        try:
            for name in group:
                running[name] = Server(name, servers[name], log_dir=log_dir, kill_above_mb=kill_above_mb)
            for server in running.values():
                await server.wait_ready()
            await body(running)
        finally:
            for server in running.values():
                server.stop()


# -- the machine ---------------------------------------------------------------------
def _pip_versions(python: Path, names: list[str]) -> dict:
    code = ("import importlib.metadata as m, json, sys\n"
            "out={}\nfor n in sys.argv[1:]:\n"
            "    try: out[n]=m.version(n)\n    except Exception: out[n]=None\nprint(json.dumps(out))")
    try:
        res = subprocess.run([str(python), "-c", code, *names], capture_output=True, text=True, timeout=60)
        import json
        return json.loads(res.stdout)
    except Exception as err:  # noqa: BLE001
        return {"error": str(err)}


def machine_description(ours_python: Path, ref_python: Path) -> dict:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()
    names = ["wyoming", "faster-whisper", "ctranslate2", "onnxruntime", "piper-tts", "numpy"]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "loadavg_at_start": [round(x, 2) for x in load],
        "ours": _pip_versions(ours_python, names + ["wyoming-voice-services"]),
        "reference": _pip_versions(ref_python, names + ["wyoming-faster-whisper", "wyoming-piper"]),
    }
