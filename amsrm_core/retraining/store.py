"""The training store: labelled samples as Parquet files, partitioned by event hour (UTC).

Layout (Hive-style, so any Parquet reader can prune by time)::

    <root>/date=2026-11-27/hour=00/<topic>-p0003-000000001200-000000001455-1f2e3d4c.parquet

Why each part of that:
- A file appears complete or not at all: it is written as a hidden ``.tmp`` file in
  its final directory, fsynced, renamed (atomic on POSIX) and the directory fsynced
  (``amsrm_core.files.write_atomically``).
  Readers never see half a file; a crash leaves at most a hidden temp file behind.
- The name records the source partition and the offset range the write covered, so a
  restarted collector knows which files it may be reading again (those reaching past
  its committed offset) and loads their event ids to drop the replayed samples.
- The random tag means a file is never overwritten, even when a recreated topic
  starts its offsets again from zero.

One row per sample: the event's ids, item, behaviour and time, the window before it
(from a worker's ``LabelledSample``; empty for samples the collector labels from the
events itself), side fields normalised to ``name → list of strings``, and where it
came from (topic partition and offset).  No torch here: the collector
imports this module and should start fast.
"""

from __future__ import annotations

import calendar
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from amsrm.messages import BehaviourEvent
from amsrm_core.files import write_atomically

HOUR_MS = 3_600_000
FIELDS = pa.map_(pa.string(), pa.list_(pa.string()))
WINDOW_ENTRY = pa.struct([("event_id", pa.string()), ("item_id", pa.string()), ("behaviour", pa.string()),
                          ("timestamp", pa.int64()), ("item_fields", FIELDS)])
SCHEMA = pa.schema([
    ("event_id", pa.string()),  # unique per event: the deduplication key
    ("user_id", pa.string()),
    ("item_id", pa.string()),  # the sample's label: the item of this event
    ("behaviour", pa.string()),
    ("event_time_ms", pa.int64()),  # partitions the store
    ("item_fields", FIELDS),  # of this event's item (null from workers that do not publish them)
    ("user_fields", FIELDS),  # latest known for the user
    ("window", pa.list_(WINDOW_ENTRY)),  # the events before this one, oldest first (empty: from events)
    ("source_partition", pa.int32()),
    ("source_offset", pa.int64()),
    ("collected_ms", pa.int64()),
])
_NAME = re.compile(r"^(?P<topic>.+)-p(?P<partition>\d+)-(?P<first>\d+)-(?P<last>\d+)-[0-9a-f]+\.parquet$")
_HOUR_DIR = re.compile(r"^date=(\d{4})-(\d{2})-(\d{2})$")


class SampleError(ValueError):
    """A message on the samples topic is not a labelled sample."""


@dataclass(frozen=True)
class StoredFile:
    path: Path
    topic: str
    partition: int
    first_offset: int
    last_offset: int


def normalise_fields(fields: object) -> dict[str, list[str]] | None:
    """``name → value or list of values`` as ``name → list of strings`` (empty values dropped)."""
    if not fields:
        return None
    if not isinstance(fields, Mapping):
        raise SampleError(f"side fields must be an object, got {type(fields).__name__}")
    out = {}
    for name, value in fields.items():
        values = value if isinstance(value, list | tuple) else [value]
        kept = [str(v) for v in values if v is not None and str(v) != ""]
        if kept:
            out[str(name)] = kept
    return out or None


def sample_row(sample: object, partition: int, offset: int, collected_ms: int) -> dict:
    """One store row from a decoded ``LabelledSample``; SampleError if it is not one."""
    if not isinstance(sample, Mapping):
        raise SampleError("not a JSON object")
    try:
        window = [{"event_id": str(e["event_id"]), "item_id": str(e["item_id"]),
                   "behaviour": e.get("behaviour"), "timestamp": int(e["timestamp"]),
                   "item_fields": normalise_fields(e.get("item_fields"))} for e in sample["window"]]
        return _row(str(sample["event_id"]), str(sample["user_id"]), str(sample["next_item_id"]),
                    sample.get("next_behaviour"), int(sample["event_time_ms"]),
                    sample.get("next_item_fields"), sample.get("user_fields"), window, partition, offset,
                    collected_ms)
    except (KeyError, TypeError, ValueError) as e:
        raise SampleError(f"not a labelled sample: {e!r}") from e


def event_row(event: BehaviourEvent, partition: int, offset: int, collected_ms: int) -> dict:
    """One store row from a validated event (``AMSRM_SAMPLES_SOURCE=events``): the event itself, with
    an empty window, as the retrain rebuilds each user's sequence from the events by event time
    (``amsrm_core.retraining.dataset``); its user fields are the event's own."""
    return _row(event.event_id, event.user_id, event.item_id, event.behaviour, event.timestamp,
                event.item_fields, event.user_fields, [], partition, offset, collected_ms)


def _row(event_id: str, user_id: str, item_id: str, behaviour: str | None, event_time_ms: int,
         item_fields: object, user_fields: object, window: list[dict], partition: int, offset: int,
         collected_ms: int) -> dict:
    return {"event_id": event_id, "user_id": user_id, "item_id": item_id, "behaviour": behaviour,
            "event_time_ms": event_time_ms, "item_fields": normalise_fields(item_fields),
            "user_fields": normalise_fields(user_fields), "window": window,
            "source_partition": partition, "source_offset": offset, "collected_ms": collected_ms}


def hour_dir(time_ms: int) -> str:
    t = time.gmtime(time_ms // 1000)
    return f"date={t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}/hour={t.tm_hour:02d}"


def _hour_start_ms(date_dir: str, hour_dir_name: str) -> int | None:
    match = _HOUR_DIR.match(date_dir)
    if not match or not hour_dir_name.startswith("hour="):
        return None
    year, month, day = (int(g) for g in match.groups())
    return calendar.timegm((year, month, day, int(hour_dir_name[5:]), 0, 0)) * 1000


class TrainingStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # ------------------------------------------------------------------ writing
    def write(self, rows: list[dict], topic: str, partition: int, first_offset: int, last_offset: int
              ) -> list[Path]:
        """Durably write ``rows`` (from offsets first…last of one partition): one file per event hour."""
        by_hour: dict[str, list[dict]] = defaultdict(list)
        for row in rows:
            by_hour[hour_dir(row["event_time_ms"])].append(row)
        tag = uuid.uuid4().hex[:8]
        name = f"{topic}-p{partition:04d}-{first_offset:012d}-{last_offset:012d}-{tag}.parquet"
        written = []
        for hour, part in sorted(by_hour.items()):
            directory = self.root / hour
            directory.mkdir(parents=True, exist_ok=True)
            written.append(self._write_file(directory / name, pa.Table.from_pylist(part, schema=SCHEMA)))
        return written

    def _write_file(self, path: Path, table: pa.Table) -> Path:
        # the rename, and the folders that may be new (its hour, its date)
        return write_atomically(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"),
                                sync_dirs=(path.parent.parent, self.root))

    # ------------------------------------------------------------------ listing
    def files(self, topic: str | None = None, partition: int | None = None,
              since_ms: int | None = None, until_ms: int | None = None) -> list[StoredFile]:
        """Complete files (temp files are hidden), by name; optionally one source or a time range."""
        out = []
        for date_dir in sorted(self.root.glob("date=*")) if self.root.exists() else []:
            for hour in sorted(date_dir.glob("hour=*")):
                start = _hour_start_ms(date_dir.name, hour.name)
                if start is None or (since_ms is not None and start + HOUR_MS <= since_ms) or \
                        (until_ms is not None and start >= until_ms):
                    continue
                for path in sorted(hour.glob("*.parquet")):
                    match = _NAME.match(path.name)
                    if match is None or (topic is not None and match["topic"] != topic) or \
                            (partition is not None and int(match["partition"]) != partition):
                        continue
                    out.append(StoredFile(path, match["topic"], int(match["partition"]), int(match["first"]),
                                          int(match["last"])))
        return out

    def recent_ids(self, topic: str, partition: int, from_offset: int, at_least: int) -> list[str]:
        """Event ids of every file reaching offset ``from_offset`` or later, then of older files
        until ``at_least`` ids: what a collector taking over this partition may see again.
        Oldest first, so a bounded memory fed in this order keeps the newest."""
        files = sorted(self.files(topic, partition), key=lambda f: (f.last_offset, f.path.name), reverse=True)
        chosen: list[StoredFile] = []
        count = 0
        for f in files:
            if f.last_offset < from_offset and count >= at_least:
                break
            chosen.append(f)
            count += pq.ParquetFile(f.path).metadata.num_rows
        ids: list[str] = []
        for f in reversed(chosen):
            ids.extend(pq.read_table(f.path, columns=["event_id"]).column("event_id").to_pylist())
        return ids

    # ------------------------------------------------------------------ reading
    def read(self, since_ms: int | None = None, until_ms: int | None = None) -> pa.Table:
        """Samples with ``since_ms <= event_time_ms < until_ms``, each event id once (first file wins)."""
        paths = [f.path for f in self.files(since_ms=since_ms, until_ms=until_ms)]
        tables = [pq.read_table(p, schema=SCHEMA) for p in paths]
        table = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
        times = table.column("event_time_ms").to_numpy()
        keep = np.ones(len(times), dtype=bool)
        if since_ms is not None:
            keep &= times >= since_ms
        if until_ms is not None:
            keep &= times < until_ms
        table = table.filter(pa.array(keep))
        return table.take(pa.array(first_occurrences(table.column("event_id").to_pylist())))

    def newest_event_ms(self) -> int | None:
        """Event time of the newest sample (the last hour folder's files only)."""
        files = self.files()
        if not files:
            return None
        last_hour = files[-1].path.parent
        newest = [pq.read_table(f.path, columns=["event_time_ms"]).column("event_time_ms").to_numpy().max()
                  for f in files if f.path.parent == last_hour]
        return int(max(newest))


def first_occurrences(ids: Iterable[str]) -> np.ndarray:
    """Positions of the first occurrence of each id, in order."""
    values = np.asarray(list(ids), dtype=object)
    if not len(values):
        return np.zeros(0, dtype=np.int64)
    _, first = np.unique(values, return_index=True)
    return np.sort(first)
