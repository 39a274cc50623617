"""Offline speech for tests: espeak-ng synthesizes, sox converts to 16 kHz mono 16-bit WAV."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf


def synthesize_speech(text: str, path: Path, rate: int = 16000) -> Path:
    """Speak `text` into a mono WAV at `rate` Hz and return its path.

    `path` is either the .wav file to write or a cache directory, where the file is named by a hash
    of the text and rate. An existing file is reused, so repeated calls cost nothing.
    """
    path = Path(path)
    if path.suffix.lower() != ".wav":
        digest = hashlib.sha256(f"{rate}:{text}".encode()).hexdigest()[:16]
        path = path / f"speech-{digest}-{rate}.wav"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        raw = Path(scratch) / "espeak.wav"  # espeak-ng writes 22.05 kHz
        converted = Path(scratch) / "converted.wav"
        subprocess.run(["espeak-ng", "-w", str(raw), text], check=True, capture_output=True)
        subprocess.run(
            ["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(converted)],
            check=True,
            capture_output=True,
        )
        os.replace(converted, path)  # atomic, so parallel test workers never read a partial file
    return path


def load_wav(path: Path) -> np.ndarray:
    """Samples of a WAV file as float32 in [-1, 1], mixed down to mono."""
    samples, _ = sf.read(str(path), dtype="float32", always_2d=True)
    return samples.mean(axis=1)
