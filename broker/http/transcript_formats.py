"""A transcript rendered as OpenAI's transcription API renders it (`response_format`).

`json` is `{"text": ...}`, `text` the bare text, `verbose_json` adds the task, the
language (Whisper's English name for it, as OpenAI sends: "english", not "en"), the
duration and segments, and `srt` / `vtt` are subtitle files. The shapes follow the types
the official `openai` package parses (`Transcription`, `TranscriptionVerbose`,
`TranscriptionSegment`); tests/test_transcript_formats.py validates against them.

The Wyoming STT services report the text and language of an utterance, not timed
segments, so a transcript without segments is one segment over the whole audio. The
per-segment decoder statistics OpenAI reports (tokens, temperature, log probability,
compression ratio, no-speech probability) are not known here; the fields are present,
because the `openai` types require them, with neutral values: no tokens, temperature 0,
log probability 0, compression ratio 1, no-speech probability 0.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from voice_common.language import primary_language

#: `response_format` values, and the media type of each rendering.
TRANSCRIPT_MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "text": "text/plain; charset=utf-8",
    "verbose_json": "application/json",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
}

#: Whisper's language names (its tokenizer's table), which OpenAI's verbose_json reports.
_WHISPER_LANGUAGES = (
    "en english,zh chinese,de german,es spanish,ru russian,ko korean,fr french,ja japanese,pt portuguese,"
    "tr turkish,pl polish,ca catalan,nl dutch,ar arabic,sv swedish,it italian,id indonesian,hi hindi,"
    "fi finnish,vi vietnamese,he hebrew,uk ukrainian,el greek,ms malay,cs czech,ro romanian,da danish,"
    "hu hungarian,ta tamil,no norwegian,th thai,ur urdu,hr croatian,bg bulgarian,lt lithuanian,la latin,"
    "mi maori,ml malayalam,cy welsh,sk slovak,te telugu,fa persian,lv latvian,bn bengali,sr serbian,"
    "az azerbaijani,sl slovenian,kn kannada,et estonian,mk macedonian,br breton,eu basque,is icelandic,"
    "hy armenian,ne nepali,mn mongolian,bs bosnian,kk kazakh,sq albanian,sw swahili,gl galician,mr marathi,"
    "pa punjabi,si sinhala,km khmer,sn shona,yo yoruba,so somali,af afrikaans,oc occitan,ka georgian,"
    "be belarusian,tg tajik,sd sindhi,gu gujarati,am amharic,yi yiddish,lo lao,uz uzbek,fo faroese,"
    "ht haitian creole,ps pashto,tk turkmen,nn nynorsk,mt maltese,sa sanskrit,lb luxembourgish,my myanmar,"
    "bo tibetan,tl tagalog,mg malagasy,as assamese,tt tatar,haw hawaiian,ln lingala,ha hausa,ba bashkir,"
    "jw javanese,su sundanese,yue cantonese"
)
LANGUAGE_NAMES: dict[str, str] = dict(item.split(" ", 1) for item in _WHISPER_LANGUAGES.split(","))


@dataclass(frozen=True)
class Segment:
    """A stretch of the transcript: seconds from the start of the audio, and its text."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Transcript:
    """What an STT request produced: the text, its language code (`en`, `en-us`) if
    known, the audio's duration in seconds, and timed segments where the service has them."""

    text: str
    language: str | None
    duration: float
    segments: tuple[Segment, ...] = ()

    def timed_segments(self) -> tuple[Segment, ...]:
        """The segments, or the whole text as one segment (none for an empty text)."""
        if self.segments:
            return self.segments
        text = self.text.strip()
        return (Segment(0.0, self.duration, text),) if text else ()


def language_name(code: str | None) -> str:
    """`en-US` -> `english` (Whisper's name), an unknown code as given, None -> ``""``."""
    if not code:
        return ""
    return LANGUAGE_NAMES.get(primary_language(code), code)


def render_transcript(transcript: Transcript, response_format: str) -> tuple[str, str]:
    """(body, media type) of `transcript` in one of TRANSCRIPT_MEDIA_TYPES."""
    media_type = TRANSCRIPT_MEDIA_TYPES.get(response_format)
    if media_type is None:
        raise ValueError(f"response_format {response_format!r} is not one of {', '.join(TRANSCRIPT_MEDIA_TYPES)}")
    if response_format == "json":
        body = json.dumps({"text": transcript.text}, ensure_ascii=False)
    elif response_format == "text":
        body = transcript.text + "\n"
    elif response_format == "verbose_json":
        body = json.dumps(verbose_json(transcript), ensure_ascii=False)
    elif response_format == "srt":
        body = srt(transcript)
    else:
        body = vtt(transcript)
    return body, media_type


def verbose_json(transcript: Transcript) -> dict[str, object]:
    """OpenAI's verbose_json object (see the module docstring for the segment statistics)."""
    return {
        "task": "transcribe",
        "language": language_name(transcript.language),
        "duration": round(transcript.duration, 3),
        "text": transcript.text,
        "segments": [
            {
                "id": index, "seek": 0, "start": round(seg.start, 3), "end": round(seg.end, 3),
                "text": seg.text, "tokens": [], "temperature": 0.0, "avg_logprob": 0.0,
                "compression_ratio": 1.0, "no_speech_prob": 0.0,
            }
            for index, seg in enumerate(transcript.timed_segments())
        ],
        "usage": {"type": "duration", "seconds": round(transcript.duration, 3)},
    }


def _timestamp(seconds: float, decimal: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


def _cue_text(text: str) -> str:
    """A cue's text on lines of its own: no blank line (that ends a cue) and no `-->`."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines).replace("-->", "->")


def srt(transcript: Transcript) -> str:
    """SubRip: numbered cues, `HH:MM:SS,mmm --> HH:MM:SS,mmm`, a blank line after each."""
    return "".join(
        f"{number}\n{_timestamp(seg.start, ',')} --> {_timestamp(seg.end, ',')}\n{_cue_text(seg.text)}\n\n"
        for number, seg in enumerate(transcript.timed_segments(), start=1)
    )


def vtt(transcript: Transcript) -> str:
    """WebVTT: the `WEBVTT` line, then cues with `HH:MM:SS.mmm --> HH:MM:SS.mmm`."""
    cues = "".join(
        f"{_timestamp(seg.start, '.')} --> {_timestamp(seg.end, '.')}\n{_cue_text(seg.text)}\n\n"
        for seg in transcript.timed_segments()
    )
    return "WEBVTT\n\n" + cues
