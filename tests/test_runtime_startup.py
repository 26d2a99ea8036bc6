"""Start-up mistakes: one line on stderr naming the option, exit 2, before any model loads.

Each case runs the real entry point. A single line on stderr also shows that no
model was loading: the services log every step of loading to stderr.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from helpers import REPO
from voice_common.config import resolve

PROGS = {"wyoming_stt": "wyoming-stt", "wyoming_tts": "wyoming-tts", "broker": "wyoming-voice-broker"}


@pytest.fixture(scope="module")
def busy_port():
    """A port something else listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def start(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120, stdin=subprocess.DEVNULL)


def assert_one_line_error(proc: subprocess.CompletedProcess, module: str, *needles: str) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"{PROGS[module]}: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.mark.parametrize("module", ["wyoming_stt", "wyoming_tts"])
@pytest.mark.parametrize("uri,needle", [
    ("http://127.0.0.1:10300", "tcp://HOST:PORT"),
    ("tcp://0.0.0.0", "no port"),
    ("tcp://127.0.0.1:99999", "bad port"),
    ("tcp://no-such-host.invalid:10300", "unknown host"),
])
def test_a_bad_uri_is_one_line(module, uri, needle):
    assert_one_line_error(start(module, "--uri", uri), module, "--uri", needle)


@pytest.mark.parametrize("module", ["wyoming_stt", "wyoming_tts"])
def test_a_port_in_use_is_one_line_before_models_load(module, busy_port):
    proc = start(module, "--uri", f"tcp://127.0.0.1:{busy_port}")
    assert_one_line_error(proc, module, f"--uri tcp://127.0.0.1:{busy_port}", "already in use")


@pytest.mark.parametrize("module", ["wyoming_stt", "wyoming_tts", "broker"])
def test_an_http_port_in_use_is_one_line(module, busy_port):
    extra = ["--stt", "tcp://127.0.0.1:9"] if module == "broker" else ["--uri", "tcp://127.0.0.1:0"]
    proc = start(module, "--http", f"127.0.0.1:{busy_port}", *extra)
    assert_one_line_error(proc, module, f"--http 127.0.0.1:{busy_port}", "already in use")


@pytest.mark.parametrize("module", ["wyoming_stt", "wyoming_tts", "broker"])
def test_bad_config_files_are_one_line_without_usage(module, tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("log_level = \n")
    assert_one_line_error(start(module, "--config", str(broken)), module, f"--config {broken}", "not valid TOML")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('log_level = "INFO"\nbogus_key = 1\n')
    assert_one_line_error(start(module, "--config", str(unknown)), module, "bogus_key")
    assert_one_line_error(start(module, "--no-such-flag"), module, "--no-such-flag", "--help")


def test_a_unix_path_that_is_a_file_is_refused_and_kept(tmp_path):
    victim = tmp_path / "important.txt"
    victim.write_text("keep me")
    proc = start("wyoming_tts", "--uri", f"unix://{victim}")
    assert_one_line_error(proc, "wyoming_tts", "not a socket")
    assert victim.read_text() == "keep me"


def test_zeroconf_needs_tcp(tmp_path):
    proc = start("wyoming_stt", "--uri", f"unix://{tmp_path}/stt.sock", "--zeroconf")
    assert_one_line_error(proc, "wyoming_stt", "--zeroconf", "tcp://")


@pytest.mark.parametrize("model", ["/no/such/model-dir", "./no-such-model", "~/no-such-model-dir"])
def test_a_model_path_that_does_not_exist_says_so(model):
    line = assert_one_line_error(start("wyoming_stt", "--model", model), "wyoming_stt", f"--model {model}")
    assert "does not exist" in line and "Repo id" not in line


def test_a_directory_without_a_model_is_refused(tmp_path):
    proc = start("wyoming_stt", "--model", str(tmp_path))
    assert_one_line_error(proc, "wyoming_stt", "--model", "model.bin")


@pytest.mark.parametrize("language", ["de", "fr-FR"])
def test_an_english_only_model_refuses_another_language(language):
    proc = start("wyoming_stt", "--model", "tiny.en", "--language", language)
    assert_one_line_error(proc, "wyoming_stt", f"--language {language}", "English-only")


def test_english_stays_fine_for_an_english_only_model():
    from wyoming_stt.__main__ import OPTIONS, check_config

    config = resolve("wyoming-stt", "", "STT", OPTIONS, ["--model", "tiny.en", "--language", "en-US"], {},
                     check=check_config)
    assert config.language == "en-US"


@pytest.mark.parametrize("args,needle", [
    (["--model", "/no/such/voice.onnx"], "--model /no/such/voice.onnx"),
    (["--voices-dir", "/no/such/voices"], "--voices-dir"),
    (["--kokoro-model", "/no/such/kokoro.onnx"], "--kokoro-model"),
    (["--backend", "qwen3"], "--qwen-model"),
    (["--backend", "qwen3", "--qwen-model", "/no/such/qwen3"], "--qwen-model /no/such/qwen3"),
])
def test_tts_paths_that_do_not_exist(args, needle):
    assert_one_line_error(start("wyoming_tts", *args), "wyoming_tts", needle)


def test_broker_option_conflicts_exit_2_in_one_line(tmp_path):
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    proc = start("broker", "--mqtt-cert", str(cert))
    assert_one_line_error(proc, "broker", "--mqtt-cert and --mqtt-key")


def test_a_local_model_without_the_language_is_refused_once_loaded():
    """A directory's languages are known only once it is loaded: still exit 2, with the reason."""
    from wyoming_stt.backends.faster_whisper import bundled_tiny_en

    proc = start("wyoming_stt", "--model", str(bundled_tiny_en()), "--language", "de", "--uri", "tcp://127.0.0.1:0")
    assert proc.returncode == 2, proc.stderr
    assert "--language de" in proc.stderr and "cannot do 'de'" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
