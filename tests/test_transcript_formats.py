"""broker/http/transcript_formats.py: every response_format in the shape the official `openai`
package parses (its own pydantic types validate the JSON), and subtitle files to the letter."""

from __future__ import annotations

import json

import pytest
from openai.types.audio import Transcription, TranscriptionSegment, TranscriptionVerbose

from broker.http.transcript_formats import (
    TRANSCRIPT_MEDIA_TYPES,
    Segment,
    Transcript,
    language_name,
    render_transcript,
)

JFK = Transcript(
    " And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country.",
    "en", 11.0,
)
TIMED = Transcript(
    "Hello there. General Kenobi.", "en-GB", 3661.5,
    (Segment(0.0, 1.25, "Hello there."), Segment(3600.0, 3661.5, "General Kenobi.")),
)


def test_json_is_openais_transcription():
    body, media_type = render_transcript(JFK, "json")
    assert media_type == "application/json"
    parsed = Transcription.model_validate(json.loads(body))
    assert parsed.text == JFK.text


def test_text_is_the_bare_text():
    body, media_type = render_transcript(JFK, "text")
    assert media_type.startswith("text/plain") and body == JFK.text + "\n"


def test_verbose_json_is_openais_verbose_transcription():
    body, _ = render_transcript(TIMED, "verbose_json")
    data = json.loads(body)
    parsed = TranscriptionVerbose.model_validate(data)
    assert data["task"] == "transcribe"
    assert (parsed.language, parsed.duration, parsed.text) == ("english", 3661.5, TIMED.text)
    assert parsed.segments is not None
    assert [(s.id, s.start, s.end, s.text) for s in parsed.segments] == [
        (0, 0.0, 1.25, "Hello there."), (1, 3600.0, 3661.5, "General Kenobi.")]
    assert parsed.usage is not None and parsed.usage.seconds == 3661.5
    # Every segment field the openai type requires is present (strict validation, no defaults).
    for raw in data["segments"]:
        TranscriptionSegment.model_validate(raw, strict=True)


def test_verbose_json_without_segments_has_one_over_the_whole_audio():
    parsed = TranscriptionVerbose.model_validate_json(render_transcript(JFK, "verbose_json")[0])
    assert parsed.segments is not None and len(parsed.segments) == 1
    segment = parsed.segments[0]
    assert (segment.start, segment.end, segment.text) == (0.0, 11.0, JFK.text.strip())


def test_srt_cues():
    body, media_type = render_transcript(TIMED, "srt")
    assert media_type.startswith("application/x-subrip")
    assert body == ("1\n00:00:00,000 --> 00:00:01,250\nHello there.\n\n"
                    "2\n01:00:00,000 --> 01:01:01,500\nGeneral Kenobi.\n\n")


def test_vtt_cues():
    body, media_type = render_transcript(TIMED, "vtt")
    assert media_type.startswith("text/vtt")
    assert body == ("WEBVTT\n\n00:00:00.000 --> 00:00:01.250\nHello there.\n\n"
                    "01:00:00.000 --> 01:01:01.500\nGeneral Kenobi.\n\n")


def test_subtitle_text_cannot_break_a_cue():
    tricky = Transcript("a\n\nb --> c", "en", 2.0)
    assert render_transcript(tricky, "srt")[0] == "1\n00:00:00,000 --> 00:00:02,000\na\nb -> c\n\n"
    assert render_transcript(tricky, "vtt")[0] == "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\na\nb -> c\n\n"


def test_empty_transcript_has_no_cues_but_valid_documents():
    silent = Transcript("", None, 1.0)
    assert render_transcript(silent, "srt")[0] == ""
    assert render_transcript(silent, "vtt")[0] == "WEBVTT\n\n"
    parsed = TranscriptionVerbose.model_validate_json(render_transcript(silent, "verbose_json")[0])
    assert (parsed.text, parsed.language, parsed.segments) == ("", "", [])


def test_language_names_follow_whisper():
    assert [language_name(c) for c in ("en", "en-US", "de_DE", "YUE", "pt-br")] == [
        "english", "english", "german", "cantonese", "portuguese"]
    assert language_name("xx") == "xx" and language_name(None) == ""


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="response_format 'docx' is not one of json, text, verbose_json, srt, vtt"):
        render_transcript(JFK, "docx")
    assert set(TRANSCRIPT_MEDIA_TYPES) == {"json", "text", "verbose_json", "srt", "vtt"}
