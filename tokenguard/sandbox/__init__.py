"""The Apify-compatible local sandbox API server (needs the ``sandbox`` extra: aiohttp).

Import :mod:`tokenguard.sandbox.testing` for ``running_sandbox()`` and
:mod:`tokenguard.sandbox.server` for ``SandboxServer``; the seeds are described in
:mod:`tokenguard.sandbox.seed`.
"""

from __future__ import annotations
