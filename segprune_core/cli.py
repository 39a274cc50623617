"""The `segprune` command: serve, demo-models, bench, eval."""

from __future__ import annotations

import argparse
import sys


def _demo_models(args: argparse.Namespace) -> int:
    from segprune_core import demo_models

    cache = demo_models.default_cache_dir() if args.dir is None else args.dir
    for model_id in args.models or demo_models.DEMO_MODEL_IDS:
        path = demo_models.ensure_demo_model(model_id, cache)
        print(f"{model_id}: {path}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from server.cli import run_serve

    return run_serve(args) or 0


def _bench(args: argparse.Namespace) -> int:
    from segprune_core.bench import run_bench

    return run_bench(args)


def _eval(args: argparse.Namespace) -> int:
    from segprune_core.evaluation.cli import run_eval

    return run_eval(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segprune", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the OpenAI-compatible HTTP server")
    from server.cli import add_serve_arguments

    add_serve_arguments(serve)
    serve.set_defaults(handler=_serve)

    demo = commands.add_parser("demo-models", help="build the offline demo models into a cache")
    demo.add_argument("--dir", default=None, help="cache directory (default: $SEGPRUNE_DEMO_DIR or ~/.cache)")
    demo.add_argument("models", nargs="*", help="demo model ids (default: all)")
    demo.set_defaults(handler=_demo_models)

    bench = commands.add_parser("bench", help="measure per-stage latency and prefill speedup per retention")
    from segprune_core.bench import add_bench_arguments

    add_bench_arguments(bench)
    bench.set_defaults(handler=_bench)

    evaluate = commands.add_parser("eval", help="quality under pruning: Clotho captioning, MMAU, Whisper WER")
    from segprune_core.evaluation.cli import add_eval_arguments

    add_eval_arguments(evaluate)
    evaluate.set_defaults(handler=_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
