"""A bounded load test on 127.0.0.1: 16 concurrent clients against small queues.

Every request must get a 200 or a 429 (never lost, never a 5xx), and the server's memory must stay
flat: anonymous resident memory after 500 requests within RSS_GROWTH_BOUND of what it was after 50. The server
runs as its own process (`python -m server`), so its memory is measured alone.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.processes import server_process
from tests.speech import synthesize_speech

CLIENTS = 16
RSS_GROWTH_BOUND = 48 * 1024 * 1024  # bytes; the server holds ~800 MiB with both demo models


def rss_bytes(pid: int) -> int:
    """Anonymous resident memory (RssAnon): where a leak shows. Total RSS also counts the mmap'd model
    weights, whose pages the kernel drops and re-reads under memory pressure from other processes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon")


@pytest.fixture(scope="module")
def server(demo_dir) -> Iterator[tuple[str, int]]:
    """(base URL, pid) of a `python -m server` process with small queues."""
    # Two malloc arenas, as recommended for serving (README): per-thread arenas otherwise make RSS
    # depend on how many threads happened to allocate, which hides a leak or fakes one.
    flags = ["--queue-size", "2", "--default-max-tokens", "2"]
    with server_process(demo_dir, *flags, env={"MALLOC_ARENA_MAX": "2"}) as (url, process):
        yield url, process.pid


@pytest.fixture(scope="module")
def wav(speech_dir) -> bytes:
    return synthesize_speech("One two.", speech_dir).read_bytes()


def requests_for(wav: bytes) -> list[dict]:
    """A mix over two models (two worker queues): text chat, streamed text chat, chat with audio and
    transcription. Text-only chat is cheap, which keeps the test short while the queues stay full."""
    audio = {"type": "input_audio", "input_audio": {"data": base64.b64encode(wav).decode(), "format": "wav"}}
    text_chat = {"model": "demo-qwen2-audio", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    audio_chat = {**text_chat, "messages": [{"role": "user", "content": [audio]}]}
    transcription = dict(
        method="POST",
        url="/v1/audio/transcriptions",
        data={"model": "demo-whisper-tiny.en"},
        files={"file": ("a.wav", wav, "audio/wav")},
    )
    text = dict(method="POST", url="/v1/chat/completions", json=text_chat)
    streamed_text = dict(method="POST", url="/v1/chat/completions", json={**text_chat, "stream": True})
    audio = dict(method="POST", url="/v1/chat/completions", json=audio_chat)
    return [text, streamed_text, audio, text, streamed_text, text, streamed_text, transcription]


def run_load(base_url: str, wav: bytes, total: int, *, warm_up: bool = False) -> Counter:
    kinds = requests_for(wav)
    if warm_up:  # the first requests run every code path once, one at a time (all get a 200)
        with httpx.Client(base_url=base_url, timeout=120) as client:
            assert all(client.request(**kind).status_code == 200 for kind in kinds)
        total -= len(kinds)

    def one(index: int, client: httpx.Client) -> int:
        response = client.request(**kinds[index % len(kinds)])
        if response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream"):
            assert response.text.rstrip().endswith("data: [DONE]"), response.text[-200:]
        elif response.status_code == 429:
            assert response.json()["error"]["code"] == "queue_full" and int(response.headers["Retry-After"]) >= 1
        return response.status_code

    def client_loop(worker_index: int) -> list[int]:
        with httpx.Client(base_url=base_url, timeout=120) as client:
            return [one(i, client) for i in range(worker_index, total, CLIENTS)]

    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        statuses = [status for batch in pool.map(client_loop, range(CLIENTS)) for status in batch]
    assert len(statuses) == total  # none lost
    return Counter(statuses) + Counter({200: len(kinds) if warm_up else 0})


def test_load_gets_200_or_429_and_memory_stays_flat(server, wav):
    base_url, pid = server
    first = run_load(base_url, wav, 50, warm_up=True)
    rss_after_50 = rss_bytes(pid)
    rest = run_load(base_url, wav, 450)
    rss_after_500 = rss_bytes(pid)

    statuses = first + rest
    assert set(statuses) <= {200, 429}, statuses
    assert statuses[200] >= 20 and statuses[429] >= 1, statuses  # both served and pushed back
    growth = rss_after_500 - rss_after_50
    print(json.dumps({"statuses": dict(statuses), "rss_after_50_mib": rss_after_50 / 2**20,
                      "rss_after_500_mib": rss_after_500 / 2**20}))  # fmt: skip
    assert growth <= RSS_GROWTH_BOUND, f"RSS grew {growth / 2**20:.1f} MiB between request 50 and 500"
    # And the server is still healthy and idle.
    assert httpx.get(f"{base_url}/ready").status_code == 200
