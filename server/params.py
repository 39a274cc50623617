"""Request options + server defaults -> the engine's PruningParams and SamplingParams."""

from __future__ import annotations

from segprune_core.request import PruningParams, SamplingParams, Task
from server.errors import bad_request
from server.protocol import PruningOptions
from server.settings import Settings

MAX_STOP_SEQUENCES = 4


def pruning_params(
    options: PruningOptions | None, settings: Settings, task: Task, *, seed: int | None
) -> PruningParams:
    """Per-request values win; otherwise chat uses default_retention, transcription transcription_retention."""
    options = options or PruningOptions()
    default_retention = settings.default_retention if task is Task.CHAT else settings.transcription_retention
    return PruningParams(
        retention=options.retention if options.retention is not None else default_retention,
        strategy=options.strategy or settings.default_strategy,
        segments=options.segments if options.segments is not None else settings.default_segments,
        seed=seed or 0,
    )


def max_tokens(requested: int | None, settings: Settings, *, param: str) -> int:
    if requested is None:
        return settings.default_max_tokens
    if requested > settings.max_tokens_limit:
        raise bad_request(
            f"'{param}' is {requested}, above this server's limit of {settings.max_tokens_limit} "
            "(setting SEGPRUNE_MAX_TOKENS_LIMIT).",
            param=param,
        )
    return requested


def stop_sequences(stop: str | list[str] | None) -> tuple[str, ...]:
    if stop is None:
        return ()
    sequences = [stop] if isinstance(stop, str) else list(stop)
    if len(sequences) > MAX_STOP_SEQUENCES:
        raise bad_request(f"'stop' takes at most {MAX_STOP_SEQUENCES} sequences.", param="stop")
    return tuple(s for s in sequences if s)


def sampling_params(
    *,
    max_new_tokens: int,
    temperature: float | None,
    top_p: float | None,
    seed: int | None,
    stop: tuple[str, ...] = (),
    default_temperature: float,
) -> SamplingParams:
    return SamplingParams(
        max_tokens=max_new_tokens,
        temperature=default_temperature if temperature is None else temperature,
        top_p=1.0 if top_p is None else top_p,
        seed=seed,
        stop=stop,
    )
