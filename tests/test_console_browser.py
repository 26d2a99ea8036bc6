"""The web console in headless Debian chromium (Selenium with /usr/bin/chromedriver, nothing
downloaded), against a real bridge process (`--no-mqtt --api`) over the real STT and TTS services,
with a key made by the real `keys` CLI.

Chromium's fake microphone plays a WAV of tests/data/jfk.flac (16 kHz, with silence around it);
the page records until it has sent the WAV's length in samples (a count, not a clock), and the
transcript it shows must be JFK's sentence. A typed sentence must come back as audio the page
schedules for playback, byte counts matching the server's own `complete`. The page must log no
console error, and a screenshot is saved under tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import urllib.request
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import JFK_FLAC, JFK_TEXT, REPO, decode_audio, silence, word_error_rate
from http_helpers import ApiBridge, api_bridge  # noqa: F401  (fixture)
from mqtt_helpers import stt_server, tts_server  # noqa: F401  (fixtures)
from selenium import webdriver  # the test extra
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = REPO / "tests" / "artifacts"
#: Failure detection only: generous for 2 busy cores; nothing asserts on how long it took.
PATIENCE = 180
SPOKEN = "The console plays what the bridge says."


if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.fail("Debian's chromium and chromium-driver are needed (scripts/setup.sh test installs them)",
                pytrace=False)


def fake_microphone_wav(folder: Path) -> tuple[Path, int]:
    """JFK at 16 kHz with 1 s of silence before and after; (path, length in samples)."""
    pcm = silence(1.0) + decode_audio(JFK_FLAC) + silence(1.0)
    path = folder / "jfk-16k.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(pcm)
    return path, len(pcm) // 2


@pytest.fixture(scope="module")
def microphone() -> Iterator[tuple[Path, int]]:
    folder = Path(tempfile.mkdtemp(prefix="console-mic-"))
    yield fake_microphone_wav(folder)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def browser(microphone, tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     f"--user-data-dir={tmp_path / 'profile'}", "--use-fake-ui-for-media-stream",
                     "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={microphone[0]}",
                     "--autoplay-policy=no-user-gesture-required", "--window-size=1400,1250"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(PATIENCE)
    try:
        yield driver
    finally:
        driver.quit()


def open_console(driver, bridge: ApiBridge) -> None:
    """The console with the bridge's key in localStorage, as its key field stores it."""
    driver.get(f"{bridge.url}/console/favicon.svg")  # the origin, without calling the API keyless
    driver.execute_script("localStorage.setItem('wvb.apiKey', arguments[0])", bridge.key)
    driver.get(f"{bridge.url}/")


def wait_for(driver, condition, what: str):
    return WebDriverWait(driver, PATIENCE, poll_frequency=0.2).until(condition, message=what)


def console_errors(driver) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]


def api_get(bridge: ApiBridge, path: str) -> dict:
    request = urllib.request.Request(bridge.url + path, headers={"Authorization": f"Bearer {bridge.key}"})
    with urllib.request.urlopen(request, timeout=PATIENCE) as answer:
        return json.load(answer)


def test_console_changes_a_site_mode_through_the_api(api_bridge, browser):
    driver = browser
    # A site with settings (this bridge has no --sites): its mode is the default.
    request = urllib.request.Request(api_bridge.url + "/api/v1/sites/kitchen", method="PUT", data=b'{"language": "en"}',
                                     headers={"Authorization": f"Bearer {api_bridge.key}"})
    with urllib.request.urlopen(request, timeout=PATIENCE) as answer:
        assert json.load(answer)["settings"]["mode"] == "transcribe_only"
    open_console(driver, api_bridge)
    select = wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#sites tr[data-site='kitchen'] select"),
                      "site kitchen not listed")[0]
    assert Select(select).first_selected_option.get_attribute("value") == "transcribe_only"
    Select(select).select_by_value("tts_only")
    wait_for(driver, lambda d: "mode tts_only saved" in d.find_element(By.ID, "sites-result").text, "mode not saved")
    sites = api_get(api_bridge, "/api/v1/sites")
    assert {s["site"]: s["settings"]["mode"] for s in sites["sites"]}["kitchen"] == "tts_only"
    assert console_errors(driver) == []


def test_console_lists_services_transcribes_the_microphone_and_plays_speech(api_bridge, browser, microphone):
    driver = browser
    before = api_get(api_bridge, "/api/v1/status")["requests"]
    open_console(driver, api_bridge)

    # The running services, as the bridge sees them: both up, with their model and voices.
    rows = wait_for(driver, lambda d: [r for r in d.find_elements(By.CSS_SELECTOR, "#services tbody tr")
                                       if "up" in r.text] or False, "no service shown as up")
    services = driver.find_element(By.ID, "services").text
    status = api_get(api_bridge, "/api/v1/status")
    assert len(rows) == 2 and len(status["services"]) == 2, services
    for service in status["services"]:
        assert service["healthy"] and service["uri"] in services
        for name in service["models"] + service["voices"]:
            assert name in services
    voices = wait_for(driver, lambda d: [o.get_attribute("value") for o in
                                         Select(d.find_element(By.ID, "tts-voice")).options][1:] or False,
                      "no voice listed")

    # The fake microphone: exactly the WAV's samples go out, then the transcript arrives.
    driver.find_element(By.ID, "stt-language").send_keys("en")
    seconds = driver.find_element(By.ID, "stt-seconds")
    seconds.clear()
    seconds.send_keys(str(microphone[1] / 16000))
    driver.find_element(By.ID, "stt-record").click()
    wait_for(driver, lambda d: d.find_element(By.ID, "stt-state").get_attribute("data-state") in ("done", "error"),
             "no final transcript")
    state = driver.find_element(By.ID, "stt-state")
    final = driver.find_element(By.ID, "stt-final").text
    assert state.get_attribute("data-state") == "done", state.text
    assert word_error_rate(JFK_TEXT, final) <= 0.1, final
    assert int(driver.find_element(By.ID, "stt-partial").get_attribute("data-count")) >= 1  # partials came first

    # A typed sentence in a voice picked from the list: audio arrives and is scheduled to play.
    Select(driver.find_element(By.ID, "tts-voice")).select_by_value(voices[-1])
    text = driver.find_element(By.ID, "tts-text")
    text.clear()
    text.send_keys(SPOKEN)
    driver.find_element(By.ID, "tts-speak").click()
    wait_for(driver, lambda d: d.find_element(By.ID, "tts-state").get_attribute("data-state") in ("complete", "error"),
             "speech did not complete")
    tts = driver.find_element(By.ID, "tts-state")
    assert tts.get_attribute("data-state") == "complete", tts.text
    chunks, received = int(tts.get_attribute("data-chunks")), int(tts.get_attribute("data-bytes"))
    rate, length_ms = int(tts.get_attribute("data-rate")), int(tts.get_attribute("data-audio-length-ms"))
    assert chunks >= 1 and received > 0, tts.text
    assert abs(received / 2 / rate * 1000 - length_ms) <= 1 + chunks, (received, rate, length_ms)  # the server's word
    assert tts.get_attribute("data-playback") == "started"
    assert tts.get_attribute("data-context-state") == "running"

    # What the page showed is in the bridge's own counters; the page logged no error.
    counted = f"STT {before['stt'] + 1:g} requests", f"TTS {before['tts'] + 1:g} requests"
    wait_for(driver, lambda d: all(c in d.find_element(By.ID, "totals-line").text for c in counted),
             "requests not counted on the page")
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "console.png"))
    assert console_errors(driver) == []
