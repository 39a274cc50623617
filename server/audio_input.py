"""Audio in a request (base64, data: URI, optional remote URL) -> raw bytes, with OpenAI-style errors."""

from __future__ import annotations

import base64
import binascii
import re
import time
from urllib.parse import unquote_to_bytes

from segprune_core.audio import decode_audio
from segprune_core.request import AudioClip
from server.errors import bad_request
from server.remote_audio import fetch_remote_audio
from server.settings import Settings

_DATA_URI = re.compile(r"^data:(?P<mime>[^;,]*)(?P<params>(;[^;,]*)*?)(?P<b64>;base64)?,(?P<data>.*)$", re.DOTALL)


def decode_base64(data: str, *, param: str) -> bytes:
    try:
        # validate=True refuses stray characters instead of silently dropping them; whitespace is stripped
        return base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise bad_request(f"'{param}' is not valid base64: {exc}.", param=param, code="invalid_base64") from exc


def decode_data_uri(url: str, *, param: str) -> bytes:
    match = _DATA_URI.match(url)
    if match is None:
        raise bad_request(f"'{param}' is not a valid data: URI.", param=param, code="invalid_audio_url")
    if match["b64"]:
        return decode_base64(match["data"], param=param)
    return unquote_to_bytes(match["data"])


async def audio_url_bytes(url: str, settings: Settings, *, param: str) -> bytes:
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "data":
        return decode_data_uri(url, param=param)
    if scheme in ("http", "https"):
        return await fetch_remote_audio(url, settings, param=param)
    raise bad_request(
        f"'{param}' must be a data: URI (or an http(s) URL where the server allows them).",
        param=param,
        code="invalid_audio_url",
    )


def decode_clip(data: bytes, *, max_seconds: float, param: str) -> tuple[AudioClip, float]:
    """Decode audio bytes (blocking; call it in a thread). Returns the clip and the milliseconds it took."""
    start = time.perf_counter()
    clip = decode_audio(data, max_seconds=max_seconds, param=param)
    return clip, (time.perf_counter() - start) * 1000.0
