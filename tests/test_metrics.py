"""Metric functions against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rag.evaluate.metrics import (
    abstention_prf,
    mean,
    mrr_at_k,
    ndcg_at_k,
    percentile,
    recall_at_k,
    relevance,
)

T, F = True, False


def test_relevance_matches_evidence_after_normalising():
    texts = ["无关内容", "ALK 基因 突变与VTE", "ＡＬＫ基因突变", "nothing"]
    assert relevance(texts, ["ALK基因突变"]) == [F, T, T, F]
    assert relevance(texts, []) == [F, F, F, F]
    assert relevance([], ["x"]) == []


@pytest.mark.parametrize(
    ("rels", "k", "recall", "mrr"),
    [
        ([T, F, F, F, F], 5, 1.0, 1.0),  # rank 1
        ([F, F, T, F, F], 5, 1.0, 1 / 3),  # rank 3
        ([F, F, T, F, F], 2, 0.0, 0.0),  # beyond k
        ([F, F, F], 5, 0.0, 0.0),  # no relevant hit
        ([F, T, T, F, T], 5, 1.0, 0.5),  # several hits: first one counts
        ([], 5, 0.0, 0.0),  # retriever returned nothing
    ],
)
def test_recall_and_mrr(rels, k, recall, mrr):
    assert recall_at_k(rels, k) == recall
    assert mrr_at_k(rels, k) == pytest.approx(mrr)


def test_ndcg_rank_1_and_3():
    assert ndcg_at_k([T, F, F], 3) == pytest.approx(1.0)
    # one relevant item at rank 3: (1/log2 4) / (1/log2 2) = 0.5
    assert ndcg_at_k([F, F, T], 3) == pytest.approx(0.5)
    assert ndcg_at_k([F, F, T], 2) == 0.0  # beyond k


def test_ndcg_several_relevant_by_hand():
    rels = [F, T, T, F, T]
    # DCG = 1/log2(3) + 1/log2(4) + 1/log2(6) = 0.63093 + 0.5 + 0.38685 = 1.51778
    # IDCG (3 relevant) = 1 + 1/log2(3) + 1/log2(4) = 2.13093
    assert ndcg_at_k(rels, 5) == pytest.approx(1.51778 / 2.13093, abs=1e-5)
    # top 3 only: DCG = 1.13093; IDCG still from 3 relevant (all fit in k=3)
    assert ndcg_at_k(rels, 3) == pytest.approx(1.13093 / 2.13093, abs=1e-5)
    # collection holds 4 relevant items: IDCG = 2.13093 + 1/log2(5) = 2.56160
    assert ndcg_at_k(rels, 5, n_relevant=4) == pytest.approx(1.51778 / 2.56160, abs=1e-5)


def test_ndcg_ideal_is_cut_at_k():
    # 4 relevant in the collection, k=2, both top slots relevant: perfect
    assert ndcg_at_k([T, T, F], 2, n_relevant=4) == pytest.approx(1.0)


def test_ndcg_nothing_relevant_is_zero():
    assert ndcg_at_k([F, F], 5) == 0.0
    assert ndcg_at_k([], 5) == 0.0
    assert ndcg_at_k([], 5, n_relevant=0) == 0.0
    # relevant items exist but none was retrieved
    assert ndcg_at_k([F, F], 5, n_relevant=2) == 0.0


def test_ndcg_rejects_n_relevant_below_list_count():
    with pytest.raises(ValueError, match="n_relevant=1 is less than the 2 relevant"):
        ndcg_at_k([T, T], 5, n_relevant=1)


@pytest.mark.parametrize("fn", [recall_at_k, mrr_at_k, ndcg_at_k])
def test_k_must_be_positive(fn):
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        fn([T], 0)


def test_mean():
    assert mean([]) is None
    assert mean([1.0, 0.0, 0.5]) == pytest.approx(0.5)
    assert mean(x for x in [2, 4]) == 3.0


@pytest.mark.parametrize("p", [0, 10, 25, 50, 90, 95, 99, 100, 33.3])
@pytest.mark.parametrize("values", [[5.0], [3.0, 1.0], [0.12, 3.4, 0.7, 9.9, 1.1, 0.05, 2.0]])
def test_percentile_matches_numpy(values, p):
    assert percentile(values, p) == pytest.approx(float(np.percentile(values, p)))


def test_percentile_edges():
    assert percentile([], 50) is None
    assert percentile([1, 2, 3, 4], 50) == 2.5
    with pytest.raises(ValueError, match="p must be between 0 and 100, got 101"):
        percentile([1.0], 101)


def test_abstention_mixed_by_hand():
    pred = [T, T, F, F, T, F]
    gold = [T, F, T, F, T, F]
    # tp=2 (0, 4), fp=1 (1), fn=1 (2): P = 2/3, R = 2/3, F1 = 2/3
    p, r, f1 = abstention_prf(pred, gold)
    assert (p, r, f1) == pytest.approx((2 / 3, 2 / 3, 2 / 3))


def test_abstention_perfect_and_never():
    assert abstention_prf([T, F], [T, F]) == (1.0, 1.0, 1.0)
    # never abstains although one question is unanswerable
    assert abstention_prf([F, F], [T, F]) == (0.0, 0.0, 0.0)


def test_abstention_always():
    # abstains on everything: precision = share of unanswerable, recall 1
    p, r, f1 = abstention_prf([T, T, T, T], [T, F, F, F])
    assert (p, r) == (0.25, 1.0)
    assert f1 == pytest.approx(2 * 0.25 / 1.25)


def test_abstention_nothing_to_abstain_on():
    # no unanswerable gold and no abstentions: no abstention error was made
    assert abstention_prf([F, F], [F, F]) == (1.0, 1.0, 1.0)
    # no unanswerable gold but abstained anyway
    assert abstention_prf([T, F], [F, F]) == (0.0, 0.0, 0.0)


def test_abstention_empty_and_mismatched():
    scores = abstention_prf([], [])
    assert scores == (None, None, None)
    assert scores.f1 is None
    with pytest.raises(ValueError, match="pred_abstained has 2 items but gold_unanswerable has 1"):
        abstention_prf([T, F], [T])


def test_abstention_accepts_numpy_bools():
    p, r, f1 = abstention_prf(list(np.array([True, False])), list(np.array([True, True])))
    assert (p, r) == (1.0, 0.5)
    assert not math.isnan(f1)
