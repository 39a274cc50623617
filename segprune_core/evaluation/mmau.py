"""MMAU multiple-choice accuracy under pruning.

Dataset (`--data`): MMAU's own JSON file (e.g. `mmau-test-mini.json`), or a folder holding exactly
one `.json` file. It is a list of questions:

    {"id": "...", "audio_id": "./test-mini-audios/<id>.wav", "question": "...",
     "choices": ["...", "...", "...", "..."], "answer": "<the correct choice's text>", ...}

Audio paths are relative to the JSON file's folder (`audio_path` or `path` may stand for
`audio_id`); `answer` may also be a letter ("B"). Extra fields (task, difficulty...) are kept, and
accuracy is also broken down by `task` when the file has it.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from segprune_core.evaluation.generation import ask, engine_settings, load_audio, load_engine, result_fields
from segprune_core.evaluation.grid import Config, grid_from_args
from segprune_core.evaluation.mcq import LETTERS, format_options, parse_choice
from segprune_core.evaluation.results import ResultStore, fingerprint
from segprune_core.evaluation.runner import complete_items, records_by_config, run_grid
from segprune_core.evaluation.summary import grid_table

DEFAULT_MAX_TOKENS = 32
PROMPT = "{question}\nOptions:\n{options}\nAnswer with the letter of the correct option."


@dataclass(frozen=True)
class Question:
    id: str
    audio_path: Path
    question: str
    choices: tuple[str, ...]
    answer_index: int
    task: str = ""

    def prompt(self) -> str:
        return PROMPT.format(question=self.question.strip(), options=format_options(self.choices))


def find_json(data: Path) -> Path:
    if data.is_file():
        return data
    found = sorted(data.glob("*.json"))
    if len(found) != 1:
        raise FileNotFoundError(f"{data}: expected exactly one MMAU .json file, found {len(found)}")
    return found[0]


def _answer_index(entry: dict, choices: tuple[str, ...]) -> int:
    answer = str(entry["answer"]).strip()
    for i, choice in enumerate(choices):
        if choice.strip() == answer:
            return i
    if len(answer) == 1 and answer.upper() in LETTERS[: len(choices)]:
        return LETTERS.index(answer.upper())
    raise ValueError(f"question {entry.get('id')!r}: answer {answer!r} is not one of its choices")


def load_mmau(data: Path, limit: int | None = None) -> list[Question]:
    path = find_json(data)
    entries = json.loads(path.read_text(encoding="utf-8"))
    questions = []
    for position, entry in enumerate(entries[:limit] if limit is not None else entries):
        audio = entry.get("audio_id") or entry.get("audio_path") or entry.get("path")
        if not audio:
            raise ValueError(f"{path}: question {entry.get('id', position)!r} has no audio_id")
        choices = tuple(str(c) for c in entry["choices"])
        if "answer" not in entry:
            raise ValueError(
                f"{path}: question {entry.get('id', position)!r} has no answer (MMAU's test split hides them)"
            )
        questions.append(
            Question(
                id=str(entry.get("id", position)),
                audio_path=(path.parent / audio).resolve(),
                question=str(entry["question"]),
                choices=choices,
                answer_index=_answer_index(entry, choices),
                task=str(entry.get("task", "")),
            )
        )
    missing = [q.audio_path for q in questions if not q.audio_path.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} audio files missing, e.g. {missing[0]}")
    return questions


def accuracy(records: list[dict]) -> float:
    return sum(bool(r["correct"]) for r in records) / len(records) if records else 0.0


def report(questions: list[Question], configs: list[Config], store: ResultStore, model: str) -> str:
    done = set(complete_items(questions, configs, store))
    scored = [q for q in questions if q.id in done]
    lines = [f"## MMAU multiple choice, {model}, {len(scored)} questions", ""]
    if not scored:
        return "\n".join([*lines, "No question answered in every configuration yet.", ""])
    groups = {"all": scored} | {
        f"task {t}": [q for q in scored if q.task == t] for t in sorted({q.task for q in scored if q.task})
    }
    for name, group in groups.items():
        by_config = records_by_config([q.id for q in group], configs, store)
        values = {c: accuracy(r) * 100 for c, r in by_config.items()}
        unparsed = sum(r["choice"] is None for records in by_config.values() for r in records)
        lines += [f"Accuracy (%), {name} ({len(group)} questions; {unparsed} unparseable answers):", ""]
        lines.append(grid_table(configs, values, value_format=lambda v: f"{v:.1f}"))
    return "\n".join(lines)


def run_mmau(args: argparse.Namespace) -> int:
    questions = load_mmau(args.data, args.limit)
    configs = grid_from_args(args.retentions, args.strategies, args.segments)
    engine = load_engine(args)
    max_tokens = args.max_tokens or DEFAULT_MAX_TOKENS
    run = fingerprint(engine_settings(engine, args, task="mmau", prompt=PROMPT, max_tokens=max_tokens))
    store = ResultStore(args.out, run)

    def answer(question: Question, config: Config) -> dict:
        result = ask(engine, load_audio(question.audio_path), question.prompt(), config, max_tokens)
        choice = parse_choice(result.text, question.choices)
        fields = {"choice": choice, "answer": question.answer_index, "correct": choice == question.answer_index}
        return {"task": "mmau", "model": engine.name, **fields, **result_fields(result)}

    run_grid(questions, configs, store, answer, desc="mmau", quiet=args.quiet)
    text = report(questions, configs, store, engine.name)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0
