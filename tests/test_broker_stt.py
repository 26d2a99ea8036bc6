"""Speech to text over MQTT: the JFK clip as raw PCM chunks -> partials and the final transcript."""

from __future__ import annotations

import numpy as np

from helpers import JFK_TEXT, normalize_words, word_error_rate
from mqtt_helpers import (  # noqa: F401  (fixtures)
    Probe, bridge, jfk_pcm, mosquitto, run, send_audio, stt_server, tts_server,
)


def test_transcribes_jfk_with_partials(bridge, mosquitto, jfk_pcm):
    async def scenario():
        async with Probe(mosquitto, "voice/stt/kitchen/#", "voice/site/kitchen/busy") as probe:
            # Real time, as a microphone sends it: partials before the end need decodes faster
            # than speech, the product's premise, not a race against a compressed clock.
            await send_audio(probe, "kitchen", "jfk1", jfk_pcm, start={"partials": True}, pace=1.0)
            seen = await probe.until("voice/stt/kitchen/jfk1/result/final", 60)
            event = await probe.next("voice/stt/kitchen/event")
            idle = await probe.next("voice/site/kitchen/busy")
            return seen, event, idle

    seen, event, idle = run(scenario())
    partials = [m.json() for m in seen if m.topic.endswith("/result/partial")]
    final = seen[-1].json()
    assert word_error_rate(JFK_TEXT, final["text"]) == 0, final
    assert final["language"] == "en" and 10500 <= final["audio_ms"] <= 11500
    assert isinstance(final["latency_ms"], int) and final["latency_ms"] >= 0  # reported; speed is bench/'s
    assert seen[-1].type == "final"
    # Partials arrive while audio still flows, numbered, each the transcript so far (it grows).
    assert len(partials) >= 2, partials
    assert [p["seq"] for p in partials] == list(range(1, len(partials) + 1))
    for before, after in zip(partials, partials[1:]):
        assert normalize_words(after["text"])[:len(normalize_words(before["text"]))] == normalize_words(
            before["text"]), (before, after)
    # Partials are words two decodes agreed on; the final is the plain decode of the whole
    # utterance and may still change one ("my" heard as "am I", as in the STT service's own
    # tests): then the partials are close to the final's start, else they spell the final.
    said, words = normalize_words(partials[-1]["text"]), normalize_words(final["text"])
    if said[:len(words)] == words[:len(said)]:
        assert said == words, (partials, final)
    else:
        edits = min(word_error_rate(" ".join(said), " ".join(words[:k])) * len(said) for k in range(len(words) + 1))
        assert edits <= 2, (partials, final)
    first_partial = next(i for i, m in enumerate(seen) if m.topic.endswith("/result/partial"))
    stop_at = next(i for i, m in enumerate(seen) if m.topic.endswith("/stop"))
    assert first_partial < stop_at, "no partial before the end of the audio"
    assert any(m.topic == "voice/site/kitchen/busy" and m.payload == b"ON" for m in seen)
    assert idle.payload == b"OFF"
    # The site event (Home Assistant's event/sensor entities) carries the transcript too.
    assert event.json() == {"event_type": "transcript", "text": final["text"], "sid": "jfk1"}
    assert not event.retain


def test_v5_response_topic_and_correlation(bridge, mosquitto, jfk_pcm):
    async def scenario():
        async with Probe(mosquitto, "voice/reply/dev1/#", "voice/stt/kitchen/jfk2/result/#") as probe:
            await send_audio(probe, "kitchen", "jfk2", jfk_pcm[: 16000 * 2 * 5],
                             response_topic="voice/reply/dev1/stt", correlation=b"\x00corr-42")
            reply = await probe.next("voice/reply/dev1/stt")
            extra = await probe.quiet(0.5)
            return reply, extra

    reply, extra = run(scenario())
    assert reply.type == "final"
    assert reply.properties.CorrelationData == b"\x00corr-42"
    assert reply.properties.ContentType == "application/json"
    assert "fellow americans" in " ".join(normalize_words(reply.json()["text"]))
    assert not [m for m in extra if "/result/" in m.topic], "results went to the fixed topics as well"


def test_mqtt311_client_uses_fixed_result_topics(bridge, mosquitto, jfk_pcm):
    async def scenario():
        async with Probe(mosquitto, "voice/stt/kitchen/old1/result/#", v5=False) as probe:
            await send_audio(probe, "kitchen", "old1", jfk_pcm)
            return await probe.next("voice/stt/kitchen/old1/result/final")

    final = run(scenario())
    assert final.properties is None or not final.user()
    assert word_error_rate(JFK_TEXT, final.json()["text"]) == 0


def test_cancel_and_lost_chunks(bridge, mosquitto, jfk_pcm):
    async def scenario():
        async with Probe(mosquitto, "voice/stt/kitchen/+/result/#") as probe:
            await send_audio(probe, "kitchen", "c1", jfk_pcm[:32000], stop=False)
            await probe.publish("voice/stt/kitchen/c1/cancel")
            cancelled = await probe.next("voice/stt/kitchen/c1/result/*")
            # Announce twice the chunks that were sent: more than 10 % lost is an error.
            chunks = await send_audio(probe, "kitchen", "l1", jfk_pcm[:64000], stop=False)
            await probe.publish("voice/stt/kitchen/l1/stop", {"chunks": chunks * 2})
            lost = await probe.next("voice/stt/kitchen/l1/result/*")
            # One lost chunk of 50 is tolerated and reported.
            chunks = await send_audio(probe, "kitchen", "l2", jfk_pcm[: 16000 * 2 * 4], stop=False)
            await probe.publish("voice/stt/kitchen/l2/stop", {"chunks": chunks + 1})
            tolerated = await probe.next("voice/stt/kitchen/l2/result/*")
            return cancelled, lost, tolerated

    cancelled, lost, tolerated = run(scenario())
    assert cancelled.topic.endswith("/result/error") and cancelled.json()["code"] == "cancelled"
    assert lost.topic.endswith("/result/error") and lost.json()["code"] == "audio_lost"
    assert tolerated.topic.endswith("/result/final") and tolerated.json()["lost_chunks"] == 1


def test_partials_off_by_default(bridge, mosquitto, jfk_pcm):
    async def scenario():
        async with Probe(mosquitto, "voice/stt/kitchen/np1/result/#") as probe:
            await send_audio(probe, "kitchen", "np1", jfk_pcm, pace=1.8)
            return await probe.until("voice/stt/kitchen/np1/result/final")

    seen = run(scenario())
    assert [m.topic.rsplit("/", 1)[1] for m in seen] == ["final"]


def test_resampled_format_accepted(bridge, mosquitto, jfk_pcm):
    """A 48 kHz stereo stream is passed on to the service, which converts it."""
    mono = np.frombuffer(jfk_pcm[: 16000 * 2 * 4], dtype="<i2")
    stereo48 = np.repeat(np.repeat(mono, 3)[:, None], 2, axis=1).astype("<i2").tobytes()

    async def scenario():
        async with Probe(mosquitto, "voice/stt/kitchen/hi1/result/#") as probe:
            await probe.publish("voice/stt/kitchen/hi1/start", {"rate": 48000, "width": 2, "channels": 2})
            step = 48000 * 4 // 20
            for i in range(0, len(stereo48), step):
                await probe.publish("voice/stt/kitchen/hi1/audio", stereo48[i:i + step], qos=0)
            await probe.publish("voice/stt/kitchen/hi1/stop", {})
            return await probe.next("voice/stt/kitchen/hi1/result/*")

    final = run(scenario())
    assert final.topic.endswith("/final"), final.payload
    assert "fellow americans" in " ".join(normalize_words(final.json()["text"]))


def test_chunks_of_any_byte_count(bridge, mosquitto, jfk_pcm):
    """Message boundaries are transport framing (HA forwards bodies in odd pieces): the bridge
    carries partial samples over, and refuses only a stream that is not whole samples at stop."""
    sizes = (2009, 1999, 1, 3, 4097, 64, 777)

    async def publish_in_pieces(probe: Probe, sid: str, pcm: bytes) -> int:
        await probe.publish(f"voice/stt/kitchen/{sid}/start", {"rate": 16000, "width": 2, "channels": 1})
        offset = chunks = 0
        while offset < len(pcm):
            size = sizes[chunks % len(sizes)]
            await probe.publish(f"voice/stt/kitchen/{sid}/audio", pcm[offset:offset + size], qos=0)
            offset += size
            chunks += 1
        await probe.publish(f"voice/stt/kitchen/{sid}/stop", {"chunks": chunks, "bytes": len(pcm)})
        return chunks

    async def scenario():
        async with Probe(mosquitto, "voice/stt/kitchen/+/result/#") as probe:
            await publish_in_pieces(probe, "odd1", jfk_pcm)
            final = await probe.next("voice/stt/kitchen/odd1/result/*", 60)
            await publish_in_pieces(probe, "odd2", jfk_pcm[: 16000 * 2 + 2009])  # one byte too many
            error = await probe.next("voice/stt/kitchen/odd2/result/*", 60)
            return final, error

    final, error = run(scenario())
    assert final.topic.endswith("/result/final"), final.payload
    assert word_error_rate(JFK_TEXT, final.json()["text"]) == 0, final.payload
    assert final.json()["audio_ms"] == 11000 and "lost_chunks" not in final.json()
    assert error.topic.endswith("/result/error"), error.payload
    assert error.json()["code"] == "invalid_format"
    assert "34009 bytes" in error.json()["message"], error.payload
