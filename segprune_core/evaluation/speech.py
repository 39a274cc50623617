"""Offline English speech for the Whisper experiment: espeak-ng speaks, sox converts to 16 kHz mono.

The sentences are fixed and varied (numbers spelled out, names, places, everyday and technical words),
so runs on different machines hear exactly the same audio.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SENTENCES = (
    "The committee will announce the results of the competition next Thursday.",
    "Please remember to bring your umbrella because it may rain this afternoon.",
    "The museum opens at nine in the morning and closes at five in the evening.",
    "She bought three apples, two oranges and a loaf of fresh bread at the market.",
    "Scientists discovered a new species of frog in the tropical rainforest last year.",
    "Our train was delayed by forty minutes because of a signal failure.",
    "He learned to play the violin when he was only six years old.",
    "The children built a large sandcastle on the beach before the tide came in.",
    "Turn left at the second traffic light and the library will be on your right.",
    "A strong wind blew across the valley and bent the tall grass toward the hills.",
    "The quick brown fox jumps over the lazy dog near the quiet river bank.",
    "My grandmother grows tomatoes, peppers and beans in her small garden.",
    "The pilot told the passengers to fasten their seat belts before landing.",
    "Fresh snow covered the mountain roads, so the drivers moved very slowly.",
    "The engineer explained how the new bridge could carry heavy trucks safely.",
    "After dinner we sat by the fire and listened to old stories about the village.",
    "Thank you for calling, please leave a short message after the tone.",
    "The post office will be closed on Monday for the national holiday.",
    "Coffee and tea are served in the main hall every afternoon.",
    "The doctor said that regular exercise is good for the heart.",
)
SENTENCES_PER_LONG_CLIP = 5  # ~19-22 s of espeak-ng speech at its default rate
SHORT_CLIP_SENTENCES = (0, 5, 10, 15)  # single sentences, ~3-5 s each


@dataclass(frozen=True)
class SpeechClip:
    id: str
    text: str  # the reference transcript
    kind: str  # "long" or "short"


def speech_clips(sentences: int | None = None) -> list[SpeechClip]:
    """Long clips of consecutive sentences (at least 2 each), then short single-sentence clips.

    `sentences` limits both to the first N sentences of the list.
    """
    chosen = SENTENCES[: sentences if sentences is not None else len(SENTENCES)]
    clips = []
    for start in range(0, len(chosen), SENTENCES_PER_LONG_CLIP):
        group = chosen[start : start + SENTENCES_PER_LONG_CLIP]
        if len(group) >= 2:
            clips.append(SpeechClip(f"long-{start:02d}", " ".join(group), "long"))
    clips += [SpeechClip(f"short-{i:02d}", chosen[i], "short") for i in SHORT_CLIP_SENTENCES if i < len(chosen)]
    return clips


def check_tools() -> None:
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"speech synthesis needs {' and '.join(missing)} (Debian: apt-get install espeak-ng sox)")


def synthesize(text: str, cache_dir: Path, rate: int = 16_000) -> Path:
    """A 16-bit mono WAV of `text`, cached in `cache_dir` under a hash of the text (reused when present)."""
    digest = hashlib.sha256(f"{rate}:{text}".encode()).hexdigest()[:16]
    path = cache_dir / f"speech-{digest}-{rate}.wav"
    if path.exists():
        return path
    check_tools()
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as scratch:
        raw, converted = Path(scratch) / "espeak.wav", Path(scratch) / "converted.wav"  # espeak-ng: 22.05 kHz
        subprocess.run(["espeak-ng", "-w", str(raw), text], check=True, capture_output=True)
        subprocess.run(["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(converted)], check=True)
        os.replace(converted, path)  # atomic: a concurrent reader never sees a partial file
    return path
