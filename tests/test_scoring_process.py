"""The scorer in a child process gives the in-process scorer's results and survives its child dying."""

from __future__ import annotations

import asyncio
import os
import signal
from functools import partial

import pytest
import torch
from test_scoring import cases_of, raw_window

from amsrm_core.runner import make_split
from amsrm_core.schema import InteractionData
from amsrm_core.scoring import Scorer, Window
from streams.local.checkpoints import ensure_checkpoint
from streams.worker.scoring_process import ProcessScorer, ScoringUnavailable


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory, small_synthetic: InteractionData):
    return ensure_checkpoint(tmp_path_factory.mktemp("ckpt"), small_synthetic, epochs=1,
                             overrides={"max_len": 12})


@pytest.fixture(scope="module")
def process_scorer(checkpoint_dir):
    # as many torch threads as this process: the same summation order, so bitwise equal scores
    scorer = ProcessScorer(partial(Scorer.from_checkpoint, checkpoint_dir, k=10), torch.get_num_threads())
    yield scorer
    scorer.close()


def windows_of(data: InteractionData, n: int = 60) -> list[Window]:
    split = make_split(data, "loo")
    return [raw_window(data, split, int(p)) for p in cases_of(split, n)] + [Window("new-user", [("?", None)])]


def test_same_results_as_the_in_process_scorer(process_scorer, checkpoint_dir, small_synthetic):
    local = Scorer.from_checkpoint(checkpoint_dir, k=10)
    windows = windows_of(small_synthetic)
    assert (process_scorer.version, process_scorer.max_len, process_scorer.k) == (local.version, 12, 10)
    assert process_scorer.recommend(windows) == local.recommend(windows)
    assert process_scorer.recommend(windows)[-1].fallback == "popularity"


async def test_batches_in_flight_are_answered_in_order(process_scorer, small_synthetic):
    windows = windows_of(small_synthetic, 60)
    batches = [windows[i:i + 7] for i in range(0, len(windows), 7)]
    expected = [process_scorer.recommend(batch) for batch in batches]
    assert await asyncio.gather(*map(process_scorer.recommend_async, batches)) == expected


async def test_a_killed_child_is_replaced_and_the_batch_scored(process_scorer, small_synthetic):
    windows = windows_of(small_synthetic, 50)
    expected = await process_scorer.recommend_async(windows)
    first = process_scorer.child_pid
    os.kill(first, signal.SIGKILL)
    await asyncio.sleep(0.2)
    assert await process_scorer.recommend_async(windows) == expected
    assert process_scorer.child_pid != first


async def test_a_window_the_scorer_rejects_fails_only_its_request(process_scorer, small_synthetic):
    from streams.worker.scoring_process import ScoringFailed

    with pytest.raises(ScoringFailed):
        await process_scorer.recommend_async([Window("u", None)])  # not a sequence of events
    assert len(await process_scorer.recommend_async(windows_of(small_synthetic, 40))) == 41


def test_a_model_that_cannot_load_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="could not load its model"):
        ProcessScorer(partial(Scorer.from_checkpoint, tmp_path / "missing"))


def test_scoring_unavailable_is_not_dead_lettered():
    """The processor re-raises it (the batch is redelivered) instead of dead-lettering every window."""
    from streams.worker.processing import BatchProcessor, Counters

    class Gone:
        async def recommend_async(self, windows):
            raise ScoringUnavailable("gone")

    processor = BatchProcessor.__new__(BatchProcessor)
    processor.scorer, processor.counters = Gone(), Counters()
    with pytest.raises(ScoringUnavailable):
        asyncio.run(processor._recommend([Window("u", [("i", None)])]))


def test_the_child_exits_when_its_parent_is_killed(checkpoint_dir, tmp_path):
    """A worker killed outright (SIGKILL, OOM) leaves no scoring process behind."""
    import subprocess
    import sys
    import time

    script = tmp_path / "parent.py"
    script.write_text(
        "import sys, time\nfrom functools import partial\nfrom amsrm_core.scoring import Scorer\n"
        "from streams.worker.scoring_process import ProcessScorer\n"
        "if __name__ == '__main__':\n"
        f"    s = ProcessScorer(partial(Scorer.from_checkpoint, {str(checkpoint_dir)!r}))\n"
        "    print(s.child_pid, flush=True)\n    time.sleep(600)\n")
    with subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True) as parent:
        child = int(parent.stdout.readline())
        parent.kill()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(child, signal.SIGKILL)
    pytest.fail("the scoring process outlived its killed parent")
