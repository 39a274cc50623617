"""Last-layer importance from the hook equals the column sums of eager attention probabilities."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import Qwen2AudioEncoderConfig, WhisperConfig
from transformers.masking_utils import create_bidirectional_mask
from transformers.models.qwen2_audio.modeling_qwen2_audio import Qwen2AudioEncoder
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from segprune_core.importance import pool_pairs, record_last_layer_importance
from segprune_core.windows import conv_frames

SMALL = dict(d_model=64, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=128, num_mel_bins=80)


def _reference_importance(attentions: torch.Tensor, valid_frames: torch.Tensor) -> torch.Tensor:
    """attentions [B, H, T, T] from eager output_attentions -> [B, T] received attention over valid queries."""
    frames = attentions.shape[-1]
    query_valid = (torch.arange(frames)[None, :] < valid_frames[:, None]).float()
    received = torch.einsum("bhqk,bq->bhk", attentions.float(), query_valid).mean(1)
    return received * (torch.arange(frames)[None, :] < valid_frames[:, None]).float()


def _pair(encoder_class, config):
    torch.manual_seed(0)
    fast = encoder_class._from_config(config, attn_implementation="sdpa").eval()
    eager = copy.deepcopy(fast)
    eager.config._attn_implementation = "eager"
    for module in eager.modules():
        if hasattr(module, "config"):
            module.config._attn_implementation = "eager"
    return fast, eager


@pytest.mark.parametrize("mel_lengths", [[3000, 1234], [57, 3000]])
def test_qwen2_audio_encoder_importance_matches_eager(mel_lengths):
    config = Qwen2AudioEncoderConfig(**SMALL, max_source_positions=1500)
    fast, eager = _pair(Qwen2AudioEncoder, config)
    features = torch.randn(len(mel_lengths), 80, 3000)
    valid = conv_frames(torch.tensor(mel_lengths))
    frame_mask = (torch.arange(1500)[None, :] < valid[:, None]).long()

    def mask_for(encoder):
        return create_bidirectional_mask(
            config=encoder.config, inputs_embeds=torch.zeros(len(valid), 1500, 1), attention_mask=frame_mask
        )

    with torch.no_grad():
        with record_last_layer_importance(fast.layers[-1].self_attn, valid, query_chunk=97) as recorder:
            fast_out = fast(features, attention_mask=mask_for(fast)).last_hidden_state
        eager_out = eager(features, attention_mask=mask_for(eager), output_attentions=True)
    expected = _reference_importance(eager_out.attentions[-1], valid)
    torch.testing.assert_close(recorder.frame_scores, expected, atol=1e-5, rtol=1e-5)
    # The hook does not change what the encoder computes.
    torch.testing.assert_close(fast_out, eager_out.last_hidden_state, atol=1e-4, rtol=1e-4)
    # Padded frames get nothing; valid frames receive (valid queries) units of attention in total.
    assert torch.all(recorder.frame_scores[0, valid[0] :] == 0)
    torch.testing.assert_close(recorder.frame_scores.sum(-1), valid.float(), atol=1e-3, rtol=1e-4)
    # Pooled to token rate like AvgPool1d(2) pools hidden states.
    pooled = pool_pairs(recorder.frame_scores)
    assert pooled.shape == (len(mel_lengths), 750)
    torch.testing.assert_close(pooled[:, 3], recorder.frame_scores[:, 6:8].mean(-1))


def test_whisper_encoder_importance_matches_eager():
    """Whisper has no mask: padding frames are keys (as the model sees them) but never queries."""
    config = WhisperConfig(**SMALL, decoder_layers=1, decoder_attention_heads=4, max_source_positions=1500)
    fast, eager = _pair(WhisperEncoder, config)
    features = torch.randn(2, 80, 3000)
    valid = torch.tensor([1500, 400])
    with torch.no_grad():
        with record_last_layer_importance(fast.layers[-1].self_attn, valid) as recorder:
            fast(features)
        eager_out = eager(features, output_attentions=True)
    expected = _reference_importance(eager_out.attentions[-1], valid)
    torch.testing.assert_close(recorder.frame_scores, expected, atol=1e-5, rtol=1e-5)
