"""The aiohttp server: authentication, error shapes, envelopes, limits, faults and controls.

One low-level ``aiohttp.web.Server`` handler serves every path through the sandbox's own
route table (so unknown routes, wrong methods and bad bodies all get Apify's error shape).
Request bodies are read and decompressed (gzip/deflate, as apify-client sends bodies of
1 KiB and more) here with a size cap, never by aiohttp, so a decompression bomb or a broken
stream is a 400 like any other bad input. The server never answers a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import string
import zlib
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote

from tokenguard.sandbox.grants import Denied, authorize, require_unscoped
from tokenguard.sandbox.handlers import label, last_run
from tokenguard.sandbox.limits import RateLimiter
from tokenguard.sandbox.protocol import (
    MAX_BODY_BYTES,
    Call,
    Reply,
    SandboxApiError,
    forbidden,
    invalid,
    not_found,
)
from tokenguard.sandbox.routes import ROUTES, Route, RouteTable, Via
from tokenguard.sandbox.state import (
    GeneralResourceAccess,
    Kind,
    Resource,
    Run,
    SandboxState,
    TokenRow,
    iso,
)

try:
    from aiohttp import web
    from aiohttp.http_exceptions import HttpProcessingError
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "The tokenguard sandbox needs aiohttp: pip install 'tokenguard[sandbox]'"
    ) from exc

log = logging.getLogger(__name__)


class _QuietMalformedRequests(logging.Filter):
    """Malformed HTTP (bad request line, headers or chunking) is bad client input: aiohttp
    answers it with a 400 and would log it with a traceback at ERROR. Keep a one-line DEBUG
    record instead, without the exception text (it can quote a header, token included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg = "Rejected a malformed HTTP request (%s)"
            record.args = (type(exc).__name__,)
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


#: The logger aiohttp's connection handler reports protocol errors to.
http_log = logging.getLogger(__name__ + ".http")
http_log.addFilter(_QuietMalformedRequests())

CONTROL_PREFIX = "/v2/_sandbox/"
_JSON = "application/json; charset=utf-8"
SHUTDOWN_GRACE_SECONDS = 2.0
MAX_CLOCK_ADVANCE = 100 * 366 * 86400  # seconds per call: a century
MAX_CLOCK_YEAR = 9000
FAULT_STATUSES = frozenset({401, 429, 500, 502, 503, 504})
_FAULT_TYPES = {
    401: "user-or-token-not-found",
    429: "rate-limit-exceeded",
}
_RUN_STORAGE = {
    Kind.DATASET: "dataset_id",
    Kind.KEY_VALUE_STORE: "kvs_id",
    Kind.REQUEST_QUEUE: "rq_id",
}


_ID_CHARS = frozenset(string.ascii_letters + string.digits + "-_.~")


def _bad_id(ref: str) -> bool:
    # IDs are 17 alphanumerics and names are username~name; anything with other characters
    # (or absurdly long) is malformed input, not a missing resource.
    return len(ref) > 256 or not all(c in _ID_CHARS for c in ref)


@dataclass(frozen=True, slots=True)
class Fault:
    """A pending injected fault: ``kind`` is ``status``, ``latency`` or ``drop``."""

    kind: str
    count: int
    status: int = 0
    ms: int = 0

    def to_json(self) -> dict[str, Any]:
        """JSON form for the faults control's answer."""
        out: dict[str, Any] = {"kind": self.kind, "count": self.count}
        if self.kind == "status":
            out["status"] = self.status
        if self.kind == "latency":
            out["ms"] = self.ms
        return out


class SandboxApp:
    """The request handler and everything it keeps between requests."""

    def __init__(self, state: SandboxState, *, rate_limit: float | None = None) -> None:
        self.state = state
        self.table = RouteTable(ROUTES)
        self.limiter = RateLimiter(rate_limit)
        self.faults: list[Fault] = []
        self.stats: Counter[tuple[str, str, int]] = Counter()
        self.base_url = ""

    # -- entry point ---------------------------------------------------------------------

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Serve one request; never lets an exception escape as a traceback."""
        try:
            return await self._handle(request)
        except Exception:
            log.exception("sandbox: unexpected error")
            return self._error(SandboxApiError(500, "internal-server-error", "Internal error"))

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        raw_path = request.raw_path.split("?", 1)[0]
        try:
            # Split before decoding so an encoded "/" stays inside its segment.
            segments = [unquote(seg, errors="strict") for seg in raw_path.split("/")]
        except UnicodeDecodeError:
            return self._error(invalid("The request path is not valid UTF-8"))
        path = "/".join(segments)
        method = request.method.upper()
        head = method == "HEAD"
        if head:
            method = "GET"
        if path.startswith(CONTROL_PREFIX):
            return await self._control(request, method, path)
        route, params, allowed = self.table.match(method, segments)
        pattern = route.pattern if route is not None else "<unknown>"

        fault = self._next_fault()
        if fault is not None:
            if fault.kind == "drop":
                self.stats[(request.method, pattern, 0)] += 1
                if request.transport is not None:
                    request.transport.close()
                # Never sent: the transport is closed, so the client sees the connection end
                # without a status line (aiohttp needs a response object all the same).
                return web.Response(status=500)
            if fault.kind == "latency":
                await asyncio.sleep(fault.ms / 1000)
            else:
                error = SandboxApiError(
                    fault.status,
                    _FAULT_TYPES.get(fault.status, "internal-server-error"),
                    f"Injected fault: HTTP {fault.status}",
                )
                if fault.status == 429:
                    error.headers["X-RateLimit-Limit"] = self.limiter.account_limit
                return self._finish(request.method, pattern, self._error(error))

        try:
            reply = await self._dispatch(request, method, path, (route, params, allowed))
        except SandboxApiError as exc:
            response = self._error(exc)
        else:
            response = self._render(reply, head=head)
        return self._finish(request.method, pattern, response)

    def _finish(self, method: str, pattern: str, response: web.Response) -> web.Response:
        self.stats[(method, pattern, response.status)] += 1
        return response

    def _next_fault(self) -> Fault | None:
        if not self.faults:
            return None
        fault = self.faults[0]
        if fault.count <= 1:
            self.faults.pop(0)
        else:
            self.faults[0] = replace(fault, count=fault.count - 1)
        return fault

    # -- the normal path -----------------------------------------------------------------

    async def _dispatch(
        self,
        request: web.BaseRequest,
        method: str,
        path: str,
        match: tuple[Route | None, dict[str, str], tuple[str, ...]],
    ) -> Reply:
        route, params, allowed = match
        if not self.limiter.take_account():
            raise SandboxApiError(
                429,
                "rate-limit-exceeded",
                "Rate limit exceeded for the account",
                {"X-RateLimit-Limit": self.limiter.account_limit},
            )
        if route is None:
            if allowed:
                methods = ",".join(allowed)
                raise SandboxApiError(
                    405,
                    "method-not-allowed",
                    "This API end-point can only be accessed using the following HTTP "
                    f"methods: {methods}",
                    {"Allow": ", ".join(allowed)},
                )
            raise SandboxApiError(404, "page-not-found", f"Page {path!r} was not found")
        body = await self._read_body(request)
        token = self._authenticate(request)
        call = Call(
            state=self.state,
            method=method,
            path=path,
            params=params,
            query=request.query,
            body=body,
            content_type=request.headers.get("Content-Type", ""),
            base_url=self.base_url,
            token=token,
        )
        if token is None and not route.anonymous_ok:
            raise _no_token()
        if route.target is not None:
            try:
                call.target, call.by_name = self._resolve(
                    route, params, request.query.get("status")
                )
            except SandboxApiError:
                # Without a token, only an open account tells a missing resource (404) from
                # one that needs a token: a restricted account answers 401 for both (D12).
                if token is None and self.state.general_access is not (
                    GeneralResourceAccess.ANYONE_WITH_ID_CAN_READ
                ):
                    raise _no_token() from None
                raise
            if not self.limiter.take_resource(call.target.id, route.rate):
                raise SandboxApiError(
                    429,
                    "rate-limit-exceeded",
                    f"Rate limit of {route.rate} requests per second exceeded "
                    f"for {call.target.kind.value} {call.target.id}",
                    {"X-RateLimit-Limit": str(route.rate)},
                )
        try:
            # Only D11 reads get here without a token; anything else needs one (D12).
            if token is None and (call.target is None or route.permission is None):
                raise _no_token()
            if route.unscoped_only and token is not None:
                call.grant = require_unscoped(token, route.unscoped_only)
            if route.permission is not None and call.target is not None:
                call.grant = authorize(
                    self.state,
                    token,
                    route.permission,
                    call.target,
                    by_name=call.by_name,
                    anonymous_ok=route.anonymous_ok,
                )
                if token is None and call.grant != "anonymous":  # pragma: no cover
                    raise Denied("anonymous")
        except Denied as exc:
            if token is None:
                raise _no_token() from None
            raise forbidden(str(exc)) from None
        reply = route.handler(call)
        if call.grant is not None and not route.listing and reply.status < 400:
            reply.headers["X-Sandbox-Grant"] = call.grant
        return reply

    def _resolve(
        self, route: Route, params: dict[str, str], status: str | None = None
    ) -> tuple[Resource, bool]:
        assert route.target is not None
        ref = params["id"]
        if _bad_id(ref):
            raise invalid(f"Invalid resource ID or name: {ref[:80]!r}")
        if route.via is not Via.DIRECT:
            run, by_name = self._run_for(route.via, ref, status)
            storage = self.state.get(route.target, getattr(run, _RUN_STORAGE[route.target]))
            if storage is None:
                raise not_found(f"Default {route.target.value} of run {run.id!r}")
            return storage, by_name
        resource, by_name = self.state.lookup(route.target, ref)
        if resource is None:
            raise not_found(f"{label(route.target)} {ref!r}")
        return resource, by_name

    def _run_for(self, via: Via, ref: str, status: str | None) -> tuple[Run, bool]:
        if via is Via.RUN:
            run, by_name = self.state.lookup(Kind.RUN, ref)
            if run is None:
                raise not_found(f"Actor run {ref!r}")
            assert isinstance(run, Run)
            return run, by_name
        owner_kind = Kind.ACTOR if via is Via.ACTOR_LAST_RUN else Kind.TASK
        owner, _ = self.state.lookup(owner_kind, ref)
        if owner is None:
            raise not_found(f"{label(owner_kind)} {ref!r}")
        last = last_run(self.state, owner, status)
        if last is None:
            raise not_found(f"Last run of {label(owner_kind)} {ref!r}")
        # Reached through the Actor or task, not the run's ID: never an anonymous D11 read.
        return last, True

    def _authenticate(self, request: web.BaseRequest) -> TokenRow | None:
        header = request.headers.get("Authorization", "")
        secret: str | None = None
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise SandboxApiError(
                    401, "user-or-token-not-found", "User was not found or token is not valid"
                )
            secret = value.strip()
        else:
            secret = request.query.get("token") or None
        if secret is None:
            return None
        row = self.state.token_by_secret(secret)
        if row is None or row.expired(self.state.clock.now()):
            # D12: unknown, revoked and expired tokens all look the same.
            raise SandboxApiError(
                401, "user-or-token-not-found", "User was not found or token is not valid"
            )
        return row

    async def _read_body(self, request: web.BaseRequest) -> bytes:
        if not request.body_exists:
            return b""
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                chunk = await request.content.readany()
                if not chunk:
                    break
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise _too_large()
                chunks.append(chunk)
        except (web.HTTPException, ConnectionError, asyncio.IncompleteReadError) as exc:
            raise invalid("The request body could not be read") from exc
        except Exception as exc:  # aiohttp payload errors (bad chunking, ...)
            if isinstance(exc, SandboxApiError):
                raise
            raise invalid("The request body could not be read") from None
        body = b"".join(chunks)
        encoding = request.headers.get("Content-Encoding", "").strip().lower()
        if encoding in ("", "identity"):
            return body
        if encoding not in ("gzip", "deflate", "x-gzip"):
            raise SandboxApiError(
                415,
                "unsupported-content-encoding",
                f"Content-Encoding {encoding!r} is not supported (use gzip or deflate)",
            )
        return _decompress(body, encoding)

    # -- rendering -----------------------------------------------------------------------

    def _render(self, reply: Reply, *, head: bool = False) -> web.Response:
        if reply.body is None:
            body = b""
        elif isinstance(reply.body, bytes):
            body = reply.body
        else:
            body = json.dumps(reply.body, separators=(",", ":")).encode()
        headers = dict(reply.headers)
        if reply.status != 204:
            headers["Content-Type"] = reply.content_type
        if head:
            headers["Content-Length"] = str(len(body))
            return web.Response(status=reply.status, headers=headers)
        return web.Response(status=reply.status, body=body or None, headers=headers)

    def _error(self, exc: SandboxApiError) -> web.Response:
        payload = {"error": {"type": exc.error_type, "message": exc.message}}
        headers = {"Content-Type": _JSON, **exc.headers}
        return web.Response(status=exc.status, body=json.dumps(payload).encode(), headers=headers)

    # -- test controls -------------------------------------------------------------------

    async def _control(
        self, request: web.BaseRequest, method: str, path: str
    ) -> web.StreamResponse:
        try:
            token = self._authenticate(request)
            if token is None:
                raise _no_token()
            if token.id != self.state.admin_token_id:
                raise forbidden("Sandbox test controls need the sandbox admin token")
            body = await self._read_body(request)
            call = Call(
                state=self.state,
                method=method,
                path=path,
                params={},
                query=request.query,
                body=body,
                content_type=request.headers.get("Content-Type", ""),
                base_url=self.base_url,
                token=token,
            )
            name = path[len(CONTROL_PREFIX) :].strip("/")
            return self._render(self._control_reply(name, method, call))
        except SandboxApiError as exc:
            return self._error(exc)

    def _control_reply(self, name: str, method: str, call: Call) -> Reply:
        if name == "clock" and method == "POST":
            body = call.json_object()
            seconds = body.get("advanceSeconds")
            if (
                isinstance(seconds, bool)
                or not isinstance(seconds, int | float)
                or not 0 <= seconds <= MAX_CLOCK_ADVANCE
            ):
                # The bound keeps the clock inside datetime's range (a clock past year 9999
                # would break every later request).
                raise invalid(
                    f"advanceSeconds must be a number from 0 to {MAX_CLOCK_ADVANCE} (100 years)"
                )
            if self.state.clock.now().year >= MAX_CLOCK_YEAR:
                raise invalid(f"The sandbox clock cannot move past the year {MAX_CLOCK_YEAR}")
            now = self.state.clock.advance(float(seconds))
            return Reply(200, {"data": {"now": iso(now)}})
        if name == "clock" and method == "GET":
            return Reply(200, {"data": {"now": iso(self.state.clock.now())}})
        if name == "faults" and method == "POST":
            self.faults.append(_parse_fault(call.json_object()))
            return Reply(200, {"data": {"pending": [f.to_json() for f in self.faults]}})
        if name == "faults" and method == "GET":
            return Reply(200, {"data": {"pending": [f.to_json() for f in self.faults]}})
        if name == "faults" and method == "DELETE":
            self.faults.clear()
            return Reply(200, {"data": {"pending": []}})
        if name == "settings" and method in ("PUT", "POST"):
            body = call.json_object()
            value = body.get("generalResourceAccess")
            allowed = ("RESTRICTED", "ANYONE_WITH_ID_CAN_READ")
            if value not in allowed:
                raise invalid("generalResourceAccess must be RESTRICTED or ANYONE_WITH_ID_CAN_READ")
            self.state.general_access = GeneralResourceAccess(value)
            return Reply(200, {"data": self._settings()})
        if name == "settings" and method == "GET":
            return Reply(200, {"data": self._settings()})
        if name == "stats" and method == "GET":
            return Reply(200, {"data": self.stats_json()})
        if name == "stats" and method == "DELETE":
            self.stats.clear()
            return Reply(200, {"data": self.stats_json()})
        raise SandboxApiError(404, "page-not-found", f"No sandbox control {name!r} for {method}")

    def _settings(self) -> dict[str, Any]:
        return {"generalResourceAccess": self.state.general_access.value}

    def stats_json(self) -> dict[str, Any]:
        """Request counts by method, route pattern and status (test controls excluded)."""
        items = [
            {"method": m, "route": r, "status": s, "count": c}
            for (m, r, s), c in sorted(self.stats.items())
        ]
        return {"total": sum(self.stats.values()), "items": items}


def _no_token() -> SandboxApiError:
    return SandboxApiError(
        401,
        "token-not-provided",
        "Authentication token was not provided: send Authorization: Bearer <token>",
    )


def _too_large() -> SandboxApiError:
    # 413 like the platform (OpenAPI PayloadTooLarge), limit 9437184 bytes.
    return SandboxApiError(
        413,
        "request-too-large",
        f"The request payload is too large (limit: {MAX_BODY_BYTES} bytes)",
    )


def _decompress(body: bytes, encoding: str) -> bytes:
    wbits = 16 + zlib.MAX_WBITS if encoding in ("gzip", "x-gzip") else zlib.MAX_WBITS
    try:
        decoder = zlib.decompressobj(wbits)
        out = decoder.decompress(body, MAX_BODY_BYTES + 1)
        if len(out) > MAX_BODY_BYTES or decoder.unconsumed_tail:
            raise _too_large()
        out += decoder.flush()
        if not decoder.eof:
            raise zlib.error("truncated stream")
    except zlib.error:
        if encoding == "deflate":
            # Some clients send raw deflate without the zlib header.
            try:
                raw = zlib.decompressobj(-zlib.MAX_WBITS)
                out = raw.decompress(body, MAX_BODY_BYTES + 1)
                if len(out) > MAX_BODY_BYTES or raw.unconsumed_tail:
                    raise _too_large() from None
                if raw.eof:
                    return out
            except zlib.error:
                pass
        raise invalid(f"The request body is not valid {encoding} data") from None
    if len(out) > MAX_BODY_BYTES:
        raise _too_large()
    return out


def _parse_fault(body: dict[str, Any]) -> Fault:
    count = body.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise invalid("count must be a positive integer")
    kind = body.get("kind")
    if kind is None and "status" in body:
        kind = "status"
    if kind == "status":
        status = body.get("status")
        if status not in FAULT_STATUSES:
            allowed = ", ".join(str(s) for s in sorted(FAULT_STATUSES))
            raise invalid(f"status must be one of {allowed}")
        return Fault("status", count, status=int(status))
    if kind == "latency":
        ms = body.get("ms")
        if isinstance(ms, bool) or not isinstance(ms, int) or not 0 <= ms <= 60_000:
            raise invalid("ms must be an integer between 0 and 60000")
        return Fault("latency", count, ms=ms)
    if kind == "drop":
        return Fault("drop", count)
    raise invalid("A fault is {status, count}, {kind: latency, ms, count} or {kind: drop, count}")


class SandboxServer:
    """A running sandbox bound to ``host:port`` (``port=0`` picks a free port)."""

    def __init__(
        self,
        state: SandboxState,
        *,
        host: str = "127.0.0.1",
        port: int = 8642,
        rate_limit: float | None = None,
    ) -> None:
        self.app = SandboxApp(state, rate_limit=rate_limit)
        self.host = host
        self.port = port
        self._runner: web.ServerRunner | None = None
        self.url = ""

    @property
    def state(self) -> SandboxState:
        """The account being served."""
        return self.app.state

    async def start(self) -> str:
        """Bind and start serving; returns the base URL (``http://host:port``)."""
        server = web.Server(
            self.app.handle, auto_decompress=False, access_log=None, logger=http_log
        )
        # Stopping waits for requests in flight, but not for long: a 60 s latency fault
        # must not hold up Ctrl+C.
        self._runner = web.ServerRunner(
            server, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE_SECONDS
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            self._runner = None
            raise
        port = self.port
        for address in self._runner.addresses:
            # (host, port) for IPv4, (host, port, flow, scope) for IPv6.
            port = int(address[1])
            break
        host = self.host if ":" not in self.host else f"[{self.host}]"
        self.url = f"http://{host}:{port}"
        self.app.base_url = self.url
        return self.url

    async def stop(self) -> None:
        """Stop serving and close every connection."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
