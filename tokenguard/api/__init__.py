"""The Apify API: a small httpx client and the token-management interface."""

from __future__ import annotations

from tokenguard.api.client import DEFAULT_API_URL, ApifyApi
from tokenguard.api.issuer import HttpTokenIssuer, IssuedToken, TokenInfo, TokenIssuer

__all__ = [
    "DEFAULT_API_URL",
    "ApifyApi",
    "HttpTokenIssuer",
    "IssuedToken",
    "TokenInfo",
    "TokenIssuer",
]
