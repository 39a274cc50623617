"""Append-only JSONL results, one record per (item, configuration), so an interrupted run resumes.

A record is done when a line with the same key is in the file. The key includes a fingerprint of
everything that changes the outputs (model, prompt, max tokens...), so changing those never mixes
old results into a new run. A line cut short by an interruption is ignored and redone.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from segprune_core.evaluation.grid import Config


def fingerprint(settings: dict) -> str:
    """Short stable hash of the settings that determine the outputs."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]


def record_key(run: str, item: str, config: Config) -> tuple:
    return (run, item, round(config.retention, 6), config.strategy.value, config.segments)


def _key_of(record: dict) -> tuple:
    return (record["run"], record["item"], round(record["retention"], 6), record["strategy"], record["segments"])


class ResultStore:
    """Records of one run. With `path=None` they are kept in memory only."""

    def __init__(self, path: Path | None, run: str) -> None:
        self.path = path
        self.run = run
        self.records: dict[tuple, dict] = {}
        if path is not None and path.exists():
            for record in _read_records(path):
                if record.get("run") == run:
                    self.records[_key_of(record)] = record

    def is_done(self, item: str, config: Config) -> bool:
        return record_key(self.run, item, config) in self.records

    def get(self, item: str, config: Config) -> dict | None:
        return self.records.get(record_key(self.run, item, config))

    def add(self, item: str, config: Config, values: dict) -> dict:
        record = {
            "run": self.run,
            "item": item,
            "retention": config.retention,
            "strategy": config.strategy.value,
            "segments": config.segments,
            "label": config.label,
            **values,
        }
        self.records[_key_of(record)] = record
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _ensure_trailing_newline(self.path)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())  # a killed run loses at most the record being written
        return record


def _read_records(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short when a previous run was killed: it is simply redone


def _ensure_trailing_newline(path: Path) -> None:
    """A partial last line must not swallow the next record."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) != b"\n":
            f.write(b"\n")
