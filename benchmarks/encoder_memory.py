"""Encoder peak memory for long audio versus the encoder micro-batch size (issue: long audio).

Each batch size runs in a fresh subprocess: load the model, then encode `--seconds` of audio while a
thread samples the process RSS every 2 ms; the report is the peak RSS during encoding minus the RSS
just before it. On CUDA it reports torch.cuda.max_memory_allocated instead.

    python benchmarks/encoder_memory.py --model demo-qwen2-audio --seconds 600 --batch-sizes 1,2,4,8
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def measure_one(model: str, seconds: float, batch_size: int, device: str) -> dict:
    import torch

    from segprune_core.bench import bench_audio
    from segprune_core.engine import Engine
    from segprune_core.request import Timings

    engine = Engine.load(model, device=device, encoder_batch_size=batch_size, max_audio_seconds=seconds + 1)
    clip = bench_audio(seconds)
    engine.adapter.encode([bench_audio(1.0)], Timings())  # first-call allocations are not the long audio's
    before, peak, running = rss_bytes(), [0], [True]

    def sample() -> None:
        while running[0]:
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    if engine.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(engine.device)
        base = torch.cuda.memory_allocated(engine.device)
    sampler.start()
    start = time.perf_counter()
    (encoded,) = engine.adapter.encode([clip], Timings())
    elapsed = time.perf_counter() - start
    running[0] = False
    sampler.join()
    result = {
        "model": model,
        "seconds": seconds,
        "batch_size": batch_size,
        "windows": len(encoded.tokens_per_window),
        "encode_s": round(elapsed, 2),
        "peak_rss_increase_mib": round((peak[0] - before) / 2**20, 1),
    }
    if engine.device.type == "cuda":
        result["cuda_peak_increase_mib"] = round((torch.cuda.max_memory_allocated(engine.device) - base) / 2**20, 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="demo-qwen2-audio")
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--batch-sizes", default="1,2,4,8")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # child process mode
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure_one(args.model, args.seconds, args.one, args.device)))
        return 0
    rows = []
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        command = [sys.executable, __file__, "--model", args.model, "--seconds", str(args.seconds)]
        command += ["--device", args.device, "--one", str(batch_size)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(output.strip().splitlines()[-1]))
        print(rows[-1], file=sys.stderr)
    print("| batch size | windows | encode s | peak RSS increase MiB |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['batch_size']} | {row['windows']} | {row['encode_s']} | {row['peak_rss_increase_mib']} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
