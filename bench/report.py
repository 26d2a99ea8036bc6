"""The one table: metric | reference | ours | ratio | target | met?

ratio is always "how many times better we are": reference / ours for times, memory and
real-time factor, ours / reference for throughput. For the STT rows the reference column
is wyoming-faster-whisper at its default beam 5 (the same setting as ours), with beam 1 in
brackets; ratio and met? compare with beam 5 (with --no-beam5: beam 1).

The header's first cell says how the servers ran (side by side or alone); both modes give
the same rows. The TTS audio-cache rows compare ours with its cache on against the reference
(no cache) on a repeated sentence: no ratio, no target, they say what the cache does.
"""

from __future__ import annotations

import math

NA = "—"


def _ok(value) -> bool:
    return isinstance(value, (int, float)) and not math.isnan(value)


def ms(value) -> str:
    return f"{value:.0f} ms" if _ok(value) else NA


def ratio(ref, ours, higher_better: bool = False) -> str:
    if not (_ok(ref) and _ok(ours)) or (ours if not higher_better else ref) <= 0:
        return NA
    return f"{(ours / ref if higher_better else ref / ours):.1f}x"


def met(cond) -> str:
    if cond is None:
        return NA
    return "yes" if cond else "**no**"


def _get(d: dict | None, *keys, default=float("nan")):
    for key in keys:
        if not isinstance(d, dict) or key not in d:
            return default
        d = d[key]
    return d


def stt_rows(stt: dict) -> list[list[str]]:
    b1, b5, ours = stt.get("ref_b1"), stt.get("ref_b5"), stt.get("ours")
    ref, alt = (b5, b1) if b5 else (b1, None)  # compare at the same beam size as ours
    rows: list[list[str]] = []

    def ref_cell(fmt, *keys) -> str:
        cell = fmt(_get(ref, *keys))
        return f"{cell} (b1 {fmt(_get(alt, *keys))})" if alt else cell

    pct = lambda v: f"{v * 100:.1f}%" if _ok(v) else NA  # noqa: E731
    for cls, label in (("3s", "~3 s commands"), ("5s", "~5 s commands"), ("11s", "11 s JFK")):
        key = f"rt_{cls}"
        n = _get(ours, key, "n", default=0)
        p50, p95 = _get(ours, key, "p50"), _get(ours, key, "p95")
        command = cls != "11s"
        rows.append([f"STT {label}, real time + 0.7 s silence: stop→transcript p50 (n={n})",
                     ref_cell(ms, key, "p50"), ms(p50), ratio(_get(ref, key, "p50"), p50),
                     "≤ 150 ms" if command else NA, met(p50 <= 150) if command and _ok(p50) else NA])
        rows.append([f"STT {label}, real time: p95", ref_cell(ms, key, "p95"), ms(p95),
                     ratio(_get(ref, key, "p95"), p95), "≤ 300 ms" if command else NA,
                     met(p95 <= 300) if command and _ok(p95) else NA])
        rows.append([f"STT {label}, real time: min / max",
                     f"{ms(_get(ref, key, 'min'))} / {ms(_get(ref, key, 'max'))}",
                     f"{ms(_get(ours, key, 'min'))} / {ms(_get(ours, key, 'max'))}", NA, NA, NA])
        wer_ref, wer_ours = _get(ref, key, "wer"), _get(ours, key, "wer")
        rows.append([f"STT {label}: word error rate", ref_cell(pct, key, "wer"), pct(wer_ours), NA,
                     "≤ reference", met(wer_ours <= wer_ref + 1e-9) if _ok(wer_ours) and _ok(wer_ref) else NA])
    rows += hard_rows(ref, ours, ref_cell, pct)
    for cls, label in (("3s", "~3 s commands"), ("5s", "~5 s commands"), ("11s", "11 s JFK")):
        key = f"burst_{cls}"
        rows.append([f"STT {label}, sent in a burst: stop→transcript p50", ref_cell(ms, key, "p50"),
                     ms(_get(ours, key, "p50")), ratio(_get(ref, key, "p50"), _get(ours, key, "p50")), NA, NA])
    for clients in (1, 2, 4, 8):
        r1 = _get(ref, "throughput", clients, "req_per_s")
        o = _get(ours, "throughput", clients, "req_per_s")
        f2 = lambda v: f"{v:.2f} req/s" if _ok(v) else NA  # noqa: E731
        target = "≥ 1.8x reference" if clients == 4 else NA
        good = met(o >= 1.8 * r1) if clients == 4 and _ok(o) and _ok(r1) else NA
        rows.append([f"STT throughput, {clients} client{'s' if clients > 1 else ''} (11 s clip, bursts)",
                     ref_cell(f2, "throughput", clients, "req_per_s"), f2(o), ratio(r1, o, True), target, good])
        rows.append([f"STT latency p50 at {clients} client{'s' if clients > 1 else ''}",
                     ref_cell(ms, "throughput", clients, "p50"), ms(_get(ours, "throughput", clients, "p50")),
                     ratio(_get(ref, "throughput", clients, "p50"), _get(ours, "throughput", clients, "p50")),
                     NA, NA])
    for clients in (1, 4, 8, 16, 50):
        o, r = _get(ours, "many", clients, default=None), _get(ref, "many", clients, default=None)
        if o is None and r is None:
            continue
        cell = lambda d: (NA if d is None else  # noqa: E731
                          f"{ms(d.get('p50'))} / {ms(d.get('p95'))}, {d.get('req_per_s', 0):.2f} req/s, "
                          f"{d.get('ok', 0)} ok / {d.get('failed', 0)} failed, WER {pct(d.get('wer'))}")
        rows.append([f"STT {clients} clients at once, one ~3 s command each (burst): p50 / p95 after stop",
                     cell(r), cell(o), ratio(_get(r, "p50"), _get(o, "p50")),
                     "all answered" if clients == 50 else NA,
                     met(o["failed"] == 0) if clients == 50 and o is not None else NA])
    rows += cold_rows("STT", ref, ours, ref_cell)
    mb = lambda v: f"{v:.0f} MB" if _ok(v) else NA  # noqa: E731
    rows.append(["STT peak RSS (whole run of one server)", ref_cell(mb, "peak_rss_mb"), mb(_get(ours, "peak_rss_mb")),
                 ratio(_get(ref, "peak_rss_mb"), _get(ours, "peak_rss_mb")), NA, NA])
    return rows


#: The hard cases: (key, label, target for ours relative to the reference).
HARD = (("rt_long", "45-60 s speech, 5 voices, pauses, room noise after"),
        ("rt_noise_3s", "~3 s commands + 0.7 s room noise (not zeros)"),
        ("rt_noise_5s", "~5 s commands + 0.7 s room noise"),
        ("rt_quiet", "commands ending 28 dB quieter"))


def hard_rows(ref, ours, ref_cell, pct) -> list[list[str]]:
    """Long speech, room noise after speech, quiet endings: stop→transcript, end of speech→
    transcript (stop + the 0.7 s the client sends after speech) and word error rate."""
    rows: list[list[str]] = []
    for key, label in HARD:
        n = _get(ours, key, "n", default=0)
        if not n:
            continue
        p50, ref50 = _get(ours, key, "p50"), _get(ref, key, "p50")
        rows.append([f"STT {label}: stop→transcript p50 / p95 (n={n})",
                     f"{ref_cell(ms, key, 'p50')} / {ms(_get(ref, key, 'p95'))}",
                     f"{ms(p50)} / {ms(_get(ours, key, 'p95'))}", ratio(ref50, p50),
                     "≤ reference", met(p50 <= ref50) if _ok(p50) and _ok(ref50) else NA])
        rows.append([f"STT {label}: end of speech→transcript p50",
                     ms(ref50 + 700) if _ok(ref50) else NA, ms(p50 + 700) if _ok(p50) else NA,
                     ratio(ref50 + 700, p50 + 700), NA, NA])
        wer_ref, wer_ours = _get(ref, key, "wer"), _get(ours, key, "wer")
        rows.append([f"STT {label}: word error rate", ref_cell(pct, key, "wer"), pct(wer_ours), NA,
                     "≤ reference + 2 points",
                     met(wer_ours <= wer_ref + 0.02 + 1e-9) if _ok(wer_ours) and _ok(wer_ref) else NA])
    return rows


def cold_rows(kind: str, ref: dict | None, ours: dict | None, ref_cell=None) -> list[list[str]]:
    sec = lambda v: f"{v:.2f} s" if _ok(v) else NA  # noqa: E731
    r_ready, o_ready = _get(ref, "cold", "ready_s"), _get(ours, "cold", "ready_s")
    first_later = lambda d: f"{ms(_get(d, 'cold', 'first_ms'))} / {ms(_get(d, 'cold', 'later_ms'))}"  # noqa: E731
    o_first, o_later = _get(ours, "cold", "first_ms"), _get(ours, "cold", "later_ms")
    what = "transcript (11 s burst)" if kind == "STT" else "first audio (fresh 10 words)"
    return [
        [f"{kind} cold start: process start → describe answered",
         ref_cell(sec, "cold", "ready_s") if ref_cell else sec(r_ready), sec(o_ready),
         ratio(r_ready, o_ready), "≤ 2 s", met(o_ready <= 2.0) if _ok(o_ready) else NA],
        [f"{kind} cold start: {what}, first request / later", first_later(ref), first_later(ours),
         ratio(_get(ref, "cold", "first_ms"), o_first), "first ≤ 1.25 × later",
         met(o_first <= 1.25 * o_later) if _ok(o_first) and _ok(o_later) else NA],
        [f"{kind} cold start: process start → first {'transcript' if kind == 'STT' else 'audio'}",
         ref_cell(sec, "cold", "first_answer_s") if ref_cell else sec(_get(ref, "cold", "first_answer_s")),
         sec(_get(ours, "cold", "first_answer_s")),
         ratio(_get(ref, "cold", "first_answer_s"), _get(ours, "cold", "first_answer_s")), NA, NA],
    ]


def tts_rows(tts: dict) -> list[list[str]]:
    ref, ours = tts.get("ref"), tts.get("ours")
    rows: list[list[str]] = []
    r, o = _get(ref, "ttfa", "p50"), _get(ours, "ttfa", "p50")
    # issue 12: half the reference's, same voice, same run (issue 5's "≤ 60 ms" was absolute)
    goal = 0.5 * r if _ok(r) else float("nan")
    rows.append([f"TTS first audio, fresh 10-word sentences, p50 (n={_get(ours, 'ttfa', 'n', default=0)})",
                 ms(r), ms(o), ratio(r, o), f"≤ 0.5 × reference = {ms(goal)}",
                 met(o <= goal) if _ok(o) and _ok(goal) else NA])
    r95, o95 = _get(ref, "ttfa", "p95"), _get(ours, "ttfa", "p95")
    rows.append(["TTS first audio, fresh 10-word sentences, p95", ms(r95), ms(o95), ratio(r95, o95), NA, NA])
    for label in ("at piece end", "mid piece"):
        key = f"stream {label}"
        r, o = _get(ref, key, "p50"), _get(ours, key, "p50")
        rows.append([f"TTS text in pieces 0.5 s apart, sentence ends {label}: first audio after that piece, p50",
                     ms(r), ms(o), ratio(r, o), "≤ 100 ms", met(o <= 100) if _ok(o) else NA])
    single = _get(ours, "ttfa", "p50")
    for clients in (1, 2, 4, 8):
        rc, oc = _get(ref, "clients", clients), _get(ours, "clients", clients)
        cell = lambda d: (f"{ms(_get(d, 'p50'))} / {ms(_get(d, 'p95'))}"  # noqa: E731
                          + (f" ({d['errors']} failed)" if isinstance(d, dict) and d.get("errors") else ""))
        target, good = NA, NA
        if clients in (2, 4) and _ok(single):
            target = f"p95 ≤ 2 × {single:.0f} = {2 * single:.0f} ms"
            o95 = _get(oc, "p95")
            good = met(o95 <= 2 * single and not _get(oc, "errors", default=0)) if _ok(o95) else NA
        rows.append([f"TTS first audio, {clients} client{'s' if clients > 1 else ''} at once (fresh sentences): p50 / p95",
                     cell(rc), cell(oc), ratio(_get(rc, "p95"), _get(oc, "p95")), target, good])
    r, o = _get(ref, "rtf", "p50"), _get(ours, "rtf", "p50")
    f3 = lambda v: f"{v:.3f}" if _ok(v) else NA  # noqa: E731
    rows.append(["TTS real-time factor, fresh 60-word paragraphs (request → audio-stop / audio s), p50",
                 f3(r), f3(o), ratio(r, o), "≤ 0.04", met(o <= 0.04) if _ok(o) else NA])
    rm, om = _get(ref, "memory"), _get(ours, "memory")
    mem = lambda d: (f"peak {d['peak_mb']:.0f} MB: {d['outcome']}" if isinstance(d, dict) else NA)  # noqa: E731
    o_ok = None
    if isinstance(om, dict):
        o_ok = om["peak_mb"] <= 600 and not om["killed"] and (om["outcome"].startswith("audio")
                                                              or om["outcome"].startswith("error"))
    rows.append([f"TTS {_get(om, 'chars', default=10000)}-char text without sentence punctuation",
                 mem(rm), mem(om), ratio(_get(rm, "peak_mb"), _get(om, "peak_mb")),
                 "peak ≤ 600 MB, audio or a clear error", met(o_ok)])
    mb = lambda v: f"{v:.0f} MB" if _ok(v) else NA  # noqa: E731
    rows.append(["TTS peak RSS before the long text", mb(_get(ref, "peak_rss_mb")), mb(_get(ours, "peak_rss_mb")),
                 ratio(_get(ref, "peak_rss_mb"), _get(ours, "peak_rss_mb")), NA, NA])
    rows += cold_rows("TTS", ref, ours)
    rows += cache_rows(ref, tts.get("ours_cache"))
    return rows


def cache_rows(ref: dict | None, cached: dict | None) -> list[list[str]]:
    """Ours with its audio cache on (default --cache-mb) vs the reference (no cache): each
    sentence asked once (fresh), then the same sentence again and again."""
    if not isinstance(_get(cached, "cache"), dict):
        return []
    first, again = _get(cached, "cache", "first"), _get(cached, "cache", "repeat")
    r_first, r_again = _get(ref, "cache", "first"), _get(ref, "cache", "repeat")
    both = lambda d: f"{ms(_get(d, 'p50'))} / {ms(_get(d, 'p95'))}"  # noqa: E731
    return [
        [f"TTS **audio cache on** (ours at the default --cache-mb; the reference has none): "
         f"a sentence's first request, first audio p50 / p95 (n={_get(first, 'n', default=0)})",
         both(r_first), both(first), NA, NA, NA],
        [f"TTS **audio cache on**: the same sentence again ({_get(cached, 'cache', 'repeats', default=0)}× each), "
         f"first audio p50 / p95 (n={_get(again, 'n', default=0)})",
         both(r_again), both(again), NA, NA, NA],
    ]


def mode_line(results: dict) -> str:
    if results.get("mode") == "alone":
        return "alone: one server process at a time (started, measured, stopped, then the next)"
    return "side by side: all servers of a kind up at once, requests interleaved server by server"


def table(results: dict) -> str:
    rows = [[f"metric ({results.get('mode', 'side by side')})", "reference", "ours", "ratio", "target", "met?"]]
    if results.get("stt"):
        rows += stt_rows(results["stt"])
    if results.get("tts"):
        rows += tts_rows(results["tts"])
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(str(c).replace("|", "/") for c in row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def machine_markdown(machine: dict) -> str:
    lines = [f"- CPU: {machine.get('cpu')}, {machine.get('cores')} cores; RAM {machine.get('ram_gb')} GB; "
             f"{machine.get('os')}; Python {machine.get('python')}",
             f"- load average at start: {machine.get('loadavg_at_start')}, at end: {machine.get('loadavg_at_end')}; "
             f"mean CPU busy during the run: {machine.get('cpu_busy_pct', NA)}%",
             f"- ours: {machine.get('ours')}",
             f"- reference: {machine.get('reference')}"]
    return "\n".join(lines)


def main() -> None:
    """`python -m bench.report bench/results/bench-<UTC time>.json`: the table of a saved run again."""
    import json
    import sys

    def int_keys(node):  # JSON turned the client counts (dict keys) into strings
        if isinstance(node, dict):
            return {int(k) if isinstance(k, str) and k.isdigit() else k: int_keys(v) for k, v in node.items()}
        return [int_keys(v) for v in node] if isinstance(node, list) else node

    results = int_keys(json.loads(open(sys.argv[1], encoding="utf-8").read()))
    print(mode_line(results))
    print(table(results))


if __name__ == "__main__":
    main()
