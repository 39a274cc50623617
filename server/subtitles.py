"""Transcript segments -> SubRip (.srt) and WebVTT (.vtt) text."""

from __future__ import annotations

from collections.abc import Sequence

from segprune_core.request import TranscriptSegment


def _timestamp(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _cue_text(text: str) -> str:
    # A blank line would end the cue early in both formats; "-->" would read as a timing line in VTT.
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines).replace("-->", "->")


def _cues(segments: Sequence[TranscriptSegment]) -> list[tuple[TranscriptSegment, str]]:
    return [(s, _cue_text(s.text)) for s in segments if _cue_text(s.text)]


def to_srt(segments: Sequence[TranscriptSegment]) -> str:
    blocks = [
        f"{i}\n{_timestamp(s.start, ',')} --> {_timestamp(s.end, ',')}\n{text}\n"
        for i, (s, text) in enumerate(_cues(segments), start=1)
    ]
    return "\n".join(blocks)


def to_vtt(segments: Sequence[TranscriptSegment]) -> str:
    blocks = [f"{_timestamp(s.start, '.')} --> {_timestamp(s.end, '.')}\n{text}\n" for s, text in _cues(segments)]
    return "WEBVTT\n\n" + "\n".join(blocks)
