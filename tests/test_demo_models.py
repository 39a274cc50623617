"""The offline demo models: real Whisper tiny.en weights, loadable like any transformers checkpoint."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import (
    AudioFlamingo3ForConditionalGeneration,
    AudioFlamingo3Processor,
    AutoConfig,
    AutoModelForSpeechSeq2Seq,
    AutoProcessor,
    Qwen2AudioForConditionalGeneration,
    Qwen2AudioProcessor,
)

from segprune_core import demo_models
from segprune_core.ct2_whisper import default_ct2_model_dir, read_ct2_model
from segprune_core.demo_models import (
    AUDIOFLAMINGO3_ID,
    DEMO_MODEL_IDS,
    QWEN2_AUDIO_ID,
    WHISPER_ID,
    default_cache_dir,
    ensure_demo_model,
    is_demo_model_id,
)
from tests.speech import load_wav, synthesize_speech

SENTENCES = (
    "The weather today is sunny and warm, with a light breeze from the west.",
    "Please remember to bring your notebook to the meeting on Monday morning.",
    "The train to the city leaves every hour from platform number two.",
)
SAMPLE_RATE = 16000
EOT, SOT, NO_TIMESTAMPS, TIMESTAMP_BEGIN = 50256, 50257, 50362, 50363

# model id -> (model class, processor class, the audio placeholder its chat template renders)
ALMS = {
    QWEN2_AUDIO_ID: (Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor, "<|AUDIO|>"),
    AUDIOFLAMINGO3_ID: (AudioFlamingo3ForConditionalGeneration, AudioFlamingo3Processor, "<sound>"),
}


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9']+", text.lower()))


def five_second_clip(speech_dir: Path) -> np.ndarray:
    audio = load_wav(synthesize_speech(SENTENCES[0], speech_dir))
    return np.pad(audio, (0, max(0, 5 * SAMPLE_RATE - len(audio))))[: 5 * SAMPLE_RATE]


# ---------------------------------------------------------------------------------------------
# Whisper: the conversion is exact
# ---------------------------------------------------------------------------------------------


def test_ct2_model_bin_is_parsed_completely() -> None:
    ct2 = read_ct2_model(default_ct2_model_dir())
    assert ct2.spec_name == "WhisperSpec"
    assert ct2.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    assert ct2.get("decoder/projection/weight").shape == (51864, 384)
    assert ct2.get("encoder/conv1/weight").dtype == torch.float16


def test_whisper_special_tokens(demo_dir: Path) -> None:
    processor = AutoProcessor.from_pretrained(demo_dir / WHISPER_ID)
    tokenizer = processor.tokenizer
    ids = tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>", "<|0.00|>"])
    assert ids == [EOT, SOT, NO_TIMESTAMPS, TIMESTAMP_BEGIN]
    config = AutoConfig.from_pretrained(demo_dir / WHISPER_ID)
    assert len(tokenizer) == config.vocab_size == 51864
    assert processor.feature_extractor.feature_size == config.num_mel_bins == 80


def test_whisper_transcripts_equal_ctranslate2(demo_dir: Path, speech_dir: Path) -> None:
    ctranslate2 = pytest.importorskip("ctranslate2")
    reference = ctranslate2.models.Whisper(str(default_ct2_model_dir()), device="cpu", compute_type="float32")
    processor = AutoProcessor.from_pretrained(demo_dir / WHISPER_ID)
    model = AutoModelForSpeechSeq2Seq.from_pretrained(demo_dir / WHISPER_ID).eval()

    for sentence in SENTENCES:
        audio = load_wav(synthesize_speech(sentence, speech_dir))
        features = processor(audio, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
        with torch.no_grad():
            ours = model.generate(features, num_beams=1, do_sample=False)[0].tolist()
        theirs = reference.generate(
            ctranslate2.StorageView.from_array(features.numpy()), [[SOT, NO_TIMESTAMPS]], beam_size=1
        )[0].sequences_ids[0]

        # CTranslate2 returns neither the prompt nor <|endoftext|>.
        generated = [token for token in ours if token not in (SOT, NO_TIMESTAMPS, EOT)]
        assert generated == theirs, sentence
        transcript = processor.decode(generated, skip_special_tokens=True)
        assert len(words(sentence) & words(transcript)) >= 0.8 * len(words(sentence)), transcript


# ---------------------------------------------------------------------------------------------
# Audio-language models: real encoder, random seeded LLM
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_id", list(ALMS))
def test_alm_loads_and_runs_a_forward(demo_dir: Path, speech_dir: Path, model_id: str) -> None:
    model_class, processor_class, audio_token = ALMS[model_id]
    path = demo_dir / model_id
    processor = AutoProcessor.from_pretrained(path)
    config = AutoConfig.from_pretrained(path)
    model = model_class.from_pretrained(path).eval()
    assert isinstance(processor, processor_class)
    assert processor.tokenizer.convert_tokens_to_ids(audio_token) == config.audio_token_id
    assert model.generation_config.eos_token_id == processor.tokenizer.convert_tokens_to_ids("<|im_end|>")

    conversation = [{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": "What is said?"}]}]
    prompt = processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    assert prompt.count(audio_token) == 1
    assert prompt.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")
    assert prompt.endswith("What is said?<|im_end|>\n<|im_start|>assistant\n")

    inputs = processor(text=[prompt], audio=[five_second_clip(speech_dir)], return_tensors="pt")
    # 5 s -> 500 mel frames -> 250 after conv2 -> 125 tokens after the 2x average pool.
    assert int((inputs["input_ids"] == config.audio_token_id).sum()) == 125
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape == (1, inputs["input_ids"].shape[1], config.text_config.vocab_size)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("model_id", list(ALMS))
def test_chat_template_renders_one_placeholder_per_audio_part(demo_dir: Path, model_id: str) -> None:
    _, _, audio_token = ALMS[model_id]
    processor = AutoProcessor.from_pretrained(demo_dir / model_id)
    content = [
        {"type": "text", "text": "Compare these."},
        {"type": "audio", "audio": "first.wav"},
        {"type": "audio_url", "audio_url": {"url": "https://example.invalid/second.wav"}},
    ]
    prompt = processor.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": content}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert prompt.count(audio_token) == 2
    assert prompt.startswith("<|im_start|>system\nBe brief.<|im_end|>\n")
    if model_id == AUDIOFLAMINGO3_ID:  # AF3 puts a turn's audio before its text
        assert "<|im_start|>user\n<sound><sound>Compare these.<|im_end|>" in prompt


@pytest.mark.parametrize("model_id", list(ALMS))
def test_alm_audio_tower_is_the_real_whisper_encoder(demo_dir: Path, model_id: str) -> None:
    model_class, _, _ = ALMS[model_id]
    encoder = AutoModelForSpeechSeq2Seq.from_pretrained(demo_dir / WHISPER_ID).model.encoder.state_dict()
    tower = model_class.from_pretrained(demo_dir / model_id).model.audio_tower.state_dict()
    assert encoder.keys() == tower.keys()
    for name, tensor in encoder.items():
        assert torch.equal(tensor, tower[name]), name

    metadata = json.loads((demo_dir / model_id / "segprune_demo.json").read_text())
    assert metadata["model_id"] == model_id
    assert metadata["random_llm"] is True


def test_random_llm_is_reproducible(demo_dir: Path, tmp_path: Path) -> None:
    rebuilt = load_file(ensure_demo_model(QWEN2_AUDIO_ID, tmp_path) / "model.safetensors")
    cached = load_file(demo_dir / QWEN2_AUDIO_ID / "model.safetensors")
    assert rebuilt.keys() == cached.keys()
    assert all(torch.equal(rebuilt[name], cached[name]) for name in cached)


# ---------------------------------------------------------------------------------------------
# Cache behaviour
# ---------------------------------------------------------------------------------------------


def test_ensure_demo_model_is_idempotent(demo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_cache_dir() == demo_dir  # the fixture points SEGPRUNE_DEMO_DIR at its build
    before = {model_id: (demo_dir / model_id / "model.safetensors").stat().st_mtime_ns for model_id in DEMO_MODEL_IDS}

    def fail(*_: object) -> None:
        raise AssertionError("a cached demo model was rebuilt")

    monkeypatch.setattr(demo_models, "load_whisper_from_ct2", fail)
    for model_id in DEMO_MODEL_IDS:
        assert ensure_demo_model(model_id) == demo_dir / model_id
        assert (demo_dir / model_id / "model.safetensors").stat().st_mtime_ns == before[model_id]


def test_demo_model_ids() -> None:
    assert DEMO_MODEL_IDS == ("demo-whisper-tiny.en", "demo-qwen2-audio", "demo-audioflamingo3")
    assert is_demo_model_id("demo-qwen2-audio")
    assert not is_demo_model_id("Qwen/Qwen2-Audio-7B-Instruct")
    with pytest.raises(ValueError, match="unknown demo model"):
        ensure_demo_model("demo-nonexistent")


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEGPRUNE_DEMO_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("SEGPRUNE_DEMO_DIR")
    assert default_cache_dir() == Path.home() / ".cache" / "segprune" / "demo-models"


def fake_builder(calls: list[Path]) -> Callable[[Path, object], None]:
    """Stands in for a real build: records the call, takes a moment, writes one file."""

    def build(path: Path, _whisper: object) -> None:
        calls.append(path)
        time.sleep(0.2)
        (path / "weights.bin").write_text("built")

    return build


def test_concurrent_ensures_build_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    monkeypatch.setitem(demo_models._BUILDERS, WHISPER_ID, fake_builder(calls))
    with ThreadPoolExecutor(max_workers=4) as pool:
        paths = list(pool.map(lambda _: ensure_demo_model(WHISPER_ID, tmp_path), range(4)))
    assert paths == [tmp_path / WHISPER_ID] * 4
    assert len(calls) == 1
    assert (tmp_path / WHISPER_ID / "weights.bin").read_text() == "built"
    assert not [entry for entry in tmp_path.iterdir() if ".building-" in entry.name or ".stale-" in entry.name]


def test_incomplete_directory_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    leftover = tmp_path / WHISPER_ID
    leftover.mkdir()
    (leftover / "partial.safetensors").write_text("interrupted")  # no metadata file: never completed
    calls: list[Path] = []
    monkeypatch.setitem(demo_models._BUILDERS, WHISPER_ID, fake_builder(calls))
    path = ensure_demo_model(WHISPER_ID, tmp_path)
    assert len(calls) == 1
    assert sorted(entry.name for entry in path.iterdir()) == ["README.md", "segprune_demo.json", "weights.bin"]
