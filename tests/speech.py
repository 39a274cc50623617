"""Offline speech for tests: espeak-ng synthesizes, sox converts to 16 kHz mono 16-bit WAV."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

from segprune_core.evaluation.speech import synthesize


def synthesize_speech(text: str, path: Path, rate: int = 16000) -> Path:
    """Speak `text` into a mono WAV at `rate` Hz and return its path.

    `path` is either the .wav file to write or a cache directory, where the file is named by a hash
    of the text and rate. An existing file is reused, so repeated calls cost nothing.
    """
    path = Path(path)
    if path.suffix.lower() != ".wav":
        return synthesize(text, path, rate)
    if not path.exists():
        os.replace(synthesize(text, path.parent, rate), path)
    return path


def load_wav(path: Path) -> np.ndarray:
    """Samples of a WAV file as float32 in [-1, 1], mixed down to mono."""
    samples, _ = sf.read(str(path), dtype="float32", always_2d=True)
    return samples.mean(axis=1)
