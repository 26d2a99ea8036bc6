"""Errors of the HTTP API, in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.

`code` is the project's own error code (voice_common.errors.MqttCode: a session refused
or failed over HTTP says what it says over MQTT), plus the few that only HTTP has
(`HttpOnlyCode`: no or a bad API key, a path that does not exist, a rate limit, a bug).
`type` is OpenAI's error class for the status, which the `openai` package shows but does
not branch on (it picks its exception class from the status). Every error the app
answers, FastAPI's own included (validation, 404, 405), goes out in this shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from voice_common.errors import MqttCode, WireError


class HttpOnlyCode(StrEnum):
    """Error codes only the HTTP front sends (the rest are MqttCode values)."""

    UNAUTHORIZED = "unauthorized"
    NOT_FOUND = "not_found"
    RATE_LIMITED = "rate_limited"
    INTERNAL_ERROR = "internal_error"


ErrorCode = MqttCode | HttpOnlyCode

#: The HTTP status each code answers with.
STATUS: dict[str, int] = {
    MqttCode.INVALID_REQUEST: 400,
    MqttCode.INVALID_FORMAT: 400,
    MqttCode.AUDIO_LOST: 400,
    MqttCode.CANCELLED: 400,
    HttpOnlyCode.UNAUTHORIZED: 401,
    MqttCode.DISABLED: 403,
    HttpOnlyCode.NOT_FOUND: 404,
    MqttCode.UNKNOWN_VOICE: 404,
    MqttCode.VOICE_EXISTS: 409,
    MqttCode.EXPIRED: 410,
    MqttCode.TOO_LARGE: 413,
    HttpOnlyCode.RATE_LIMITED: 429,
    HttpOnlyCode.INTERNAL_ERROR: 500,
    MqttCode.BACKEND_ERROR: 502,
    MqttCode.BUSY: 503,
    MqttCode.SERVICE_UNAVAILABLE: 503,
    MqttCode.INTERRUPTED: 503,
    MqttCode.TIMEOUT: 504,
}


def error_type(status: int) -> str:
    """OpenAI's `type` for a status."""
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    return "server_error" if status >= 500 else "invalid_request_error"


class ApiError(Exception):
    """An error answer: raise it in a route or dependency and the app sends it.

    `status` defaults to the code's (STATUS); `headers` go with it (`WWW-Authenticate`,
    `Retry-After`); `param` names the request field at fault, as OpenAI does.
    """

    def __init__(self, text: str, code: ErrorCode, *, status: int | None = None,
                 headers: Mapping[str, str] | None = None, param: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code
        self.status = status or STATUS.get(code, 400)
        self.headers = dict(headers or {})
        self.param = param

    @classmethod
    def of(cls, err: WireError) -> ApiError:
        """The answer to a core error (a SessionError: refused, busy, failed) with its code."""
        code = err.code if isinstance(err.code, (MqttCode, HttpOnlyCode)) else MqttCode.BACKEND_ERROR
        return cls(err.text, code)

    def response(self) -> JSONResponse:
        return error_response(self.text, self.code, self.status, self.headers, self.param)


def error_body(text: str, code: str, status: int, param: str | None = None) -> dict[str, object]:
    return {"error": {"message": text, "type": error_type(status), "param": param, "code": str(code)}}


def error_response(text: str, code: str, status: int, headers: Mapping[str, str] | None = None,
                   param: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(text, code, status, param), status_code=status, headers=dict(headers or {}))


def _validation_message(err: RequestValidationError) -> tuple[str, str | None]:
    """`'model': Field required` from the first problem FastAPI found, and the field."""
    problems = err.errors()
    if not problems:
        return "invalid request", None
    first = problems[0]
    where = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "header", "path")]
    field = ".".join(where) or None
    text = str(first.get("msg", "invalid value"))
    return (f"{field!r}: {text}" if field else text), field


def install_error_handlers(app: FastAPI) -> None:
    """Every error the app answers, in OpenAI's shape."""

    async def on_api_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def on_validation(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        text, field = _validation_message(exc)
        return error_response(text, MqttCode.INVALID_REQUEST, 400, param=field)

    async def on_http(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        codes: dict[int, ErrorCode] = {401: HttpOnlyCode.UNAUTHORIZED, 404: HttpOnlyCode.NOT_FOUND,
                                       413: MqttCode.TOO_LARGE}
        code = codes.get(exc.status_code, MqttCode.INVALID_REQUEST)
        if exc.status_code >= 500:
            code = HttpOnlyCode.INTERNAL_ERROR
        return error_response(str(exc.detail), code, exc.status_code, exc.headers)

    async def on_bug(_request: Request, exc: Exception) -> JSONResponse:
        # Starlette logs the traceback after this answer; the client gets no internals.
        return error_response("internal error (the bridge's log has the details)", HttpOnlyCode.INTERNAL_ERROR, 500)

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_bug)
