"""Parsing helpers shared by the loaders, so every loader reports bad data the same way.

Every helper raises :class:`~amsrm_core.schema.DataFormatError` naming the file
and the 1-based line, which is what a user needs to fix a broken file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator, MutableMapping
from pathlib import Path
from typing import TypeVar

from amsrm_core.schema import DataFormatError, LoadReport

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

INT_PATTERN = re.compile(r"-?[0-9]+")
_SEP_NAMES = {"\t": "tab", ",": "comma", "|": "'|'", None: "whitespace"}


def require_file(path: str | Path) -> Path:
    """Fail early with the path in the message rather than deep inside a parser."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, None, "an existing file", "not a file" if path.exists() else "missing")
    return path


def require_dir(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise DataFormatError(
            path, None, "an existing folder", "not a folder" if path.exists() else "missing"
        )
    return path


def find_single(folder: Path, pattern: str, keep: Callable[[Path], bool] = lambda _: True) -> Path:
    """The one file in ``folder`` matching ``pattern``: guessing between several would load the wrong data."""
    candidates = sorted(p for p in require_dir(folder).glob(pattern) if p.is_file() and keep(p))
    if len(candidates) != 1:
        got = [p.name for p in candidates] if candidates else "no such file"
        raise DataFormatError(folder, None, f"exactly one {pattern} data file", got)
    return candidates[0]


def iter_fields(
    path: Path,
    sep: str | None,
    n_fields: int | None = None,
    min_fields: int = 1,
    encoding: str = "utf-8",
) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line_number, fields)`` for each non-blank line, checking the field count.

    ``sep=None`` splits on runs of whitespace.  Blank lines hold no record and are
    skipped (so line numbers in errors still match the file).
    """
    path = require_file(path)
    layout = f"{_SEP_NAMES.get(sep, repr(sep))}-separated fields"
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode(encoding).rstrip("\r\n")
            except UnicodeDecodeError:
                raise DataFormatError(path, number, f"{encoding} text", raw[:80]) from None
            if not line.strip():
                continue
            fields = line.split() if sep is None else line.split(sep)
            if (n_fields is not None and len(fields) != n_fields) or len(fields) < min_fields:
                count = f"{n_fields}" if n_fields is not None else f"at least {min_fields}"
                raise DataFormatError(path, number, f"{count} {layout}", _clip(line))
            yield number, fields


def to_int(text: str, path: Path, line: int | None, what: str) -> int:
    """Parse an integer id or timestamp strictly (no floats, no '1_000')."""
    if not INT_PATTERN.fullmatch(text):
        raise DataFormatError(path, line, f"an integer {what}", _clip(text))
    return int(text)


def put_unique(
    table: MutableMapping[K, V],
    key: K,
    value: V,
    path: Path,
    line: int | None,
    what: str,
) -> None:
    """Insert into a side-information table; a repeated id is ambiguous, so it is an error."""
    if key in table:
        raise DataFormatError(path, line, f"each {what} once", f"{key} again")
    table[key] = value


def note_featureless(
    report: LoadReport, what: str, feature_ids: Iterable[object], event_ids: Collection[str]
) -> None:
    """Count side-information rows that no event refers to: build_interactions ignores them."""
    report.drop(f"{what} without events", sum(1 for key in feature_ids if str(key) not in event_ids))


def _clip(text: object, limit: int = 80) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "…"
