"""Garbage-collector settings for a long-running worker process.

CPython's cyclic collector runs a young collection every 700 net container allocations
and, every so often, a full one that walks every live object.  A worker holds over a
million long-lived objects (torch, Faust, aiokafka and their modules) and allocates many
short-lived ones per event (parsed events, windows, messages), so with the defaults the
full collections pause the event loop for up to ~170 ms (13–14 of them over start-up and
one 20,000-event drain) and all collections take ~2.7 s of such a worker's life, against
~0.9 s with ``settle`` (bench/gc_bench.py; docs/BENCHMARKS.md, "Garbage collection").

``settle`` is called once the worker has loaded everything: it moves what exists into
the permanent generation (``gc.freeze``: never walked again) and raises the young
threshold, so most short-lived objects are freed by their reference counts before a
collection sees them.  Reference cycles created later are still collected.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)

THRESHOLDS = (20_000, 20, 10)  # Python's defaults: (700, 10, 10)


def settle(enabled: bool = True) -> None:
    """Collect once, freeze what is left and raise the thresholds (no-op when not ``enabled``)."""
    if not enabled:
        return
    gc.collect()  # garbage that exists now is not frozen
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    log.debug("froze %d objects; GC thresholds %s", gc.get_freeze_count(), THRESHOLDS)


def refresh(enabled: bool = True) -> None:
    """After replacing something that was frozen (a hot-swapped model): collect it, freeze the rest."""
    if not enabled:
        return
    gc.unfreeze()
    settle()
