"""Our servers against wyoming-faster-whisper 3.8.1 and wyoming-piper 2.5.2.

    bash bench/run.sh [--quick] [--skip-stt] [--skip-tts] [--no-beam5] [--no-beam1] [--alone] [--charts-to DIR]
    .venv/bin/python -m bench.run ...            (the same, once bench/.venv-ref exists)

Installs the reference servers into bench/.venv-ref (pinned, from PyPI), starts every
server on the same bundled model files, plays the same audio and text (TTS: fresh
sentences, none asked twice), side by side (all servers up, requests interleaved) or
`--alone` (one server process at a time), prints one markdown table and writes it with the
machine description and the raw numbers to bench/results/ (bench-<UTC time>.md/.json,
latest.md/.json), with PNG charts of the latency distributions in charts-<UTC time>/.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from . import refenv, report, speech, stt, tts
from .common import REPO, machine_description

RESULTS = REPO / "bench" / "results"


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


class CpuMonitor:
    """Mean system-wide CPU busy % over the run (how loaded the machine was)."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        psutil.cpu_percent(None)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(2.0):
            self.samples.append(psutil.cpu_percent(None))

    def stop(self) -> float:
        self._stop.set()
        return round(sum(self.samples) / len(self.samples), 1) if self.samples else float("nan")


async def bench_stt(args, scratch: Path, log_dir: Path) -> dict:
    log("== STT: preparing clips (jfk.flac segments, espeak-ng, Piper)")
    cmds = speech.commands(quick=args.quick)
    jfk = speech.jfk()
    for cls, clips in cmds.items():
        log(f"  {cls}: " + ", ".join(f"{c.name} {c.seconds:.1f} s" for c in clips))
    long, quiet = speech.long_speech(quick=args.quick), speech.quiet_endings(quick=args.quick)
    for clip in long + quiet:
        log(f"  {clip.name}: {clip.seconds:.1f} s")
    hard = stt.hard_sets(cmds, long, quiet)
    only = set(args.stt_sets.split(",")) if args.stt_sets else None
    servers = [("ours", refenv.our_stt_argv())]
    if not args.no_beam1:
        servers.insert(0, ("ref_b1", refenv.ref_stt_argv(1, scratch)))
    if args.no_beam1 and args.no_beam5:
        raise SystemExit("bench: --no-beam1 and --no-beam5 leave no reference to compare with")
    if not args.no_beam5:
        servers.append(("ref_b5", refenv.ref_stt_argv(5, scratch)))
    for name, argv in servers:
        log(f"== STT {name}: {' '.join(argv[2:])}")
    log(f"   (load {os.getloadavg()[0]:.2f})")
    out = await stt.run_servers(dict(servers), cmds=cmds, jfk=jfk, quick=args.quick,
                                throughput_for={"ref_b1" if args.no_beam5 else "ref_b5", "ours"} if args.quick else {n for n, _ in servers},
                                log_dir=log_dir, log=log, hard=hard, only=only, alone=args.alone)
    out["clips"] = {cls: [{"name": c.name, "kind": c.kind, "seconds": round(c.seconds, 2), "text": c.text}
                          for c in clips] for cls, clips in {**cmds, "long": long, "quiet": quiet}.items()}
    return out


async def bench_tts(args, scratch: Path, log_dir: Path) -> dict:
    servers = {"ref": refenv.ref_tts_argv(scratch), "ours": refenv.our_tts_argv()}
    cache = {"ref": servers["ref"], "ours_cache": refenv.our_tts_argv(cache=True)}
    for name, argv in {**servers, **cache}.items():
        log(f"== TTS {name}: {' '.join(argv[2:])}")
    log(f"   (load {os.getloadavg()[0]:.2f})")
    return await tts.run_servers(servers, quick=args.quick, mem_timeout=args.mem_timeout,
                                 kill_above_mb=args.mem_limit_mb, log_dir=log_dir, log=log,
                                 alone=args.alone, cache_servers=None if args.no_cache_rows else cache)


def draw_charts(results: dict, out_dir: Path, copy_to: Path | None) -> list[Path]:
    """The PNG charts (bench.charts) into out_dir, and copies into copy_to; [] without matplotlib."""
    try:
        from . import charts
    except ImportError as err:
        log(f"no charts: {err} (bash bench/run.sh installs the `bench` extra: matplotlib)")
        return []
    try:
        pngs = charts.draw(results, out_dir)
    except Exception as err:  # noqa: BLE001 - a chart must not cost the measured numbers
        log(f"charts failed: {type(err).__name__}: {err}")
        return []
    if copy_to is not None:
        copy_to.mkdir(parents=True, exist_ok=True)
        for png in pngs:
            shutil.copyfile(png, copy_to / png.name)
    return pngs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and clips (a few minutes)")
    parser.add_argument("--skip-stt", action="store_true")
    parser.add_argument("--skip-tts", action="store_true")
    parser.add_argument("--no-beam5", action="store_true", help="skip the reference STT at beam 5")
    parser.add_argument("--no-beam1", action="store_true",
                        help="skip the reference STT at beam 1 (the comparison is at beam 5, ours' default)")
    parser.add_argument("--mem-limit-mb", type=float, default=4096,
                        help="kill a TTS server whose RSS passes this (default 4096)")
    parser.add_argument("--mem-timeout", type=float, default=300,
                        help="seconds allowed for the 10 000-character text (default 300)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument("--stt-sets", default="",
                        help="only these STT sets, comma-separated (e.g. rt_long,rt_noise_3s,rt_quiet, many: 1-50 clients at once; "
                             "no cold starts or throughput)")
    parser.add_argument("--alone", action="store_true",
                        help="measure each server with no other server process running (one started, "
                             "measured, stopped, then the next) instead of side by side, requests interleaved")
    parser.add_argument("--no-cache-rows", action="store_true",
                        help="skip the TTS audio-cache rows (ours with its default cache, a repeated sentence)")
    parser.add_argument("--charts-to", type=Path, default=None,
                        help="also write the PNG charts here (e.g. docs/img) under stable names (bench-*.png)")
    parser.add_argument("--no-charts", action="store_true", help="no PNG charts")
    args = parser.parse_args()

    try:
        import wyoming_stt  # noqa: F401
        import wyoming_tts  # noqa: F401
    except ImportError:
        log(f"our servers are not importable from {sys.executable}: run `bash scripts/setup.sh` and use .venv")
        return 2
    ref_python = refenv.ensure_reference_venv(log)
    log(f"bundled models: {refenv.whisper_model_dir()}  {refenv.piper_voice_dir()}")

    started = time.time()
    machine = machine_description(Path(sys.executable), ref_python)
    cpu = CpuMonitor()
    results: dict = {"started_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                     "quick": args.quick, "mode": "alone" if args.alone else "side by side",
                     "machine": machine}
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    log_dir = args.results_dir / f"logs-{stamp}"
    with tempfile.TemporaryDirectory(prefix="bench-ref-") as tmp:
        scratch = Path(tmp)
        try:
            if not args.skip_stt:
                results["stt"] = asyncio.run(bench_stt(args, scratch, log_dir))
            if not args.skip_tts:
                results["tts"] = asyncio.run(bench_tts(args, scratch, log_dir))
        except KeyboardInterrupt:
            log("interrupted: writing what was measured")
        except Exception as err:  # noqa: BLE001 - report what we have, then fail
            log(f"benchmark failed: {type(err).__name__}: {err}")
            results["error"] = f"{type(err).__name__}: {err}"
    machine["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    machine["cpu_busy_pct"] = cpu.stop()
    results["duration_s"] = round(time.time() - started)

    table = report.table(results)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    pngs = [] if args.no_charts else draw_charts(results, args.results_dir / f"charts-{stamp}", args.charts_to)
    flags = ", ".join(f for f, on in (("--quick", args.quick), ("--alone", args.alone)) if on)
    md = (f"# Benchmark {results['started_utc']}{f' ({flags})' if flags else ''}\n\n"
          f"{report.machine_markdown(machine)}\n- mode: {report.mode_line(results)}\n"
          f"- duration: {results['duration_s']} s\n\n{table}\n")
    if pngs:
        md += "\n" + "\n\n".join(f"![{p.stem}](charts-{stamp}/{p.name})" for p in pngs) + "\n"
    for name in (f"bench-{stamp}", "latest"):
        (args.results_dir / f"{name}.md").write_text(md)
        (args.results_dir / f"{name}.json").write_text(json.dumps(results, indent=1, default=str))
    print(table)
    log(f"\nwritten: {args.results_dir / f'bench-{stamp}.md'} (+ .json); server logs in {log_dir}")
    if pngs:
        log(f"charts: {', '.join(p.name for p in pngs)} in {pngs[0].parent}"
            + (f" and {args.charts_to}" if args.charts_to else ""))
    return 1 if "error" in results else 0


if __name__ == "__main__":
    sys.exit(main())
