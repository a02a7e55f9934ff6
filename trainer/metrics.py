"""Geolocation metrics over ranked candidate locations.

A method's output for n posts is ``ranked`` (n, k) location indices, best first, and a
``confidence`` (n,) used for accuracy at a coverage (the fraction of posts the method is
most confident about). A row whose first entry is -1 is an abstention ("no answer"): it is
wrong for every accuracy and macro-F1, and its distance error is that of the candidate
location farthest from the truth (the worst any answer could do), so abstaining never
improves a distance metric.
"""

from __future__ import annotations

import math

import numpy as np

from trainer.data.catalogue import haversine_km

ACC_KM = 161.0  # 100 miles, the usual Twitter geolocation threshold
CITY_KM = 25.0  # the labeling radius: an answer this close is the right town's area
# buckets of a test post's gold place by its number of training labels (catalogue protocol)
LABEL_BUCKETS = (("0", 0, 0), ("1-4", 1, 4), ("5-16", 5, 16), (">16", 17, math.inf))


def macro_f1(pred: np.ndarray, gold: np.ndarray) -> float:
    """Macro-averaged F1 over every label that occurs in ``gold`` or ``pred`` (as
    scikit-learn's ``f1_score(average="macro")``); -1 (abstain) is never a label."""
    labels = np.union1d(gold, pred[pred >= 0])
    scores = []
    for label in labels:
        tp = np.sum((pred == label) & (gold == label))
        fp = np.sum((pred == label) & (gold != label))
        fn = np.sum((pred != label) & (gold == label))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def geolocation_metrics(
    ranked: np.ndarray,
    gold: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    confidence: np.ndarray | None = None,
    coverage: float = 0.2,
) -> dict[str, float]:
    """Acc@1, Acc@5, Acc@25km, Acc@161km, mean/median km, macro-F1, answered fraction, and
    Acc@1 and Acc@161km on the ``coverage`` most confident posts (``*_cov20`` for 0.2).

    ranked: (n, k) location indices; gold: (n,); lat/lon: (num_locations,) coordinates.
    """
    ranked = np.asarray(ranked).reshape(len(gold), -1)
    gold = np.asarray(gold)
    if len(gold) == 0:
        raise ValueError("no posts to score")
    top1 = ranked[:, 0]
    answered = top1 >= 0
    dist = np.empty(len(gold))
    dist[answered] = haversine_km(
        lat[top1[answered]], lon[top1[answered]], lat[gold[answered]], lon[gold[answered]]
    )
    if (~answered).any():
        worst = haversine_km(
            lat[gold[~answered], None], lon[gold[~answered], None], lat[None], lon[None]
        ).max(axis=1)
        dist[~answered] = worst
    correct = answered & (top1 == gold)
    near = answered & (dist <= ACC_KM)
    in_top5 = (ranked[:, :5] == gold[:, None]).any(axis=1)

    confidence = np.zeros(len(gold)) if confidence is None else np.asarray(confidence, float)
    confidence = np.where(answered, confidence, -np.inf)
    tag = f"cov{round(coverage * 100)}"
    return {
        "acc@1": float(correct.mean()),
        "acc@5": float(in_top5.mean()),
        "acc@25km": float((answered & (dist <= CITY_KM)).mean()),
        "acc@161km": float(near.mean()),
        "mean_km": float(dist.mean()),
        "median_km": float(np.median(dist)),
        "macro_f1": macro_f1(top1, gold),
        "answered": float(answered.mean()),
        f"acc@1_{tag}": accuracy_at_coverage(confidence, correct, coverage),
        f"acc@161km_{tag}": accuracy_at_coverage(confidence, near, coverage),
    }


def accuracy_by_labels(
    correct: np.ndarray, labels_of_gold: np.ndarray
) -> dict[str, dict[str, float | int | None]]:
    """Acc@1 (None when empty) and post count per ``LABEL_BUCKETS`` bucket of the gold
    place's training labels: does a method answer places it never saw a label for?"""
    correct, labels_of_gold = np.asarray(correct, bool), np.asarray(labels_of_gold)
    out: dict[str, dict[str, float | int | None]] = {}
    for name, low, high in LABEL_BUCKETS:
        mask = (labels_of_gold >= low) & (labels_of_gold <= high)
        accuracy = float(correct[mask].mean()) if mask.any() else None
        out[name] = {"posts": int(mask.sum()), "acc@1": accuracy}
    return out


def accuracy_at_coverage(confidence: np.ndarray, correct: np.ndarray, coverage: float) -> float:
    """Accuracy on the ``coverage`` most confident posts, with ties in confidence broken at
    random (in expectation): the posts tied at the cut each count for the share of the
    cut's remaining places they would fill. The file's order never decides (a gazetteer's
    1.0 / 0.5 / 0 confidences tie by the hundred)."""
    confidence, correct = np.asarray(confidence, float), np.asarray(correct, float)
    m = max(1, math.ceil(coverage * len(confidence)))
    cut = np.sort(confidence)[::-1][m - 1]
    above, tied = confidence > cut, confidence == cut
    return float((correct[above].sum() + (m - above.sum()) * correct[tied].mean()) / m)


def paired_bootstrap(
    differences: list[np.ndarray], resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, low, high): the mean per-post difference of two methods on the same test
    posts (one array per seed, e.g. correct_a - correct_b) and its bootstrap interval,
    resampling posts within each seed and averaging the seeds."""
    rng = np.random.default_rng(seed)
    means = np.zeros(resamples)
    for diff in differences:
        diff = np.asarray(diff, float)
        picks = rng.integers(0, len(diff), size=(resamples, len(diff)))
        means += diff[picks].mean(axis=1)
    means /= len(differences)
    tail = (1 - level) / 2
    mean = float(np.mean([np.mean(d) for d in differences]))
    return mean, float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def coverage_curve(
    confidence: np.ndarray,
    correct: np.ndarray,
    coverages: tuple[float, ...] = (1.0, 0.8, 0.6, 0.4, 0.2, 0.1),
) -> list[dict[str, float]]:
    """Accuracy when answering only the most confident fraction of posts, and the score
    threshold that gives that coverage: the table to choose an abstention threshold from
    (calibrate on dev data, apply as ``abstain_below`` at serving time). Each row reports
    what its threshold does: posts tied with the last one answered count as answered, so
    ``coverage`` may exceed the fraction asked for."""
    confidence, correct = np.asarray(confidence, float), np.asarray(correct, bool)
    if len(confidence) == 0:
        raise ValueError("no posts to calibrate on")
    order = np.argsort(-confidence, kind="stable")
    rows = []
    for coverage in coverages:
        m = max(1, math.ceil(coverage * len(order)))
        threshold = confidence[order[m - 1]]
        # what the threshold does: posts tied with the m-th are answered too
        answered = confidence >= threshold
        rows.append(
            {
                "coverage": float(answered.mean()),
                "threshold": float(threshold),
                "accuracy": float(correct[answered].mean()),
            }
        )
    return rows
