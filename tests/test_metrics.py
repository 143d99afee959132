"""Metric functions agree with scikit-learn and with cases worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from toolkit.tasks.metrics import auc, classification_metrics, grouped_auc, logloss, positive_ranks, ranking_metrics


def test_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 500)
    scores = rng.integers(0, 20, 500).astype(float)  # many ties
    assert auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_auc_hand_worked():
    # positives 0.8, 0.4; negatives 0.5, 0.1 -> pairs won: (0.8>0.5, 0.8>0.1, 0.4>0.1) = 3 of 4
    assert auc([1, 1, 0, 0], [0.8, 0.4, 0.5, 0.1]) == pytest.approx(0.75)
    assert math.isnan(auc([1, 1], [0.2, 0.3]))


def test_uauc_is_mean_of_user_aucs_over_users_with_both_classes():
    groups = np.array([0, 0, 0, 1, 1, 2, 2])
    labels = np.array([1, 0, 0, 1, 0, 1, 1])  # user 2 has one class only: skipped
    scores = np.array([0.9, 0.1, 0.95, 0.2, 0.3, 0.5, 0.6])
    expected = np.mean([roc_auc_score([1, 0, 0], [0.9, 0.1, 0.95]), roc_auc_score([1, 0], [0.2, 0.3])])
    assert grouped_auc(groups, labels, scores) == pytest.approx(expected)


def test_logloss_matches_sklearn():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=300) * 3
    labels = rng.integers(0, 2, 300)
    assert logloss(labels, logits) == pytest.approx(log_loss(labels, 1 / (1 + np.exp(-logits))), rel=1e-9)


def test_ranks_count_ties_against_the_positive():
    scores = np.array([[0.5, 0.9, 0.5, 0.1], [0.9, 0.1, 0.2, 0.3]])
    assert positive_ranks(scores).tolist() == [2, 0]


def test_ranking_metrics_hand_worked():
    # user 7: one positive ranked 0 and one ranked 6; user 8: one positive ranked 25
    row0 = np.array([10.0] + [0.0] * 30)
    row1 = np.array([5.0] + [6.0] * 6 + [0.0] * 24)
    row2 = np.array([1.0] + [2.0] * 25 + [0.0] * 5)
    m = ranking_metrics(np.array([7, 7, 8]), np.stack([row0, row1, row2]))
    assert m["hr@5"] == pytest.approx((0.5 + 0.0) / 2)
    assert m["hr@10"] == pytest.approx((1.0 + 0.0) / 2)
    assert m["ndcg@10"] == pytest.approx(((1.0 + 1 / math.log2(8)) / 2 + 0.0) / 2)
    assert m["hr@20"] == pytest.approx(0.5)


def test_classification_metrics_average_per_device():
    labels = np.array([0, 1, 1, 0])
    logits = np.array([[2, 0], [0, 2], [2, 0], [2, 0]], dtype=float)
    m = classification_metrics(labels, logits, groups=np.array([0, 0, 1, 1]))
    assert m["accuracy"] == pytest.approx((1.0 + 0.5) / 2)
