"""Audio-token importance: attention each frame RECEIVES in the encoder's last self-attention layer.

importance[j] = mean over heads of sum over valid queries i of softmax_j(q_i . k_j / sqrt(d))

The encoder keeps its fast attention (sdpa/flash) everywhere. A forward pre-hook on the last layer's
`self_attn` sees that layer's input and recomputes only Q and K there, in query chunks, so the extra
memory is O(batch * heads * chunk * T) rather than the O(layers * heads * T^2) of output_attentions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from segprune_core.timing import Clock

QUERY_CHUNK = 256  # queries per block: 6 heads x 256 x 1500 fp32 is ~9 MB per window


def attention_received(
    hidden_states: torch.Tensor,
    attention: nn.Module,
    attention_mask: torch.Tensor | None,
    valid_frames: torch.Tensor,
    query_chunk: int = QUERY_CHUNK,
) -> torch.Tensor:
    """Column sums of one attention layer's probabilities over valid queries, averaged over heads.

    hidden_states: [B, T, D], the input of `attention` (a Whisper-style attention module with q_proj,
    k_proj, num_heads, head_dim and scaling). attention_mask: what the layer itself received (None,
    a boolean mask where True means "may attend", or an additive float mask), [B, 1, T, T] or broadcastable.
    valid_frames: [B] number of real (unpadded) frames; padded frames are neither queries nor scored.
    Returns [B, T] float32 with zeros at padded frames.
    """
    batch, frames, _ = hidden_states.shape
    heads, head_dim = attention.num_heads, attention.head_dim
    # Same arithmetic order as the layer (scale q before the product), in fp32 for a stable softmax.
    queries = (attention.q_proj(hidden_states) * attention.scaling).float()
    queries = queries.view(batch, frames, heads, head_dim).transpose(1, 2)  # [B, H, T, d]
    keys = attention.k_proj(hidden_states).float().view(batch, frames, heads, head_dim).transpose(1, 2)
    valid_frames = valid_frames.to(hidden_states.device)
    positions = torch.arange(frames, device=hidden_states.device)

    received = torch.zeros(batch, heads, 1, frames, dtype=torch.float32, device=hidden_states.device)
    # Queries past the longest clip's real frames contribute nothing: skip them (short clips are cheap).
    last_query = int(valid_frames.max())
    # The block of probabilities is batch x heads x chunk x T: keep it cache-sized whatever the batch.
    query_chunk = max(16, query_chunk // batch)
    keys_t = keys.transpose(-1, -2)
    for start in range(0, last_query, query_chunk):
        stop = min(start + query_chunk, frames)
        scores = queries[:, :, start:stop] @ keys_t  # [B, H, c, T]
        if attention_mask is not None:
            mask = attention_mask[..., start:stop, :] if attention_mask.shape[-2] > 1 else attention_mask
            if mask.dtype == torch.bool:
                scores.masked_fill_(~mask, float("-inf"))
            else:
                scores.add_(mask.float())
        # Softmax in place, with the row normalisation folded into the column sum:
        # sum_i exp_ij / rowsum_i is one [1 x c] @ [c x T] product per head, padded queries weighted 0.
        scores.sub_(scores.amax(dim=-1, keepdim=True)).exp_()
        query_is_valid = (positions[start:stop][None, :] < valid_frames[:, None]).float()  # [B, c]
        row_weights = scores.sum(dim=-1).reciprocal_() * query_is_valid[:, None, :]  # [B, H, c]
        received += row_weights[:, :, None, :] @ scores
    importance = received[:, :, 0].mean(dim=1)  # [B, T]
    return importance * (positions[None, :] < valid_frames[:, None]).float()


def pool_pairs(frame_scores: torch.Tensor) -> torch.Tensor:
    """Pool [B, T] frame scores to token rate exactly as Qwen2-Audio/AF3 pool hidden states (AvgPool1d(2))."""
    return F.avg_pool1d(frame_scores[:, None, :], kernel_size=2, stride=2)[:, 0, :]


class ImportanceRecorder:
    """Holds the [B, T] frame importance of the most recent encoder forward, and the time it took."""

    frame_scores: torch.Tensor | None = None
    elapsed_ms: float = 0.0


@contextmanager
def record_last_layer_importance(
    attention: nn.Module,
    valid_frames: torch.Tensor,
    clock: Clock | None = None,
    query_chunk: int = QUERY_CHUNK,
) -> Iterator[ImportanceRecorder]:
    """While active, every forward of `attention` (the last encoder layer's self_attn) records importance.

    With a clock, the recomputation's own time is accumulated in `elapsed_ms`, so callers can report
    scoring apart from the encoder it runs inside.
    """
    recorder = ImportanceRecorder()

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        hidden_states = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
        start = clock.now() if clock else 0.0
        with torch.no_grad():
            recorder.frame_scores = attention_received(hidden_states, module, mask, valid_frames, query_chunk)
        if clock:
            recorder.elapsed_ms += clock.since(start)

    handle = attention.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield recorder
    finally:
        handle.remove()
