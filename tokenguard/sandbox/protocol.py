"""Framework-free request and reply types shared by the route handlers and the server.

Handlers are plain synchronous functions ``(Call) -> Reply``: they run on the event loop
thread, mutate state without awaiting, and never see aiohttp, so they stay simple to test.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tokenguard.sandbox.state import Resource, SandboxState, TokenRow

MAX_BODY_BYTES = 9 * 1024 * 1024  # Apify's documented push-items limit (9 MB)


class SandboxApiError(Exception):
    """An Apify-shaped error answer: ``{"error": {"type", "message"}}`` with ``status``."""

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.headers = dict(headers or {})


def invalid(message: str) -> SandboxApiError:
    """400 invalid-input."""
    return SandboxApiError(400, "invalid-input", message)


def not_found(what: str) -> SandboxApiError:
    """404 record-not-found (D1: whoever asks)."""
    return SandboxApiError(404, "record-not-found", f"{what} was not found")


def forbidden(message: str) -> SandboxApiError:
    """403 insufficient-permissions."""
    return SandboxApiError(403, "insufficient-permissions", message)


@dataclass(slots=True)
class Reply:
    """What a handler answers. ``body`` is JSON-serialised unless it is bytes."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=utf-8"


def data(obj: Any, status: int = 200) -> Reply:
    """The single-object envelope ``{"data": {...}}``."""
    return Reply(status, {"data": obj})


def no_content() -> Reply:
    """204 with no body (deletes)."""
    return Reply(204, None)


_TRUE = frozenset({"1", "true", "yes"})
_FALSE = frozenset({"0", "false", "no", ""})


@dataclass(slots=True)
class Call:
    """One authenticated (or anonymous) request as a handler sees it."""

    state: SandboxState
    method: str
    path: str
    params: dict[str, str]
    query: Mapping[str, str]
    body: bytes
    content_type: str
    base_url: str
    token: TokenRow | None = None
    target: Resource | None = None
    by_name: bool = False
    grant: str | None = None

    def json(self, *, required: bool = True) -> Any:
        """The JSON body; 400 for a wrong content type or malformed JSON."""
        if not self.body:
            if required:
                raise invalid("The request body is empty; a JSON body is required")
            return None
        if self.content_type and not _is_json(self.content_type):
            raise SandboxApiError(
                400,
                "invalid-content-type-header",
                f"Content-Type {self.content_type!r} is not supported here; send application/json",
            )
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            raise invalid("The request body is not valid JSON") from None
        except RecursionError:
            # json.loads recurses per nesting level: a body like "[[[[...]]]]" must be a
            # 400, not an internal error.
            raise invalid("The request body's JSON is nested too deeply") from None

    def json_object(self, *, required: bool = True) -> dict[str, Any]:
        """The JSON body, which must be an object."""
        value = self.json(required=required)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise invalid("The request body must be a JSON object")
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean query parameter (``1``/``true``/``0``/``false``)."""
        raw = self.query.get(name)
        if raw is None:
            return default
        value = raw.strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise invalid(f"Query parameter {name!r} must be a boolean (1/0/true/false)")

    def int_param(
        self, name: str, default: int, *, minimum: int = 0, maximum: int | None = None
    ) -> int:
        """A non-negative integer query parameter."""
        raw = self.query.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise invalid(f"Query parameter {name!r} must be an integer") from None
        if value < minimum:
            raise invalid(f"Query parameter {name!r} must be at least {minimum}")
        if maximum is not None and value > maximum:
            value = maximum
        return value


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")
