"""Errors a client can cause. The server maps each to a 4xx OpenAI error; anything else is a 5xx."""


class SegpruneError(Exception):
    """Base of every client-caused error. `param` names the offending request field, if any."""

    status_code = 400
    error_type = "invalid_request_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code


class AudioDecodeError(SegpruneError):
    code = "invalid_audio"


class AudioTooLongError(SegpruneError):
    code = "audio_too_long"


class UnsupportedTaskError(SegpruneError):
    """The model cannot do what was asked (e.g. chat on a Whisper model)."""

    code = "unsupported_task"


class InvalidRequestError(SegpruneError):
    pass
