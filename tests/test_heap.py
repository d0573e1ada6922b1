"""streams.worker.heap: the worker's GC settings are applied, undone for a hot swap, and can be turned off."""

import gc

import pytest

from streams.worker import heap


@pytest.fixture
def restore_gc():
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_settle_freezes_what_is_alive_and_raises_the_thresholds(restore_gc):
    heap.settle()
    assert gc.get_freeze_count() > 1000 and gc.get_threshold() == heap.THRESHOLDS
    frozen = gc.get_freeze_count()
    heap.refresh()  # unfreeze, collect, freeze again: about the same objects, still frozen
    assert gc.get_freeze_count() > frozen // 2 and gc.get_threshold() == heap.THRESHOLDS


def test_a_cycle_made_after_settle_is_still_collected(restore_gc):
    heap.settle()

    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a
    del a, b
    assert gc.collect() >= 2


def test_switched_off_it_changes_nothing(restore_gc):
    before = (gc.get_freeze_count(), gc.get_threshold())
    heap.settle(enabled=False)
    heap.refresh(enabled=False)
    assert (gc.get_freeze_count(), gc.get_threshold()) == before
