"""Docker HEALTHCHECK: exit 0 when GET /ready answers 200, 1 otherwise.

Reads the server's own SEGPRUNE_* settings (port, API keys, whether /ready is protected), so set the
port through SEGPRUNE_PORT rather than a --port flag.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

from server.settings import Settings


def ready_request(settings: Settings) -> urllib.request.Request:
    request = urllib.request.Request(f"http://127.0.0.1:{settings.port}/ready")
    keys = settings.all_api_keys()
    if settings.protect_health_and_metrics and keys:
        request.add_header("Authorization", f"Bearer {keys[0]}")
    return request


def main() -> int:
    try:
        with urllib.request.urlopen(ready_request(Settings()), timeout=4) as response:
            return 0 if response.status == 200 else 1
    except (OSError, urllib.error.URLError) as exc:  # refused, 503 while loading, timeout
        print(f"not ready: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
