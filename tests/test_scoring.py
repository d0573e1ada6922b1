"""The shared Scorer against the offline path: same tensors, same Top-K, by construction.

Offline side: ``case_windows`` + ``model.full_sort_predict``, padding/unknown and the
window's items masked (the Scorer's masking set; the offline evaluator's default of
masking the whole history differs only when a history is longer than the window).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from amsrm_core.batching import case_windows
from amsrm_core.checkpoint import LoadedCheckpoint, load_checkpoint
from amsrm_core.runner import build_model, make_split
from amsrm_core.schema import InteractionData
from amsrm_core.scoring import FALLBACK_POPULARITY, MIN_GROUP_ROWS, Scorer, Window, load_popularity
from amsrm_core.vocab import UNKNOWN
from streams.local.checkpoints import ensure_checkpoint

K = 10


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory, small_synthetic: InteractionData):
    return ensure_checkpoint(tmp_path_factory.mktemp("ckpt"), small_synthetic, epochs=1,
                             overrides={"max_len": 12})


@pytest.fixture(scope="module")
def scorer(checkpoint_dir) -> Scorer:
    return Scorer.from_checkpoint(checkpoint_dir, k=K)


def raw_window(data: InteractionData, split, position: int) -> Window:
    """The raw-id history before ``position`` (the case's window, untruncated)."""
    start = int(split.user_start[position])
    items, behaviours = data.item_vocab.tokens, data.behaviour_vocab.tokens
    events = [(items[data.items[p]], behaviours[data.behaviours[p]]) for p in range(start, position)]
    return Window(data.user_vocab.tokens[data.users[position]], events)


def cases_of(split, n: int = 200) -> np.ndarray:
    """Test and validation cases plus mid-history positions (short and truncated windows)."""
    positions = np.flatnonzero(np.arange(split.data.n_events) > split.user_start)
    picked = np.random.default_rng(0).choice(positions, size=n - 40, replace=False)
    return np.sort(np.concatenate([split.test_cases[:20], split.valid_cases[:20], picked]))


def offline_top_k(model, split, cases: np.ndarray, k: int = K) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference Top-K: case_windows + full_sort_predict, reserved and window items masked."""
    windows = case_windows(split, cases, model.config.max_len)
    batch = windows.batch(slice(0, len(windows)))
    with torch.no_grad():  # what amsrm_core.evaluate uses
        scores = model.full_sort_predict(batch).float().clone()
    scores[:, : UNKNOWN + 1] = -torch.inf
    scores.scatter_(1, batch["item_seq"], -torch.inf)
    return torch.topk(scores, k, dim=1)


def test_scorer_builds_the_case_window_tensors(scorer: Scorer, small_synthetic):
    split = make_split(small_synthetic, "loo")
    cases = cases_of(split)
    windows = case_windows(split, cases, scorer.max_len)
    expected = windows.batch(slice(0, len(windows)))
    got = scorer.encode([raw_window(small_synthetic, split, int(p)) for p in cases])
    for key in ("item_seq", "behaviour_seq", "user"):
        assert torch.equal(got[key], expected[key]), key


def test_scorer_top_k_equals_offline_top_k(scorer: Scorer, small_synthetic):
    split = make_split(small_synthetic, "loo")
    cases = cases_of(split)
    values, indices = offline_top_k(scorer.model, split, cases)
    ranked = scorer.recommend([raw_window(small_synthetic, split, int(p)) for p in cases])
    tokens = small_synthetic.item_vocab.tokens
    for row, r in enumerate(ranked):
        assert r.fallback is None
        assert r.items == [tokens[i] for i in indices[row].tolist()]
        np.testing.assert_allclose(r.scores, values[row].numpy(), rtol=1e-6, atol=1e-6)


def test_window_items_are_excluded_unless_disabled(checkpoint_dir, small_synthetic):
    loaded = load_checkpoint(checkpoint_dir)
    split = make_split(small_synthetic, "loo")
    windows = [raw_window(small_synthetic, split, int(p)) for p in split.test_cases[:50]]
    excluding = Scorer(loaded, k=50).recommend(windows)
    including = Scorer(loaded, k=50, exclude_window=False).recommend(windows)
    for window, ex, inc in zip(windows, excluding, including, strict=True):
        scored = {item for item, _ in window.events[-loaded.model.config.max_len:]}
        assert not scored & set(ex.items)
        assert [i for i in inc.items if i not in scored] == ex.items[: len([i for i in inc.items
                                                                             if i not in scored])]


def test_unknown_ids_and_cold_users_never_crash(scorer: Scorer, checkpoint_dir, small_synthetic):
    known = small_synthetic.item_vocab.tokens[5]
    windows = [
        Window("new-user", []),  # nothing at all
        Window("new-user", [("never-seen", "click"), ("also-new", "teleport")]),  # only unknown items
        Window("new-user", [("never-seen", None), (known, "click")]),  # unknown user, one known item
        Window(small_synthetic.user_vocab.tokens[2], [(known, "unheard-of-behaviour")]),
    ]
    ranked = scorer.recommend(windows)
    assert [r.fallback for r in ranked] == [FALLBACK_POPULARITY, FALLBACK_POPULARITY, None, None]
    popularity = load_popularity(checkpoint_dir, len(small_synthetic.item_vocab))
    # the fallback is the popularity ranking itself (compared by score: ties may order either way)
    np.testing.assert_allclose(ranked[0].scores, np.sort(popularity[2:])[::-1][:K])
    for r in ranked:
        assert len(r.items) == K and all(np.isfinite(r.scores))
    assert known not in ranked[2].items and known not in ranked[3].items


def test_checkpoint_without_popularity_falls_back_to_norms(checkpoint_dir, caplog):
    scorer = Scorer(load_checkpoint(checkpoint_dir), k=3)
    assert "representation norm" in caplog.text
    (ranked,) = scorer.recommend([Window("nobody", [])])
    assert ranked.fallback == FALLBACK_POPULARITY and len(ranked.items) == 3


def test_k_larger_than_what_is_left(checkpoint_dir, small_synthetic):
    loaded = load_checkpoint(checkpoint_dir)
    n_items = len(small_synthetic.item_vocab)
    scorer = Scorer(loaded, k=10 * n_items)
    items = small_synthetic.item_vocab.tokens[2:12]
    (ranked,) = scorer.recommend([Window("u", [(i, None) for i in items])])
    assert scorer.k == n_items - 2
    assert len(ranked.items) == n_items - 2 - min(len(items), scorer.max_len)
    assert np.all(np.isfinite(ranked.scores))


@pytest.mark.parametrize("name", ["sasrec-ce", "gru4rec", "caser", "attrec", "bpr", "amsrm:fusion=sum",
                                  "amsrm:fusion=gated", "amsrm:fusion=attention",
                                  "amsrm:field_weights=count"])
def test_parity_holds_for_every_registry_model(name, small_synthetic):
    """Untrained weights suffice: parity is about the scoring path, not the model's quality (AMSRM's
    fusions get non-zero side blocks, which start at zero)."""
    torch.manual_seed(0)
    name, _, option = name.partition(":")
    model = build_model(name, small_synthetic, dict([option.split("=")]) if option else None).eval()
    with torch.no_grad():
        for key, p in model.named_parameters():
            if "proj" in key or "project" in key or "side_query" in key:
                p.normal_(0, 0.1)
    data = small_synthetic
    vocabs = {"item": data.item_vocab, "user": data.user_vocab, "behaviour": data.behaviour_vocab}
    scorer = Scorer(LoadedCheckpoint(model, {"model": name}, vocabs), k=K)
    split = make_split(data, "loo")
    cases = cases_of(split)
    values, indices = offline_top_k(model, split, cases)
    ranked = scorer.recommend([raw_window(data, split, int(p)) for p in cases])
    for row, r in enumerate(ranked):
        np.testing.assert_allclose(r.scores, values[row].numpy(), rtol=1e-5, atol=1e-5)
        expected = [data.item_vocab.tokens[i] for i in indices[row].tolist()]
        swapped = [k for k, (a, b) in enumerate(zip(r.items, expected, strict=True)) if a != b]
        assert all(abs(r.scores[k] - float(values[row, k])) < 1e-5 for k in swapped)  # ties only


def test_one_group_gives_the_grouped_top_k(checkpoint_dir, small_synthetic):
    """Accelerators score the whole batch as one group (no length grouping): same Top-K."""
    split = make_split(small_synthetic, "loo")
    windows = [raw_window(small_synthetic, split, int(p)) for p in cases_of(split)]
    grouped = Scorer.from_checkpoint(checkpoint_dir, k=K).recommend(windows)
    whole = Scorer.from_checkpoint(checkpoint_dir, k=K, group_by_length=False).recommend(windows)
    assert [r.items for r in whole] == [r.items for r in grouped]
    assert np.allclose([r.scores for r in whole], [r.scores for r in grouped], atol=1e-5)


@pytest.mark.parametrize("counts", [(40, 40, 40), (5, 3, 40, 2), (40, 5), (3,), (10, 10, 10, 10)])
def test_length_groups_cover_every_row_once_and_small_groups_join_longer_ones(counts):
    """Rows of lengths 4, 8, 16, 30 (one bucket each) in the given numbers: every row in exactly one
    group, no group smaller than MIN_GROUP_ROWS but the longest windows' one, short windows first."""
    lengths = np.repeat([4, 8, 16, 30][:len(counts)], counts)
    rows = np.random.default_rng(0).permutation(len(lengths))
    groups = Scorer._length_buckets(rows, lengths)
    assert sorted(np.concatenate(groups).tolist()) == sorted(rows.tolist())
    assert all(len(g) >= MIN_GROUP_ROWS for g in groups[:-1])
    widths = [int(lengths[g].max()) for g in groups]
    assert widths == sorted(widths)
    if min(counts) >= MIN_GROUP_ROWS:
        assert len(groups) == len(counts)  # large enough: one group per length bucket, as before
