"""`segprune bench`: per-stage latency and prefill speedup of each retention rate, measured in one run.

Every configuration runs `--runs` times after `--warmup` runs; medians and spread (min, max) are
reported. Speedups are ratios of medians measured in the same process against retention 1.0, next to
the token-count limit (prompt tokens at r = 1.0 / prompt tokens at r).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from segprune_core.request import (
    SAMPLE_RATE,
    AudioClip,
    GenerationRequest,
    Message,
    PruningParams,
    SamplingParams,
    Strategy,
    Task,
    TextPart,
)

STAGES = ("features", "encoder", "scoring", "prefill", "ttft", "decode_per_token")


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="demo-qwen2-audio", help="demo id, hub id or local path")
    parser.add_argument("--retentions", default="1.0,0.5,0.25", help="comma-separated; 1.0 is always added")
    parser.add_argument("--strategies", default="segmentwise", help="comma-separated strategies")
    parser.add_argument("--durations", default="30", help="audio lengths in seconds, comma-separated")
    parser.add_argument("--segments", type=int, default=10, help="segments per 30 s window")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=8, help="tokens generated per run (EOS ignored)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=None, help="write the full report here")
    parser.add_argument("--markdown", type=Path, default=None, help="write a Markdown table here")
    parser.add_argument("--plot", type=Path, default=None, help="write a PNG plot here (needs matplotlib)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--server-overhead",
        action="store_true",
        help="also measure HTTP TTFT minus engine TTFT through a live server on 127.0.0.1",
    )


def bench_audio(seconds: float, seed: int = 0) -> AudioClip:
    """Deterministic speech-like test signal: harmonic tones with a slow envelope, plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    pitch = 140 + 40 * np.sin(2 * np.pi * 0.3 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    voiced = sum(np.sin(h * phase) / h for h in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 2.5 * t) ** 2
    samples = 0.2 * voiced * envelope + 0.01 * rng.standard_normal(len(t))
    return AudioClip(samples.astype(np.float32))


@dataclass
class Measurement:
    model: str
    duration: float
    strategy: str
    retention: float
    prompt_tokens: int
    audio_tokens_before: int
    audio_tokens_kept: int
    samples: dict[str, list[float]] = field(default_factory=dict)  # stage -> ms per run

    def median(self, stage: str) -> float:
        return statistics.median(self.samples[stage])

    def summary(self) -> dict:
        return {
            stage: {"median": self.median(stage), "min": min(values), "max": max(values), "runs": len(values)}
            for stage, values in self.samples.items()
        }


def _request(clip: AudioClip, pruning: PruningParams, max_tokens: int, task: Task) -> GenerationRequest:
    content = (clip,) if task is not Task.CHAT else (clip, TextPart("Describe the audio."))
    sampling = SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)
    return GenerationRequest((Message("user", content),), sampling=sampling, pruning=pruning, task=task)


def measure(engine, clip: AudioClip, pruning: PruningParams, runs: int, warmup: int, max_tokens: int) -> Measurement:
    task = Task.CHAT if Task.CHAT in engine.tasks else Task.TRANSCRIBE
    request = _request(clip, pruning, max_tokens, task)
    for _ in range(warmup):
        engine.generate(request)
    samples: dict[str, list[float]] = {stage: [] for stage in STAGES}
    result = None
    for _ in range(runs):
        result = engine.generate(request)
        timings = result.timings
        for stage in STAGES[:-1]:
            samples[stage].append(getattr(timings, stage))
        steps = max(result.completion_tokens - 1, 1)
        samples["decode_per_token"].append(timings.decode / steps)
    assert result is not None
    return Measurement(
        model=engine.name,
        duration=clip.duration,
        strategy=pruning.strategy.value,
        retention=pruning.retention,
        prompt_tokens=result.prompt_tokens,
        audio_tokens_before=result.pruning.audio_tokens_before,
        audio_tokens_kept=result.pruning.audio_tokens_kept,
        samples=samples,
    )


def _rows(measurements: list[Measurement]) -> list[dict]:
    """One row per configuration, with speedups against r = 1.0 of the same duration and strategy."""
    baseline = {(m.duration, m.strategy): m for m in measurements if m.retention >= 1.0}
    rows = []
    for m in measurements:
        base = baseline.get((m.duration, m.strategy))
        row = {
            "duration_s": round(m.duration, 3),
            "strategy": m.strategy,
            "retention": m.retention,
            "prompt_tokens": m.prompt_tokens,
            "audio_tokens_before": m.audio_tokens_before,
            "audio_tokens_kept": m.audio_tokens_kept,
            **{f"{stage}_ms": round(m.median(stage), 3) for stage in STAGES},
            "scoring_share_of_encoder": round(m.median("scoring") / max(m.median("encoder"), 1e-9), 4),
        }
        if base is not None:
            row["prefill_speedup"] = round(base.median("prefill") / max(m.median("prefill"), 1e-9), 3)
            row["ttft_speedup"] = round(base.median("ttft") / max(m.median("ttft"), 1e-9), 3)
            row["token_limit_speedup"] = round(base.prompt_tokens / max(m.prompt_tokens, 1), 3)
        rows.append(row)
    return rows


def markdown_table(rows: list[dict]) -> str:
    columns = [
        ("duration_s", "audio s"),
        ("strategy", "strategy"),
        ("retention", "r"),
        ("audio_tokens_kept", "audio tokens"),
        ("prompt_tokens", "prompt tokens"),
        ("encoder_ms", "encoder ms"),
        ("scoring_ms", "scoring ms"),
        ("prefill_ms", "prefill ms"),
        ("ttft_ms", "TTFT ms"),
        ("decode_per_token_ms", "decode ms/tok"),
        ("prefill_speedup", "prefill speedup"),
        ("token_limit_speedup", "token-count limit"),
    ]
    lines = ["| " + " | ".join(title for _, title in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(key, "")) for key, _ in columns) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for (duration, strategy), group in _group(rows).items():
        group = sorted(group, key=lambda r: r["retention"])
        label = f"{duration:g} s, {strategy}"
        left.plot([r["retention"] for r in group], [r["prefill_ms"] for r in group], marker="o", label=label)
        right.plot(
            [r["retention"] for r in group], [r.get("prefill_speedup", 1) for r in group], marker="o", label=label
        )
        right.plot(
            [r["retention"] for r in group],
            [r.get("token_limit_speedup", 1) for r in group],
            linestyle="--",
            color="grey",
        )
    left.set(xlabel="retention r", ylabel="LLM prefill (ms, median)", title="Prefill time")
    right.set(xlabel="retention r", ylabel="speedup vs r = 1.0", title="Prefill speedup (dashed: token-count limit)")
    left.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def _group(rows: list[dict]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["duration_s"], row["strategy"]), []).append(row)
    return groups


def machine_description(engine) -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "device": str(engine.device),
        "cuda": torch.cuda.get_device_name(0) if engine.device.type == "cuda" else None,
    }


def run_bench(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from segprune_core.engine import Engine

    if args.threads:
        torch.set_num_threads(args.threads)
    retentions = sorted({1.0, *(float(r) for r in args.retentions.split(","))}, reverse=True)
    strategies = [Strategy(s) for s in args.strategies.split(",")]
    durations = [float(d) for d in args.durations.split(",")]
    max_duration = max(durations)
    engine = Engine.load(args.model, device=args.device, dtype=args.dtype, max_audio_seconds=max(max_duration, 600.0))
    configs = [(d, s, r) for d in durations for s in strategies for r in retentions]
    measurements = []
    progress = tqdm(configs, desc="bench", disable=args.quiet, file=sys.stderr)
    for duration, strategy, retention in progress:
        progress.set_postfix_str(f"{duration:g}s {strategy.value} r={retention}")
        pruning = PruningParams(retention=retention, strategy=strategy, segments=args.segments)
        measurements.append(measure(engine, bench_audio(duration), pruning, args.runs, args.warmup, args.max_tokens))
    rows = _rows(measurements)
    overhead = None
    if args.server_overhead:
        from server.overhead import measure_server_overhead

        overhead = measure_server_overhead(engine, bench_audio(durations[0]), min(retentions), args.runs)
    report = {
        "command": "segprune bench " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "segprune bench",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": engine.name,
        "family": engine.family,
        "machine": machine_description(engine),
        "runs": args.runs,
        "warmup": args.warmup,
        "max_tokens": args.max_tokens,
        "rows": rows,
        "server_overhead": overhead,
        "details": [{**m.__dict__, "summary": m.summary()} for m in measurements],
    }
    table = markdown_table(rows)
    if overhead:
        table += (
            f"\nServer overhead (HTTP TTFT - engine TTFT, streaming, {overhead['runs']} runs): median "
            f"{overhead['overhead_ms']:.1f} ms (min {overhead['overhead_min_ms']:.1f}, "
            f"max {overhead['overhead_max_ms']:.1f})\n"
        )
    print(table)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if args.markdown:
        args.markdown.write_text(table)
    if args.plot:
        plot(rows, args.plot)
    return 0
