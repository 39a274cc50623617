"""The loop every benchmark shares: items x configurations, skipping what the JSONL already holds."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from segprune_core.evaluation.grid import Config
from segprune_core.evaluation.results import ResultStore


class Item(Protocol):
    """A clip or question; `id` names it in the JSONL."""

    @property
    def id(self) -> str: ...


ItemT = TypeVar("ItemT", bound=Item)


def run_grid(
    items: Sequence[ItemT],
    configs: Sequence[Config],
    store: ResultStore,
    evaluate: Callable[[ItemT, Config], dict],
    *,
    desc: str = "eval",
    quiet: bool = False,
) -> int:
    """Run `evaluate(item, config)` for every pair not yet in `store`; returns how many ran.

    Item by item (all configurations of one item before the next), so an interrupted run leaves
    whole items that every configuration saw, which `complete_items` compares fairly.
    """
    from tqdm import tqdm

    total = len(items) * len(configs)
    done = sum(store.is_done(item.id, config) for item in items for config in configs)
    ran = 0
    with tqdm(total=total, initial=done, desc=desc, disable=quiet, file=sys.stderr, dynamic_ncols=True) as bar:
        for item in items:
            for config in configs:
                if store.is_done(item.id, config):
                    continue
                bar.set_postfix_str(f"{item.id[:24]} r={config.retention:g} {config.label}")
                store.add(item.id, config, evaluate(item, config))
                ran += 1
                bar.update(1)
    return ran


def complete_items(items: Sequence[Item], configs: Sequence[Config], store: ResultStore) -> list[str]:
    """Items done in every configuration: metrics compare configurations on the same items."""
    return [item.id for item in items if all(store.is_done(item.id, config) for config in configs)]


def records_by_config(
    item_ids: Sequence[str], configs: Sequence[Config], store: ResultStore
) -> dict[Config, list[dict]]:
    return {config: [store.get(item_id, config) for item_id in item_ids] for config in configs}  # type: ignore[misc]
