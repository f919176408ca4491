"""Secrets that cannot leak by accident, and fingerprints that can be shown instead.

A :class:`Secret` never shows its value through ``repr``, ``str``, ``format`` or pickling;
the only way out is :meth:`Secret.reveal`, which is easy to grep for in review. A
fingerprint is a short, stable, non-reversible handle for a token: safe in logs, tables,
JSON output and error messages.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any, NoReturn

#: Apify API tokens: ``apify_api_`` followed by 36 alphanumerics (DESIGN §1).
TOKEN_PATTERN = re.compile(r"apify_api_[A-Za-z0-9]{36}")
# Anything that looks like a token, including non-standard lengths, for redaction.
_REDACT_PATTERN = re.compile(r"apify_api_[A-Za-z0-9]{8,}")

_FINGERPRINT_DOMAIN = b"tokenguard-fingerprint-v1\x00"
FINGERPRINT_PREFIX = "tg:"


def fingerprint(value: str) -> str:
    """Return the non-secret fingerprint of a token, e.g. ``tg:3f9a1c2b7e4d``.

    A domain-separated SHA-256 truncated to 48 bits. Tokens carry ~214 bits of entropy, so
    the fingerprint reveals nothing usable, while 48 bits keep accidental collisions
    negligible for any realistic number of tokens.
    """
    digest = hashlib.sha256(_FINGERPRINT_DOMAIN + value.encode("utf-8")).hexdigest()
    return FINGERPRINT_PREFIX + digest[:12]


def looks_like_token(value: str) -> bool:
    """True when ``value`` has the exact shape of an Apify API token."""
    return TOKEN_PATTERN.fullmatch(value) is not None


def redact(text: str) -> str:
    """Replace every token-shaped substring of ``text`` with its fingerprint."""
    return _REDACT_PATTERN.sub(lambda m: f"<token {fingerprint(m.group(0))}>", text)


class Secret:
    """A secret string whose value is never rendered implicitly.

    Equality is constant-time; hashing uses the fingerprint so secrets can key dicts.
    Pickling is refused so a secret never lands in a cache or a queue by accident.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret value must be a str")
        self._value = value

    def reveal(self) -> str:
        """Return the secret value. Call only where the value must leave the process."""
        return self._value

    @property
    def fingerprint(self) -> str:
        """The non-secret fingerprint of this value."""
        return fingerprint(self._value)

    def __repr__(self) -> str:
        return f"Secret({self.fingerprint})"

    def __str__(self) -> str:
        return f"<secret {self.fingerprint}>"

    def __format__(self, format_spec: str) -> str:
        return format(str(self), format_spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __reduce__(self) -> NoReturn:
        raise TypeError("Secret values cannot be pickled")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self
