"""segprune eval end to end on the demo models, with a tiny Clotho and MMAU the tests write themselves."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from segprune_core.cli import main
from segprune_core.evaluation import clotho, mmau, whisper_wer
from segprune_core.evaluation.clotho import find_layout, load_clotho
from segprune_core.evaluation.mmau import load_mmau
from tests.speech import synthesize_speech

GRID = ["--retentions", "1.0,0.5", "--strategies", "segmentwise", "--quiet"]
CONFIGS = 2  # r = 1.0 (run once for every strategy), then segmentwise at r = 0.5


def tone(path: Path, seconds: float = 2.0, hz: float = 440.0) -> Path:
    t = np.arange(int(seconds * 16000)) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32), 16000)
    return path


@pytest.fixture(scope="module")
def clotho_dir(tmp_path_factory, speech_dir) -> Path:
    """Two clips in Clotho's layout: captions.csv (file_name, caption_1..caption_5) and audio/."""
    root = tmp_path_factory.mktemp("clotho")
    (root / "audio").mkdir()
    synthesize_speech("A dog barks at the mailman.", root / "audio" / "speech_dog.wav")
    tone(root / "audio" / "tone.wav")
    rows = [
        ("speech_dog.wav", "a man says a dog barks", "someone speaks about a dog"),
        ("tone.wav", "a steady high pitched beep", "a pure tone plays"),
    ]
    with (root / "captions.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file_name", *(f"caption_{i}" for i in range(1, 6))])
        for name, first, second in rows:
            writer.writerow([name, first, second, first + " loudly", second + " softly", first])
    return root


@pytest.fixture(scope="module")
def mmau_dir(tmp_path_factory, speech_dir) -> Path:
    """Two questions in MMAU's JSON format, audio paths relative to the JSON file."""
    root = tmp_path_factory.mktemp("mmau")
    (root / "audios").mkdir()
    synthesize_speech("The bird sings.", root / "audios" / "q1.wav")
    tone(root / "audios" / "q2.wav", hz=220.0)
    questions = [
        {"id": "q1", "audio_id": "./audios/q1.wav", "question": "What is mentioned?",
         "choices": ["a dog", "a bird", "a car", "a train"], "answer": "a bird", "task": "speech"},
        {"id": "q2", "audio_id": "./audios/q2.wav", "question": "What do you hear?",
         "choices": ["a tone", "speech", "music", "silence"], "answer": "A", "task": "sound"},
    ]  # fmt: skip
    (root / "mmau-test-mini.json").write_text(json.dumps(questions))
    return root


@pytest.fixture
def counted(demo_engines, monkeypatch):
    """Benchmarks get the session's engines (no reload) and every generate call is counted."""
    calls = {"n": 0}
    for engine in demo_engines.values():
        original = engine.generate

        def counting(request, should_stop=None, _original=original):
            calls["n"] += 1
            return _original(request, should_stop)

        monkeypatch.setattr(engine, "generate", counting)
    by_model = lambda args: demo_engines[args.model]  # noqa: E731
    for module in (clotho, mmau, whisper_wer):
        monkeypatch.setattr(module, "load_engine", by_model)
    return calls


def read_jsonl(path: Path) -> list[dict]:
    """Complete records (a line cut short by an interrupted run is skipped, as the store does)."""
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def test_clotho_layouts(clotho_dir, tmp_path):
    assert find_layout(clotho_dir) == (clotho_dir / "captions.csv", clotho_dir / "audio")
    clips = load_clotho(clotho_dir, limit=2)
    assert [c.id for c in clips] == ["speech_dog.wav", "tone.wav"] and len(clips[0].captions) == 5
    original = tmp_path / "clotho"  # Clotho's own names: clotho_captions_<split>.csv and <split>/
    (original / "evaluation").mkdir(parents=True)
    (original / "clotho_captions_evaluation.csv").write_text("file_name,caption_1\nx.wav,a sound\n")
    tone(original / "evaluation" / "x.wav")
    assert load_clotho(original)[0].audio_path == original / "evaluation" / "x.wav"


def test_mmau_loader_accepts_answer_text_or_letter(mmau_dir):
    questions = load_mmau(mmau_dir)
    assert [(q.id, q.answer_index, q.task) for q in questions] == [("q1", 1, "speech"), ("q2", 0, "sound")]
    assert "(B) a bird" in questions[0].prompt()


def test_clotho_run_writes_jsonl_resumes_and_summarizes(clotho_dir, tmp_path, counted, capsys):
    out = tmp_path / "clotho.jsonl"
    args = ["eval", "clotho", "--data", str(clotho_dir), "--model", "demo-qwen2-audio", "--max-tokens", "3"]
    args += [*GRID, "--out", str(out), "--spice-dir", str(tmp_path / "no-spice")]
    assert main(args) == 0
    records = read_jsonl(out)
    assert counted["n"] == len(records) == 2 * CONFIGS
    kept = {(r["item"], r["retention"], r["strategy"]): r["audio_tokens_kept"] for r in records}
    before = records[0]["audio_tokens_before"]
    assert kept[("speech_dog.wav", 1.0, "none")] == before
    assert 0 < kept[("speech_dog.wav", 0.5, "segmentwise")] <= before // 2
    summary = capsys.readouterr().out
    assert "CIDEr-D" in summary and "SPIDEr: unavailable" in summary and "| segmentwise S=10 |" in summary

    assert main(args) == 0  # everything done: no model call
    assert counted["n"] == 2 * CONFIGS and len(read_jsonl(out)) == 2 * CONFIGS

    lines = out.read_text().splitlines()  # an interrupted run: one record lost, the one before cut short
    out.write_text("\n".join(lines[:-2]) + "\n" + lines[-2][:25])
    assert main(args) == 0
    assert counted["n"] == 2 * CONFIGS + 2 and len(read_jsonl(out)) == 2 * CONFIGS


def test_mmau_run_writes_jsonl_resumes_and_reports_accuracy(mmau_dir, tmp_path, counted, capsys):
    out = tmp_path / "mmau.jsonl"
    args = ["eval", "mmau", "--data", str(mmau_dir), "--model", "demo-qwen2-audio", "--max-tokens", "3"]
    args += [*GRID, "--out", str(out)]
    assert main(args) == 0
    records = read_jsonl(out)
    assert counted["n"] == len(records) == 2 * CONFIGS
    assert all(r["correct"] == (r["choice"] == r["answer"]) for r in records)
    summary = capsys.readouterr().out
    assert "Accuracy (%), all (2 questions" in summary and "task speech" in summary
    assert main(args) == 0
    assert counted["n"] == 2 * CONFIGS


def test_whisper_wer_is_small_at_full_retention(tmp_path, counted, capsys):
    out = tmp_path / "wer.jsonl"
    args = ["eval", "whisper-wer", "--model", "demo-whisper-tiny.en", "--sentences", "1", "--retentions", "1.0"]
    args += ["--strategies", "segmentwise", "--quiet", "--out", str(out), "--speech-dir", str(tmp_path / "speech")]
    assert main(args) == 0
    (record,) = read_jsonl(out)
    assert record["kind"] == "short" and 2.0 < record["duration_s"] < 6.0
    assert whisper_wer.word_error_rate([record]) <= 15.0, record["output"]
    assert 0.0 < record["loss_nats"] / record["loss_tokens"] < 1.0
    attention = record["attention"]
    assert 0.10 <= attention["top10_share"] <= attention["top25_share"] <= 1.0
    assert 0.0 < attention["normalized_entropy"] <= 1.0
    summary = capsys.readouterr().out
    assert "WER (%), short clips" in summary and "Machine:" in summary
