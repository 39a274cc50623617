"""The grid of pruning configurations a benchmark runs: retention x strategy (x S for segmentwise).

Retention 1.0 keeps every token whatever the strategy (`selection.select_tokens`), so it is run once,
as the baseline every other configuration is compared with.
"""

from __future__ import annotations

from dataclasses import dataclass

from segprune_core.request import PruningParams, Strategy

BASELINE_LABEL = "none"


@dataclass(frozen=True)
class Config:
    retention: float
    strategy: Strategy
    segments: int

    @property
    def is_baseline(self) -> bool:
        return self.retention >= 1.0

    @property
    def label(self) -> str:
        """Row name in tables: the strategy, with S for segmentwise (several S may be compared)."""
        if self.is_baseline:
            return BASELINE_LABEL
        if self.strategy is Strategy.SEGMENTWISE:
            return f"segmentwise S={self.segments}"
        return self.strategy.value

    def pruning(self) -> PruningParams:
        return PruningParams(retention=self.retention, strategy=self.strategy, segments=self.segments)


def parse_floats(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def parse_ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def build_grid(retentions: list[float], strategies: list[Strategy], segments: list[int]) -> list[Config]:
    """Baseline first, then every pruned configuration, highest retention first."""
    for retention in retentions:
        if not 0.0 < retention <= 1.0:
            raise ValueError(f"retention must be in (0, 1], got {retention}")
    configs = [Config(1.0, Strategy.NONE, segments[0])]
    for retention in sorted({r for r in retentions if r < 1.0}, reverse=True):
        for strategy in strategies:
            if strategy is Strategy.NONE:
                continue  # identical to the baseline
            for s in segments if strategy is Strategy.SEGMENTWISE else segments[:1]:
                configs.append(Config(retention, strategy, s))
    return configs


def grid_from_args(retentions: str, strategies: str, segments: str) -> list[Config]:
    return build_grid(
        parse_floats(retentions), [Strategy(s.strip()) for s in strategies.split(",")], parse_ints(segments)
    )
