"""What every model family adapter holds: the loaded model, its processor, device and clock."""

from __future__ import annotations

import torch
from torch import nn

from segprune_core.request import Task
from segprune_core.timing import Clock


class FamilyAdapter:
    family: str = ""
    tasks: frozenset[Task] = frozenset()

    def __init__(self, model: nn.Module, processor, device: torch.device, encoder_batch_size: int = 8) -> None:
        self.model = model.eval()
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.device = device
        self.clock = Clock(device)
        self.encoder_batch_size = max(1, encoder_batch_size)  # 30 s windows per encoder forward
