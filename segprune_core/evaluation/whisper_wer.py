"""The real-attention experiment: Whisper transcribing synthesized speech with its encoder output pruned.

For every clip and configuration:
- the transcript, through `Engine.generate` exactly as the server runs it (greedy); word error rate
  with jiwer after Whisper's English normalizer (case, punctuation, numbers) on both sides;
- the teacher-forced loss of the reference transcript (nats per token), far steadier than WER on a
  small set (DESIGN.md);
- the longest stretch of speech frames dropped (time coverage);
- at r = 1.0, how concentrated last-layer attention importance is over the speech frames.

The Whisper path scores and prunes only frames holding speech and always keeps the padding frames
after them (models/whisper.py), so r is the share of speech frames kept.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from segprune_core.evaluation.attention import concentration, largest_gap
from segprune_core.evaluation.generation import engine_settings, load_audio, load_engine
from segprune_core.evaluation.grid import Config, grid_from_args
from segprune_core.evaluation.results import ResultStore, fingerprint
from segprune_core.evaluation.runner import complete_items, records_by_config, run_grid
from segprune_core.evaluation.speech import SpeechClip, check_tools, speech_clips, synthesize
from segprune_core.evaluation.summary import grid_table
from segprune_core.models.whisper import Whisper
from segprune_core.request import GenerationRequest, Message, SamplingParams, Task, Timings

FRAME_SECONDS = 0.02  # one Whisper encoder frame: two 10 ms mel hops (conv2 has stride 2)
METHOD_VERSION = 2  # part of the run fingerprint: bump when a measurement changes, so old JSONL is not resumed


@dataclass(frozen=True)
class SpeechItem:
    id: str
    text: str
    kind: str
    audio_path: Path


def token_budget(tokenizer, reference: str) -> int:
    """Twice the reference's tokens plus 20 (timestamp tokens, errors), so a pruned model caught in a
    repetition loop stops early: its insertions are capped, which keeps runs short."""
    return 2 * len(tokenizer.encode(" " + reference, add_special_tokens=False)) + 20


class WhisperProbe:
    """Runs one (clip, configuration) and measures everything the report needs."""

    def __init__(self, engine, with_loss: bool = True) -> None:
        if not isinstance(engine.adapter, Whisper):
            raise ValueError(f"whisper-wer needs a Whisper model; {engine.name} is {engine.family}")
        from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

        self.engine = engine
        self.adapter: Whisper = engine.adapter
        self.with_loss = with_loss
        self.normalize = EnglishTextNormalizer({})  # Whisper's own, minus the British->American map
        self._encoded: tuple[str, object] | None = None  # one clip's encoder output, reused across configs

    def request(self, item: SpeechItem, config: Config, max_tokens: int) -> GenerationRequest:
        return GenerationRequest(
            (Message("user", (load_audio(item.audio_path),)),),
            sampling=SamplingParams(max_tokens=max_tokens, temperature=0.0),
            pruning=config.pruning(),
            task=Task.TRANSCRIBE,
            language="en",
        )

    def encoded(self, item: SpeechItem, request: GenerationRequest):
        if self._encoded is None or self._encoded[0] != item.id:
            (clip,) = self.adapter.encode(request.audio_clips, Timings())
            self._encoded = (item.id, clip)
        return self._encoded[1]

    @torch.no_grad()
    def teacher_forced_loss(self, request: GenerationRequest, windows: list, reference: str) -> tuple[float, int]:
        """Summed cross-entropy (nats) of the reference transcript and end-of-text, and its token count.

        Scored in no-timestamps mode (<|notimestamps|> ends the prompt), the standard way to score a
        plain transcript; the engine itself decodes in timestamp mode, whose first token is a timestamp.
        """
        if len(windows) != 1:
            raise ValueError("teacher-forced loss needs a clip of at most 30 s (one window)")
        states = windows[0].encoder_states
        prompt = self.adapter.prompt_ids(request, states)
        if self.adapter.no_timestamps_id not in prompt:
            prompt = [*prompt, self.adapter.no_timestamps_id]
        eos = min(self.adapter.eos_ids)
        target = self.adapter.tokenizer.encode(" " + reference.strip(), add_special_tokens=False) + [eos]
        inputs = torch.tensor([prompt + target[:-1]], device=self.adapter.device)
        logits = self.adapter.model(encoder_outputs=(states,), decoder_input_ids=inputs).logits[0, len(prompt) - 1 :]
        loss = F.cross_entropy(logits.float(), torch.tensor(target, device=logits.device), reduction="sum")
        return float(loss), len(target)

    def __call__(self, item: SpeechItem, config: Config) -> dict:
        request = self.request(item, config, token_budget(self.adapter.tokenizer, item.text))
        result = self.engine.generate(request)
        encoded = self.encoded(item, request)
        kept, windows = self.adapter.prune(encoded, config.pruning(), Timings())
        record = {
            "task": "whisper-wer",
            "model": self.engine.name,
            "kind": item.kind,
            "duration_s": round(result.duration, 3),
            "reference": item.text,
            "output": result.text,
            "reference_normalized": self.normalize(item.text),
            "output_normalized": self.normalize(result.text),
            "speech_frames": encoded.num_tokens,
            "speech_frames_kept": int(kept.indices.size),
            "largest_gap_s": round(largest_gap(kept.indices, encoded.num_tokens) * FRAME_SECONDS, 3),
            "completion_tokens": result.completion_tokens,
        }
        if self.with_loss:
            record["loss_nats"], record["loss_tokens"] = self.teacher_forced_loss(request, windows, item.text)
        if config.is_baseline:
            scores = encoded.scores.float().cpu().numpy()
            record["attention"] = concentration(scores, queries=encoded.num_tokens).as_dict()
        return record


# --- metrics over records ---------------------------------------------------------------------------
def word_error_rate(records: list[dict]) -> float:
    """Corpus WER in percent: all word errors over all reference words."""
    import jiwer

    words = jiwer.process_words([r["reference_normalized"] for r in records], [r["output_normalized"] for r in records])
    return 100.0 * words.wer


def mean_loss(records: list[dict]) -> float:
    """Nats per reference token, over all tokens of all clips."""
    return sum(r["loss_nats"] for r in records) / sum(r["loss_tokens"] for r in records)


def report(items: list[SpeechItem], configs: list[Config], store: ResultStore, model: str) -> str:
    done = set(complete_items(items, configs, store))
    scored = [i for i in items if i.id in done]
    if not scored:
        return "No clip finished in every configuration yet.\n"
    by_config = records_by_config([i.id for i in scored], configs, store)
    baseline = next(c for c in configs if c.is_baseline)
    lines = [
        f"## Whisper WER under pruning, {model}",
        "",
        "r is the share of speech frames kept (padding frames after the speech are always kept); r = 1.0",
        "keeps every frame whatever the strategy, so it is run once and shown in every row.",
        "",
    ]
    groups = {kind: [n for n, i in enumerate(scored) if i.kind == kind] for kind in ("long", "short")}
    groups = {kind: rows for kind, rows in groups.items() if rows} | {"all": list(range(len(scored)))}
    for kind, rows in groups.items():
        durations = [by_config[baseline][n]["duration_s"] for n in rows]
        words = sum(len(by_config[baseline][n]["reference_normalized"].split()) for n in rows)
        title = f"WER (%), {kind} clips: {len(rows)} clips, {min(durations):.1f}-{max(durations):.1f} s, {words} words"
        values = {c: word_error_rate([records[n] for n in rows]) for c, records in by_config.items()}
        lines += [title + " (relative change vs r = 1.0)", "", grid_table(configs, values, lambda v: f"{v:.1f}")]
    if all("loss_nats" in r for records in by_config.values() for r in records):
        for kind, rows in groups.items():
            values = {c: mean_loss([records[n] for n in rows]) for c, records in by_config.items()}
            lines += [f"Teacher-forced loss of the reference (nats/token), {kind} clips:", ""]
            lines.append(grid_table(configs, values, lambda v: f"{v:.2f}"))
    for kind, rows in groups.items():
        if kind == "all":
            continue
        values = {c: statistics.mean(records[n]["largest_gap_s"] for n in rows) for c, records in by_config.items()}
        lines += [f"Longest stretch of speech dropped (s, mean over {kind} clips):", ""]
        lines.append(grid_table(configs, values, lambda v: f"{v:.2f}", relative=False))
    lines += [attention_table(by_config[baseline]), ""]
    return "\n".join(lines)


def attention_table(records: list[dict]) -> str:
    """Concentration of last-layer importance over speech frames, per clip and averaged per kind."""
    keys = ("top10_share", "top25_share", "normalized_entropy", "padding_share")
    header = "| clip | s | speech frames | top 10 % share | top 25 % share | entropy / log N | to padding |"
    lines = [
        "Last-layer attention importance over the speech frames (r = 1.0). Shares are of the speech frames'",
        "total importance; 'to padding' is the share of the speech queries' attention that lands on padding.",
        "",
        header,
        "|" + "---|" * 7,
    ]
    for record in records:
        a = record["attention"]
        lines.append(
            f"| {record['kind']} | {record['duration_s']:.1f} | {a['frames']} | "
            + " | ".join(f"{a[k]:.3f}" for k in keys)
            + " |"
        )
    for kind in ("long", "short"):
        group = [r["attention"] for r in records if r["kind"] == kind]
        if group:
            means = " | ".join(f"{statistics.mean(a[k] for a in group):.3f}" for k in keys)
            lines.append(f"| **mean, {kind}** | | | {means} |")
    return "\n".join(lines) + "\n"


def run_whisper_wer(args: argparse.Namespace) -> int:
    check_tools()
    engine = load_engine(args)
    probe = WhisperProbe(engine, with_loss=not args.no_loss)
    clips: list[SpeechClip] = speech_clips(args.sentences)
    configs = grid_from_args(args.retentions, args.strategies, args.segments)
    texts = [c.text for c in clips]
    settings = engine_settings(engine, args, task="whisper-wer", texts=texts, loss=probe.with_loss, v=METHOD_VERSION)
    store = ResultStore(args.out, fingerprint(settings))
    with tempfile.TemporaryDirectory(prefix="segprune-speech-") as scratch:
        speech_dir = args.speech_dir or Path(scratch)
        items = [SpeechItem(c.id, c.text, c.kind, synthesize(c.text, speech_dir)) for c in clips]
        run_grid(items, configs, store, probe, desc="whisper-wer", quiet=args.quiet)
    text = report(items, configs, store, engine.name) + machine_line(engine)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0


def machine_line(engine) -> str:
    from segprune_core.bench import machine_description

    m = machine_description(engine)
    return (
        f"Machine: {m['processor']}, {m['threads']} torch threads, {m['device']}, torch {m['torch']}, "
        f"Python {m['python']}, {m['platform']}.\n"
    )
