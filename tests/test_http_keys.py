"""API keys on a running bridge's HTTP front: 401 without or with a bad key, 429 with Retry-After
over a key's request rate, a key revoked with the CLI while the bridge runs is refused on the
next call, and no key ever appears in the bridge's log (even at DEBUG)."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from http_helpers import ApiBridge, keys_cli
from mqtt_helpers import run, stt_server, tts_server  # noqa: F401 (fixtures)

PATIENCE = 60


@pytest.fixture(scope="module")
def debug_bridge(stt_server, tts_server):  # noqa: F811
    """A bridge of its own, logging at DEBUG, so revoking and rate limits touch no other test."""
    bridge = ApiBridge("--stt", stt_server.uri, "--tts", tts_server.uri, "--log-level", "DEBUG")
    bridge.start()
    yield bridge
    assert bridge.stop() == 0, bridge.log()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_calls_need_a_valid_key(debug_bridge):
    url = debug_bridge.url
    none = httpx.get(url + "/api/v1/voices")
    bad = httpx.get(url + "/api/v1/voices", headers=auth("wvb_" + "x" * 43))
    good = httpx.get(url + "/api/v1/voices", headers=auth(debug_bridge.key))
    for answer in (none, bad):
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "unauthorized"
        assert answer.headers["www-authenticate"].startswith("Bearer")
    assert good.status_code == 200
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=url + "/v1", api_key="wvb_nope", max_retries=0).models.list()


def test_request_rate_gives_429_with_retry_after(debug_bridge):
    token = keys_cli(debug_bridge.db, "create", "slow", "--requests-per-minute", "2")
    answers = [httpx.get(debug_bridge.url + "/api/v1/voices", headers=auth(token)) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    refused = answers[2]
    assert refused.json()["error"]["code"] == "rate_limited" and refused.json()["error"]["type"] == "rate_limit_error"
    assert int(refused.headers["retry-after"]) >= 1
    with pytest.raises(openai.RateLimitError):
        openai.OpenAI(base_url=debug_bridge.url + "/v1", api_key=token, max_retries=0).audio.speech.create(
            model="tts-1", voice="alloy", input="Hello.")


def test_audio_seconds_rate_refuses_more_than_an_hour_allows(debug_bridge):
    from helpers import JFK_FLAC

    token = keys_cli(debug_bridge.db, "create", "short", "--audio-seconds-per-hour", "5")
    with open(JFK_FLAC, "rb") as f:  # 11 s: more than the whole allowance
        answer = httpx.post(debug_bridge.url + "/v1/audio/transcriptions", headers=auth(token),
                            files={"file": ("jfk.flac", f.read(), "audio/flac")}, data={"model": "whisper-1"},
                            timeout=PATIENCE)
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "too_large"


def test_key_revoked_with_the_cli_is_refused_at_once(debug_bridge):
    token = keys_cli(debug_bridge.db, "create", "leaving")
    before = httpx.get(debug_bridge.url + "/api/v1/voices", headers=auth(token))
    keys_cli(debug_bridge.db, "revoke", "leaving")
    after = httpx.get(debug_bridge.url + "/api/v1/voices", headers=auth(token))
    assert before.status_code == 200
    assert after.status_code == 401 and 'error="invalid_token"' in after.headers["www-authenticate"]

    async def websocket() -> dict:
        from websockets.asyncio.client import connect

        async with connect(debug_bridge.ws_url + "/api/v1/listen", additional_headers=auth(token)) as ws:
            return json.loads(await ws.recv())

    assert run(websocket())["code"] == "unauthorized"


def test_keys_never_reach_the_log(debug_bridge):
    # Every kind of call with the key: header, WebSocket header, authToken in a start message.
    token = debug_bridge.key
    httpx.get(debug_bridge.url + "/v1/models", headers=auth(token))
    httpx.get(debug_bridge.url + "/v1/models", headers=auth(token + "x"))

    async def websocket() -> None:
        from websockets.asyncio.client import connect

        async with connect(debug_bridge.ws_url + "/api/v1/speak") as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "start", "authToken": token}))
            await ws.recv()

    run(websocket())
    log = debug_bridge.log()
    assert "DEBUG" in log  # the log is at DEBUG, where most would show
    assert token not in log and token[4:20] not in log
