"""Backends in a fallback chain, voice resolution, and the audio cache.

A request is resolved once into a `Plan`: the voice that should speak and, per
other backend, a voice of the same language that stands in when the first one
fails. Pieces are synthesized one at a time (in a worker thread), so a backend
that breaks mid-text hands over for the rest; audio of another rate is
resampled so a stream keeps one format.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from voice_common.audio import PcmConverter, float_to_pcm16
from voice_common.language import language_matches, language_tag
from voice_common.voice import speaker_index

from .backends import SynthesisOptions, TtsBackend, VoiceSpec
from .cache import AudioCache
from .metrics import TtsMetrics
from .scheduler import FairExecutor

_LOGGER = logging.getLogger(__name__)


WARM_UP_TEXT = "Hello, ready."


class SynthesisFailed(RuntimeError):
    """Every backend in the chain failed on a piece of text."""


class UnknownVoice(LookupError):
    """No loaded backend has a voice of the requested name."""


class UnknownSpeaker(LookupError):
    """The chosen voice has no speaker of the requested name or number."""


class UnsupportedLanguage(LookupError):
    """No loaded voice speaks the requested language."""


class SynthesisCancelled(RuntimeError):
    """The request's client left; the backend was stopped mid-piece."""


#: emit(backend name, 16-bit mono PCM at the stream's rate), called from a worker thread.
Emit = Callable[[str, bytes], None]


@dataclass(frozen=True)
class Candidate:
    backend: TtsBackend
    voice: VoiceSpec
    options: SynthesisOptions


@dataclass
class Plan:
    """A resolved request: who speaks, who stands in, and the format once fixed."""

    candidates: list[Candidate]
    rate: int | None = None
    dead: set[str] = field(default_factory=set)
    served_by: list[str] = field(default_factory=list)
    #: Set when the client is gone: a streaming backend is stopped at its next part.
    cancelled: bool = False
    #: Loudest peak so far of the sentence being spoken, for backends that scale each call
    #: to its own peak (see `level`).
    sentence_peak: float = 0.0

    def level(self, peak: float | None, continues: bool) -> float:
        """The factor for a piece its backend scaled to its own `peak` (None: not scaled).

        piper-tts scales each sentence to full scale. A sentence spoken in pieces (its first
        words on their own, or the clauses of a long one) would get one gain per piece: a step
        in loudness (measured: 2.1 dB p50, up to 5.6 dB). A piece that `continues` a sentence
        is brought down to the level of its louder pieces before it, so everything after the
        first piece is at the gain the whole sentence would have had, up to that point; the
        first piece is sent before the rest exists and keeps its own gain.
        """
        if peak is None or peak <= 0.0:
            return 1.0
        if not continues:
            self.sentence_peak = peak
            return 1.0
        factor = min(1.0, peak / self.sentence_peak) if self.sentence_peak > 0.0 else 1.0
        self.sentence_peak = max(self.sentence_peak, peak)
        return factor

    @property
    def short_first_piece(self) -> bool:
        return self.candidates[0].backend.short_first_piece

    @property
    def native_rate(self) -> int:
        return self.rate or self.candidates[0].voice.sample_rate


class Synthesizer:
    """The backend chain of the service: loads it, resolves requests into Plans, and
    synthesizes pieces (in the fair worker pool), with the audio cache."""

    def __init__(
        self, backends: list[TtsBackend], metrics: TtsMetrics, cache_bytes: int,
        workers: int = 2, default_speaker: str | None = None,
    ) -> None:
        self.chain = backends
        self.metrics = metrics
        self.cache = AudioCache(cache_bytes)
        self.loaded: list[TtsBackend] = []
        self.default_speaker = default_speaker
        #: Bounded, so many clients share the CPU instead of oversubscribing it; first pieces first.
        self.executor = FairExecutor(workers)

    def shutdown(self) -> None:
        self.executor.shutdown()

    def load(self) -> None:
        """Load every backend of the chain; one that fails is left out while another works."""
        errors = []
        for backend in self.chain:
            start = time.perf_counter()
            try:
                backend.load()
            except Exception as err:  # noqa: BLE001 - reported, the next backend may serve
                self.metrics.failures.labels(backend.name).inc()
                errors.append(f"{backend.name}: {err}")
                _LOGGER.error("backend %s failed to load: %s", backend.name, err)
                continue
            self.loaded.append(backend)
            _warm_up(backend)
            _LOGGER.info("backend %s loaded and warmed up in %.2f s", backend.name, time.perf_counter() - start)
        if not self.loaded:
            raise RuntimeError("no TTS backend could be loaded: " + "; ".join(errors))

    def voices(self) -> list[VoiceSpec]:
        """Every usable voice once (the first backend in the chain wins a name clash)."""
        seen: dict[str, VoiceSpec] = {}
        for backend in self.loaded:
            for spec in backend.voices():
                seen.setdefault(spec.name, spec)
        return list(seen.values())

    def install_voice(self, name: str) -> bool:
        """Blocking (a thread, not the synthesis pool): have a backend that can fetch voice `name`
        download and load it. False when none can; raises what a failed download raised."""
        return any(backend.install(name) for backend in self.loaded)

    # -- resolving a request ----------------------------------------------
    def plan(self, name: str | None, language: str | None, speaker: str | None, speed: float) -> Plan:
        """Pick the voice for a request; UnknownVoice, UnsupportedLanguage or UnknownSpeaker
        for what no backend has."""
        base = SynthesisOptions(speed=speed, language=language_tag(language) if language else None)
        if name:
            first = self._by_name(name)
            if first is None:
                raise UnknownVoice(f"unknown voice {name!r}")
        elif language:
            stand_ins = self._stand_ins((language,), exclude=None, options=base)
            if not stand_ins:
                raise UnsupportedLanguage(f"no voice speaks {language!r}")
            first = (stand_ins[0].backend, stand_ins[0].voice)
        else:
            first = next(((b, v[0]) for b in self.loaded if (v := b.voices())), None)
            if first is None:
                raise UnknownVoice("no voice is installed (create a voice profile first)")
        backend, spec = first
        if speaker is None and self.default_speaker and speaker_index(self.default_speaker, spec.speakers) is not None:
            speaker = self.default_speaker
        if speaker is not None and spec.speakers and speaker_index(speaker, spec.speakers) is None:
            raise UnknownSpeaker(f"voice {spec.name!r} has no speaker {speaker!r}")
        options = replace(base, speaker=speaker if spec.speakers else None)
        languages = (language,) if language and not name else spec.languages
        return Plan([Candidate(backend, spec, options), *self._stand_ins(languages, exclude=backend, options=base)])

    def _by_name(self, name: str) -> tuple[TtsBackend, VoiceSpec] | None:
        for backend in self.loaded:
            for spec in backend.voices():
                if spec.name == name:
                    return backend, spec
        return None

    def _stand_ins(self, languages, exclude, options) -> list[Candidate]:
        """Per backend (chain order), its best voice for any of `languages`."""
        out = []
        for backend in self.loaded:
            if backend is exclude:
                continue
            best, best_score = None, 0
            for lang in languages:
                for spec in backend.voices():  # default voice first: wins ties
                    score = max((language_matches(lang, offered) for offered in spec.languages), default=0)
                    if score > best_score:
                        best, best_score = spec, score
                if best is not None:
                    break  # the first language of the voice counts most
            if best is not None:
                out.append(Candidate(backend, best, options))
        return out

    # -- synthesis (worker thread) ------------------------------------------
    def synthesize_piece(
        self, plan: Plan, text: str, emit: Emit | None = None, continues: bool = False,
    ) -> tuple[str, bytes]:
        """Blocking: one bounded piece -> (backend name, 16-bit mono PCM at plan.rate).

        `continues`: the piece goes on with the sentence of the piece before it (it keeps
        that sentence's level, see `Plan.level`).

        With `emit`, each part of the audio is also handed on as soon as the backend yields
        it (`emit(backend, pcm)`), so a streaming backend's first words go out before the
        piece is done. A backend that fails hands the piece to the next one (whatever it
        had sent of it is then heard again, spoken by the stand-in). Once `plan.cancelled`
        is set (the client left) the backend is stopped at its next part.
        """
        for cand in plan.candidates:
            name = cand.backend.name
            if name in plan.dead:
                continue
            opts = cand.options
            # the version tells a voice profile re-created under the same name from the old one
            key = (name, cand.voice.name, cand.voice.version, opts.speaker, opts.speed, opts.language, text)
            cached = self.cache.get(key)
            if cached is not None:
                self.metrics.cache_hits.inc()
                rate, pcm, peak = cached
                pcm = self._fit(plan, rate, scaled(pcm, plan.level(peak, continues)))
                if emit is not None:
                    emit(name, pcm)
            else:
                self.metrics.cache_misses.inc()
                start = time.perf_counter()
                try:
                    rate, pcm, peak, factor = self._run_backend(plan, cand, text, emit, continues)
                except SynthesisCancelled:
                    raise
                except Exception as err:  # noqa: BLE001 - any backend fault: try the next one
                    self.metrics.failures.labels(name).inc()
                    plan.dead.add(name)
                    _LOGGER.warning("backend %s failed with voice %s: %r", name, cand.voice.name, err)
                    continue
                elapsed = time.perf_counter() - start
                self.metrics.synthesis_seconds.labels(name).observe(elapsed)
                self.metrics.characters.labels(name).inc(len(text))
                self.cache.put(key, rate, pcm, peak)  # at the backend's own level: any sentence may reuse it
                self.metrics.cache_bytes.set(self.cache.size)
                _LOGGER.debug("%s/%s: %d chars in %.2f s: %r", name, cand.voice.name, len(text), elapsed, text)
                pcm = self._fit(plan, rate, scaled(pcm, factor))
            self.metrics.audio_seconds.labels(name).inc(len(pcm) / 2 / (plan.rate or rate))
            if name not in plan.served_by:
                plan.served_by.append(name)
            return name, pcm
        raise SynthesisFailed(f"every backend failed ({', '.join(sorted(plan.dead))})")

    @staticmethod
    def _fit(plan: Plan, rate: int, pcm: bytes) -> bytes:
        """The stream keeps the rate of its first audio: fix it, or resample to it."""
        if plan.rate is None:
            plan.rate = rate
        return pcm if rate == plan.rate else resample(pcm, rate, plan.rate)

    def _run_backend(
        self, plan: Plan, cand: Candidate, text: str, emit: Emit | None, continues: bool,
    ) -> tuple[int, bytes, float | None, float]:
        """(native rate, all PCM of the piece at that rate and the backend's level, its first
        peak, the level factor), emitting parts (leveled) at the stream's rate."""
        out = cand.backend.synthesize(text, cand.voice.name, cand.options)
        converter: PcmConverter | None = None
        parts: list[bytes] = []
        peak: float | None = None
        factor = 1.0
        chunks = iter(out.chunks)
        try:
            for part in chunks:
                if plan.cancelled:
                    raise SynthesisCancelled("client left")
                if not parts:  # the first part's peak decides the piece's level
                    peak = out.peaks[0] if out.peaks else None
                    factor = plan.level(peak, continues)
                parts.append(part)
                part = scaled(part, factor)
                if emit is None or not part:
                    continue
                if plan.rate is None:  # fixed by the first audio that really comes, not by a promise
                    plan.rate = out.rate
                if out.rate != plan.rate and converter is None:
                    converter = PcmConverter(out.rate, 2, 1, target_rate=plan.rate)
                emit(cand.backend.name, float_to_pcm16(converter.convert(part)) if converter else part)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()  # a generator backend stops its own work (qwen3: the generation thread)
        if emit is not None and converter is not None:
            tail = converter.flush()
            if len(tail):
                emit(cand.backend.name, float_to_pcm16(tail))
        return out.rate, b"".join(parts), peak, factor


def _warm_up(backend: TtsBackend) -> None:
    """One short synthesis at load, so the first request is as fast as later ones."""
    voices = backend.voices()
    if not voices:  # a cloning backend before any voice profile exists: nothing to warm up with
        return
    try:
        voice = voices[0]
        for _chunk in backend.synthesize(WARM_UP_TEXT, voice.name, SynthesisOptions()).chunks:
            pass
    except Exception as err:  # noqa: BLE001 - a voice that cannot speak fails its requests instead
        _LOGGER.warning("warm-up of backend %s failed: %r", backend.name, err)


def scaled(pcm: bytes, factor: float) -> bytes:
    """16-bit PCM times `factor` (<= 1), rounded; the same bytes for 1."""
    if factor == 1.0:
        return pcm
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) * np.float32(factor)
    return np.round(samples).astype("<i2").tobytes()


def resample(pcm: bytes, rate: int, target: int) -> bytes:
    """16-bit mono PCM from `rate` to `target` Hz (a stand-in voice keeps the stream's format)."""
    converter = PcmConverter(rate, 2, 1, target_rate=target)
    samples = converter.convert(pcm)
    tail = converter.flush()
    return float_to_pcm16(samples) + float_to_pcm16(tail)

