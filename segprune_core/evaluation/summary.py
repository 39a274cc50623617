"""Summary tables: each configuration's metric and its relative change against r = 1.0.

The relative change is reported as the paper does: (metric at r - metric at r = 1.0) / metric at
r = 1.0, in percent with one decimal and a sign, e.g. "-2.0 %".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from segprune_core.evaluation.grid import Config


def relative_change(value: float, baseline: float) -> float | None:
    """Percent change of `value` against `baseline`; None when the baseline is 0 (undefined)."""
    if baseline == 0:
        return None
    return (value - baseline) / abs(baseline) * 100.0


def format_relative(change: float | None) -> str:
    if change is None:
        return "n/a"
    if round(change, 1) == 0:
        return "0.0 %"  # no "-0.0 %"
    return f"{change:+.1f} %"


def grid_table(
    configs: Sequence[Config],
    values: dict[Config, float],
    value_format: Callable[[float], str] = lambda v: f"{v:.3f}",
    relative: bool = True,
) -> str:
    """Rows are strategies, columns retentions (r = 1.0 first). A cell: value and relative change.

    r = 1.0 is one run (every strategy keeps every token), shown in every row.
    """
    baseline_config = next(c for c in configs if c.is_baseline)
    baseline = values.get(baseline_config)
    retentions = sorted({c.retention for c in configs if not c.is_baseline}, reverse=True)
    labels = list(dict.fromkeys(c.label for c in configs if not c.is_baseline))
    header = ["strategy", "r = 1.0", *(f"r = {r:g}" for r in retentions)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    by_cell = {(c.label, c.retention): c for c in configs if not c.is_baseline}
    for label in labels or ["none"]:
        cells = [label, value_format(baseline) if baseline is not None else "-"]
        for retention in retentions:
            config = by_cell.get((label, retention))
            value = values.get(config) if config is not None else None
            if value is None:
                cells.append("-")
            elif relative and baseline is not None:
                cells.append(f"{value_format(value)} ({format_relative(relative_change(value, baseline))})")
            else:
                cells.append(value_format(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
