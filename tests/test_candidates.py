"""The approximate Top-K option: an HNSW index proposes candidates, the scorer ranks them exactly.

On a small catalogue a search as wide as the catalogue finds every exact item, so the lists and
scores must equal the exact scorer's; the masking (window, padding, unknown) and "fewer than K
left" behave as on the exact path; each candidate's score is the model's own."""

from __future__ import annotations

import numpy as np
import pytest
from test_scoring import K, cases_of, checkpoint_dir, raw_window  # noqa: F401 (checkpoint_dir: a fixture)

from amsrm.errors import ConfigError
from amsrm_core.candidates import IndexOptions, rank_candidates
from amsrm_core.checkpoint import load_checkpoint
from amsrm_core.runner import make_split
from amsrm_core.scoring import Scorer, Window

WIDE = IndexOptions("hnsw", probes=1000)  # wider than the 600-item test catalogue


@pytest.fixture(scope="module")
def windows(small_synthetic):
    split = make_split(small_synthetic, "loo")
    return [raw_window(small_synthetic, split, int(p)) for p in cases_of(split)]


def test_a_search_as_wide_as_the_catalogue_gives_the_exact_lists(checkpoint_dir, windows):  # noqa: F811
    loaded = load_checkpoint(checkpoint_dir)
    exact = Scorer(loaded, k=K).recommend(windows)
    indexed = Scorer(loaded, k=K, index=WIDE).recommend(windows)
    for e, a in zip(exact, indexed, strict=True):
        assert a.items == e.items
        np.testing.assert_allclose(a.scores, e.scores, rtol=1e-5, atol=1e-5)


def test_the_default_search_width_finds_nearly_every_exact_item(checkpoint_dir, windows):  # noqa: F811
    loaded = load_checkpoint(checkpoint_dir)
    exact = Scorer(loaded, k=K).recommend(windows)
    indexed = Scorer(loaded, k=K, index=IndexOptions("hnsw")).recommend(windows)
    found = np.mean([len(set(a.items) & set(e.items)) / len(e.items)
                     for e, a in zip(exact, indexed, strict=True)])
    assert found >= 0.98


@pytest.mark.parametrize("exclude_window", [True, False])
def test_the_index_path_masks_like_the_exact_path(checkpoint_dir, small_synthetic, exclude_window):  # noqa: F811
    loaded = load_checkpoint(checkpoint_dir)
    items = small_synthetic.item_vocab.tokens
    long = Window("u", [(items[i], None) for i in range(2, 40)])  # more items than the window holds
    options = {"k": 50, "exclude_window": exclude_window}
    exact = Scorer(loaded, **options).recommend([long])[0]
    indexed = Scorer(loaded, **options, index=WIDE).recommend([long])[0]
    assert indexed.items == exact.items
    assert not {items[0], items[1]} & set(indexed.items)  # padding and unknown never come back


def test_rank_candidates_drops_missing_and_excluded_items_and_orders_by_exact_score():
    reps = np.array([[0.0], [5.0], [1.0], [3.0], [2.0]], np.float32)  # item i's score = hidden · reps[i]
    hidden = np.array([[1.0]], np.float32)
    candidates = np.array([[4, 1, -1, 2, 3]])  # −1: the index found fewer
    values, indices = rank_candidates(hidden, reps, candidates, excluded=np.array([[1, 0]]), k=3)
    assert indices.tolist() == [[3, 4, 2]] and values.tolist() == [[3.0, 2.0, 1.0]]


def test_fewer_candidates_than_k_leave_minus_inf_which_the_ranking_drops():
    reps = np.array([[0.0], [5.0], [1.0]], np.float32)
    values, _ = rank_candidates(np.array([[1.0]], np.float32), reps, np.array([[2, -1, -1]]),
                                excluded=np.array([[0, 1]]), k=3)
    assert values[0, 0] == 1.0 and np.isneginf(values[0, 1:]).all()


def test_option_checks():
    with pytest.raises(ConfigError, match="one of exact, hnsw"):
        IndexOptions("annoy")
    with pytest.raises(ConfigError, match=">= 1"):
        IndexOptions("hnsw", probes=0)
