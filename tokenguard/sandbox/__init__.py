"""The Apify-compatible local sandbox API server (needs the ``sandbox`` extra: aiohttp).

Start it with ``tokenguard sandbox serve [--port 0] [--seed demo|empty|bench:N] [--json]``,
or in tests with :func:`tokenguard.sandbox.testing.running_sandbox` (fixtures ``sandbox`` and
``empty_sandbox`` in tests/conftest.py). The seeds are described in
:mod:`tokenguard.sandbox.seed`; the served routes and what each needs are the table in
:mod:`tokenguard.sandbox.routes`; the scope rules are in :mod:`tokenguard.sandbox.grants`.

Modules: ``state`` (in-memory account, IDs, clock), ``grants`` (scope validation and the
grant check; independent of ``tokenguard.permissions``), ``routes`` (route table),
``handlers`` (one function per operation), ``objects`` (JSON shapes per the OpenAPI spec),
``protocol`` (request/reply types), ``limits`` (token buckets), ``server`` (aiohttp, auth,
errors, limits, faults, controls), ``seed``, ``testing``.

Conventions:

- Auth: ``Authorization: Bearer <token>`` or ``?token=``. No token: 401 token-not-provided;
  unknown, revoked or expired (by the sandbox clock): 401 user-or-token-not-found.
- Every authorised success on a single resource carries ``X-Sandbox-Grant`` (D18):
  ``unscoped | created | resource | account | default-run-storage | anonymous``.
- Errors are ``{"error": {"type", "message"}}``: 400 invalid-input /
  invalid-content-type-header, 401, 403 insufficient-permissions, 404 record-not-found /
  page-not-found, 405 method-not-allowed, 413 request-too-large (body over 9437184 bytes,
  also after decompression), 415 unsupported-content-encoding (gzip and deflate are
  accepted), 429 rate-limit-exceeded (with ``X-RateLimit-Limit``).
- Rate limits: account-wide token bucket (250,000/minute, or ``--rate-limit N`` per
  second) and per resource (60 req/s; 200 for key-value records; 400 for run-actor,
  run-task and push-items). Collection routes (lists, creates, the token API) only count
  against the account limit.
- General access: the account setting (test control below) unless a storage has its own
  ``generalAccess`` (``PUT`` the storage; FOLLOW_USER_SETTING is the default). Anonymous
  requests to a restricted account get 401 even for missing resources.
- Taken names: 409 actor-task-name-not-unique / schedule-name-not-unique where the spec
  documents Conflict (task create and update, schedule create), else 400 with the spec's
  ``*-name-not-unique`` type. Deleting an Actor or task deletes its webhooks.
- Dataset items: offset, limit, desc, fields, omit, clean, skipEmpty, skipHidden,
  ``format=json|jsonl`` (other formats: 400).
- Lists of datasets, key-value stores and request queues show named storages unless
  ``?unnamed=1`` (unnamed ones then list with ``name: ""``, since the list schema requires
  a string).

Test controls (admin token only: no token 401, any other token 403; exempt from rate limits,
faults and stats):

- ``POST /v2/_sandbox/clock`` ``{"advanceSeconds": N}`` moves the sandbox clock forward;
  ``GET`` reads it. Answers ``{"data": {"now": ISO}}``.
- ``POST /v2/_sandbox/faults`` ``{"status": 401|429|500|502|503|504, "count": N}``,
  ``{"kind": "latency", "ms": M, "count": N}`` or ``{"kind": "drop", "count": N}``: applies
  to the next N non-control requests, queued in order; ``drop`` closes the connection with
  no answer. ``GET`` lists pending faults, ``DELETE`` clears them.
- ``PUT /v2/_sandbox/settings`` ``{"generalResourceAccess": "RESTRICTED" |
  "ANYONE_WITH_ID_CAN_READ"}``; ``GET`` reads it.
- ``GET /v2/_sandbox/stats``: ``{"data": {"total": N, "items": [{"method", "route",
  "status", "count"}]}}`` where ``route`` is the route pattern (``<unknown>`` for 404
  pages) and status 0 marks a dropped connection; ``DELETE`` resets the counts.
"""

from __future__ import annotations
