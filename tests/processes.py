"""`python -m server` in a child process, for tests that need a real process (signals, RSS)."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


@contextlib.contextmanager
def server_process(demo_dir: Path, *flags: str, env: dict | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """Yields (base URL, process) once /ready answers 200; kills the process if it is still running after."""
    environment = {**os.environ, "SEGPRUNE_DEMO_DIR": str(demo_dir), "HF_HUB_OFFLINE": "1", **(env or {})}
    command = [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", "0", *flags]
    process = subprocess.Popen(command, env=environment, stderr=subprocess.PIPE, text=True)
    try:
        for line in process.stderr:
            if match := re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", line):
                url = f"http://127.0.0.1:{match[1]}"
                break
        else:
            raise AssertionError("the server did not start")
        # Keep reading its log, or a full pipe would block the server.
        threading.Thread(target=lambda: [None for _ in process.stderr], daemon=True).start()
        deadline = time.monotonic() + 120
        while httpx.get(f"{url}/ready").status_code != 200:
            assert time.monotonic() < deadline and process.poll() is None, "the server did not get ready"
            time.sleep(0.1)
        yield url, process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
