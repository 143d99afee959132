"""Ranking and classification metrics as the DUET code computes them: AUC, UAUC, logloss, NDCG@K, HR@K, accuracy."""

from __future__ import annotations

import numpy as np

RANK_CUTOFFS = (5, 10, 20)


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (ties count one half), computed from ranks; NaN if one class is absent."""
    labels = np.asarray(labels).ravel().astype(bool)
    scores = np.asarray(scores, dtype=np.float64).ravel()
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    boundaries = np.concatenate([[True], sorted_values[1:] != sorted_values[:-1], [True]])
    starts = np.flatnonzero(boundaries)
    average = (starts[:-1] + starts[1:] + 1) / 2.0  # mean of 1-based ranks in each tie group
    ranks = np.empty_like(values)
    ranks[order] = np.repeat(average, np.diff(starts))
    return ranks


def grouped_auc(groups: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> float:
    """UAUC: the mean of per-group AUCs over groups whose rows hold both classes."""
    groups, labels, scores = np.asarray(groups).ravel(), np.asarray(labels).ravel(), np.asarray(scores).ravel()
    order = np.argsort(groups, kind="stable")
    groups, labels, scores = groups[order], labels[order], scores[order]
    cuts = np.flatnonzero(np.diff(groups)) + 1
    values = [auc(lab, sco) for lab, sco in zip(np.split(labels, cuts), np.split(scores, cuts))]
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def logloss(labels: np.ndarray, logits: np.ndarray) -> float:
    """Mean binary cross-entropy of sigmoid(logits), computed stably from logits."""
    labels = np.asarray(labels, dtype=np.float64).ravel()
    logits = np.asarray(logits, dtype=np.float64).ravel()
    return float(np.mean(np.logaddexp(0.0, logits) - labels * logits))


def positive_ranks(candidate_scores: np.ndarray) -> np.ndarray:
    """0-based rank of column 0 (the positive) among its row's candidates; ties count against it."""
    scores = np.asarray(candidate_scores)
    return (scores[:, 1:] >= scores[:, :1]).sum(1)


def ranking_metrics(users: np.ndarray, candidate_scores: np.ndarray) -> dict[str, float]:
    """AUC, UAUC, logloss, NDCG@K and HR@K for rows of (positive, negatives...) logits.

    NDCG and HR are averaged over each user's positives first, then over users.
    """
    users = np.asarray(users)
    scores = np.asarray(candidate_scores, dtype=np.float64)
    labels = np.zeros_like(scores)
    labels[:, 0] = 1
    row_users = np.repeat(users, scores.shape[1])
    result = {
        "auc": auc(labels, scores),
        "uauc": grouped_auc(row_users, labels, scores),
        "logloss": logloss(labels, scores),
    }
    ranks = positive_ranks(scores)
    unique_users, inverse = np.unique(users, return_inverse=True)
    per_user_count = np.bincount(inverse)
    for k in RANK_CUTOFFS:
        hit = (ranks < k).astype(np.float64)
        gain = np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)
        result[f"ndcg@{k}"] = float(np.mean(np.bincount(inverse, gain) / per_user_count))
        result[f"hr@{k}"] = float(np.mean(np.bincount(inverse, hit) / per_user_count))
    return result


def classification_metrics(labels: np.ndarray, logits: np.ndarray, groups: np.ndarray | None = None) -> dict:
    """Accuracy and macro-F1; with `groups`, both are averaged per group (per device) and over groups."""
    from sklearn.metrics import f1_score

    labels, predicted = np.asarray(labels), np.asarray(logits).argmax(-1)
    if groups is None:
        groups = np.zeros(len(labels), dtype=np.int64)
    accs, f1s = [], []
    for group in np.unique(groups):
        rows = groups == group
        accs.append(float((predicted[rows] == labels[rows]).mean()))
        f1s.append(float(f1_score(labels[rows], predicted[rows], average="macro", zero_division=0)))
    return {"accuracy": float(np.mean(accs)), "macro_f1": float(np.mean(f1s))}
