"""A chat completion request -> the engine's GenerationRequest (limits checked, audio decoded)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from segprune_core.request import AudioClip, GenerationRequest, Message, Task, TextPart
from server.audio_input import audio_url_bytes, decode_base64, decode_clip
from server.errors import bad_request
from server.params import max_tokens, pruning_params, sampling_params, stop_sequences
from server.protocol import (
    AudioUrlContentPart,
    ChatCompletionRequest,
    ChatMessage,
    InputAudioContentPart,
    TextContentPart,
)
from server.settings import Settings


@dataclass
class ChatInput:
    generation: GenerationRequest
    audio_decode_ms: float


def refuse_unsupported(body: ChatCompletionRequest) -> None:
    """OpenAI options segprune cannot honour: a 400 rather than a silently different answer."""
    if body.n not in (None, 1):
        raise bad_request("Only n=1 is supported: segprune generates one choice per request.", param="n")
    unsupported = {
        "logprobs": bool(body.logprobs),
        "top_logprobs": bool(body.top_logprobs),
        "frequency_penalty": bool(body.frequency_penalty),
        "presence_penalty": bool(body.presence_penalty),
        "logit_bias": bool(body.logit_bias),
        "tools": bool(body.tools),
        "tool_choice": body.tool_choice not in (None, "none", "auto"),
        "response_format": body.response_format not in (None, {"type": "text"}),
        "modalities": body.modalities not in (None, ["text"]),
        "audio": body.audio is not None,
    }
    for param, is_set in unsupported.items():
        if is_set:
            raise bad_request(f"'{param}' is not supported by segprune.", param=param, code="unsupported_parameter")


def _check_message(message: ChatMessage, index: int) -> None:
    if message.content is None:
        raise bad_request(f"messages[{index}] has no content.", param=f"messages[{index}].content")
    if message.role != "user" and isinstance(message.content, list):
        for j, part in enumerate(message.content):
            if not isinstance(part, TextContentPart):
                raise bad_request(
                    f"Audio is only accepted in user messages, not in a '{message.role}' message.",
                    param=f"messages[{index}].content[{j}]",
                )


def check_limits(body: ChatCompletionRequest, settings: Settings) -> None:
    """Cheap checks before any audio is decoded."""
    audio_parts = 0
    prompt_chars = 0
    for i, message in enumerate(body.messages):
        _check_message(message, i)
        if isinstance(message.content, str):
            prompt_chars += len(message.content)
            continue
        for part in message.content or []:
            if isinstance(part, TextContentPart):
                prompt_chars += len(part.text)
            else:
                audio_parts += 1
    if audio_parts > settings.max_audio_parts:
        raise bad_request(
            f"The request has {audio_parts} audio parts; the maximum is {settings.max_audio_parts} "
            "(setting SEGPRUNE_MAX_AUDIO_PARTS).",
            param="messages",
            code="too_many_audio_parts",
        )
    if prompt_chars > settings.max_prompt_chars:
        raise bad_request(
            f"The messages hold {prompt_chars} characters of text; the maximum is {settings.max_prompt_chars} "
            "(setting SEGPRUNE_MAX_PROMPT_CHARS).",
            param="messages",
            code="prompt_too_long",
        )


async def _part_bytes(part: InputAudioContentPart | AudioUrlContentPart, settings: Settings, param: str) -> bytes:
    if isinstance(part, InputAudioContentPart):
        return decode_base64(part.input_audio.data, param=f"{param}.input_audio.data")
    return await audio_url_bytes(part.audio_url.url, settings, param=f"{param}.audio_url.url")


async def build_chat_input(body: ChatCompletionRequest, settings: Settings, max_audio_seconds: float) -> ChatInput:
    refuse_unsupported(body)
    check_limits(body, settings)
    messages: list[Message] = []
    decode_ms = 0.0
    for i, message in enumerate(body.messages):
        content = message.content
        parts: list[TextPart | AudioClip] = []
        if isinstance(content, str):
            parts.append(TextPart(content))
        else:
            for j, part in enumerate(content or []):
                if isinstance(part, TextContentPart):
                    parts.append(TextPart(part.text))
                    continue
                param = f"messages[{i}].content[{j}]"
                data = await _part_bytes(part, settings, param)
                clip, ms = await run_in_threadpool(decode_clip, data, max_seconds=max_audio_seconds, param=param)
                parts.append(clip)
                decode_ms += ms
        role = "system" if message.role == "developer" else message.role
        messages.append(Message(role=role, content=tuple(parts)))

    generation = GenerationRequest(
        messages=tuple(messages),
        sampling=sampling_params(
            max_new_tokens=max_tokens(
                body.max_completion_tokens or body.max_tokens,
                settings,
                param="max_completion_tokens" if body.max_completion_tokens else "max_tokens",
            ),
            temperature=body.temperature,
            top_p=body.top_p,
            seed=body.seed,
            stop=stop_sequences(body.stop),
            default_temperature=1.0,  # OpenAI's default
        ),
        pruning=pruning_params(body.pruning, settings, Task.CHAT, seed=body.seed),
        task=Task.CHAT,
    )
    return ChatInput(generation=generation, audio_decode_ms=decode_ms)
