"""Wall-clock stage timing that is honest on GPU: CUDA work is asynchronous, so synchronize first."""

from __future__ import annotations

import time

import torch


class Clock:
    """Reads time.perf_counter() after waiting for queued CUDA kernels on `device` (no-op on CPU)."""

    def __init__(self, device: torch.device) -> None:
        self._sync = device.type == "cuda"
        self._device = device

    def now(self) -> float:
        if self._sync:
            torch.cuda.synchronize(self._device)
        return time.perf_counter()

    def since(self, start: float) -> float:
        """Milliseconds from `start` (a value of now()) to now."""
        return (self.now() - start) * 1000.0
