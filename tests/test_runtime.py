"""Shared runtime: configuration precedence, --help, SIGTERM, zeroconf."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from helpers import REPO, ServerProcess
from voice_common.config import Option, resolve
from wyoming_stt.__main__ import OPTIONS as STT_OPTIONS


def test_precedence_cli_env_file_default(tmp_path):
    options = [Option("model", "tiny.en", "m"), Option("beam_size", 1, "b", type=int),
               Option("language", None, "l"), Option("workers", 1, "w", type=int)]
    toml = tmp_path / "stt.toml"
    toml.write_text('model = "file-model"\nbeam-size = 3\nlanguage = "de"\n')
    env = {"STT_BEAM_SIZE": "4", "STT_LANGUAGE": "fr"}
    config = resolve("t", "t", "STT", options, ["--config", str(toml), "--language", "en"], env)
    assert (config.model, config.beam_size, config.language, config.workers) == ("file-model", 4, "en", 1)


def test_bad_values_are_usage_errors(tmp_path, capsys):
    options = [Option("beam_size", 1, "b", type=int)]
    with pytest.raises(SystemExit) as exc:
        resolve("t", "t", "STT", options, [], {"STT_BEAM_SIZE": "many"})
    assert exc.value.code == 2
    toml = tmp_path / "bad.toml"
    toml.write_text("beam_size = 1\nbogus = 2\n")
    with pytest.raises(SystemExit):
        resolve("t", "t", "STT", options, ["--config", str(toml)], {})
    assert "bogus" in capsys.readouterr().err


@pytest.mark.parametrize("module", ["wyoming_stt", "wyoming_tts", "broker"])
def test_help_names_every_flag_and_env_twin(module):
    import importlib

    options_module = importlib.import_module("broker.config" if module == "broker" else f"{module}.__main__")
    prefix = {"wyoming_stt": "STT", "wyoming_tts": "TTS", "broker": "BROKER"}[module]
    out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True,
                         cwd=REPO, check=True).stdout
    for opt in options_module.OPTIONS:
        assert opt.flag in out and opt.env_name(prefix) in out, opt.flag


def test_readme_option_tables_match_the_code():
    """The README's tables are generated from the Options (scripts/options_tables.py)."""
    sys.path.insert(0, str(REPO / "scripts"))
    from options_tables import render

    readme = (REPO / "README.md").read_text()
    assert render(readme) == readme, "README option tables are stale: run python scripts/options_tables.py"


def test_example_config_is_valid():
    config = resolve("t", "t", "STT", STT_OPTIONS, ["--config", str(REPO / "config" / "stt.toml")], {})
    assert config.model == "tiny.en"


def test_zeroconf_advertised_and_unregistered_on_sigterm():
    from zeroconf import ServiceBrowser, ServiceStateChange, Zeroconf

    name = f"pytest-stt-{int(time.time() * 1000) % 100000}"
    seen: dict[str, list] = {"added": [], "removed": []}

    def on_change(zeroconf, service_type, name, state_change):
        key = "added" if state_change is ServiceStateChange.Added else "removed"
        if state_change is not ServiceStateChange.Updated:
            info = zeroconf.get_service_info(service_type, name, 2000) if key == "added" else None
            seen[key].append((name, info))

    zc = Zeroconf()
    try:
        ServiceBrowser(zc, "_wyoming._tcp.local.", handlers=[on_change])
        server = ServerProcess("wyoming_stt", "--zeroconf", name, "--zeroconf-host", "127.0.0.1").wait_ready()
        deadline = time.time() + 60  # failure detection only: under load mDNS can be slow
        while time.time() < deadline and not any(n.startswith(name) for n, _ in seen["added"]):
            time.sleep(0.1)
        found = [(n, i) for n, i in seen["added"] if n.startswith(name)]
        assert found, f"not advertised; saw {seen}\n{server.log()}"
        info = found[0][1]
        assert info is not None and info.port == server.port
        assert server.terminate() == 0
        deadline = time.time() + 60
        while time.time() < deadline and not any(n.startswith(name) for n, _ in seen["removed"]):
            time.sleep(0.1)
        assert any(n.startswith(name) for n, _ in seen["removed"]), "not unregistered on SIGTERM"
        assert "zeroconf: unregistered" in server.log()
    finally:
        zc.close()


def test_sigterm_while_idle_exits_zero():
    server = ServerProcess("wyoming_stt").wait_ready()
    assert server.terminate() == 0
