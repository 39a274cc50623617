"""Clotho v2 audio captioning: CIDEr-D (and SPIDEr when SPICE is installed) under pruning.

Dataset folder (`--data DIR`), Clotho's own files:

    DIR/captions.csv          Clotho's CSV: file_name,caption_1,caption_2,caption_3,caption_4,caption_5
    DIR/audio/<file_name>     the clips (wav, flac, ...)

Clotho's unrenamed layout works too: `DIR/clotho_captions_evaluation.csv` with the clips in
`DIR/evaluation/` (any single `clotho_captions_<split>.csv` and `DIR/<split>/`).
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

from segprune_core.evaluation.cider import cider_d_scores
from segprune_core.evaluation.generation import ask, engine_settings, load_audio, load_engine, result_fields
from segprune_core.evaluation.grid import Config, grid_from_args
from segprune_core.evaluation.results import ResultStore, fingerprint
from segprune_core.evaluation.runner import complete_items, records_by_config, run_grid
from segprune_core.evaluation.spice import SpiceSetup, find_spice, spice_scores
from segprune_core.evaluation.summary import grid_table

DEFAULT_PROMPT = "Describe the sounds in this audio in one short sentence."
DEFAULT_MAX_TOKENS = 48


@dataclass(frozen=True)
class ClothoClip:
    id: str  # the file name
    audio_path: Path
    captions: tuple[str, ...]


def find_layout(data: Path) -> tuple[Path, Path]:
    """(captions CSV, audio folder) of a Clotho folder; see the module docstring."""
    if (data / "captions.csv").is_file():
        return data / "captions.csv", data / "audio"
    found = sorted(data.glob("clotho_captions_*.csv"))
    if len(found) == 1:
        split = found[0].stem.removeprefix("clotho_captions_")
        audio = data / split if (data / split).is_dir() else data / "audio"
        return found[0], audio
    raise FileNotFoundError(
        f"{data}: expected captions.csv (or exactly one clotho_captions_<split>.csv); found {len(found)} Clotho CSVs"
    )


def load_clotho(data: Path, limit: int | None = None) -> list[ClothoClip]:
    captions_csv, audio_dir = find_layout(data)
    clips = []
    with captions_csv.open(newline="", encoding="utf-8-sig") as f:  # tolerate a BOM
        for row in csv.DictReader(f):
            captions = tuple(row[k].strip() for k in sorted(row) if k.startswith("caption_") and row[k].strip())
            if not captions:
                raise ValueError(f"{captions_csv}: {row.get('file_name')!r} has no caption")
            clips.append(ClothoClip(row["file_name"], audio_dir / row["file_name"], captions))
            if limit is not None and len(clips) >= limit:
                break
    missing = [c.audio_path for c in clips if not c.audio_path.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} audio files missing, e.g. {missing[0]}")
    return clips


@dataclass
class CaptionScores:
    cider_d: dict[Config, float]
    spider: dict[Config, float]
    spice_reason: str  # why SPIDEr is not reported; empty when it is
    clips: int


def score_captions(
    clips: list[ClothoClip], configs: list[Config], store: ResultStore, spice: SpiceSetup
) -> CaptionScores:
    """Corpus CIDEr-D (and SPIDEr) per configuration over the clips every configuration has done."""
    done = set(complete_items(clips, configs, store))
    scored = [c for c in clips if c.id in done]
    cider: dict[Config, float] = {}
    spider: dict[Config, float] = {}
    reason = spice.reason
    if len(scored) < 2:
        return CaptionScores(cider, spider, "fewer than 2 clips scored", len(scored))
    references = [list(c.captions) for c in scored]
    for config, records in records_by_config([c.id for c in scored], configs, store).items():
        candidates = [r["output"].strip() for r in records]
        per_clip = cider_d_scores(candidates, references)
        cider[config] = sum(per_clip) / len(per_clip)
        if spice.available:
            spice_per_clip = spice_scores(candidates, references, spice)
            spider[config] = sum((c + s) / 2 for c, s in zip(per_clip, spice_per_clip, strict=True)) / len(per_clip)
    return CaptionScores(cider, spider, reason, len(scored))


def report(scores: CaptionScores, configs: list[Config], model: str) -> str:
    lines = [f"## Clotho v2 captioning, {model}, {scores.clips} clips", "", "CIDEr-D (relative change vs r = 1.0):", ""]
    lines.append(grid_table(configs, scores.cider_d) if scores.cider_d else "CIDEr-D: no clip scored yet.\n")
    if scores.spider:
        lines += ["SPIDEr (relative change vs r = 1.0):", "", grid_table(configs, scores.spider)]
    else:
        lines += [f"SPIDEr: unavailable ({scores.spice_reason}).", ""]
    return "\n".join(lines)


def run_clotho(args: argparse.Namespace) -> int:
    clips = load_clotho(args.data, args.limit)
    configs = grid_from_args(args.retentions, args.strategies, args.segments)
    spice = find_spice(args.spice_dir)
    if not spice.available:
        print(f"SPIDEr unavailable: {spice.reason}", file=sys.stderr)
    engine = load_engine(args)
    prompt = args.prompt or DEFAULT_PROMPT
    max_tokens = args.max_tokens or DEFAULT_MAX_TOKENS
    run = fingerprint(engine_settings(engine, args, task="clotho", prompt=prompt, max_tokens=max_tokens))
    store = ResultStore(args.out, run)

    def caption(clip: ClothoClip, config: Config) -> dict:
        result = ask(engine, load_audio(clip.audio_path), prompt, config, max_tokens)
        return {"task": "clotho", "model": engine.name, **result_fields(result)}

    run_grid(clips, configs, store, caption, desc="clotho", quiet=args.quiet)
    text = report(score_captions(clips, configs, store, spice), configs, engine.name)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0
