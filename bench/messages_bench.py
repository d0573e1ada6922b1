"""Message models on the hot path: µs per message of msgspec, pydantic and dataclasses vs orjson + dicts.

    flock /tmp/amsrm-cpu.lock .venv/bin/python bench/messages_bench.py   # → docs/results/messages-bench.json

What the worker does per event, each way, on the same messages in the same run:
- **event**: decode and validate one event from bytes (a realistic event with side fields).
  Today's path (before amsrm.messages): orjson, the checks by hand, a ``faust.Record``.
- **recommendation**: build and encode one Top-10 recommendation to bytes.
  Today's path: a hand-built dict and ``orjson.dumps``.
- **sample**: build and encode one labelled sample whose window holds 30 entries with item
  fields (the window objects exist already, as in the worker).  Today's path: dicts, orjson.
Also, off the worker's hot path: the producers' event encoding, the collector's sample decoding
(into the training store's row) and a dead letter's headers.

Candidates: msgspec Structs (amsrm.messages, the chosen library, through the project's own
functions: streams.worker.validation.parse_event, UserWindow.public, producers.events.encode),
pydantic v2 models (``model_validate_json``; outputs built with ``model_construct``, without
validation, like the others) and slotted dataclasses (the checks by hand, ``orjson.dumps``).
pydantic is measured only where it is importable (it is no dependency of the project:
``pip install --target /tmp/benchlibs pydantic`` and ``PYTHONPATH=/tmp/benchlibs`` for a run).

Every encoding candidate must produce exactly today's bytes (``same_bytes``).  Each case runs
``--iterations`` messages per run, the cases interleaved, ``--runs`` runs; the medians of the
per-run µs per message are reported, with the ratio to today's path measured in the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import faust
import msgspec
import orjson

from amsrm import messages
from amsrm.messages import (
    MAX_BEHAVIOUR_CHARS,
    MAX_FIELD_VALUES,
    MAX_FIELDS,
    MAX_ID_CHARS,
    MAX_VALUE_CHARS,
    REQUIRED,
    DeadLetterHeaders,
    LabelledSample,
    Recommendation,
    decode_sample,
)
from amsrm_core.retraining.store import sample_row
from producers.events import encode as producer_encode
from streams.worker.state import UserWindow
from streams.worker.validation import Limits, Rejected, _fields, _ident, parse_by_hand, parse_event

REPO = Path(__file__).resolve().parent.parent
NOW = 1_790_000_000_000
LIMITS = Limits(8192, 946_684_800_000, 86_400_000)
EVENT = {"event_id": "synthetic-4217-r0", "user_id": "u230", "item_id": "i1043", "behaviour": "click",
         "user_fields": {"gender": "F", "age_band": "25-34"},
         "item_fields": {"category": "c7", "brand": "b21", "tags": ["t3", "t17"]}, "timestamp": NOW}
RAW_EVENT = orjson.dumps(EVENT)
ITEMS = [f"i{n * 37 % 1500}" for n in range(10)]
SCORES = [2.0199999809265137 - n * 0.0137 for n in range(10)]  # float32 scores as Python floats
VERSION = "amsrm-8f57dc6348b3"


def window_of(n: int) -> UserWindow:
    window = UserWindow()
    for i in range(n):
        event = messages.BehaviourEvent(
            event_id=f"synthetic-{4000 + i}-r0", user_id="u230", item_id=f"i{i * 53 % 1500}", behaviour="click",  # noqa: E501
            user_fields=EVENT["user_fields"], item_fields={"category": f"c{i % 9}", "brand": f"b{i % 40}"},
            timestamp=NOW - 1000 * (n - i))
        window = window.append(event, offset=i, length=n)
    return window


WINDOW = window_of(30)


# --------------------------------------------------------------------------- today's path
class OldBehaviourEvent(faust.Record, serializer="json", include_metadata=False):
    """streams/worker/records.py before amsrm.messages."""

    event_id: str
    user_id: str
    item_id: str
    timestamp: int
    behaviour: str | None = None
    user_fields: dict | None = None
    item_fields: dict | None = None


def today_checked(raw: bytes, make: Callable[..., Any]) -> Any:
    """streams.worker.validation.parse_event before amsrm.messages: orjson, checks by hand, ``make``."""
    if not raw:
        return Rejected("empty", "no payload")
    if len(raw) > LIMITS.max_bytes:
        return Rejected("oversized", "")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        return Rejected("bad_json", str(e)[:200])
    if not isinstance(data, dict):
        return Rejected("not_an_object", "")
    missing = [name for name in REQUIRED if data.get(name) is None]
    if missing:
        return Rejected("missing_field", "missing " + ", ".join(missing))
    checked = {
        "event_id": _ident(data, "event_id", MAX_ID_CHARS),
        "user_id": _ident(data, "user_id", MAX_ID_CHARS),
        "item_id": _ident(data, "item_id", MAX_ID_CHARS),
        "behaviour": _ident(data, "behaviour", MAX_BEHAVIOUR_CHARS, optional=True),
        "user_fields": _fields(data, "user_fields"),
        "item_fields": _fields(data, "item_fields"),
    }
    for value in checked.values():
        if isinstance(value, Rejected):
            return value
    timestamp = data["timestamp"]
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        return Rejected("wrong_type", "")
    if not LIMITS.min_time_ms <= timestamp <= NOW + LIMITS.max_skew_ms:
        return Rejected("bad_timestamp", "")
    return make(timestamp=timestamp, **checked)


def today_event() -> Any:
    return today_checked(RAW_EVENT, OldBehaviourEvent)


def today_recommendation() -> bytes:
    return orjson.dumps({"user_id": "u230", "event_id": "synthetic-4217-r0", "items": ITEMS, "scores": SCORES,
                         "model_version": VERSION, "event_time_ms": NOW, "publish_time_ms": NOW + 15,
                         "fallback": None})


def today_sample() -> bytes:
    window = [{"event_id": e.event_id, "item_id": e.item_id, "behaviour": e.behaviour, "timestamp": e.timestamp,  # noqa: E501
               "item_fields": e.item_fields} for e in WINDOW.entries]
    return orjson.dumps({"user_id": "u230", "event_id": "synthetic-4217-r0", "window": window,
                         "user_fields": WINDOW.user_fields, "next_item_id": "i1043", "next_behaviour": "click",  # noqa: E501
                         "event_time_ms": NOW, "next_item_fields": EVENT["item_fields"]})


PRODUCED = {k: v for k, v in EVENT.items() if k != "timestamp"}


def today_produce() -> bytes:
    return orjson.dumps({**PRODUCED, "timestamp": NOW})


RAW_SAMPLE = today_sample()


def today_collect() -> dict:
    return sample_row(orjson.loads(RAW_SAMPLE), 0, 17, NOW)


def today_headers() -> list:
    source = f"amsrm-events/{3}/{123456}"
    return [("amsrm-reason", b"bad_json"), ("amsrm-detail", b"unexpected character: line 1 column 2"),
            ("amsrm-source", source.encode())]


# --------------------------------------------------------------------------- msgspec (amsrm.messages)
def msgspec_event() -> Any:
    return parse_event(RAW_EVENT, LIMITS, NOW)


def msgspec_event_fallback() -> Any:
    """The checks by hand building the Struct: the path of a rejected event, here for a valid one."""
    return parse_by_hand(RAW_EVENT, LIMITS, NOW)


def msgspec_recommendation() -> bytes:  # as streams.worker.processing builds it
    return messages.encode(Recommendation(
        user_id="u230", event_id="synthetic-4217-r0", items=ITEMS, scores=SCORES, model_version=VERSION,
        event_time_ms=NOW, publish_time_ms=NOW + 15, fallback=None))


def msgspec_sample() -> bytes:
    return messages.encode(LabelledSample(
        user_id="u230", event_id="synthetic-4217-r0", window=WINDOW.public(), user_fields=WINDOW.user_fields,
        next_item_id="i1043", next_behaviour="click", event_time_ms=NOW, next_item_fields=EVENT["item_fields"]))  # noqa: E501


def msgspec_produce() -> bytes:
    return producer_encode(PRODUCED, NOW)[1]


def msgspec_collect() -> dict:
    """Decode and validate through the model, then the store's row from its builtins."""
    return sample_row(msgspec.to_builtins(decode_sample(RAW_SAMPLE)), 0, 17, NOW)


def msgspec_headers() -> list:
    return DeadLetterHeaders.of("bad_json", "unexpected character: line 1 column 2", "amsrm-events", 3,
                                123456).kafka_headers()


# --------------------------------------------------------------------------- slotted dataclasses + orjson
@dataclass(slots=True, frozen=True)
class DcEvent:
    event_id: str
    user_id: str
    item_id: str
    timestamp: int
    behaviour: str | None = None
    user_fields: dict | None = None
    item_fields: dict | None = None


@dataclass(slots=True)
class DcRecommendation:
    user_id: str
    event_id: str
    items: list[str]
    scores: list[float]
    model_version: str
    event_time_ms: int
    publish_time_ms: int
    fallback: str | None = None


@dataclass(slots=True)
class DcEntry:
    event_id: str
    item_id: str
    behaviour: str | None
    timestamp: int
    item_fields: dict | None = None


@dataclass(slots=True)
class DcSample:
    user_id: str
    event_id: str
    window: list[DcEntry]
    user_fields: dict | None
    next_item_id: str
    next_behaviour: str | None
    event_time_ms: int
    next_item_fields: dict | None = None


def dc_event() -> Any:
    return today_checked(RAW_EVENT, DcEvent)


def dc_recommendation() -> bytes:
    return orjson.dumps(DcRecommendation("u230", "synthetic-4217-r0", ITEMS, SCORES, VERSION, NOW, NOW + 15))


def dc_sample() -> bytes:
    window = [DcEntry(e.event_id, e.item_id, e.behaviour, e.timestamp, e.item_fields) for e in WINDOW.entries]
    return orjson.dumps(DcSample("u230", "synthetic-4217-r0", window, WINDOW.user_fields, "i1043", "click", NOW,  # noqa: E501
                                 EVENT["item_fields"]))


# --------------------------------------------------------------------------- pydantic v2 (optional)
def pydantic_cases() -> dict[str, Callable[[], Any]]:
    try:
        import pydantic
    except ImportError:
        return {}
    from pydantic import BaseModel, Field

    Text = Annotated[str, Field(max_length=MAX_VALUE_CHARS)]
    Fields = Annotated[dict[Text, Text | Annotated[list[Text], Field(max_length=MAX_FIELD_VALUES)]],
                       Field(max_length=MAX_FIELDS)]
    Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]

    class PEvent(BaseModel, strict=True, frozen=True):
        event_id: Id
        user_id: Id
        item_id: Id
        behaviour: Annotated[str, Field(min_length=1, max_length=MAX_BEHAVIOUR_CHARS)] | None = None
        user_fields: Fields | None = None
        item_fields: Fields | None = None
        timestamp: int

    class PRecommendation(BaseModel):
        user_id: str
        event_id: str
        items: list[str]
        scores: list[float]
        model_version: str
        event_time_ms: int
        publish_time_ms: int
        fallback: str | None = None

    class PEntry(BaseModel):
        event_id: str
        item_id: str
        behaviour: str | None
        timestamp: int
        item_fields: dict | None = None

    class PSample(BaseModel):
        user_id: str
        event_id: str
        window: list[PEntry]
        user_fields: dict | None
        next_item_id: str
        next_behaviour: str | None
        event_time_ms: int
        next_item_fields: dict | None = None

    def event() -> Any:
        try:
            e = PEvent.model_validate_json(RAW_EVENT)
        except pydantic.ValidationError:
            return None
        return e if LIMITS.min_time_ms <= e.timestamp <= NOW + LIMITS.max_skew_ms else None

    def recommendation() -> bytes:
        return PRecommendation.model_construct(
            user_id="u230", event_id="synthetic-4217-r0", items=ITEMS, scores=SCORES, model_version=VERSION,
            event_time_ms=NOW, publish_time_ms=NOW + 15, fallback=None).model_dump_json().encode()

    def sample() -> bytes:
        window = [PEntry.model_construct(event_id=e.event_id, item_id=e.item_id, behaviour=e.behaviour,
                                         timestamp=e.timestamp, item_fields=e.item_fields) for e in WINDOW.entries]  # noqa: E501
        return PSample.model_construct(
            user_id="u230", event_id="synthetic-4217-r0", window=window, user_fields=WINDOW.user_fields,
            next_item_id="i1043", next_behaviour="click", event_time_ms=NOW,
            next_item_fields=EVENT["item_fields"]).model_dump_json().encode()

    return {"event/pydantic": event, "recommendation/pydantic": recommendation, "sample/pydantic": sample}


# --------------------------------------------------------------------------- measuring
def cases() -> dict[str, dict[str, Callable[[], Any]]]:
    """message → candidate → one message's work; ``today`` first."""
    table = {
        "event": {"today": today_event, "msgspec": msgspec_event, "msgspec_checks_by_hand": msgspec_event_fallback,  # noqa: E501
                  "dataclasses": dc_event},
        "recommendation": {"today": today_recommendation, "msgspec": msgspec_recommendation,
                           "dataclasses": dc_recommendation},
        "sample": {"today": today_sample, "msgspec": msgspec_sample, "dataclasses": dc_sample},
        "producer_event": {"today": today_produce, "msgspec": msgspec_produce},
        "collector_sample": {"today": today_collect, "msgspec": msgspec_collect},
        "dead_letter_headers": {"today": today_headers, "msgspec": msgspec_headers},
    }
    for name, fn in pydantic_cases().items():
        message, candidate = name.split("/")
        table[message][candidate] = fn
    return table


def check(table: dict[str, dict[str, Callable[[], Any]]]) -> dict[str, dict[str, bool]]:
    """Every candidate's output against today's: the same bytes, event fields, rows or headers."""
    def comparable(message: str, value: Any) -> Any:
        if message == "event":
            return None if value is None or isinstance(value, Rejected) else \
                {k: getattr(value, k) for k in ("event_id", "user_id", "item_id", "behaviour", "timestamp",
                                                "user_fields", "item_fields")}
        return value

    out: dict[str, dict[str, bool]] = {}
    for message, candidates in table.items():
        expected = comparable(message, candidates["today"]())
        assert expected is not None, message
        out[message] = {c: comparable(message, fn()) == expected for c, fn in candidates.items() if c != "today"}  # noqa: E501
    return out


def measure(fn: Callable[[], Any], iterations: int) -> float:
    gc.collect()
    started = time.perf_counter_ns()
    for _ in range(iterations):
        fn()
    return (time.perf_counter_ns() - started) / iterations / 1000


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def version_of(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--iterations", type=int, default=20_000, help="messages per case per run")
    parser.add_argument("--out", default=str(REPO / "docs" / "results" / "messages-bench.json"))
    args = parser.parse_args(argv)
    table = cases()
    same = check(table)
    runs: dict[str, dict[str, list[float]]] = {m: {c: [] for c in cs} for m, cs in table.items()}
    for _ in range(args.runs):
        for message, candidates in table.items():
            for candidate, fn in candidates.items():
                runs[message][candidate].append(measure(fn, args.iterations))
    results: dict[str, dict[str, dict]] = {}
    for message, candidates in runs.items():
        today = statistics.median(candidates["today"])
        results[message] = {}
        for candidate, values in candidates.items():
            median = statistics.median(values)
            entry = {"median_us": round(median, 3), "ratio_vs_today": round(median / today, 3),
                     "runs_us": [round(v, 3) for v in values]}
            if candidate != "today":
                entry["same_output_as_today"] = same[message][candidate]
            results[message][candidate] = entry
    document = {
        "benchmark": "bench/messages_bench.py",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": {"arch": platform.machine(), "cpu": cpu_model(), "cores": os.cpu_count(),
                    "python": platform.python_version()},
        "libraries": {name: version_of(name) for name in ("msgspec", "orjson", "pydantic", "faust-streaming")},  # noqa: E501
        "runs": args.runs, "iterations_per_run": args.iterations,
        "today": "orjson + hand-built dicts; events: orjson, the checks by hand, a faust.Record",
        "messages": {"event": f"{len(RAW_EVENT)} bytes with user and item side fields",
                     "recommendation": f"top-{len(ITEMS)}", "sample": f"window of {len(WINDOW.entries)} entries "  # noqa: E501
                     f"with item fields, {len(RAW_SAMPLE)} bytes"},
        "results_us_per_message": results,
    }
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    width = max(len(f"{m}/{c}") for m, cs in results.items() for c in cs)
    for message, candidates in results.items():
        for candidate, entry in candidates.items():
            flag = "" if entry.get("same_output_as_today", True) else "  (output differs!)"
            print(f"{message + '/' + candidate:<{width}}  {entry['median_us']:8.2f} µs  "
                  f"×{entry['ratio_vs_today']:.2f}{flag}", file=sys.stderr)
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
