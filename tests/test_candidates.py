"""The approximate Top-K option: an index proposes candidates, the scorer ranks them exactly.

With every IVF list probed the index is exhaustive, so the lists must equal the exact scorer's; a
graph index is approximate even on a small catalogue (here 95–98 % of the exact items, however wide
its search: a one-epoch model leaves many near-identical untrained items, which a graph links
badly); the masking (window, padding, unknown) and "fewer than K left" behave as on the exact path."""

from __future__ import annotations

import numpy as np
import pytest
from test_scoring import K, cases_of, checkpoint_dir, raw_window  # noqa: F401 (checkpoint_dir: a fixture)

from amsrm.errors import ConfigError
from amsrm_core.candidates import IndexOptions, augmented, ivf_lists, rank_candidates
from amsrm_core.checkpoint import load_checkpoint
from amsrm_core.runner import make_split
from amsrm_core.scoring import Scorer, Window


@pytest.fixture(scope="module")
def windows(small_synthetic):
    split = make_split(small_synthetic, "loo")
    return [raw_window(small_synthetic, split, int(p)) for p in cases_of(split)]


def test_an_exhaustive_ivf_index_gives_the_exact_lists_and_scores(checkpoint_dir, windows):  # noqa: F811
    loaded = load_checkpoint(checkpoint_dir)
    exact = Scorer(loaded, k=K).recommend(windows)
    every_list = Scorer(loaded, k=K, index=IndexOptions("ivf", probes=1_000_000)).recommend(windows)
    for e, a in zip(exact, every_list, strict=True):
        assert a.items == e.items
        np.testing.assert_allclose(a.scores, e.scores, rtol=1e-5, atol=1e-5)


def test_a_graph_index_finds_most_exact_items(checkpoint_dir, windows):  # noqa: F811
    loaded = load_checkpoint(checkpoint_dir)
    exact = Scorer(loaded, k=K).recommend(windows)
    graph = Scorer(loaded, k=K, index=IndexOptions("hnsw", probes=128)).recommend(windows)
    found = np.mean([len(set(a.items) & set(e.items)) / len(e.items)
                     for e, a in zip(exact, graph, strict=True)])
    assert found >= 0.95


@pytest.mark.parametrize("exclude_window", [True, False])
def test_the_index_path_masks_like_the_exact_path(checkpoint_dir, small_synthetic, exclude_window):  # noqa: F811
    loaded = load_checkpoint(checkpoint_dir)
    items = small_synthetic.item_vocab.tokens
    long = Window("u", [(items[i], None) for i in range(2, 40)])  # more items than the window holds
    options = {"k": len(items), "exclude_window": exclude_window}  # more than is left after masking
    exact = Scorer(loaded, **options).recommend([long])[0]
    indexed = Scorer(loaded, **options, index=IndexOptions("ivf", probes=1_000_000)).recommend([long])[0]
    assert indexed.items == exact.items
    assert not {items[0], items[1]} & set(indexed.items)  # padding and unknown never come back


def test_rank_candidates_drops_missing_and_excluded_items_and_orders_by_exact_score():
    reps = np.array([[0.0], [5.0], [1.0], [3.0], [2.0]], np.float32)  # item i's score = hidden · reps[i]
    hidden = np.array([[1.0]], np.float32)
    candidates = np.array([[4, 1, -1, 2, 3]])  # −1: the index found fewer
    values, indices = rank_candidates(hidden, reps, candidates, excluded=np.array([[1, 0]]), k=3)
    assert indices.tolist() == [[3, 4, 2]] and values.tolist() == [[3.0, 2.0, 1.0]]


def test_augmented_items_make_the_largest_inner_product_the_nearest_neighbour():
    rng = np.random.default_rng(0)
    reps, query = rng.normal(size=(500, 8)).astype(np.float32), rng.normal(size=8).astype(np.float32)
    items = augmented(reps)
    distances = np.linalg.norm(items - np.append(query, 0.0), axis=1)
    assert np.argmin(distances) == np.argmax(reps @ query)


def test_list_count_and_option_checks():
    assert ivf_lists(1_000_000) == 4000 and ivf_lists(100) == 2 and ivf_lists(10) == 1
    with pytest.raises(ConfigError, match="one of exact, ivf, hnsw"):
        IndexOptions("annoy")
    with pytest.raises(ConfigError, match=">= 1"):
        IndexOptions("ivf", probes=0)
