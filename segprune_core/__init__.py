"""segprune: Segmentwise Top-K audio-token pruning for audio-language models."""

__version__ = "0.1.0"
