"""Arguments of `segprune eval {clotho,mmau,whisper-wer}` and the dispatch to each benchmark."""

from __future__ import annotations

import argparse
from pathlib import Path


def _add_common(parser: argparse.ArgumentParser, default_model: str, default_strategies: str) -> None:
    parser.add_argument("--model", default=default_model, help="demo id, hub id or local path")
    parser.add_argument("--retentions", default="1.0,0.5,0.25", help="comma-separated; 1.0 (baseline) is always run")
    parser.add_argument(
        "--strategies", default=default_strategies, help="comma-separated: segmentwise,topk,random,bottomk,uniform"
    )
    parser.add_argument(
        "--segments", default="10", help="segments S per 30 s window for segmentwise; a comma list runs each S"
    )
    parser.add_argument("--out", type=Path, default=None, help="JSONL results file; an existing one is resumed")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the summary table here")
    parser.add_argument("--max-tokens", type=int, default=None, help="tokens generated per item")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    benchmarks = parser.add_subparsers(dest="benchmark", required=True)
    all_strategies = "segmentwise,topk,random,bottomk,uniform"

    clotho = benchmarks.add_parser("clotho", help="Clotho v2 captioning: CIDEr-D, SPIDEr when SPICE is installed")
    clotho.add_argument("--data", type=Path, required=True, help="folder: captions.csv + audio/ (see clotho.py)")
    clotho.add_argument("--limit", type=int, default=None, help="first N clips only")
    clotho.add_argument("--prompt", default=None, help="captioning instruction (default: see clotho.py)")
    clotho.add_argument("--spice-dir", type=Path, default=None, help="folder with spice-1.0.jar and lib/")
    _add_common(clotho, "demo-qwen2-audio", all_strategies)

    mmau = benchmarks.add_parser("mmau", help="MMAU multiple-choice accuracy")
    mmau.add_argument("--data", type=Path, required=True, help="folder: MMAU JSON list + audio (see mmau.py)")
    mmau.add_argument("--limit", type=int, default=None, help="first N questions only")
    _add_common(mmau, "demo-qwen2-audio", all_strategies)

    wer = benchmarks.add_parser("whisper-wer", help="Whisper WER on espeak-ng speech with the encoder output pruned")
    wer.add_argument("--sentences", type=int, default=None, help="use only the first N sentences (default: all)")
    wer.add_argument("--speech-dir", type=Path, default=None, help="cache for synthesized speech (default: temp)")
    wer.add_argument("--no-loss", action="store_true", help="skip the teacher-forced loss of the reference")
    _add_common(wer, "demo-whisper-tiny.en", all_strategies)


def run_eval(args: argparse.Namespace) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.benchmark == "clotho":
        from segprune_core.evaluation.clotho import run_clotho

        return run_clotho(args)
    if args.benchmark == "mmau":
        from segprune_core.evaluation.mmau import run_mmau

        return run_mmau(args)
    from segprune_core.evaluation.whisper_wer import run_whisper_wer

    return run_whisper_wer(args)
