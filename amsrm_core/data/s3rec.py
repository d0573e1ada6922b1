"""Data sets in the S3-Rec format: Amazon Beauty, Sports, Toys, Yelp, LastFM, ….

``<Name>.txt`` holds one user a line, ``user item1 item2 …`` already in time
order but without timestamps, so timestamps are positions (0, 1, 2, …) and
``has_clock`` is False: anything that needs real time gaps must not use them.
``<Name>_item2attributes.json`` (optional) maps item ids to attribute ids.
"""

from __future__ import annotations

import json
from pathlib import Path

from amsrm_core.data._io import find_single, iter_fields, note_featureless, require_file, to_int
from amsrm_core.schema import DataFormatError, FieldOptions, InteractionData, LoadReport, build_interactions

ATTRIBUTES_SUFFIX = "_item2attributes.json"


def load_s3rec(path: str | Path, name: str | None = None, fields: FieldOptions | None = None
               ) -> InteractionData:
    """Load a folder (or its ``<Name>.txt``); ``name`` picks one of several data sets in a folder."""
    sequences = _sequence_file(Path(path), name)
    report = LoadReport()
    users: list[int] = []
    items: list[int] = []
    positions: list[int] = []
    seen_users: set[int] = set()
    for line, (user, *sequence) in iter_fields(sequences, None, min_fields=2):
        uid = to_int(user, sequences, line, "user id")
        if uid in seen_users:  # a second line would restart the positions and interleave two histories
            raise DataFormatError(sequences, line, "each user on one line", f"user {uid} again")
        seen_users.add(uid)
        items.extend(to_int(item, sequences, line, "item id") for item in sequence)
        users.extend([uid] * len(sequence))
        positions.extend(range(len(sequence)))
    report.rows_read = len(users)

    attributes_file = sequences.with_name(sequences.stem + ATTRIBUTES_SUFFIX)
    item_features = None
    if attributes_file.is_file():
        attributes = _read_attributes(attributes_file)
        note_featureless(report, f"{attributes_file.name} items", attributes, {str(i) for i in items})
        item_features = {"attributes": attributes}
    return build_interactions(
        sequences.stem.lower(),  # "beauty" whether picked as Beauty or beauty
        users,
        items,
        positions,
        item_features=item_features,
        report=report,
        has_clock=False,
        fields=fields,
    )


def _sequence_file(path: Path, name: str | None) -> Path:
    if path.suffix == ".txt":
        return require_file(path)
    if name is not None and (path / f"{name}.txt").is_file():
        return path / f"{name}.txt"
    if name is not None:  # tolerate "beauty" for Beauty.txt
        matches = [p for p in path.glob("*.txt") if p.stem.lower() == name.lower()]
        if len(matches) == 1:
            return matches[0]
    return find_single(path, "*.txt", _is_sequence_file)


def _is_sequence_file(path: Path) -> bool:
    """Skip READMEs and S3-Rec's ``<Name>_sample.txt`` negative-sample files that sit beside the data."""
    stem = path.stem.lower()
    return not (stem.startswith("readme") or stem.endswith("_sample"))


def _read_attributes(path: Path) -> dict[str, list[str]]:
    expected = "a JSON object: item id -> list of integer attribute ids"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataFormatError(path, error.lineno, expected, error.msg) from None
    if not isinstance(raw, dict):
        raise DataFormatError(path, 1, expected, type(raw).__name__)
    attributes: dict[str, list[str]] = {}
    for item, values in raw.items():
        if not (isinstance(values, list) and all(type(v) is int for v in values)):  # bool is not an id
            raise DataFormatError(path, None, f"{expected} (item {item})", values)
        attributes[str(to_int(item, path, None, "item id"))] = [str(v) for v in values]
    return attributes
