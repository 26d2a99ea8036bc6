"""PNG charts of a benchmark run: latency distributions per scenario, ours vs the reference.

One PNG per group of scenarios, one panel per scenario; in each panel a box per server
(median line: the table's p50, quartile box, whiskers to the furthest value within 1.5 IQR)
with every single request drawn as a dot over it, and the p50 written beside the box. A panel
whose values span more than 30x (our few-ms STT answers beside the reference's hundreds)
gets a logarithmic axis, which its label says. Needs matplotlib (the `bench` extra).
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from .common import pct  # noqa: E402

RED, PINK, BLUE, GREEN = "#c0392b", "#e59866", "#1f77b4", "#17a589"
#: server key -> (short label under the box, legend label, colour)
STT_SERVERS = {
    "ref_b5": ("ref b5", "reference: wyoming-faster-whisper 3.8.1, beam 5 (its default)", RED),
    "ref_b1": ("ref b1", "reference: wyoming-faster-whisper 3.8.1, beam 1", PINK),
    "ours": ("ours", "ours: wyoming-stt, beam 5", BLUE),
}
TTS_SERVERS = {
    "ref": ("reference", "reference: wyoming-piper 2.5.2 (no audio cache)", RED),
    "ours": ("ours", "ours: wyoming-tts, --cache-mb 0", BLUE),
}
CACHE_SERVERS = {
    "ref": ("reference", "reference: wyoming-piper 2.5.2 (no audio cache)", RED),
    "ours_cache": ("ours, cache on", "ours: wyoming-tts, audio cache on (default --cache-mb)", GREEN),
}

STOP = "stop → transcript (ms)"
#: (file stem, title, y label, servers, [(path in a server's results, panel title)])
CHARTS = [
    ("bench-stt-realtime", "STT: audio-stop → transcript, commands played in real time + 0.7 s silence",
     STOP, STT_SERVERS,
     [(("rt_3s",), "~3 s commands"), (("rt_5s",), "~5 s commands"), (("rt_11s",), "11 s JFK")]),
    ("bench-stt-hard", "STT hard cases: audio-stop → transcript, played in real time",
     STOP, STT_SERVERS,
     [(("rt_long",), "45-60 s speech, 5 voices, pauses,\nroom noise after"),
      (("rt_noise_3s",), "~3 s commands\n+ 0.7 s room noise"),
      (("rt_noise_5s",), "~5 s commands\n+ 0.7 s room noise"),
      (("rt_quiet",), "commands ending\n28 dB quieter")]),
    ("bench-stt-burst", "STT: audio-stop → transcript, audio sent in a burst (a file, not a microphone)",
     STOP, STT_SERVERS,
     [(("burst_3s",), "~3 s commands"), (("burst_5s",), "~5 s commands"), (("burst_11s",), "11 s JFK")]),
    ("bench-tts-first-audio", "TTS: time to first audio, fresh sentences (none asked twice)",
     "first audio (ms)", TTS_SERVERS,
     [(("ttfa",), "10-word sentence, one request at a time\n(from writing synthesize)"),
      (("stream at piece end",), "text in pieces 0.5 s apart, sentence one\nends at a piece end "
                                 "(from that piece)"),
      (("stream mid piece",), "text in pieces 0.5 s apart, sentence one\nends mid piece "
                              "(from that piece)")]),
    ("bench-tts-clients", "TTS: time to first audio, N clients sending a fresh 10-word sentence at the same moment",
     "first audio (ms)", TTS_SERVERS,
     [(("clients", n), f"{n} client{'s' if n > 1 else ''} at once") for n in (1, 2, 4, 8)]),
    ("bench-tts-cache", "TTS audio cache: a sentence asked once, then the same sentence again "
                        "(these rows measure the cache, not synthesis)",
     "first audio (ms)", CACHE_SERVERS,
     [(("cache", "first"), "first request of a sentence"), (("cache", "repeat"), "the same sentence again")]),
]


def _values(results: dict, server: str, path: tuple) -> list[float]:
    node = results.get(server)
    for key in path:
        if not isinstance(node, dict):
            return []
        node = node.get(key, node.get(str(key)))  # JSON turns int keys into strings
    values = node.get("values_ms") if isinstance(node, dict) else None
    return [float(v) for v in values or [] if isinstance(v, (int, float)) and math.isfinite(v)]


def _fmt(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 10 else f"{value:.1f}"


def _panel(ax, title: str, series: list[tuple[str, str, list[float]]], ylabel: str) -> None:
    data = [values for _short, _colour, values in series]
    flat = [v for values in data for v in values]
    log = min(flat) > 0 and max(flat) / min(flat) > 30
    medians = [pct(values, 0.5) for values in data]  # nearest rank, as in the table
    boxes = ax.boxplot(data, widths=0.55, patch_artist=True, showfliers=False, usermedians=medians,
                       medianprops={"color": "black", "linewidth": 1.5})
    rng = random.Random(1)
    for i, ((short, colour, values), box, median) in enumerate(zip(series, boxes["boxes"], medians), start=1):
        box.set_facecolor(colour)
        box.set_alpha(0.35)
        ax.scatter([i + rng.uniform(-0.17, 0.17) for _ in values], values, s=14, color=colour,
                   edgecolors="black", linewidths=0.3, zorder=3)
        ax.annotate(f"p50 {_fmt(median)}", (i + 0.3, median), fontsize=8, va="center")
    ax.set_xticks(range(1, len(series) + 1),
                  [f"{short}\nn={len(values)}" for short, _colour, values in series], fontsize=8)
    ax.set_xlim(0.5, len(series) + 0.9)
    if log:
        ax.set_yscale("log")
    elif min(flat) < 0:
        ax.axhline(0, color="grey", linewidth=0.8, linestyle=":")
    else:
        ax.set_ylim(bottom=0)  # a linear axis from zero: no small gap drawn as a large one
    ax.set_ylabel(ylabel + (", log scale" if log else ""))
    ax.set_title(title, fontsize=9)
    ax.grid(axis="y", which="major", alpha=0.3)


def _subtitle(results: dict) -> str:
    machine = results.get("machine", {})
    load = machine.get("loadavg_at_start") or ["?"]
    when = str(results.get("started_utc", ""))[:16].replace("T", " ")
    return (f"{when} UTC, {results.get('mode', 'side by side')}"
            f"{', --quick' if results.get('quick') else ''}; {machine.get('cpu', '?')}, "
            f"{machine.get('cores', '?')} cores, load at start {load[0]}, "
            f"mean CPU busy {machine.get('cpu_busy_pct', '?')}%")


def draw(results: dict, out_dir: Path) -> list[Path]:
    """Every chart the results have data for, as out_dir/<stem>.png; the paths written."""
    written: list[Path] = []
    for stem, title, ylabel, servers, panels in CHARTS:
        kind = results.get("tts" if stem.startswith("bench-tts") else "stt") or {}
        drawn = []
        for path, panel_title in panels:
            series = [(short, colour, _values(kind, key, path)) for key, (short, _long, colour) in servers.items()]
            series = [s for s in series if s[2]]
            if series:
                drawn.append((panel_title, series))
        if not drawn:
            continue
        # wide enough for the two title lines and the legend even with one panel
        fig, axes = plt.subplots(1, len(drawn), figsize=(max(3.6 * len(drawn) + 1.2, 10.5), 4.8), squeeze=False)
        for ax, (panel_title, series) in zip(axes[0], drawn):
            _panel(ax, panel_title, series, ylabel)
        present = {key for _t, series in drawn for key, (short, _l, _c) in servers.items()
                   if any(s[0] == short for s in series)}
        fig.legend(handles=[Patch(facecolor=colour, alpha=0.6, label=long)
                            for key, (_short, long, colour) in servers.items() if key in present],
                   loc="lower center", ncol=len(present), fontsize=8, frameon=False)
        fig.suptitle(f"{title}\n{_subtitle(results)}", fontsize=10)
        fig.tight_layout(rect=(0, 0.07, 1, 0.95))
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{stem}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


if __name__ == "__main__":  # redraw from a results JSON: python -m bench.charts bench/results/latest.json [DIR]
    import json
    import sys

    source = Path(sys.argv[1])
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else source.parent / f"charts-{source.stem}"
    for png in draw(json.loads(source.read_text()), target):
        print(png)
