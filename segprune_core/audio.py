"""Bytes of wav/flac/ogg/mp3 (anything libsndfile reads) -> 16 kHz mono float32, with limits."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf
import soxr

from segprune_core.errors import AudioDecodeError, AudioTooLongError
from segprune_core.request import SAMPLE_RATE, AudioClip

# Below this rate there is no speech left to speak of; above it, a header is lying or corrupt.
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 384_000


def decode_audio(data: bytes, *, max_seconds: float | None = None, param: str | None = None) -> AudioClip:
    """Decode an audio file's bytes. The container is sniffed from the bytes, not trusted from a name.

    Raises AudioDecodeError for anything that is not usable audio and AudioTooLongError past
    `max_seconds` (checked from the header before decoding the samples, so a huge file costs little).
    """
    if not data:
        raise AudioDecodeError("The audio is empty (0 bytes).", param=param)
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            rate, frames = f.samplerate, f.frames
            if not (MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE):
                raise AudioDecodeError(
                    f"Unsupported sample rate {rate} Hz (supported: {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE}).",
                    param=param,
                )
            # mp3 reports frames lazily in some libsndfile builds; the post-decode check below covers that.
            if max_seconds is not None and 0 < frames and frames / rate > max_seconds:
                raise _too_long(frames / rate, max_seconds, param)
            samples = f.read(dtype="float32", always_2d=True)
    except sf.LibsndfileError as exc:
        raise AudioDecodeError(f"Could not decode the audio: {exc}.", param=param) from exc
    except (RuntimeError, ValueError, TypeError, EOFError, OverflowError, MemoryError) as exc:
        raise AudioDecodeError(f"Could not decode the audio: {exc}.", param=param) from exc

    if samples.shape[0] == 0:
        raise AudioDecodeError("The audio holds no samples.", param=param)
    mono = samples.mean(axis=1)
    if not np.all(np.isfinite(mono)):
        raise AudioDecodeError("The audio holds NaN or infinite samples.", param=param)
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    mono = np.clip(mono, -1.0, 1.0).astype(np.float32, copy=False)
    if max_seconds is not None and len(mono) / SAMPLE_RATE > max_seconds:
        raise _too_long(len(mono) / SAMPLE_RATE, max_seconds, param)
    if len(mono) == 0:
        raise AudioDecodeError("The audio is too short to resample to 16 kHz.", param=param)
    return AudioClip(samples=mono)


def _too_long(seconds: float, limit: float, param: str | None) -> AudioTooLongError:
    return AudioTooLongError(
        f"The audio lasts {seconds:.1f} s, longer than the maximum of {limit:g} s "
        "(setting SEGPRUNE_MAX_AUDIO_SECONDS).",
        param=param,
    )


def encode_wav(clip: AudioClip) -> bytes:
    """16-bit PCM WAV bytes of a clip (tests, benchmarks and the demo use it)."""
    buffer = io.BytesIO()
    sf.write(buffer, clip.samples, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()
