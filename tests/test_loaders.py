"""Loaders: known statistics of the real data sets, ordering, field tables, generic round trips, errors."""

from __future__ import annotations

import re
from collections import defaultdict
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from amsrm.errors import ConfigError
from amsrm_core.data import DATASETS, default_data_path, load_dataset
from amsrm_core.data.generic import load_generic
from amsrm_core.data.movielens import load_movielens_100k
from amsrm_core.data.s3rec import load_s3rec
from amsrm_core.data.taobao import load_taobao
from amsrm_core.schema import DataFormatError, FieldOptions, InteractionData, build_interactions


def _real(name: str) -> Path:
    path = default_data_path(name)
    if not path.is_dir():
        pytest.skip(f"real data folder {path} is missing (set AMSRM_DATA to the shared data root)")
    return path


@pytest.fixture(scope="module")
def ml() -> InteractionData:
    return load_movielens_100k(_real("ml-100k"))


@pytest.fixture(scope="module")
def beauty() -> InteractionData:
    return load_s3rec(_real("beauty"))


@pytest.fixture(scope="module")
def taobao() -> InteractionData:
    return load_taobao(_real("taobao"))


def assert_canonical(data: InteractionData) -> None:
    """Sorted by user then time; field tables have a row per vocabulary entry, rows 0 and 1 empty."""
    assert np.all(np.diff(data.users) >= 0)
    same_user = data.users[1:] == data.users[:-1]
    assert np.all(np.diff(data.timestamps)[same_user] >= 0)
    assert data.users.min() >= 2 and data.items.min() >= 2
    assert len(set(data.event_ids)) == data.n_events
    for table, entities in [(t, data.user_vocab) for t in data.user_fields.values()] + [
        (t, data.item_vocab) for t in data.item_fields.values()
    ]:
        assert table.values.shape == (len(entities), table.width)
        assert not table.values[:2].any()
        assert table.values.max() < len(table.vocab)


def decoded(data: InteractionData) -> list[tuple[str, str, int, str]]:
    """Events back as raw (user, item, timestamp, behaviour), in the data's order."""
    u, i, b = data.user_vocab.tokens, data.item_vocab.tokens, data.behaviour_vocab.tokens
    return [
        (u[x], i[y], int(t), b[z])
        for x, y, t, z in zip(data.users, data.items, data.timestamps, data.behaviours, strict=True)
    ]


def field_values(data: InteractionData, kind: str, field: str, raw_id: str) -> list[str]:
    table = (data.user_fields if kind == "user" else data.item_fields)[field]
    vocab = data.user_vocab if kind == "user" else data.item_vocab
    return [table.vocab.tokens[v] for v in table.values[vocab.lookup(raw_id)] if v]


# --- real data ------------------------------------------------------------------------------------


def test_movielens_statistics(ml: InteractionData) -> None:
    assert (ml.name, ml.n_users, ml.n_items, ml.n_events) == ("ml-100k", 943, 1682, 100_000)
    assert sorted(ml.behaviour_vocab.tokens[2:]) == ["1", "2", "3", "4", "5"]
    genres = (_real("ml-100k") / "u.genre").read_text().split()
    assert len(genres) == 19 and genres[0] == "unknown|0"  # 'unknown' is a genre flag like the others
    assert sorted(ml.item_fields["genres"].vocab.tokens[2:]) == sorted(g.split("|")[0] for g in genres)
    sizes = {name: len(t.vocab) - 2 for name, t in ml.user_fields.items()}
    assert sizes["occupation"] == 21 and sizes["gender"] == 2 and sizes["age_band"] == 7
    assert ml.report.rows_read == 100_000 and ml.report.filtered == {}
    assert_canonical(ml)


def test_movielens_fields(ml: InteractionData) -> None:
    assert field_values(ml, "item", "genres", "1") == ["Animation", "Children's", "Comedy"]
    assert field_values(ml, "item", "release_year", "1") == ["1995"]
    assert field_values(ml, "item", "release_year", "267") == ["unknown"]  # no release date in u.item
    assert field_values(ml, "user", "age_band", "1") == ["18-24"]  # 1|24|M|technician|85711
    assert field_values(ml, "user", "zip_prefix", "1") == ["8"]
    assert field_values(ml, "user", "zip_prefix", "74") == ["T"]  # Canadian zip T8H1N
    assert ml.item_fields["genres"].width > 1


def test_movielens_ties_keep_file_order(ml: InteractionData) -> None:
    rows = [line.split("\t") for line in (_real("ml-100k") / "u.data").read_text().splitlines()]
    by_user: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for user, item, _, ts in rows:
        by_user[user].append((int(ts), item))
    loaded: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for user, item, ts, _ in decoded(ml):
        loaded[user].append((ts, item))
    # Python's sort is stable: ties stay in file order, which is the documented rule.
    assert all(loaded[u] == sorted(events, key=lambda e: e[0]) for u, events in by_user.items())
    # One real tie whose file order is not the item-id order, so the check above can fail.
    tie = next(
        (u, ts)
        for u, events in by_user.items()
        for ts in {t for t, _ in events}
        if (items := [i for t, i in events if t == ts]) != sorted(items, key=int)
    )
    expected = [i for t, i in by_user[tie[0]] if t == tie[1]]
    assert [i for t, i in loaded[tie[0]] if t == tie[1]] == expected


def test_beauty_statistics(beauty: InteractionData) -> None:
    assert (beauty.name, beauty.n_users, beauty.n_items, beauty.n_events) == (
        "beauty",
        22_363,
        12_101,
        198_502,
    )
    assert len(beauty.item_fields["attributes"].vocab) - 2 == 637
    assert not beauty.has_clock and not beauty.has_behaviour
    first_user = beauty.users == beauty.user_vocab.lookup("1")
    assert beauty.timestamps[first_user].tolist() == [0, 1, 2, 3, 4]
    assert [beauty.item_vocab.tokens[i] for i in beauty.items[first_user]] == ["1", "2", "3", "4", "5"]
    assert field_values(beauty, "item", "attributes", "4") == ["1", "2", "3"]
    assert_canonical(beauty)


def test_taobao_statistics(taobao: InteractionData) -> None:
    assert (taobao.name, taobao.n_users, taobao.n_items, taobao.n_events) == ("taobao", 43, 3276, 4321)
    assert len(taobao.item_fields["category"].vocab) - 2 == 567
    assert taobao.item_fields["category"].width == 1
    assert set(taobao.behaviour_vocab.tokens[2:]) <= {"click", "like", "cart", "buy"}
    assert taobao.has_clock and taobao.report.filtered == {}
    assert_canonical(taobao)


def test_registry() -> None:
    assert set(DATASETS) == {"ml-100k", "s3rec", "taobao", "generic", "synthetic"}
    _real("beauty")
    assert load_dataset("amazon").n_events == 198_502
    assert load_dataset("taobao", _real("taobao") / "UserBehavior.csv").n_events == 4321
    with pytest.raises(ValueError, match="valid names: ml-100k, s3rec, taobao, generic, synthetic, beauty"):
        load_dataset("netflix")
    with pytest.raises(ValueError, match="events file"):
        load_dataset("generic")


def test_default_data_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AMSRM_DATA", str(tmp_path))
    assert default_data_path("ml-100k") == tmp_path / "ml-100k"
    assert default_data_path("Amazon") == tmp_path / "amazon-beauty"
    assert default_data_path("taobao") == tmp_path / "taobao-sample"
    with pytest.raises(ValueError, match="no default data folder"):
        default_data_path("generic")


def test_default_data_root_is_the_working_directory_not_the_source(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    """Without AMSRM_DATA: ./data where the command runs (an installed package has no repo beside it)."""
    monkeypatch.delenv("AMSRM_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_data_path("ml-100k") == tmp_path / "data" / "ml-100k"
    monkeypatch.setenv("AMSRM_DATA", "")  # set but empty counts as unset
    assert default_data_path("beauty") == tmp_path / "data" / "amazon-beauty"
    with pytest.raises(DataFormatError, match="AMSRM_DATA"):
        load_dataset("ml-100k")


# --- generic format -------------------------------------------------------------------------------

EVENTS = [  # user, item, timestamp, behaviour, event id; u1 has a tie at 100 (file order: b then a)
    ("u1", "b", "100", "click", "e1"),
    ("u2", "a", "2024-01-01T00:00:00Z", "buy", "e2"),
    ("u1", "a", "100", "like", "e3"),
    ("u1", "c", "1970-01-01T00:00:50", "click", "e4"),
    ("u2", "007", "2024-01-01T01:00:00+01:00", "click", "e5"),
]
JAN_1_2024 = 1_704_067_200


def _write_csv(path: Path, header: str, rows: list[tuple[str, ...]], blank_after: int | None = None) -> Path:
    lines = [header] + [",".join(r) for r in rows]
    if blank_after is not None:
        lines.insert(blank_after + 1, "")
    path.write_text("\n".join(lines) + "\n")
    return path


def _generic_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    events = _write_csv(tmp_path / "events.csv", "user_id,item_id,timestamp,behaviour,event_id", EVENTS)
    users = _write_csv(tmp_path / "users.csv", "user_id,country", [("u1", "fr"), ("u2", "")])
    items = _write_csv(
        tmp_path / "items.csv",
        "item_id,genre,brand",
        [("a", "Comedy|Drama", "x"), ("b", "Drama", "y"), ("007", "", "x"), ("zz", "Horror", "z")],
    )
    return events, users, items


def _check_generic(data: InteractionData, items_file: str) -> None:
    assert decoded(data) == [
        ("u1", "c", 50, "click"),
        ("u1", "b", 100, "click"),
        ("u1", "a", 100, "like"),
        ("u2", "a", JAN_1_2024, "buy"),
        ("u2", "007", JAN_1_2024, "click"),
    ]
    assert data.event_ids.tolist() == ["e4", "e1", "e3", "e2", "e5"]
    assert field_values(data, "item", "genre", "a") == ["Comedy", "Drama"]
    assert field_values(data, "item", "genre", "007") == []
    assert field_values(data, "item", "brand", "b") == ["y"]
    assert field_values(data, "user", "country", "u1") == ["fr"]
    assert data.report.rows_read == 5
    assert data.report.filtered == {f"{items_file} rows without events": 1}  # item zz
    assert_canonical(data)


def test_generic_csv(tmp_path: Path) -> None:
    events, users, items = _generic_files(tmp_path)
    data = load_dataset("generic", events, users=users, items=items, name="csv")
    _check_generic(data, "items.csv")


def test_generic_parquet(tmp_path: Path) -> None:
    columns = list(zip(*EVENTS, strict=True))
    pq.write_table(
        pa.table(
            {
                "user_id": columns[0],
                "item_id": columns[1],
                "timestamp": columns[2],
                "behaviour": columns[3],
                "event_id": columns[4],
            }
        ),
        tmp_path / "events.parquet",
    )
    pq.write_table(pa.table({"user_id": ["u1", "u2"], "country": ["fr", None]}), tmp_path / "users.parquet")
    pq.write_table(
        pa.table(
            {
                "item_id": ["a", "b", "007", "zz"],
                "genre": ["Comedy|Drama", "Drama", None, "Horror"],
                "brand": ["x", "y", "x", "z"],
            }
        ),
        tmp_path / "items.parquet",
    )
    data = load_generic(
        tmp_path / "events.parquet", tmp_path / "users.parquet", tmp_path / "items.parquet", name="parquet"
    )
    _check_generic(data, "items.parquet")
    # Integer and native timestamp columns, integer ids.
    seconds = [JAN_1_2024 + 60, JAN_1_2024]
    pq.write_table(
        pa.table({"user_id": [1, 1], "item_id": [10, 11], "timestamp": pa.array(seconds)}),
        tmp_path / "i.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "user_id": [1, 1],
                "item_id": [10, 11],
                "timestamp": pa.array([s * 1000 for s in seconds], pa.timestamp("ms", tz="UTC")),
            }
        ),
        tmp_path / "t.pq",
    )
    for file in ("i.parquet", "t.pq"):
        got = load_generic(tmp_path / file)
        assert decoded(got) == [("1", "11", JAN_1_2024, "<pad>"), ("1", "10", JAN_1_2024 + 60, "<pad>")]
        assert not got.has_behaviour


# --- errors ---------------------------------------------------------------------------------------


def _movielens_folder(tmp_path: Path, data: str = "1\t10\t5\t100\n2\t10\t3\t90\n") -> Path:
    (tmp_path / "u.data").write_text(data)
    (tmp_path / "u.user").write_text("1|17|F|student|K7L5J\n2|56|M|other|02139\n")
    (tmp_path / "u.genre").write_text("unknown|0\nAction|1\n\n")
    (tmp_path / "u.item").write_bytes("10|Caf\xe9 (1995)|01-Jan-1995||url|0|1\n".encode("latin-1"))
    return tmp_path


def test_small_movielens_folder(tmp_path: Path) -> None:
    data = load_movielens_100k(_movielens_folder(tmp_path))
    assert field_values(data, "user", "age_band", "1") == ["<18"]
    assert field_values(data, "user", "age_band", "2") == ["56+"]
    assert field_values(data, "user", "zip_prefix", "2") == ["0"]
    assert field_values(data, "item", "genres", "10") == ["Action"]


def _raises_at(path: Path, line: int | None, text: str) -> AbstractContextManager:
    """The error must start with ``file:line: expected <text>``."""
    where = f"{path}:{line}: " if line else f"{path}: "
    return pytest.raises(DataFormatError, match="^" + re.escape(f"{where}expected {text}"))


@pytest.mark.parametrize(
    ("u_data", "line", "match"),
    [
        ("1\t10\t5\t100\n1\t11\t4\n", 2, "4 tab-separated fields, got '1\\t11\\t4'"),
        ("1\t10\t5\t100\n\n1\t11\t4\t1.5\n", 3, "an integer timestamp, got '1.5'"),
        ("x\t10\t5\t100\n", 1, "an integer user id"),
        ("1\t10\t6\t100\n", 1, "a rating 1-5, got '6'"),
    ],
)
def test_movielens_errors(tmp_path: Path, u_data: str, line: int, match: str) -> None:
    folder = _movielens_folder(tmp_path, u_data)
    with _raises_at(folder / "u.data", line, match):
        load_movielens_100k(folder)


def test_movielens_missing_and_bad_side_files(tmp_path: Path) -> None:
    folder = _movielens_folder(tmp_path)
    (folder / "u.user").write_text("1|17|F|student|K7L5J\n1|18|F|student|K7L5J\n")
    with _raises_at(folder / "u.user", 2, "each user id once"):
        load_movielens_100k(folder)
    (folder / "u.user").unlink()
    with _raises_at(folder / "u.user", None, "an existing file, got 'missing'"):
        load_movielens_100k(folder)
    with _raises_at(tmp_path / "nope", None, "an existing folder"):
        load_movielens_100k(tmp_path / "nope")


def test_taobao_errors(tmp_path: Path) -> None:
    csv = tmp_path / "UserBehavior.csv"
    csv.write_text("1,2,3,pv,100\n1,3,4,cart,101\n1,2,3,like,102\n")
    with _raises_at(csv, 3, "a behaviour in ['buy', 'cart', 'fav', 'pv'], got 'like'"):
        load_taobao(tmp_path)
    csv.write_text("1,2,3,pv\n")
    with _raises_at(csv, 1, "5 comma-separated fields"):
        load_taobao(csv)


def test_s3rec_errors(tmp_path: Path) -> None:
    with _raises_at(tmp_path, None, "exactly one *.txt data file, got 'no such file'"):
        load_s3rec(tmp_path)
    (tmp_path / "README.txt").write_text("not data\n")
    (tmp_path / "Toys_sample.txt").write_text("1 9 8 7\n")
    seq = tmp_path / "Toys.txt"
    seq.write_text("1 5 6\n2 6 x\n")
    with _raises_at(seq, 2, "an integer item id, got 'x'"):
        load_s3rec(tmp_path)
    seq.write_text("1 5 6\n2 6 7\n1 8\n")
    with _raises_at(seq, 3, "each user on one line"):
        load_s3rec(tmp_path)
    seq.write_text("1 5 6\n2\n")
    with _raises_at(seq, 2, "at least 2 whitespace-separated fields"):
        load_s3rec(tmp_path)
    seq.write_text("1 5 6\n2 6 7\n")
    (tmp_path / "Toys_item2attributes.json").write_text('{"5": [1, 2],\n "6": [3}')
    with _raises_at(tmp_path / "Toys_item2attributes.json", 2, "a JSON object"):
        load_s3rec(tmp_path)
    (tmp_path / "Toys_item2attributes.json").write_text('{"5": [1, 2], "6": [3], "99": [4]}')
    data = load_s3rec(tmp_path)
    assert data.name == "toys" and data.timestamps.tolist() == [0, 1, 0, 1]
    assert data.report.filtered == {"Toys_item2attributes.json items without events": 1}
    (tmp_path / "Sports.txt").write_text("1 2\n")
    with _raises_at(tmp_path, None, "exactly one *.txt data file, got ['Sports.txt', 'Toys.txt']"):
        load_s3rec(tmp_path)
    assert load_s3rec(tmp_path, name="sports").n_events == 1


@pytest.mark.parametrize(
    ("name", "text", "line", "match"),
    [
        ("e.csv", "user_id,item_id\nu,i\n", 1, "a column 'timestamp'"),
        (
            "e.csv",
            "user_id,item_id,timestamp\nu,i,1\n\nu,i,yesterday\n",
            4,
            "a timestamp: integer unix seconds or ISO-8601, got 'yesterday'",
        ),
        ("e.csv", "user_id,item_id,timestamp\nu,i,1\nu,i\n", 3, "3 comma-separated fields"),
        ("e.csv", "user_id,item_id,timestamp\nu,i,1\n,i,2\n", 3, "a value in column 'user_id', got 'empty'"),
        ("e.csv", "user_id,item_id,timestamp,event_id\nu,i,1,a\nu,i,2,a\n", 3, "each event_id once"),
        ("e.csv", "", 1, "a header row"),
        ("e.tsv", "user_id\titem_id\ttimestamp\n", None, "a file ending in one of"),
        ("missing.csv", None, None, "an existing file"),
    ],
)
def test_generic_errors(tmp_path: Path, name: str, text: str | None, line: int | None, match: str) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    with _raises_at(path, line, match):
        load_generic(path)


def test_generic_side_file_errors(tmp_path: Path) -> None:
    events = _write_csv(tmp_path / "e.csv", "user_id,item_id,timestamp", [("u", "i", "1")])
    items = _write_csv(tmp_path / "items.csv", "item_id,genre", [("i", "a"), ("i", "b")])
    with _raises_at(items, 3, "each item_id once"):
        load_generic(events, items=items)
    users = _write_csv(tmp_path / "users.csv", "id,age", [("u", "3")])
    with _raises_at(users, 1, "a column 'user_id'"):
        load_generic(events, users=users)
    pq.write_table(
        pa.table({"user_id": ["u", None], "item_id": ["i", "i"], "timestamp": [1, 2]}), tmp_path / "e.parquet"
    )
    with _raises_at(tmp_path / "e.parquet", 2, "a value in column 'user_id'"):
        load_generic(tmp_path / "e.parquet")


# --- multi-valued side fields ------------------------------------------------------------------------

def tag_data(fields: FieldOptions | None = None) -> InteractionData:
    """Tags as a tag data set lists them: once per user who gave one, so repeats within an item."""
    tags = {"i1": ["funny", "dark", "funny", "funny", "long"], "i2": ["dark", "long", "dark"],
            "i3": ["funny", "rare"], "i4": []}
    return build_interactions("tags", ["u1"] * 4, ["i1", "i2", "i3", "i4"], [1, 2, 3, 4],
                              item_features={"tags": tags}, fields=fields)


def rows_of(data: InteractionData, field: str) -> dict[str, list[tuple[str, int]]]:
    table = data.item_fields[field]
    counts = table.counts if table.counts is not None else np.ones_like(table.values)
    return {item: [(table.vocab.tokens[v], int(c))
                   for v, c in zip(table.values[row], counts[row], strict=True) if v]
            for row, item in enumerate(data.item_vocab.tokens) if row >= 2}


def test_repeated_values_count_once_and_keep_their_count() -> None:
    data = tag_data()
    assert rows_of(data, "tags") == {"i1": [("funny", 3), ("dark", 1), ("long", 1)],
                                     "i2": [("dark", 2), ("long", 1)], "i3": [("funny", 1), ("rare", 1)],
                                     "i4": []}
    assert data.item_fields["tags"].width == 3  # not 5: repeats take no slots
    assert data.report.filtered == {"item.tags: repeated values merged": 3}


def test_width_cap_keeps_the_most_frequent_then_the_most_widespread() -> None:
    data = tag_data(FieldOptions(max_width=2))
    # i1: funny (3 times) first; dark and long tie on 1 and on 2 items each: the first listed wins
    assert rows_of(data, "tags")["i1"] == [("funny", 3), ("dark", 1)]
    assert data.item_fields["tags"].width == 2
    assert data.report.filtered["item.tags: values beyond 2 per entity"] == 1


def test_values_on_too_few_entities_are_dropped() -> None:
    data = tag_data(FieldOptions(min_count=2))
    assert rows_of(data, "tags")["i3"] == [("funny", 1)]
    assert "rare" not in data.item_fields["tags"].vocab.tokens  # no embedding row for it either
    assert data.report.filtered["item.tags: values on fewer than 2 entities"] == 1
    with pytest.raises(ValueError, match="min_count"):
        FieldOptions(min_count=0)


def test_generic_loader_merges_repeated_tags(tmp_path: Path) -> None:
    (tmp_path / "events.csv").write_text("user_id,item_id,timestamp\nu1,i1,1\nu1,i2,2\n")
    (tmp_path / "items.csv").write_text("item_id,tags\ni1,a|b|a|a\ni2,b\n")
    data = load_dataset("generic", tmp_path / "events.csv", items=tmp_path / "items.csv",
                        fields=FieldOptions(min_count=2))
    assert rows_of(data, "tags") == {"i1": [("b", 1)], "i2": [("b", 1)]}


def test_s3rec_picks_one_of_several_files_by_name(tmp_path: Path) -> None:
    (tmp_path / "Sports.txt").write_text("1 5 6 7\n2 6 7\n")
    (tmp_path / "Toys.txt").write_text("1 8 9\n")
    (tmp_path / "Sports_item2attributes.json").write_text('{"5": [1, 2, 1], "6": [2]}')
    with pytest.raises(DataFormatError, match="exactly one"):
        load_dataset("s3rec", tmp_path)
    sports = load_dataset("beauty", tmp_path, name="Sports")  # the old name is an alias
    assert (sports.name, sports.n_events) == ("sports", 5)
    assert rows_of(sports, "attributes")["5"] == [("1", 2), ("2", 1)]
    assert load_dataset("s3rec", tmp_path, name="toys").n_events == 2
    with pytest.raises(ConfigError, match="takes no name"):
        load_dataset("ml-100k", tmp_path, name="Sports")
