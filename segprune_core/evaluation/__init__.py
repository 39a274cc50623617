"""`segprune eval`: quality under pruning, measured the same way every time.

- `clotho`: Clotho v2 captioning, CIDEr-D (and SPIDEr when SPICE's Java jars are installed).
- `mmau`: MMAU multiple-choice accuracy.
- `whisper-wer`: real Whisper tiny.en transcribing synthesized speech with its encoder output pruned.

Every benchmark runs a grid of (retention, strategy) configurations, appends one JSONL record per
(item, configuration) so an interrupted run resumes, and prints relative change against r = 1.0.
"""
