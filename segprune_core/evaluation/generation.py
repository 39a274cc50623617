"""Engine calls the benchmarks share: load a model, ask one question about one clip, keep what matters."""

from __future__ import annotations

import argparse
from functools import lru_cache
from pathlib import Path

from segprune_core.audio import decode_audio
from segprune_core.evaluation.grid import Config
from segprune_core.request import (
    AudioClip,
    GenerationRequest,
    GenerationResult,
    Message,
    SamplingParams,
    Task,
    TextPart,
)


def load_engine(args: argparse.Namespace):
    from segprune_core.engine import Engine

    return Engine.load(args.model, device=args.device, dtype=args.dtype)


@lru_cache(maxsize=2)  # the runner asks for one item's audio once per configuration, in a row
def load_audio(path: Path) -> AudioClip:
    """Any file libsndfile reads, as 16 kHz mono (the engine's own decoder, no length limit)."""
    return decode_audio(path.read_bytes())


def ask(engine, clip: AudioClip, prompt: str, config: Config, max_tokens: int) -> GenerationResult:
    """Greedy chat answer to `prompt` about `clip`, with the configuration's pruning."""
    request = GenerationRequest(
        (Message("user", (clip, TextPart(prompt))),),
        sampling=SamplingParams(max_tokens=max_tokens, temperature=0.0),
        pruning=config.pruning(),
        task=Task.CHAT,
    )
    return engine.generate(request)


def result_fields(result: GenerationResult) -> dict:
    """What every record keeps besides the answer: token counts and the timings of the run."""
    return {
        "output": result.text,
        "audio_tokens_before": result.pruning.audio_tokens_before,
        "audio_tokens_kept": result.pruning.audio_tokens_kept,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "timings_ms": result.timings.as_dict(),
    }


def engine_settings(engine, args: argparse.Namespace, **extra: object) -> dict:
    """Settings that determine outputs: the fingerprint of a run (see results.fingerprint)."""
    return {"model": engine.name, "family": engine.family, "dtype": args.dtype, **extra}
