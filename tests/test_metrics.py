import math

import numpy as np
import pytest
import torch

from amsrm_core.metrics import metrics_from_ranks, target_ranks


def test_target_ranks_count_ties_against_the_target():
    scores = torch.tensor([[0.0, 0.9, 0.5, 0.5, 0.1],
                           [0.0, 1.0, 1.0, 1.0, 1.0],
                           [0.0, 0.2, -torch.inf, 0.3, 0.1]])
    ranks = target_ranks(scores, torch.tensor([2, 4, 2]))
    # row 0: 0.9 ahead, 0.5 tie ahead → rank 2; row 1: four-way tie → last of the four;
    # row 2: masked target → beyond the list
    assert ranks.tolist() == [2, 3, 5]


def test_metrics_by_hand():
    ranks = np.array([0, 3, 12, 40])
    m = metrics_from_ranks(ranks, ks=(5, 20))
    assert m["hr@5"] == pytest.approx(2 / 4)
    assert m["recall@20"] == pytest.approx(3 / 4)
    assert m["precision@5"] == pytest.approx(2 / 4 / 5)
    assert m["precision@20"] == pytest.approx(3 / 4 / 20)
    assert m["ndcg@5"] == pytest.approx((1.0 + 1 / math.log2(5)) / 4)
    assert m["ndcg@20"] == pytest.approx((1.0 + 1 / math.log2(5) + 1 / math.log2(14)) / 4)
    assert m["mrr@5"] == pytest.approx((1.0 + 1 / 4) / 4)
    assert m["mrr@20"] == pytest.approx((1.0 + 1 / 4 + 1 / 13) / 4)


def test_metrics_need_cases():
    with pytest.raises(ValueError, match="no evaluation cases"):
        metrics_from_ranks(np.array([]))
