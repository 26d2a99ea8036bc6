"""Where the time of a synthesis goes, in process (no server, no network): the floors under
issue 12's TTS targets, measured on this machine.

    .venv/bin/python -m bench.tts_floors [--runs 8] [--skip-kokoro] [--skip-split]

1. Piper: one call's time against its length (a fixed part + a part per second of audio).
2. Piper split at its decoder (needs the `onnx` package, in the `bench` extra): encoder +
   duration predictor, flow, HiFi-GAN decoder; what first audio would cost if the decoder
   streamed; whether decoding in chunks gives the same samples; how far each sentence's
   peak is from 1.0 (piper-tts scales every sentence to its own peak, which a stream
   cannot know before the sentence's last sample).
3. Piper with 1, 2, 4 first pieces at once through 2 worker threads: onnxruntime's default
   session (threads that go on spinning after a run), no spinning at all, and ours
   (`wyoming_tts.backends.onnx_cpu`: spinning stopped after each run); and how much work the
   machine gets done with 2 at once compared with one after the other.
4. Kokoro (bundled int8): time against length and where it goes (onnxruntime's profiler).

Every sentence is fresh (`bench.sentences`); prints markdown.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench.sentences import sentences
from voice_common.models import package_dir
from wyoming_tts.backends.onnx_cpu import cores, cpu_session
from wyoming_tts.backends.piper import BUNDLED_PACKAGE, BUNDLED_VOICE
from wyoming_tts.text import split_head

PIPER = str(package_dir(*BUNDLED_PACKAGE) / "data" / f"{BUNDLED_VOICE}.onnx")
HOP = 256  # samples per decoder frame (the voice's hop length)


def p50(values: list[float]) -> float:
    return statistics.median(values)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[round(0.95 * (len(ordered) - 1))]


class Texts:
    """Fresh sentences, never one twice."""

    def __init__(self) -> None:
        self._all = sentences()
        self._next = 0

    def take(self) -> str:
        self._next += 1
        return self._all[(self._next - 1) % len(self._all)]


def piper_voice(session=None):
    from piper import PiperVoice

    voice = PiperVoice.load(PIPER)
    if session is not None:
        voice.session = session
    for _ in voice.synthesize("Hello, ready."):
        pass
    return voice


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - start) * 1000


def piper_cost(texts: Texts, runs: int) -> None:
    voice = piper_voice()
    print("\n## 1. Piper: one call against its length\n\n| words | ms p50 | audio s | ms per audio s |\n|---|---|---|---|")
    for words in (1, 2, 3, 4, 6, 10):
        ms, audio = [], []
        for _ in range(runs):
            text = " ".join(texts.take().split()[:words])
            ids = voice.phonemes_to_ids(voice.phonemize(text)[0])
            start = time.perf_counter()
            out = voice.phoneme_ids_to_audio(ids)
            ms.append((time.perf_counter() - start) * 1000)
            audio.append(out.size / voice.config.sample_rate)
        print(f"| {words} | {p50(ms):.0f} | {p50(audio):.2f} | {p50(ms) / p50(audio):.0f} |")
    # piper-tts scales each call's audio to its own peak; a sentence spoken as head + rest gets two gains
    steps = []
    for _ in range(2 * runs):
        head, rest = split_head(texts.take())
        peaks = [np.abs(voice.phoneme_ids_to_audio(voice.phonemes_to_ids(voice.phonemize(part)[0]))).max()
                 for part in (head, rest)]
        steps.append(abs(20 * np.log10(peaks[0] / peaks[1])))
    print(f"\nA first sentence spoken as head + rest: each part is scaled to its own peak, so their levels differ "
          f"by {p50(steps):.1f} dB p50, {max(steps):.1f} dB at most ({2 * runs} sentences).")


def piper_split(texts: Texts, runs: int) -> None:
    import onnx
    from onnx.utils import Extractor

    model = onnx.load(PIPER)
    flow_in = ["/Add_output_0", "/Cast_2_output_0"]  # z_p (noise already drawn) and the frame mask
    dec_in = ["/Mul_7_output_0"]  # z * mask, the decoder's only input
    extract = Extractor(model)
    threads = cores()
    encoder = cpu_session(extract.extract_model(["input", "input_lengths", "scales"], flow_in).SerializeToString(), threads)
    flow = cpu_session(extract.extract_model(flow_in, dec_in).SerializeToString(), threads)
    decoder = cpu_session(extract.extract_model(dec_in, ["output"]).SerializeToString(), threads)
    voice = piper_voice()
    scales = np.array([voice.config.noise_scale, voice.config.length_scale, voice.config.noise_w_scale], np.float32)

    def front(text: str):
        ids = np.array([voice.phonemes_to_ids(voice.phonemize(text)[0])], np.int64)
        return encoder.run(None, {"input": ids, "input_lengths": np.array([ids.shape[1]]), "scales": scales})

    front("Hello, ready.")
    stages: dict[str, list[float]] = {"encoder + durations": [], "flow": [], "decoder": [], "first 16 frames": []}
    peaks, frames = [], []
    for _ in range(runs):
        text = texts.take()
        start = time.perf_counter()
        zp, mask = front(text)
        stages["encoder + durations"].append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        z = flow.run(None, {flow_in[0]: zp, flow_in[1]: mask})[0]
        stages["flow"].append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        audio = decoder.run(None, {dec_in[0]: z})[0].reshape(-1)
        stages["decoder"].append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        head_z = flow.run(None, {flow_in[0]: zp[:, :, :48], flow_in[1]: mask[:, :, :48]})[0]
        decoder.run(None, {dec_in[0]: head_z})
        stages["first 16 frames"].append((time.perf_counter() - start) * 1000)
        peaks.append(float(np.abs(audio).max()))
        frames.append(z.shape[2])
    print(f"\n## 2. Piper split at its decoder (10-word sentences, {p50(frames):.0f} frames p50)\n")
    print("| stage | ms p50 |\n|---|---|")
    for name, values in stages.items():
        label = "flow + decoder of the first 16 frames (+ 32 frames of context)" if name == "first 16 frames" else name
        print(f"| {label} | {p50(values):.0f} |")
    first = p50(stages["encoder + durations"]) + p50(stages["first 16 frames"])
    print(f"\nFirst audio if flow and decoder streamed: {first:.0f} ms for the whole sentence.")
    diffs = []
    for context in (8, 16, 48):
        chunked = np.concatenate([
            decoder.run(None, {dec_in[0]: z[:, :, max(0, a - context):a + 40 + context]})[0].reshape(-1)[
                (a - max(0, a - context)) * HOP:(a - max(0, a - context) + min(40, z.shape[2] - a)) * HOP]
            for a in range(0, z.shape[2], 40)])
        diffs.append(f"context {context} frames: max |difference| {np.abs(chunked - audio).max():.2g}")
    print("Decoder in chunks of 40 frames vs whole, same input: " + "; ".join(diffs) + ".")
    print(f"Raw peak of each sentence before piper-tts scales it to 1.0: min {min(peaks):.3f}, p50 {p50(peaks):.3f}, "
          f"max {max(peaks):.3f} (gain {1 / max(peaks):.2f}x to {1 / min(peaks):.2f}x): a stream would have to "
          "guess the gain before the sentence's loudest sample exists.")


def piper_concurrency(texts: Texts, runs: int) -> None:
    import onnxruntime

    def session(**entries: str):
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = cores()
        for key, value in entries.items():
            options.add_session_config_entry(key, value)
        return onnxruntime.InferenceSession(PIPER, sess_options=options, providers=["CPUExecutionProvider"])

    setups = {
        "onnxruntime's defaults": session(),
        "no spinning at all": session(**{"session.intra_op.allow_spinning": "0"}),
        "spinning stopped after each run (ours)": cpu_session(PIPER, cores()),
    }
    voice = piper_voice()
    pool = ThreadPoolExecutor(2)
    latencies: dict[str, dict[int, list[float]]] = {name: {1: [], 2: [], 4: []} for name in setups}
    for _ in range(runs):  # rounds: every setup gets the same pieces, one setup after the other
        for count in (1, 2, 4):
            heads = [split_head(texts.take())[0] for _ in range(count)]
            for name, chosen in setups.items():
                voice.session = chosen
                start = time.perf_counter()

                def one(text: str, start=start) -> float:
                    for _chunk in voice.synthesize(text):
                        pass
                    return (time.perf_counter() - start) * 1000

                latencies[name][count] += list(pool.map(one, heads))
    print(f"\n## 3. Piper first pieces (4 words) at once, 2 worker threads, {runs} rounds, p50 / p95 ms\n")
    print("| session | one alone | 2 at once | 4 at once | work done, 2 at once vs one by one "
          "| CPU burned in the 300 ms after a run |\n|---|---|---|---|---|---|")
    for name, chosen in setups.items():
        voice.session = chosen
        pair = [split_head(texts.take())[0] for _ in range(2 * runs)]
        serial = sum(timed(lambda t: list(voice.synthesize(t)), t) for t in pair[:runs])
        start = time.perf_counter()
        list(pool.map(lambda t: list(voice.synthesize(t)), pair[runs:]))
        parallel = (time.perf_counter() - start) * 1000
        cells = [f"{p50(v):.0f} / {p95(v):.0f}" for v in latencies[name].values()]
        idle = []
        for _ in range(3):
            list(voice.synthesize(split_head(texts.take())[0]))
            cpu = time.process_time()
            time.sleep(0.3)
            idle.append((time.process_time() - cpu) * 1000)
        print(f"| {name} | " + " | ".join(cells) + f" | {serial / parallel:.2f}x | {p50(idle):.0f} ms |")


def kokoro_cost(texts: Texts, runs: int) -> None:
    from kokoro_onnx import Kokoro

    from wyoming_tts.backends.kokoro import VOICES_PACKAGE, _bundled_model

    voices = str(package_dir(*VOICES_PACKAGE) / "data" / "voices_ja.npz")
    style = np.load(voices)["jf_alpha"].astype(np.float32)
    kokoro = Kokoro.from_session(cpu_session(str(_bundled_model()), cores()), voices)
    kokoro.create("Hello, ready.", voice=style, lang="en-us")
    print("\n## 4. Kokoro-82M int8 (bundled), voice jf_alpha, English\n\n| words | ms p50 | audio s | real-time factor |\n|---|---|---|---|")
    for words in (1, 3, 5, 10, 20):
        ms, audio = [], []
        for _ in range(max(2, runs // 2)):
            text = " ".join((texts.take() + " " + texts.take()).split()[:words])
            start = time.perf_counter()
            samples, rate = kokoro.create(text, voice=style, lang="en-us")
            ms.append((time.perf_counter() - start) * 1000)
            audio.append(len(samples) / rate)
        print(f"| {words} | {p50(ms):.0f} | {p50(audio):.2f} | {p50(ms) / 1000 / p50(audio):.2f} |")
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = "/tmp/kokoro-profile"
    session = onnxruntime.InferenceSession(str(_bundled_model()), options, providers=["CPUExecutionProvider"])
    profiled = Kokoro.from_session(session, voices)
    calls = 3
    for _ in range(calls):
        profiled.create(texts.take(), voice=style, lang="en-us")
    path = Path(session.end_profiling())
    by_op: dict[str, float] = {}
    for event in json.loads(path.read_text()):
        if event.get("cat") == "Node":
            op = event["args"].get("op_name", "?")
            by_op[op] = by_op.get(op, 0.0) + event["dur"] / 1000
    path.unlink()
    total = sum(by_op.values())
    print("\nWhere a 10-word call's time goes (onnxruntime profiler, 3 calls):\n\n| op | share | ms per call |\n|---|---|---|")
    for op, ms in sorted(by_op.items(), key=lambda item: -item[1])[:6]:
        print(f"| {op} | {100 * ms / total:.0f}% | {ms / calls:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--skip-kokoro", action="store_true")
    parser.add_argument("--skip-split", action="store_true", help="skip part 2 (needs the onnx package)")
    args = parser.parse_args()
    texts = Texts()
    print(f"# TTS floors, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {cores()} cores")
    piper_cost(texts, args.runs)
    if not args.skip_split:
        piper_split(texts, args.runs)
    piper_concurrency(texts, args.runs)
    if not args.skip_kokoro:
        kokoro_cost(texts, args.runs)


if __name__ == "__main__":
    main()
