"""What batching decodes would give the STT service on this machine, and whether it keeps
the words: the measurement behind issue 12's "batch decodes across sessions".

    .venv/bin/python -m bench.stt_batching [--batch 4] [--threads 2]

1. Across sessions: the 30 s windows of N different ~3-5 s commands (human, espeak-ng,
   Piper; the bench's clips), decoded by CTranslate2 one after the other vs in one batch
   (`encode` + `generate`, beam 5, the prompt faster-whisper builds): the same tokens?
   how much sooner is the batch done?
2. faster-whisper's own batched pipeline (`BatchedInferencePipeline`, which batches the
   VAD chunks of one recording) vs its stock `transcribe` (our decode) on the bench's
   long recordings: words (WER against the text) and time.

Prints markdown.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.speech import RATE, commands, long_speech
from wyoming_stt.backends.faster_whisper import bundled_tiny_en

BEAM = 5


def wer(reference: str, hypothesis: str) -> float:
    import sys

    from bench.common import REPO

    sys.path.insert(0, str(REPO / "tests"))
    from helpers import word_error_rate

    return word_error_rate(reference, hypothesis)


def across_sessions(model, clips, batch: int) -> None:
    import ctranslate2

    tokenizer_prompt = model.get_prompt(
        _tokenizer(model), previous_tokens=[], without_timestamps=False, prefix=None)
    features = []
    for clip in clips[:batch]:
        audio = np.frombuffer(clip.pcm, np.int16).astype(np.float32) / 32768
        mel = model.feature_extractor(audio)[:, :3000]
        features.append(np.pad(mel, ((0, 0), (0, 3000 - mel.shape[1]))))
    stacked = np.stack(features).astype(np.float32)

    def decode(feats: np.ndarray) -> list[list[int]]:
        encoded = model.model.encode(ctranslate2.StorageView.from_array(feats), to_cpu=False)
        results = model.model.generate(encoded, [tokenizer_prompt] * feats.shape[0], beam_size=BEAM,
                                       max_length=224, suppress_blank=True, return_scores=False)
        return [r.sequences_ids[0] for r in results]

    decode(stacked[:1])
    start = time.perf_counter()
    one_by_one = [decode(stacked[i:i + 1])[0] for i in range(len(stacked))]
    serial = time.perf_counter() - start
    start = time.perf_counter()
    together = decode(stacked)
    batched = time.perf_counter() - start
    same = sum(a == b for a, b in zip(one_by_one, together))
    print(f"\n## 1. {len(stacked)} commands' windows: one by one vs one batch (beam {BEAM})\n")
    print("| | seconds | tokens equal to one by one |\n|---|---|---|")
    print(f"| one by one | {serial:.2f} | — |")
    print(f"| one batch of {len(stacked)} | {batched:.2f} ({serial / batched:.2f}x) | {same} of {len(stacked)} |")


def _tokenizer(model):
    from faster_whisper.tokenizer import Tokenizer

    return Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language="en")


def batched_pipeline(model, clips) -> None:
    from faster_whisper import BatchedInferencePipeline

    pipeline = BatchedInferencePipeline(model)
    print("\n## 2. faster-whisper's batched pipeline vs its stock transcribe (long recordings)\n")
    print("| recording | stock: s / WER | batched (batch 4): s / WER | same words |\n|---|---|---|---|")
    for clip in clips:
        audio = np.frombuffer(clip.pcm, np.int16).astype(np.float32) / 32768
        start = time.perf_counter()
        stock = " ".join(s.text.strip() for s in model.transcribe(audio, language="en", beam_size=BEAM)[0])
        stock_s = time.perf_counter() - start
        start = time.perf_counter()
        fast = " ".join(s.text.strip() for s in pipeline.transcribe(audio, language="en", beam_size=BEAM,
                                                                     batch_size=4)[0])
        fast_s = time.perf_counter() - start
        print(f"| {clip.name} ({clip.seconds:.0f} s) | {stock_s:.2f} / {100 * wer(clip.text, stock):.1f}% | "
              f"{fast_s:.2f} / {100 * wer(clip.text, fast):.1f}% | {'yes' if stock.split() == fast.split() else 'no'} |")


def main() -> None:
    from faster_whisper import WhisperModel

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    model = WhisperModel(str(bundled_tiny_en()), device="cpu", compute_type="int8", cpu_threads=args.threads)
    print(f"# STT batching, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, tiny.en int8, "
          f"{args.threads} threads, {RATE} Hz clips")
    clips = commands()
    across_sessions(model, clips["3s"] + clips["5s"], args.batch)
    batched_pipeline(model, long_speech())


if __name__ == "__main__":
    main()
