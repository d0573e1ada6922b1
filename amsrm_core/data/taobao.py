"""Taobao ``UserBehavior.csv`` (Tianchi): ``user,item,category,behaviour,unix-ts``, no header.

Behaviours are renamed to the project's canonical names (see ``BEHAVIOUR_MAP``)
so models and metrics share one vocabulary across data sets.  An unknown
behaviour string is an error, not a skipped row.  The full data set contains
some timestamps outside its documented 2017-11-25..12-03 window; they are kept
as they are (filtering by date is a preprocessing choice, not a parsing one).
"""

from __future__ import annotations

from pathlib import Path

from amsrm_core.data._io import find_single, iter_fields, to_int
from amsrm_core.schema import DataFormatError, FieldOptions, InteractionData, LoadReport, build_interactions

NAME = "taobao"
DEFAULT_FILE = "UserBehavior.csv"
# Tianchi code → canonical behaviour name.
BEHAVIOUR_MAP = {"pv": "click", "fav": "like", "cart": "cart", "buy": "buy"}


def load_taobao(path: str | Path, fields: FieldOptions | None = None) -> InteractionData:
    """``path`` is the CSV itself or a folder holding ``UserBehavior.csv`` (or a single other ``*.csv``)."""
    path = Path(path)
    if path.is_dir():
        path = path / DEFAULT_FILE if (path / DEFAULT_FILE).is_file() else find_single(path, "*.csv")
    report = LoadReport()
    users, items, behaviours, timestamps = [], [], [], []
    categories: dict[int, str] = {}
    conflicts = 0
    for line, (user, item, category, behaviour, ts) in iter_fields(path, ",", n_fields=5):
        users.append(to_int(user, path, line, "user id"))
        iid = to_int(item, path, line, "item id")
        items.append(iid)
        cat = str(to_int(category, path, line, "category id"))
        if categories.setdefault(iid, cat) != cat:
            conflicts += 1
        if behaviour not in BEHAVIOUR_MAP:
            raise DataFormatError(path, line, f"a behaviour in {sorted(BEHAVIOUR_MAP)}", behaviour)
        behaviours.append(BEHAVIOUR_MAP[behaviour])
        timestamps.append(to_int(ts, path, line, "timestamp"))
    report.rows_read = len(users)
    # The field is single-valued: the first category seen wins, and the others are counted.
    report.drop("item category differing from the item's first category (ignored)", conflicts)
    return build_interactions(
        NAME,
        users,
        items,
        timestamps,
        behaviours=behaviours,
        item_features={"category": categories},
        report=report,
        fields=fields,
    )
