"""A real Prometheus (Debian's `prometheus`) scrapes a live segprune server on 127.0.0.1; after requests at
retention 1.0 and 0.25, every PromQL expression of the Grafana dashboard returns data through
Prometheus's HTTP API."""

from __future__ import annotations

import base64
import contextlib
import json
import math
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from server.app import create_app
from server.settings import Settings
from tests.speech import synthesize_speech

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "segprune.json"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
QWEN = "demo-qwen2-audio"
WHISPER = "demo-whisper-tiny.en"
RETENTIONS = (1.0, 0.25)
# What Grafana would put in place of its variables: every model and strategy, a window holding the test.
GRAFANA_VARIABLES = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m", "model": ".*", "strategy": ".*"}


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expr) for every target of every panel, rows' nested panels included."""
    queries = []
    panels = list(json.loads(DASHBOARD.read_text())["panels"])
    while panels:
        panel = panels.pop(0)
        panels += panel.get("panels", [])
        queries += [(panel["title"], target["expr"]) for target in panel.get("targets", [])]
    return queries


def substitute(expr: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match[1] or match[2]
        assert name in GRAFANA_VARIABLES, f"unknown Grafana variable ${name} in {expr}"
        return GRAFANA_VARIABLES[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@contextlib.contextmanager
def prometheus(target: str, directory: Path) -> Iterator[str]:
    """Prometheus on 127.0.0.1 (a free port) scraping `target` (host:port) every second; yields its URL."""
    config = directory / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"scrape_configs:\n  - job_name: segprune\n    static_configs:\n      - targets: ['{target}']\n"
    )
    port = free_port()
    log = (directory / "prometheus.log").open("w")
    command = [
        PROMETHEUS,
        f"--config.file={config}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert process.poll() is None, (directory / "prometheus.log").read_text()
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
            return False

        wait_for(ready, "Prometheus to start")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def query(url: str, expr: str) -> list[dict]:
    response = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
    assert body["data"]["resultType"] == "vector", expr
    return body["data"]["result"]


def scalar(url: str, expr: str) -> float:
    result = query(url, expr)
    return float(result[0]["value"][1]) if result else 0.0


def chat_body(audio_b64: str, retention: float, *, stream: bool = False) -> dict:
    content = [
        {"type": "input_audio", "input_audio": {"data": audio_b64, "format": "wav"}},
        {"type": "text", "text": "Describe the audio."},
    ]
    return {
        "model": QWEN,
        "max_tokens": 4,
        "temperature": 0,
        "stream": stream,
        "pruning": {"retention": retention},
        "messages": [{"role": "user", "content": content}],
    }


def send_round(http: httpx.Client, wav: bytes) -> int:
    """Chat at each retention (one of them streamed), a transcription and a 404; returns the request count."""
    audio = base64.b64encode(wav).decode()
    for retention in RETENTIONS:
        assert http.post("/v1/chat/completions", json=chat_body(audio, retention)).status_code == 200
    with http.stream("POST", "/v1/chat/completions", json=chat_body(audio, RETENTIONS[-1], stream=True)) as stream:
        assert stream.status_code == 200
        assert "data: [DONE]" in list(stream.iter_lines())
    transcription = http.post("/v1/audio/transcriptions", files={"file": ("a.wav", wav)}, data={"model": WHISPER})
    assert transcription.status_code == 200
    assert http.post("/v1/chat/completions", json={**chat_body(audio, 1.0), "model": "nope"}).status_code == 404
    return len(RETENTIONS) + 3


def test_dashboard_queries_have_no_unknown_variables():
    queries = dashboard_queries()
    assert len(queries) >= 10
    for _, expr in queries:
        assert "$" not in substitute(expr)


def test_every_dashboard_query_returns_data(demo_engines, live_server, speech_dir, tmp_path):
    if not Path(PROMETHEUS).exists():
        pytest.fail("Debian's `prometheus` package is required (scripts/install.sh installs it)")
    wav = synthesize_speech("Prefill gets faster when fewer audio tokens remain.", speech_dir).read_bytes()
    settings = Settings(host="127.0.0.1", max_tokens_limit=64, default_max_tokens=4)
    with (
        live_server(create_app(settings, demo_engines)) as server_url,
        prometheus(server_url.removeprefix("http://"), tmp_path) as prometheus_url,
        httpx.Client(base_url=server_url, timeout=120) as http,
    ):
        wait_for(lambda: scalar(prometheus_url, 'up{job="segprune"}') == 1, "the first scrape")
        total = "sum(segprune_requests_total)"
        # Two rounds: a series' first scrape only creates it; rate() and increase() need the second.
        sent = send_round(http, wav)
        wait_for(lambda: scalar(prometheus_url, total) == sent, "round 1 to be scraped")
        sent += send_round(http, wav)
        wait_for(lambda: scalar(prometheus_url, total) == sent, "round 2 to be scraped")

        kept_share = scalar(prometheus_url, 'sum(segprune_audio_tokens_total{stage="kept"})') / scalar(
            prometheus_url, 'sum(segprune_audio_tokens_total{stage="input"})'
        )
        assert 0.25 < kept_share < 1.0
        assert scalar(prometheus_url, 'sum(segprune_prefill_seconds_count{retention="0.25"})') == 4

        failed = []
        for title, expr in dashboard_queries():
            try:
                values = [float(sample["value"][1]) for sample in query(prometheus_url, substitute(expr))]
            except AssertionError as exc:  # invalid PromQL: report it with the others
                values = [str(exc)]
            if not any(isinstance(value, float) and math.isfinite(value) for value in values):
                failed.append(f"{title}: {expr} -> {values}")
        assert not failed, "dashboard queries without data:\n" + "\n".join(failed)
