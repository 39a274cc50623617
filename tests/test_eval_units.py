"""segprune eval, the pure parts: grid, relative change, CIDEr-D, MCQ parsing, JSONL resume, SPICE detection."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from segprune_core.evaluation.attention import concentration, largest_gap, normalized_entropy, top_share
from segprune_core.evaluation.cider import cider_d, cider_d_scores, tokenize
from segprune_core.evaluation.grid import Config, build_grid, grid_from_args
from segprune_core.evaluation.mcq import parse_choice
from segprune_core.evaluation.results import ResultStore, fingerprint
from segprune_core.evaluation.spice import CORENLP_JARS, SPICE_JAR, find_spice, spice_scores
from segprune_core.evaluation.summary import format_relative, grid_table, relative_change
from segprune_core.request import Strategy

# --- grid and summary ----------------------------------------------------------------------------------


def test_grid_runs_the_baseline_once_and_each_segment_count_for_segmentwise_only():
    configs = build_grid([1.0, 0.25, 0.5], [Strategy.SEGMENTWISE, Strategy.TOPK], [10, 50])
    assert configs[0] == Config(1.0, Strategy.NONE, 10) and configs[0].label == "none"
    pruned = [(c.retention, c.label) for c in configs[1:]]
    assert pruned == [
        (0.5, "segmentwise S=10"),
        (0.5, "segmentwise S=50"),
        (0.5, "topk"),
        (0.25, "segmentwise S=10"),
        (0.25, "segmentwise S=50"),
        (0.25, "topk"),
    ]
    assert grid_from_args("0.5", "uniform", "10")[0].is_baseline  # r = 1.0 is always added
    with pytest.raises(ValueError):
        build_grid([1.5], [Strategy.TOPK], [10])


def test_relative_change_is_reported_as_the_paper_does():
    assert relative_change(0.49, 0.50) == pytest.approx(-2.0)
    assert format_relative(relative_change(0.49, 0.50)) == "-2.0 %"
    assert format_relative(relative_change(55.0, 50.0)) == "+10.0 %"
    assert format_relative(relative_change(0.10, 1.0)) == "-90.0 %"
    assert format_relative(relative_change(1.0000001, 1.0)) == "0.0 %"  # never "-0.0 %" or "+0.0 %"
    assert format_relative(relative_change(1.0, 0.0)) == "n/a"


def test_grid_table_cells_hold_value_and_relative_change():
    configs = build_grid([1.0, 0.5, 0.25], [Strategy.SEGMENTWISE, Strategy.BOTTOMK], [10])
    values = dict(zip(configs, [0.50, 0.49, 0.05, 0.45, 0.01], strict=True))
    table = grid_table(configs, values, value_format=lambda v: f"{v:.2f}")
    lines = table.splitlines()
    assert lines[0] == "| strategy | r = 1.0 | r = 0.5 | r = 0.25 |"
    assert lines[2] == "| segmentwise S=10 | 0.50 | 0.49 (-2.0 %) | 0.45 (-10.0 %) |"
    assert lines[3] == "| bottomk | 0.50 | 0.05 (-90.0 %) | 0.01 (-98.0 %) |"


# --- CIDEr-D ---------------------------------------------------------------------------------------------
REFERENCES = [
    ["a dog barks loudly in the yard", "a dog is barking outside", "dog barking at a passing car"],
    ["rain falls steadily on a tin roof", "heavy rain drums on a metal roof", "rain pouring down on a roof"],
    ["birds sing in the morning forest", "several birds chirp among the trees", "bird songs in a quiet forest"],
]


def test_cider_d_matches_the_reference_implementation_on_a_known_case():
    # Expected values computed with aac-metrics 0.5.5's `cider_d` on the same inputs (the port also
    # agreed with it to 1e-9 on 200 random corpora when it was written).
    candidates = ["a dog is barking in the yard", "rain is falling on a roof", "a car engine starts"]
    scores = cider_d_scores(candidates, REFERENCES)
    assert scores == pytest.approx([3.091717126301922, 2.2420397426950527, 0.0], abs=1e-12)


def test_cider_d_prefers_a_caption_identical_to_a_reference_over_an_unrelated_one():
    identical = cider_d(["a dog is barking outside", "heavy rain drums on a metal roof", "bird songs"], REFERENCES)
    unrelated = cider_d(["a violin plays a slow tune", "people talk in a cafe", "a train passes"], REFERENCES)
    assert identical > 1.0 and unrelated == 0.0
    with pytest.raises(ValueError):
        cider_d(["only one"], [["only one"]])  # document frequencies need a corpus


def test_tokenize_lowercases_drops_punctuation_and_splits_contractions():
    assert tokenize("A dog's barking, LOUDLY! Don't stop: high-pitched.") == [
        "a",
        "dog",
        "'s",
        "barking",
        "loudly",
        "do",
        "n't",
        "stop",
        "high-pitched",
    ]


# --- multiple-choice answers ------------------------------------------------------------------------------
CHOICES = ["cat", "dog", "bird", "hot dog"]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("B", 1),
        ("(B)", 1),
        ("Answer: B) dog", 1),
        ("dog", 1),
        ("Dog.", 1),
        ("B. dog", 1),
        ("b", 1),
        ("[C]", 2),
        ("The answer is (C).", 2),
        ("answer: d", 3),
        ("Option C", 2),
        ("It sounds like a bird singing.", 2),
        ("I think it is a hot dog", 3),  # the longest matching option wins
        ("A dog barks.", 1),  # "A" is an article here, not option A
        ("The answer is a dog.", 1),
        ("a", 0),
        ("cat or dog", None),  # two options: ambiguous
        ("(E)", None),  # no option E
        ("", None),
    ],
)
def test_mcq_parser(reply, expected):
    assert parse_choice(reply, CHOICES) == expected


# --- JSONL store -------------------------------------------------------------------------------------------
def test_store_resumes_ignores_a_cut_line_and_separates_runs(tmp_path: Path):
    path = tmp_path / "results.jsonl"
    config = Config(0.5, Strategy.TOPK, 10)
    store = ResultStore(path, run="a")
    store.add("clip1", config, {"output": "x"})
    store.add("clip2", config, {"output": "y"})
    with path.open("a") as f:
        f.write('{"run": "a", "item": "clip3", "retent')  # a run killed mid-write
    resumed = ResultStore(path, run="a")
    assert resumed.is_done("clip1", config) and resumed.is_done("clip2", config)
    assert not resumed.is_done("clip3", config)
    assert not resumed.is_done("clip1", Config(0.25, Strategy.TOPK, 10))
    resumed.add("clip3", config, {"output": "z"})
    lines = path.read_text().splitlines()
    assert json.loads(lines[-1])["item"] == "clip3"  # the cut line did not swallow the new record
    assert not ResultStore(path, run="b").is_done("clip1", config)  # other settings, other run
    assert fingerprint({"model": "m", "prompt": "p"}) == fingerprint({"prompt": "p", "model": "m"})
    assert fingerprint({"model": "m"}) != fingerprint({"model": "n"})


# --- attention concentration ---------------------------------------------------------------------------
def test_concentration_of_flat_and_peaked_importance():
    flat = concentration(np.ones(100), queries=100)
    assert flat.top10_share == pytest.approx(0.10) and flat.top25_share == pytest.approx(0.25)
    assert flat.normalized_entropy == pytest.approx(1.0) and flat.padding_share == pytest.approx(0.0)
    peaked = np.zeros(100)
    peaked[7] = 40.0
    assert top_share(peaked, 0.10) == 1.0 and normalized_entropy(peaked) == pytest.approx(0.0)
    assert concentration(peaked, queries=100).padding_share == pytest.approx(0.6)
    assert largest_gap(np.array([3, 4, 9]), 12) == 4  # frames 5-8
    assert largest_gap(np.array([0, 11]), 12) == 10
    assert largest_gap(np.arange(12), 12) == 0


# --- SPICE -------------------------------------------------------------------------------------------------
def _fake_java(bin_dir: Path) -> None:
    """A `java` that answers -version and, for -jar, writes SPICE's output format (F = 0.5 for every item)."""
    bin_dir.mkdir()
    script = bin_dir / "java"
    script.write_text(
        "#!/usr/bin/env python3\n"
        "import json, sys\n"
        "args = sys.argv[1:]\n"
        "if args == ['-version']: sys.exit(0)\n"
        "items = json.load(open(args[3]))\n"
        "out = args[args.index('-out') + 1]\n"
        "json.dump([{'image_id': i['image_id'], 'scores': {'All': {'f': 0.5, 'pr': 0.5, 're': 0.5}}}"
        " for i in items], open(out, 'w'))\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_spice_is_unavailable_with_a_reason_when_jars_are_missing(tmp_path: Path, monkeypatch):
    bin_dir = tmp_path / "bin"
    _fake_java(bin_dir)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    missing = find_spice(tmp_path / "nothing-here")
    assert not missing.available and SPICE_JAR in missing.reason
    spice_dir = tmp_path / "spice"
    (spice_dir / "lib").mkdir(parents=True)
    (spice_dir / SPICE_JAR).write_bytes(b"")
    no_corenlp = find_spice(spice_dir)
    assert not no_corenlp.available and "stanford-corenlp-3.6.0" in no_corenlp.reason
    with pytest.raises(RuntimeError, match="unavailable"):
        spice_scores(["a"], [["a"]], no_corenlp)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert "no Java runtime" in find_spice(spice_dir).reason


def test_spice_runs_the_jar_and_reads_its_scores(tmp_path: Path, monkeypatch):
    bin_dir = tmp_path / "bin"
    _fake_java(bin_dir)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    spice_dir = tmp_path / "spice"
    (spice_dir / "lib").mkdir(parents=True)
    for name in (SPICE_JAR, *(f"lib/{jar}" for jar in CORENLP_JARS)):
        (spice_dir / name).write_bytes(b"")
    setup = find_spice(spice_dir)
    assert setup.available, setup.reason
    assert spice_scores(["a dog", "rain"], [["a dog barks"], ["rain falls"]], setup) == [0.5, 0.5]
