"""MovieLens 100K (GroupLens) from its raw folder: ``u.data``, ``u.user``, ``u.item``, ``u.genre``.

Behaviour is the rating level ("1".."5"), so models can tell a 1-star watch
from a 5-star one.  Timestamp ties within a user are frequent (ratings entered
in one session) and keep ``u.data`` line order.
"""

from __future__ import annotations

import re
from pathlib import Path

from amsrm_core.data._io import iter_fields, note_featureless, put_unique, require_dir, to_int
from amsrm_core.schema import DataFormatError, FieldOptions, InteractionData, LoadReport, build_interactions

NAME = "ml-100k"
RATINGS = ("1", "2", "3", "4", "5")
# (upper bound exclusive, label); the MovieLens-1M age groups, which readers already know.
AGE_BANDS = ((18, "<18"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (50, "45-49"), (56, "50-55"))
OLDEST_BAND = "56+"
_YEAR = re.compile(r".*-(\d{4})")  # release dates look like 01-Jan-1995


def age_band(age: int) -> str:
    return next((label for bound, label in AGE_BANDS if age < bound), OLDEST_BAND)


def zip_prefix(zip_code: str) -> str:
    """First digit of a US zip code; foreign codes such as 'T8H1N' keep their first character."""
    return zip_code.strip()[:1]


def load_movielens_100k(path: str | Path, fields: FieldOptions | None = None) -> InteractionData:
    folder = require_dir(path)
    report = LoadReport()
    users, items, timestamps, ratings = [], [], [], []
    events = folder / "u.data"
    for line, (user, item, rating, ts) in iter_fields(events, "\t", n_fields=4):
        users.append(to_int(user, events, line, "user id"))
        items.append(to_int(item, events, line, "item id"))
        if rating not in RATINGS:
            raise DataFormatError(events, line, "a rating 1-5", rating)
        ratings.append(rating)
        timestamps.append(to_int(ts, events, line, "timestamp"))
    report.rows_read = len(users)

    user_features = _read_users(folder / "u.user")
    item_features = _read_items(folder / "u.item", _read_genres(folder / "u.genre"))
    note_featureless(report, "u.user rows", user_features["gender"], {str(u) for u in users})
    note_featureless(report, "u.item rows", item_features["genres"], {str(i) for i in items})
    return build_interactions(
        NAME,
        users,
        items,
        timestamps,
        behaviours=ratings,
        user_features=user_features,
        item_features=item_features,
        report=report,
        fields=fields,
    )


def _read_users(path: Path) -> dict[str, dict[int, str]]:
    fields: dict[str, dict[int, str]] = {"age_band": {}, "gender": {}, "occupation": {}, "zip_prefix": {}}
    for line, (user, age, gender, occupation, zip_code) in iter_fields(path, "|", n_fields=5):
        uid = to_int(user, path, line, "user id")
        put_unique(fields["age_band"], uid, age_band(to_int(age, path, line, "age")), path, line, "user id")
        fields["gender"][uid] = gender
        fields["occupation"][uid] = occupation
        fields["zip_prefix"][uid] = zip_prefix(zip_code)
    return fields


def _read_genres(path: Path) -> list[str]:
    """Genre names in flag order; u.genre lists ``name|index``, including 'unknown' at 0."""
    by_index: dict[int, str] = {}
    for line, (name, index) in iter_fields(path, "|", n_fields=2):
        put_unique(by_index, to_int(index, path, line, "genre index"), name, path, line, "genre index")
    if sorted(by_index) != list(range(len(by_index))):
        raise DataFormatError(path, None, "genre indices 0..n-1", sorted(by_index))
    return [by_index[i] for i in range(len(by_index))]


def _read_items(path: Path, genres: list[str]) -> dict[str, dict[int, object]]:
    """``id|title|release date|video date|URL|flag…``; u.item is latin-1, not UTF-8."""
    fields: dict[str, dict[int, object]] = {"genres": {}, "release_year": {}}
    for line, row in iter_fields(path, "|", n_fields=5 + len(genres), encoding="latin-1"):
        iid = to_int(row[0], path, line, "item id")
        flags = row[5:]
        if any(flag not in ("0", "1") for flag in flags):
            raise DataFormatError(path, line, f"{len(genres)} genre flags of 0/1", "|".join(flags))
        put_unique(
            fields["genres"],
            iid,
            [g for g, flag in zip(genres, flags, strict=True) if flag == "1"],
            path,
            line,
            "item id",
        )
        fields["release_year"][iid] = _release_year(row[2], path, line)
    return fields


def _release_year(date: str, path: Path, line: int) -> str:
    if not date.strip():
        return "unknown"
    match = _YEAR.fullmatch(date.strip())
    if match is None:
        raise DataFormatError(path, line, "a release date like 01-Jan-1995", date)
    return match.group(1)
