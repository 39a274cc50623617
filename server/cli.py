"""`segprune serve`: one flag per setting; flags override SEGPRUNE_* variables, which override defaults."""

from __future__ import annotations

import argparse
import logging
import sys
import typing

from pydantic import ValidationError

from server.settings import Settings

# List settings take one value per flag, repeated: --model A --model B.
SINGULAR_FLAGS = {
    "models": "--model",
    "served_model_names": "--served-model-name",
    "api_keys": "--api-key",
    "allowed_audio_url_hosts": "--allowed-audio-url-host",
}


def _is_list(annotation: object) -> bool:
    return typing.get_origin(annotation) is list or "list[" in str(annotation)


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    for name, field in Settings.model_fields.items():
        flag = SINGULAR_FLAGS.get(name, "--" + name.replace("_", "-"))
        env = "SEGPRUNE_" + name.upper()
        default = field.get_default(call_default_factory=True)
        default = getattr(default, "value", default)  # an enum shows as its value
        help_text = f"{field.description + '; ' if field.description else ''}env {env}, default {default!r}"
        if field.annotation is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif _is_list(field.annotation):
            metavar = flag[2:].upper().replace("-", "_")
            parser.add_argument(
                flag, dest=name, action="append", default=None, metavar=metavar, help=help_text + " (repeatable)"
            )
        else:
            parser.add_argument(flag, dest=name, default=None, metavar=name.upper(), help=help_text)


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides = {name: value for name in Settings.model_fields if (value := getattr(args, name, None)) is not None}
    return Settings(**overrides)


def run_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from server.app import create_app

    try:
        settings = settings_from_args(args)
    except ValidationError as exc:
        print(f"segprune serve: invalid settings:\n{exc}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=int(settings.shutdown_timeout_seconds),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="segprune serve", description="Serve audio-language models, OpenAI-style.")
    add_serve_arguments(parser)
    run_serve(parser.parse_args(argv))
