"""Run a real sandbox in a background thread, for tests and scripts.

>>> with running_sandbox("demo") as sb:           # doctest: +SKIP
...     api = ApifyApi(sb.url, sb.admin_token)
...     reader = sb.token("storage-reader")        # a seeded token's Secret

The server runs on its own event loop in a daemon thread; every look at the state from the
test thread goes through :meth:`SandboxHandle.on_loop`, so state is only touched on the loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from tokenguard.sandbox.seed import build
from tokenguard.sandbox.server import SandboxServer
from tokenguard.sandbox.state import SandboxState
from tokenguard.secrets import Secret

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SandboxHandle:
    """A running sandbox: its base URL (API under ``/v2``), admin token and username."""

    url: str
    admin_token: Secret
    username: str
    server: SandboxServer = field(repr=False, compare=False)
    loop: asyncio.AbstractEventLoop = field(repr=False, compare=False)

    @property
    def api_url(self) -> str:
        """The API root, ``<url>/v2``."""
        return self.url + "/v2"

    def on_loop(self, func: Callable[[SandboxState], T]) -> T:
        """Run ``func(state)`` on the server's loop thread and return its result."""
        result: Future[T] = Future()

        def run() -> None:
            try:
                result.set_result(func(self.server.state))
            except BaseException as exc:  # handed back to the caller's thread
                result.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return result.result(timeout=30)

    def token(self, name: str) -> Secret:
        """The secret of the seeded token called ``name`` (KeyError if there is none)."""
        return Secret(self.on_loop(lambda s: s.token_named(name).secret))

    def ref(self, name: str) -> str:
        """``username~name`` for a resource of this account."""
        return f"{self.username}~{name}"

    def resource_id(self, kind: str, name: str) -> str:
        """The ID of the resource of ``kind`` (e.g. ``"dataset"``) called ``name``."""
        from tokenguard.sandbox.state import Kind

        def find(state: SandboxState) -> str:
            return state.names[Kind(kind)][name]

        return self.on_loop(find)


@contextmanager
def running_sandbox(
    seed: str | SandboxState = "demo", *, rate_limit: float | None = None
) -> Iterator[SandboxHandle]:
    """Serve a fresh sandbox on 127.0.0.1 (free port) until the block ends."""
    state = build(seed) if isinstance(seed, str) else seed
    server = SandboxServer(state, host="127.0.0.1", port=0, rate_limit=rate_limit)
    loop = asyncio.new_event_loop()
    started: Future[str] = Future()
    stop: list[asyncio.Event] = []

    async def main() -> None:
        stop.append(asyncio.Event())
        try:
            url = await server.start()
        except BaseException as exc:
            started.set_exception(exc)
            return
        started.set_result(url)
        await stop[0].wait()
        await server.stop()

    def thread_main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(main())
        finally:
            loop.close()

    thread = threading.Thread(target=thread_main, name="tokenguard-sandbox", daemon=True)
    thread.start()
    try:
        url = started.result(timeout=30)
        handle = SandboxHandle(
            url=url,
            admin_token=Secret(state.admin_token.secret),
            username=state.username,
            server=server,
            loop=loop,
        )
        yield handle
    finally:
        if stop and not loop.is_closed():
            loop.call_soon_threadsafe(stop[0].set)
        thread.join(timeout=30)
