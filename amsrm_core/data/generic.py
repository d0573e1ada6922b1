"""A documented generic format, so any user's data loads without writing code.

Events file (``.csv`` with a header row, or ``.parquet``/``.pq``):

* ``user_id``, ``item_id`` — any strings or integers (compared as text);
* ``timestamp`` — integer unix seconds, an ISO-8601 string (naive times are UTC)
  or a Parquet timestamp;
* ``behaviour`` (optional) — any string; ``event_id`` (optional) — unique.

Optional ``users`` / ``items`` files: an ``user_id`` / ``item_id`` column plus
any categorical columns, one field per column; a value containing ``|`` is
multi-valued (``"Comedy|Drama"``), empty cells mean no value.  Errors name the
file and line (CSV: the file's line; Parquet: the 1-based row).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from amsrm_core.data._io import INT_PATTERN, note_featureless, require_file
from amsrm_core.schema import DataFormatError, FieldOptions, InteractionData, LoadReport, build_interactions

CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")
MULTI_VALUE_SEP = "|"
_TIME_EXPECTED = "a timestamp: integer unix seconds or ISO-8601"
_UNITS_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}

LineOf = Callable[[int], int]
"""0-based row → the line (CSV) or 1-based row (Parquet) to quote in an error."""


def load_generic(
    events: str | Path,
    users: str | Path | None = None,
    items: str | Path | None = None,
    name: str = "custom",
    fields: FieldOptions | None = None,
) -> InteractionData:
    events = Path(events)
    table, line_of = read_table(events)
    user_ids = _ids(_column(table, "user_id", events), events, line_of, "user_id")
    item_ids = _ids(_column(table, "item_id", events), events, line_of, "item_id")
    timestamps = _timestamps(_column(table, "timestamp", events), events, line_of)
    behaviours = None
    if "behaviour" in table.column_names:
        behaviours = _ids(table.column("behaviour"), events, line_of, "behaviour")
    event_ids = None
    if "event_id" in table.column_names:
        event_ids = _ids(table.column("event_id"), events, line_of, "event_id")
        _require_unique(event_ids, events, line_of, "event_id")
    report = LoadReport(rows_read=table.num_rows)
    user_features = _side_table(users, "user_id", set(user_ids), report)
    item_features = _side_table(items, "item_id", set(item_ids), report)
    return build_interactions(
        name,
        user_ids,
        item_ids,
        timestamps,
        behaviours=behaviours,
        event_ids=event_ids,
        user_features=user_features,
        item_features=item_features,
        report=report,
        fields=fields,
    )


def read_table(path: Path) -> tuple[pa.Table, LineOf]:
    """Read CSV (every column as text, so ids like '007' survive) or Parquet, by extension."""
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        try:
            return pq.read_table(require_file(path)), lambda row: row + 1
        except pa.ArrowException as error:
            raise DataFormatError(path, None, "a readable Parquet file", str(error)) from None
    if suffix in CSV_SUFFIXES:
        return _read_csv(require_file(path))
    raise DataFormatError(path, None, f"a file ending in one of {CSV_SUFFIXES + PARQUET_SUFFIXES}", suffix)


def _read_csv(path: Path) -> tuple[pa.Table, LineOf]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        header = next(csv.reader(handle), None)
    if not header:
        raise DataFormatError(path, 1, "a header row naming the columns", "empty file")
    if len(set(header)) != len(header):
        raise DataFormatError(path, 1, "distinct column names", header)
    options = pacsv.ConvertOptions(column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=True)
    try:
        table = pacsv.read_csv(path, convert_options=options)
    except pa.ArrowInvalid as error:
        line = _first_ragged_line(path, len(header))
        raise DataFormatError(path, line, f"{len(header)} comma-separated fields (CSV)", str(error)) from None
    return table, _csv_line_finder(path)


def _csv_line_finder(path: Path) -> LineOf:
    """Map a data row to its file line; pyarrow skips blank lines, so count them (only when reporting)."""

    def line_of(row: int) -> int:
        with path.open("rb") as handle:
            next(handle)  # header
            for number, raw in enumerate(handle, start=2):
                if raw.strip(b"\r\n"):
                    if row == 0:
                        return number
                    row -= 1
        return row + 2

    return line_of


def _first_ragged_line(path: Path, width: int) -> int | None:
    """Find the line pyarrow rejected: its error message gives no line number."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            next(reader)
            for record in reader:
                if record and len(record) != width:
                    return reader.line_num
    except (csv.Error, UnicodeDecodeError):
        return None
    return None


def _column(table: pa.Table, name: str, path: Path) -> pa.ChunkedArray:
    if name not in table.column_names:
        raise DataFormatError(path, 1, f"a column {name!r}", table.column_names)
    return table.column(name)


def _ids(column: pa.ChunkedArray, path: Path, line_of: LineOf, name: str) -> list[str]:
    values = [_text(v) for v in column.to_pylist()]
    for row, value in enumerate(values):
        if value == "":
            raise DataFormatError(path, line_of(row), f"a value in column {name!r}", "empty")
    return values


def _require_unique(values: list[str], path: Path, line_of: LineOf, name: str) -> None:
    """A repeated id is ambiguous (which row wins?), so it is an error at its second line."""
    seen: set[str] = set()
    for row, value in enumerate(values):
        if value in seen:
            raise DataFormatError(path, line_of(row), f"each {name} once", f"{value} again")
        seen.add(value)


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def _timestamps(column: pa.ChunkedArray, path: Path, line_of: LineOf) -> list[int]:
    expected = _TIME_EXPECTED
    if pa.types.is_timestamp(column.type):
        per_second = _UNITS_PER_SECOND[column.type.unit]
        values = column.cast(pa.int64()).to_pylist()  # UTC-based epoch counts in the column's unit
        return [_checked(v, path, line_of, row, expected) // per_second for row, v in enumerate(values)]
    if pa.types.is_integer(column.type):
        return [_checked(v, path, line_of, row, expected) for row, v in enumerate(column.to_pylist())]
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return [_parse_time(_text(v), path, line_of, row) for row, v in enumerate(column.to_pylist())]
    raise DataFormatError(path, None, f"{expected} (column 'timestamp')", str(column.type))


def _checked(value: int | None, path: Path, line_of: LineOf, row: int, expected: str) -> int:
    if value is None:
        raise DataFormatError(path, line_of(row), expected, "empty")
    return value


def _parse_time(text: str, path: Path, line_of: LineOf, row: int) -> int:
    """Integer seconds or ISO-8601; ``line_of`` is only called on failure (it rescans a CSV)."""
    if INT_PATTERN.fullmatch(text):
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise DataFormatError(path, line_of(row), _TIME_EXPECTED, text) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _side_table(
    path: str | Path | None, key: str, event_ids: set[str], report: LoadReport
) -> dict[str, dict[str, list[str]]] | None:
    """One field per non-key column; ``a|b`` is multi-valued; repeated ids are an error."""
    if path is None:
        return None
    path = Path(path)
    table, line_of = read_table(path)
    ids = _ids(_column(table, key, path), path, line_of, key)
    _require_unique(ids, path, line_of, key)
    note_featureless(report, f"{path.name} rows", ids, event_ids)
    fields: dict[str, dict[str, list[str]]] = {}
    for name in table.column_names:
        if name != key:
            values = (_split(_text(v)) for v in table.column(name).to_pylist())
            fields[name] = dict(zip(ids, values, strict=True))
    return fields


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(MULTI_VALUE_SEP) if part.strip()]
