#!/usr/bin/env python3
"""Derive the response schemas of the endpoints the sandbox serves from Apify's OpenAPI spec.

Usage::

    python scripts/derive_response_schemas.py SPEC_PATH [-o tests/data/apify_response_schemas.json]

SPEC_PATH is the root ``openapi.yaml`` of the multi-file Apify API v2 OpenAPI 3.1 spec (its
``$ref``s are relative file paths, optionally with a JSON pointer fragment). The script follows
every ``$ref``, keeps only the structure of each response body (types, properties, required
fields, items, enums, composition, formats that constrain structure) and drops the prose
(descriptions, titles, examples, vendor extensions). Schema components become shared
``$defs`` entries so the file stays small and recursive schemas stay finite.

The result is plain JSON Schema (draft 2020-12): OpenAPI-only keywords are converted
(``nullable: true`` -> a ``"null"`` type, ``example`` dropped, OpenAPI-only formats such as
``int32`` or ``double`` dropped). Output is deterministic (sorted keys, stable order), so a
re-run on the same spec yields the same bytes.

The tests read the generated file only; they never read the spec (a user's clone has no
``../shared``). tokenguard's own extension endpoints (the token API and the ``/v2/_sandbox``
test controls) are not in Apify's spec: their hand-written schemas live in
``TOKENGUARD_ENDPOINTS`` below and are written to the same file, marked ``"origin":
"tokenguard"``. This is a developer tool run by hand; it needs PyYAML (in the ``dev`` extra).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml

DEFAULT_OUT = (
    Path(__file__).resolve().parent.parent / "tests" / "data" / "apify_response_schemas.json"
)

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

# The endpoints the sandbox serves, as the spec names them ("METHOD /v2/path/{param}").
# The sandbox also answers the deprecated /v2/acts/... prefix; the spec only documents
# /v2/actors/..., and the tests map the alias onto these keys.
SERVED_ENDPOINTS: tuple[str, ...] = (
    "GET /v2/users/me",
    # Actors
    "GET /v2/actors",
    "POST /v2/actors",
    "GET /v2/actors/{actorId}",
    "PUT /v2/actors/{actorId}",
    "DELETE /v2/actors/{actorId}",
    "GET /v2/actors/{actorId}/runs",
    "POST /v2/actors/{actorId}/runs",
    "GET /v2/actors/{actorId}/runs/last",
    # The last run's default storages (apify-client: actor.last_run().dataset(), ...)
    "GET /v2/actors/{actorId}/runs/last/dataset",
    "GET /v2/actors/{actorId}/runs/last/dataset/items",
    "POST /v2/actors/{actorId}/runs/last/dataset/items",
    "GET /v2/actors/{actorId}/runs/last/key-value-store",
    "GET /v2/actors/{actorId}/runs/last/key-value-store/keys",
    "GET /v2/actors/{actorId}/runs/last/key-value-store/records/{recordKey}",
    "PUT /v2/actors/{actorId}/runs/last/key-value-store/records/{recordKey}",
    "POST /v2/actors/{actorId}/runs/last/key-value-store/records/{recordKey}",
    "DELETE /v2/actors/{actorId}/runs/last/key-value-store/records/{recordKey}",
    "GET /v2/actors/{actorId}/runs/last/request-queue",
    # Actor tasks
    "GET /v2/actor-tasks",
    "POST /v2/actor-tasks",
    "GET /v2/actor-tasks/{actorTaskId}",
    "PUT /v2/actor-tasks/{actorTaskId}",
    "DELETE /v2/actor-tasks/{actorTaskId}",
    "GET /v2/actor-tasks/{actorTaskId}/runs",
    "POST /v2/actor-tasks/{actorTaskId}/runs",
    "GET /v2/actor-tasks/{actorTaskId}/runs/last",
    "GET /v2/actor-tasks/{actorTaskId}/runs/last/dataset",
    "GET /v2/actor-tasks/{actorTaskId}/runs/last/dataset/items",
    "POST /v2/actor-tasks/{actorTaskId}/runs/last/dataset/items",
    "GET /v2/actor-tasks/{actorTaskId}/runs/last/key-value-store",
    "GET /v2/actor-tasks/{actorTaskId}/runs/last/key-value-store/keys",
    "GET /v2/actor-tasks/{actorTaskId}/runs/last/key-value-store/records/{recordKey}",
    "PUT /v2/actor-tasks/{actorTaskId}/runs/last/key-value-store/records/{recordKey}",
    "POST /v2/actor-tasks/{actorTaskId}/runs/last/key-value-store/records/{recordKey}",
    "DELETE /v2/actor-tasks/{actorTaskId}/runs/last/key-value-store/records/{recordKey}",
    "GET /v2/actor-tasks/{actorTaskId}/runs/last/request-queue",
    # Actor runs
    "GET /v2/actor-runs",
    "GET /v2/actor-runs/{runId}",
    "POST /v2/actor-runs/{runId}/abort",
    # Run logs (text/plain; the spec documents no JSON schema for the 200)
    "GET /v2/actor-runs/{runId}/log",
    "GET /v2/logs/{buildOrRunId}",
    # A run's default storages (apify-client: run.dataset(), run.key_value_store(), ...)
    "GET /v2/actor-runs/{runId}/dataset",
    "GET /v2/actor-runs/{runId}/dataset/items",
    "POST /v2/actor-runs/{runId}/dataset/items",
    "GET /v2/actor-runs/{runId}/key-value-store",
    "GET /v2/actor-runs/{runId}/key-value-store/keys",
    "GET /v2/actor-runs/{runId}/key-value-store/records/{recordKey}",
    "PUT /v2/actor-runs/{runId}/key-value-store/records/{recordKey}",
    "POST /v2/actor-runs/{runId}/key-value-store/records/{recordKey}",
    "DELETE /v2/actor-runs/{runId}/key-value-store/records/{recordKey}",
    "GET /v2/actor-runs/{runId}/request-queue",
    # Datasets
    "GET /v2/datasets",
    "POST /v2/datasets",
    "GET /v2/datasets/{datasetId}",
    "PUT /v2/datasets/{datasetId}",
    "DELETE /v2/datasets/{datasetId}",
    "GET /v2/datasets/{datasetId}/items",
    "POST /v2/datasets/{datasetId}/items",
    # Key-value stores
    "GET /v2/key-value-stores",
    "POST /v2/key-value-stores",
    "GET /v2/key-value-stores/{storeId}",
    "PUT /v2/key-value-stores/{storeId}",
    "DELETE /v2/key-value-stores/{storeId}",
    "GET /v2/key-value-stores/{storeId}/keys",
    "GET /v2/key-value-stores/{storeId}/records/{recordKey}",
    "PUT /v2/key-value-stores/{storeId}/records/{recordKey}",
    "POST /v2/key-value-stores/{storeId}/records/{recordKey}",
    "DELETE /v2/key-value-stores/{storeId}/records/{recordKey}",
    # Request queues
    "GET /v2/request-queues",
    "POST /v2/request-queues",
    "GET /v2/request-queues/{queueId}",
    "PUT /v2/request-queues/{queueId}",
    "DELETE /v2/request-queues/{queueId}",
    # Schedules
    "GET /v2/schedules",
    "POST /v2/schedules",
    "GET /v2/schedules/{scheduleId}",
    "PUT /v2/schedules/{scheduleId}",
    "DELETE /v2/schedules/{scheduleId}",
    # Webhooks
    "GET /v2/webhooks",
    "POST /v2/webhooks",
    "GET /v2/webhooks/{webhookId}",
    "PUT /v2/webhooks/{webhookId}",
    "DELETE /v2/webhooks/{webhookId}",
)

# Keywords that carry structure and are valid JSON Schema 2020-12. Everything else
# (description, title, example(s), default, deprecated, readOnly, x-*, discriminator, xml,
# externalDocs, ...) is prose or OpenAPI tooling and is dropped.
_SCHEMA_CHILD = ("items", "additionalProperties", "not", "contains", "unevaluatedProperties")
_SCHEMA_LIST = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_MAP = ("properties", "patternProperties", "$defs")
_SCALAR_KEYWORDS = (
    "type",
    "enum",
    "const",
    "required",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
)
_DROPPED_KEYWORDS = frozenset(
    {
        "description",
        "title",
        "example",
        "examples",
        "default",
        "deprecated",
        "readOnly",
        "writeOnly",
        "externalDocs",
        "discriminator",
        "xml",
        "nullable",  # folded into "type" below
        "contentMediaType",
        "contentEncoding",
        "$comment",
    }
)
# JSON Schema formats that constrain the shape of a string. OpenAPI's numeric/binary formats
# (int32, int64, double, float, binary, byte) and unknown ones ("link") are not JSON Schema
# formats and are dropped.
_STRUCTURAL_FORMATS = frozenset({"date-time", "date", "time", "uri", "email", "uuid", "hostname"})


# Response headers that must be present. The spec marks no response header `required`, but
# dataset items are a bare JSON array whose paging lives only in these headers (the spec
# documents them on the 200; apify-client 3.x reads them to build its ListPage), so a
# response without them is unusable. Keyed by (endpoint, status).
_PAGINATION_HEADERS = (
    "X-Apify-Pagination-Count",
    "X-Apify-Pagination-Limit",
    "X-Apify-Pagination-Offset",
    "X-Apify-Pagination-Total",
)
REQUIRED_HEADERS: dict[tuple[str, str], tuple[str, ...]] = {
    (endpoint, "200"): _PAGINATION_HEADERS
    for endpoint in SERVED_ENDPOINTS
    # Every GET of dataset items: direct, a run's, and the last run's of an Actor or task.
    if endpoint.startswith("GET ")
    and re.search(r"/(datasets/\{datasetId\}|dataset)/items$", endpoint)
}


class SpecError(Exception):
    """The spec could not be loaded or does not have the expected shape."""


class SpecLoader:
    """Loads the multi-file spec lazily and resolves relative ``$ref``s across files."""

    # PyYAML rejects an unquoted `?` inside a flow sequence (`examples: [https://...?a=b]`).
    _UNQUOTED_FLOW_URL = re.compile(
        r"^(\s*[A-Za-z_]+:\s*)\[(https?://[^\]\"',]*\?[^\]\"',]*)\]\s*$"
    )

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._cache: dict[Path, Any] = {}

    def load(self, path: Path) -> Any:
        path = path.resolve()
        if path not in self._cache:
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise SpecError(f"cannot read {path}: {exc}") from exc
            try:
                self._cache[path] = yaml.safe_load(text)
            except yaml.YAMLError:
                # Quote the offending flow-sequence URLs in memory, then retry once.
                fixed = "\n".join(
                    self._UNQUOTED_FLOW_URL.sub(lambda m: f'{m.group(1)}["{m.group(2)}"]', line)
                    for line in text.splitlines()
                )
                try:
                    self._cache[path] = yaml.safe_load(fixed)
                except yaml.YAMLError as exc:
                    raise SpecError(f"cannot parse {path}: {exc}") from exc
        return self._cache[path]

    def fingerprint(self) -> str:
        """SHA-256 over the relative paths and bytes of every file loaded so far."""
        digest = hashlib.sha256()
        for path in sorted(self._cache):
            digest.update(str(path.relative_to(self.root)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
        return digest.hexdigest()

    def target(self, ref: str, base: Path) -> tuple[Path, str]:
        """The file and JSON pointer a ``$ref`` written in ``base`` points to."""
        file_part, _, pointer = ref.partition("#")
        path = (base.parent / unquote(file_part)).resolve() if file_part else base.resolve()
        return path, pointer

    def resolve(self, ref: str, base: Path) -> tuple[Any, Path]:
        """Follow one ``$ref``; returns the node and the file it lives in."""
        path, pointer = self.target(ref, base)
        node = self.load(path)
        for raw in pointer.split("/")[1:] if pointer else []:
            part = unquote(raw).replace("~1", "/").replace("~0", "~")
            if isinstance(node, list):
                node = node[int(part)]
            elif isinstance(node, dict) and part in node:
                node = node[part]
            else:
                raise SpecError(f"unresolvable $ref {ref!r} in {base}")
        return node, path

    def deref(self, node: Any, base: Path) -> tuple[Any, Path]:
        """Follow ``$ref`` chains of non-schema objects (path items, responses, headers)."""
        seen: set[tuple[Path, str]] = set()
        while isinstance(node, dict) and "$ref" in node:
            key = self.target(node["$ref"], base)
            if key in seen:
                raise SpecError(f"$ref cycle at {node['$ref']!r} in {base}")
            seen.add(key)
            node, base = self.resolve(node["$ref"], base)
        return node, base


class SchemaConverter:
    """Turns OpenAPI 3.1 schema objects into pruned JSON Schema 2020-12 with shared ``$defs``."""

    def __init__(self, loader: SpecLoader) -> None:
        self.loader = loader
        self.schemas_dir = loader.root / "components" / "schemas"
        self.defs: dict[str, Any] = {}
        self._def_sources: dict[str, Path] = {}

    def def_name(self, path: Path) -> str:
        rel = path.relative_to(self.schemas_dir).with_suffix("")
        name = rel.name
        other = self._def_sources.get(name)
        if other is not None and other != path:
            # Two components with one file name in different folders: qualify by folder.
            name = "_".join(rel.parts)
        return name

    def convert(self, schema: Any, base: Path) -> Any:
        if not isinstance(schema, dict):
            if isinstance(schema, bool):
                return schema
            raise SpecError(f"schema is not an object in {base}: {schema!r}")
        if "$ref" in schema:
            ref_schema = self._convert_ref(schema["$ref"], base)
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            rest = self._convert_plain(siblings, base)
            if not rest:
                return ref_schema
            return {"allOf": [ref_schema, rest]}
        return self._convert_plain(schema, base)

    def _convert_ref(self, ref: str, base: Path) -> dict[str, Any]:
        path, pointer = self.loader.target(ref, base)
        if not pointer and path.is_relative_to(self.schemas_dir):
            name = self.def_name(path)
            if name not in self._def_sources:
                self._def_sources[name] = path
                self.defs[name] = {}  # placeholder: breaks recursion
                self.defs[name] = self.convert(self.loader.load(path), path)
            return {"$ref": f"#/$defs/{name}"}
        node, node_base = self.loader.resolve(ref, base)
        return self.convert(node, node_base)  # type: ignore[no-any-return]

    def _convert_plain(self, schema: dict[str, Any], base: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in schema.items():
            if key in _SCHEMA_CHILD:
                out[key] = self.convert(value, base)
            elif key in _SCHEMA_LIST:
                out[key] = [self.convert(item, base) for item in value]
            elif key in _SCHEMA_MAP:
                out[key] = {name: self.convert(sub, base) for name, sub in value.items()}
            elif key == "format":
                if value in _STRUCTURAL_FORMATS:
                    out[key] = value
            elif key in _SCALAR_KEYWORDS:
                out[key] = value
            elif key in _DROPPED_KEYWORDS or key.startswith("x-"):
                continue
            else:
                raise SpecError(f"unknown schema keyword {key!r} in {base}; decide keep or drop")
        if schema.get("nullable") is True:
            out = _make_nullable(out)
        return out


def _make_nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI 3.0's ``nullable: true`` as JSON Schema: add ``"null"`` to the type."""
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    if isinstance(kind, list):
        return {**schema, "type": [*kind, "null"] if "null" not in kind else kind}
    return {"anyOf": [schema, {"type": "null"}]}


def _header_schema(loader: SpecLoader, header: Any, base: Path) -> tuple[Any, Path, bool]:
    """A header's value schema, the file it lives in, and whether the spec marks it required."""
    header, base = loader.deref(header, base)
    required = bool(header.get("required", False))
    if "schema" in header:
        return header["schema"], base, required
    for media in header.get("content", {}).values():
        if "schema" in media:
            return media["schema"], base, required
    return {}, base, required


def _response_entry(
    loader: SpecLoader,
    converter: SchemaConverter,
    *,
    endpoint: str,
    status: str,
    response: dict[str, Any],
    base: Path,
) -> dict[str, Any]:
    """One response: its JSON body schema (or that it has none), content types and headers."""
    entry: dict[str, Any] = {}
    content = response.get("content") or {}
    if status == "204":
        # RFC 9110 §15.3.5: a 204 carries no content. The spec still attaches an empty JSON
        # object schema to some 204s (e.g. DELETE actor); the wire can only be empty.
        entry["body"] = "none"
    elif content:
        entry["contentTypes"] = sorted(content)
        json_media = content.get("application/json")
        if json_media is not None and "schema" in json_media:
            entry["schema"] = converter.convert(json_media["schema"], base)
    else:
        entry["body"] = "none"
    headers_node, headers_base = loader.deref(response.get("headers") or {}, base)
    headers: dict[str, Any] = {}
    required_headers: set[str] = set(REQUIRED_HEADERS.get((endpoint, status), ()))
    for name, header in headers_node.items():
        schema, schema_base, required = _header_schema(loader, header, headers_base)
        headers[name] = converter.convert(schema, schema_base)
        if required:
            required_headers.add(name)
    missing = required_headers - set(headers)
    if missing:
        raise SpecError(f"{endpoint} {status}: required headers not documented: {sorted(missing)}")
    if headers:
        entry["headers"] = headers
    if required_headers:
        entry["requiredHeaders"] = sorted(required_headers)
    return entry


def derive(spec_path: Path, endpoints: tuple[str, ...] = SERVED_ENDPOINTS) -> dict[str, Any]:
    """Derive the response-schema document for ``endpoints`` from the spec at ``spec_path``."""
    loader = SpecLoader(spec_path.parent)
    converter = SchemaConverter(loader)
    root = loader.load(spec_path)
    if not isinstance(root, dict) or "paths" not in root:
        raise SpecError(f"{spec_path} is not an OpenAPI document (no 'paths')")

    out_endpoints: dict[str, Any] = {}
    for endpoint in endpoints:
        method, _, path = endpoint.partition(" ")
        if path not in root["paths"]:
            raise SpecError(f"{endpoint}: path not in the spec")
        item, item_base = loader.deref(root["paths"][path], spec_path)
        if method.lower() not in item:
            raise SpecError(f"{endpoint}: method not in the spec")
        op, op_base = loader.deref(item[method.lower()], item_base)
        responses: dict[str, Any] = {}
        for raw_status, raw_response in sorted(op.get("responses", {}).items()):
            status = str(raw_status)
            response, resp_base = loader.deref(raw_response, op_base)
            responses[status] = _response_entry(
                loader,
                converter,
                endpoint=endpoint,
                status=status,
                response=response,
                base=resp_base,
            )
        success = sorted(s for s in responses if s.startswith("2"))
        if not success:
            raise SpecError(f"{endpoint}: no success response in the spec")
        out_endpoints[endpoint] = {
            "operationId": op.get("operationId"),
            "origin": "apify-openapi",
            "responses": responses,
        }

    error_schema = converter.convert(
        {"$ref": "components/schemas/common/ErrorResponse.yaml"}, spec_path
    )
    info = root.get("info", {})
    document: dict[str, Any] = {
        "$comment": (
            "Generated by scripts/derive_response_schemas.py from Apify's OpenAPI spec; "
            "do not edit by hand (tokenguard's own endpoints are defined in the script). "
            "Schemas are JSON Schema draft 2020-12; each endpoint schema refers to #/$defs."
        ),
        "$schema": JSON_SCHEMA_DIALECT,
        "source": {
            "openapi": root.get("openapi"),
            "title": info.get("title") if isinstance(info, dict) else None,
            # Fingerprint of every spec file read, so a stale data file is easy to spot.
            "filesSha256": loader.fingerprint(),
        },
        "$defs": {
            **converter.defs,
            **TOKENGUARD_DEFS,
        },
        "errorResponse": error_schema,
        "endpoints": {**out_endpoints, **TOKENGUARD_ENDPOINTS},
    }
    overlap = set(converter.defs) & set(TOKENGUARD_DEFS)
    if overlap:
        raise SpecError(f"tokenguard $defs clash with spec components: {sorted(overlap)}")
    return document


# ----------------------------------------------------------------------------------------
# tokenguard's own endpoints (not in Apify's spec). Shapes from DESIGN §3 (token API) and
# issue 2 (sandbox test controls). Hand-written; kept here so the file is regenerated whole.
# ----------------------------------------------------------------------------------------

_PERMISSION_LIST = {"type": "array", "items": {"type": "string"}}
TOKENGUARD_DEFS: dict[str, Any] = {
    "tokenguard_TokenScope": {
        "type": "object",
        "properties": {
            "account": {
                "type": "object",
                "properties": {
                    "actors": _PERMISSION_LIST,
                    "tasks": _PERMISSION_LIST,
                    "schedules": _PERMISSION_LIST,
                    "storages": _PERMISSION_LIST,
                },
                "additionalProperties": _PERMISSION_LIST,
            },
            "resources": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["type", "id", "permissions"],
                    "properties": {
                        "type": {
                            "enum": [
                                "actor",
                                "task",
                                "dataset",
                                "key-value-store",
                                "request-queue",
                                "schedule",
                            ]
                        },
                        "id": {"type": "string"},
                        "permissions": _PERMISSION_LIST,
                    },
                },
            },
            "actorRunMode": {"enum": ["restricted", "full"]},
            "defaultRunStorageAccess": {"type": "boolean"},
        },
    },
    "tokenguard_TokenInfo": {
        "type": "object",
        "required": ["id", "name", "createdAt", "expiresAt", "scope"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "description": {"type": ["string", "null"]},
            "createdAt": {"type": "string", "format": "date-time"},
            "expiresAt": {"type": ["string", "null"], "format": "date-time"},
            "scope": {"anyOf": [{"$ref": "#/$defs/tokenguard_TokenScope"}, {"type": "null"}]},
            "tokenPreview": {"type": "string"},
        },
        # The secret is returned only by create (DESIGN §3).
        "not": {"required": ["token"]},
    },
    "tokenguard_IssuedToken": {
        "type": "object",
        "required": ["id", "name", "token", "createdAt", "expiresAt", "scope"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "token": {"type": "string", "pattern": "^apify_api_[A-Za-z0-9]{36}$"},
            "createdAt": {"type": "string", "format": "date-time"},
            "expiresAt": {"type": ["string", "null"], "format": "date-time"},
            "scope": {"anyOf": [{"$ref": "#/$defs/tokenguard_TokenScope"}, {"type": "null"}]},
        },
    },
    "tokenguard_Clock": {
        "type": "object",
        "required": ["now"],
        "properties": {"now": {"type": "string", "format": "date-time"}},
    },
    "tokenguard_Faults": {
        "type": "object",
        "required": ["pending"],
        "properties": {
            "pending": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["kind", "count"],
                    "properties": {
                        "kind": {"enum": ["status", "latency", "drop"]},
                        "status": {"type": "integer", "minimum": 100, "maximum": 599},
                        "ms": {"type": "number", "minimum": 0},
                        "count": {"type": "integer", "minimum": 0},
                    },
                },
            }
        },
    },
    "tokenguard_Settings": {
        "type": "object",
        "required": ["generalResourceAccess"],
        "properties": {
            "generalResourceAccess": {"enum": ["RESTRICTED", "ANYONE_WITH_ID_CAN_READ"]}
        },
    },
    "tokenguard_Stats": {
        "type": "object",
        "required": ["total", "items"],
        "properties": {
            "total": {"type": "integer", "minimum": 0},
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["method", "route", "status", "count"],
                    "properties": {
                        "method": {"type": "string"},
                        "route": {"type": "string"},
                        "status": {"type": "integer"},
                        "count": {"type": "integer", "minimum": 1},
                    },
                },
            },
        },
    },
    "tokenguard_ListEnvelope": {
        "type": "object",
        "required": ["total", "offset", "limit", "count", "desc", "items"],
        "properties": {
            "total": {"type": "integer", "minimum": 0},
            "offset": {"type": "integer", "minimum": 0},
            "limit": {"type": "integer", "minimum": 0},
            "count": {"type": "integer", "minimum": 0},
            "desc": {"type": "boolean"},
            "items": {"type": "array"},
        },
    },
}


def _data(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["data"], "properties": {"data": schema}}


def _tg(status: str, schema: dict[str, Any] | None) -> dict[str, Any]:
    entry: dict[str, Any] = (
        {"body": "none"}
        if schema is None
        else {"contentType": "application/json", "schema": schema}
    )
    return {"operationId": None, "origin": "tokenguard", "responses": {status: entry}}


TOKENGUARD_ENDPOINTS: dict[str, Any] = {
    "POST /v2/users/me/tokens": _tg("201", _data({"$ref": "#/$defs/tokenguard_IssuedToken"})),
    "GET /v2/users/me/tokens": _tg(
        "200",
        _data(
            {
                "allOf": [
                    {"$ref": "#/$defs/tokenguard_ListEnvelope"},
                    {
                        "properties": {
                            "items": {
                                "type": "array",
                                "items": {"$ref": "#/$defs/tokenguard_TokenInfo"},
                            }
                        }
                    },
                ]
            }
        ),
    ),
    "GET /v2/users/me/tokens/{tokenId}": _tg(
        "200", _data({"$ref": "#/$defs/tokenguard_TokenInfo"})
    ),
    "DELETE /v2/users/me/tokens/{tokenId}": _tg("204", None),
    # Test controls (issue 2): the requests are fixed by the issue; the answers are one object
    # in the usual envelope, shaped as below.
    "GET /v2/_sandbox/clock": _tg("200", _data({"$ref": "#/$defs/tokenguard_Clock"})),
    "POST /v2/_sandbox/clock": _tg("200", _data({"$ref": "#/$defs/tokenguard_Clock"})),
    "GET /v2/_sandbox/faults": _tg("200", _data({"$ref": "#/$defs/tokenguard_Faults"})),
    "POST /v2/_sandbox/faults": _tg("200", _data({"$ref": "#/$defs/tokenguard_Faults"})),
    "DELETE /v2/_sandbox/faults": _tg("200", _data({"$ref": "#/$defs/tokenguard_Faults"})),
    "GET /v2/_sandbox/settings": _tg("200", _data({"$ref": "#/$defs/tokenguard_Settings"})),
    "PUT /v2/_sandbox/settings": _tg("200", _data({"$ref": "#/$defs/tokenguard_Settings"})),
    "POST /v2/_sandbox/settings": _tg("200", _data({"$ref": "#/$defs/tokenguard_Settings"})),
    "GET /v2/_sandbox/stats": _tg("200", _data({"$ref": "#/$defs/tokenguard_Stats"})),
    "DELETE /v2/_sandbox/stats": _tg("200", _data({"$ref": "#/$defs/tokenguard_Stats"})),
}


def _examples(loader: SpecLoader, media: dict[str, Any], base: Path) -> list[Any]:
    found: list[Any] = []
    if "example" in media:
        # `example` is a literal, but the spec writes some as a $ref to an example file.
        found.append(loader.deref(media["example"], base)[0])
    for example in (media.get("examples") or {}).values():
        node, _ = loader.deref(example, base)
        # Example Objects wrap the value in `value`.
        found.append(node["value"] if isinstance(node, dict) and "value" in node else node)
    return found


def check_examples(spec_path: Path, document: dict[str, Any]) -> list[str]:
    """Validate the spec's own JSON response examples against the derived schemas.

    A self-check of the derivation: an example the spec ships that fails its derived schema
    points at a conversion mistake here (or an inconsistency in the spec, worth knowing).
    """
    from jsonschema import Draft202012Validator

    loader = SpecLoader(spec_path.parent)
    root = loader.load(spec_path)
    problems: list[str] = []
    for endpoint, entry in document["endpoints"].items():
        if entry["origin"] != "apify-openapi":
            continue
        method, _, path = endpoint.partition(" ")
        item, item_base = loader.deref(root["paths"][path], spec_path)
        op, op_base = loader.deref(item[method.lower()], item_base)
        for raw_status, raw_response in op.get("responses", {}).items():
            schema = entry["responses"][str(raw_status)].get("schema")
            response, resp_base = loader.deref(raw_response, op_base)
            media = (response.get("content") or {}).get("application/json")
            if schema is None or media is None:
                continue
            validator = Draft202012Validator(
                {"$schema": JSON_SCHEMA_DIALECT, "$defs": document["$defs"], **schema}
            )
            for example in _examples(loader, media, resp_base):
                for error in validator.iter_errors(example):
                    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
                    problems.append(f"{endpoint} {raw_status} example at {where}: {error.message}")
    return problems


def render(document: dict[str, Any]) -> str:
    """Deterministic JSON text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("spec", type=Path, help="path to the spec's root openapi.yaml")
    parser.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT, help="output JSON file")
    args = parser.parse_args(argv)
    try:
        document = derive(args.spec)
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for problem in check_examples(args.spec, document):
        print(f"warning: spec example does not match derived schema: {problem}", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(document), encoding="utf-8")
    print(
        f"wrote {args.out}: {len(document['endpoints'])} endpoints, "
        f"{len(document['$defs'])} schema definitions",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
