"""The server's own overhead: TTFT a streaming HTTP client sees minus the engine's TTFT, same request.

The difference is what HTTP, JSON, base64 and audio decoding, and the worker queue add on top of the
engine. Used by `segprune bench --server-overhead`.
"""

from __future__ import annotations

import base64
import json
import statistics
import time

import httpx

from segprune_core.audio import encode_wav
from segprune_core.request import AudioClip
from server.app import create_app
from server.embedded import serve_in_thread
from server.settings import Settings


def measure_server_overhead(engine, clip: AudioClip, retention: float, runs: int, warmup: int = 1) -> dict:
    """Median over `runs` streaming chat requests of (client TTFT - engine TTFT), in ms."""
    audio = base64.b64encode(encode_wav(clip)).decode()
    body = {
        "model": engine.name,
        "stream": True,
        "max_tokens": 4,
        "temperature": 0,
        "pruning": {"retention": retention},
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}},
                    {"type": "text", "text": "Describe the audio."},
                ],
            }
        ],
    }
    client_ttft, engine_ttft = [], []
    app = create_app(Settings(host="127.0.0.1", port=0, models=[engine.name]), {engine.name: engine})
    with serve_in_thread(app, log_level="error") as base_url, httpx.Client(base_url=base_url, timeout=600) as http:
        for index in range(warmup + runs):
            first_token, timings = _stream_once(http, body)
            if index >= warmup and first_token is not None and timings:
                client_ttft.append(first_token)
                engine_ttft.append(timings["ttft"])
    overhead = [c - e for c, e in zip(client_ttft, engine_ttft)]
    if not overhead:
        return {"runs": 0}
    return {
        "runs": len(overhead),
        "client_ttft_ms": statistics.median(client_ttft),
        "engine_ttft_ms": statistics.median(engine_ttft),
        "overhead_ms": statistics.median(overhead),
        "overhead_min_ms": min(overhead),
        "overhead_max_ms": max(overhead),
    }


def _stream_once(http: httpx.Client, body: dict) -> tuple[float | None, dict | None]:
    """(ms from sending the request to the first content delta, the engine timings of the last chunk)."""
    start = time.perf_counter()
    first_token, timings = None, None
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[len("data: ") :])
            for choice in chunk.get("choices", []):
                if first_token is None and choice.get("delta", {}).get("content"):
                    first_token = (time.perf_counter() - start) * 1000.0
            timings = chunk.get("timings") or timings
    return first_token, timings
