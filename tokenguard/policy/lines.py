"""Line numbers for TOML keys.

``tomllib`` returns plain dicts without positions, so this scanner walks the text once and
records the line where each table header and key is written, keyed by the same key paths
the validator uses (``("token", 1, "resource", 0, "permissions")``). It is deliberately
forgiving: it only runs on text ``tomllib`` already accepted, and a key it cannot place falls
back to its nearest placed parent.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from tokenguard.policy.model import KeyPath

_BARE = r"[A-Za-z0-9_-]+"
_QUOTED = r"\"(?:[^\"\\]|\\.)*\"|'[^']*'"
_KEY = rf"(?:{_BARE}|{_QUOTED})"
_DOTTED = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_ARRAY_HEADER = re.compile(rf"^\[\[\s*({_DOTTED})\s*\]\]")
_TABLE_HEADER = re.compile(rf"^\[\s*({_DOTTED})\s*\]")
_ASSIGN = re.compile(rf"^({_DOTTED})\s*=")
_KEY_PART = re.compile(_KEY)


def _split(dotted: str) -> list[str]:
    parts = []
    for match in _KEY_PART.finditer(dotted):
        part = match.group(0)
        if part[0] in "\"'":
            part = part[1:-1]
        parts.append(part)
    return parts


def scan_key_lines(text: str) -> dict[KeyPath, int]:
    """Map each key path in ``text`` to the 1-based line where it first appears."""
    index: dict[KeyPath, int] = {}
    arrays: dict[KeyPath, int] = {}  # resolved array-of-tables path -> current index
    current: KeyPath = ()
    open_string: str | None = None  # inside a multi-line string started on an earlier line

    def resolve(keys: list[str], *, new_array: bool) -> KeyPath:
        path: KeyPath = ()
        for i, key in enumerate(keys):
            path = (*path, key)
            last = i == len(keys) - 1
            if last and new_array:
                arrays[path] = arrays.get(path, -1) + 1
                path = (*path, arrays[path])
            elif path in arrays:
                path = (*path, arrays[path])
        return path

    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if open_string is not None:
            if line.count(open_string) % 2 == 1:
                open_string = None
            continue
        if not line or line.startswith("#"):
            continue
        if match := _ARRAY_HEADER.match(line):
            current = resolve(_split(match.group(1)), new_array=True)
            index.setdefault(current, lineno)
            continue
        if match := _TABLE_HEADER.match(line):
            current = resolve(_split(match.group(1)), new_array=False)
            index.setdefault(current, lineno)
            continue
        if match := _ASSIGN.match(line):
            keys = _split(match.group(1))
            for i in range(1, len(keys) + 1):
                index.setdefault((*current, *keys[:i]), lineno)
            rest = line[match.end() :]
            for quote in ('"""', "'''"):
                if rest.count(quote) % 2 == 1:
                    open_string = quote
                    break
    return index


def line_of(index: Mapping[KeyPath, int], path: KeyPath, default: int = 1) -> int:
    """Line of ``path``, else of its nearest parent that has one, else ``default``."""
    probe = path
    while probe:
        if probe in index:
            return index[probe]
        probe = probe[:-1]
    return default


class LazyKeyLines(Mapping[KeyPath, int]):
    """The key-line index of a document, scanned on first use.

    Valid policies without notes never need a line number, so ``policy check`` on a large
    clean tree skips the scan altogether; the first error or note pays for it once per file.
    """

    __slots__ = ("_index", "_text")

    def __init__(self, text: str) -> None:
        self._text: str | None = text
        self._index: dict[KeyPath, int] | None = None

    def _get(self) -> dict[KeyPath, int]:
        if self._index is None:
            assert self._text is not None
            self._index = scan_key_lines(self._text)
            self._text = None  # the text is not needed any more
        return self._index

    def __getitem__(self, key: KeyPath) -> int:
        return self._get()[key]

    def __iter__(self) -> Iterator[KeyPath]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def __contains__(self, key: object) -> bool:
        return key in self._get()

    def __repr__(self) -> str:
        state = "scanned" if self._index is not None else "not scanned"
        return f"LazyKeyLines({state})"
