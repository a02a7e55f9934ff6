"""Metrics against a naive re-implementation (loops, math module, no numpy tricks)."""

import math
import statistics

import numpy as np
import pytest

from trainer.metrics import geolocation_metrics, macro_f1

R = 6371.0088


def naive_km(lat1, lon1, lat2, lon2):
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * R * math.asin(math.sqrt(a))


def naive_metrics(ranked, gold, lat, lon, conf, coverage=0.2):
    n = len(gold)
    rows = []
    for i in range(n):
        top = ranked[i][0]
        if top < 0:
            d = max(naive_km(lat[j], lon[j], lat[gold[i]], lon[gold[i]]) for j in range(len(lat)))
        else:
            d = naive_km(lat[top], lon[top], lat[gold[i]], lon[gold[i]])
        rows.append(
            {
                "c": top == gold[i],
                "t5": gold[i] in list(ranked[i][:5]),
                "d": d,
                "near": top >= 0 and d <= 161.0,
                "conf": conf[i] if top >= 0 else -math.inf,
            }
        )
    order = sorted(range(n), key=lambda i: -rows[i]["conf"])[: max(1, math.ceil(coverage * n))]
    return {
        "acc@1": sum(r["c"] for r in rows) / n,
        "acc@5": sum(r["t5"] for r in rows) / n,
        "acc@161km": sum(r["near"] for r in rows) / n,
        "mean_km": sum(r["d"] for r in rows) / n,
        "median_km": statistics.median(r["d"] for r in rows),
        "acc@1_cov20": sum(rows[i]["c"] for i in order) / len(order),
        "acc@161km_cov20": sum(rows[i]["near"] for i in order) / len(order),
    }


def naive_macro_f1(pred, gold):
    labels = sorted(set(gold) | {p for p in pred if p >= 0})
    f1s = []
    for c in labels:
        tp = sum(p == c and g == c for p, g in zip(pred, gold, strict=True))
        fp = sum(p == c and g != c for p, g in zip(pred, gold, strict=True))
        fn = sum(p != c and g == c for p, g in zip(pred, gold, strict=True))
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return sum(f1s) / len(f1s)


@pytest.mark.parametrize("seed", range(5))
def test_metrics_match_naive_reference(seed):
    rng = np.random.default_rng(seed)
    n, locs, k = 53, 9, 6
    lat, lon = rng.uniform(30, 50, locs), rng.uniform(-100, -70, locs)
    gold = rng.integers(0, locs, n)
    ranked = np.stack([rng.permutation(locs)[:k] for _ in range(n)])
    hit = rng.random(n) < 0.3  # make some top-1 answers right
    ranked[hit, 0] = gold[hit]
    ranked[rng.random(n) < 0.1] = -1  # abstentions
    conf = rng.random(n)
    ours = geolocation_metrics(ranked, gold, lat, lon, conf)
    ref = naive_metrics(ranked.tolist(), gold.tolist(), lat.tolist(), lon.tolist(), conf.tolist())
    for key, value in ref.items():
        assert ours[key] == pytest.approx(value), key
    assert ours["macro_f1"] == pytest.approx(naive_macro_f1(ranked[:, 0].tolist(), gold.tolist()))
    assert ours["answered"] == pytest.approx(np.mean(ranked[:, 0] >= 0))


def test_macro_f1_hand_computed():
    # labels {0, 1, 2}: F1(0) = 2*1/(2*1+0+1) = 2/3, F1(1) = 1 (both right, no false
    # positive), F1(2) = 0 (predicted once, never gold)
    assert macro_f1(np.array([0, 2, 1, 1]), np.array([0, 0, 1, 1])) == pytest.approx(
        (2 / 3 + 1 + 0) / 3
    )


def test_perfect_and_abstaining_methods():
    lat, lon = np.array([35.0, 36.0, 45.0]), np.array([-90.0, -87.0, 20.0])
    gold = np.array([0, 1, 2])
    perfect = geolocation_metrics(gold[:, None], gold, lat, lon)
    assert perfect["acc@1"] == perfect["acc@161km"] == perfect["macro_f1"] == 1.0
    assert perfect["mean_km"] == 0.0
    silent = geolocation_metrics(np.full((3, 1), -1), gold, lat, lon)
    assert silent["acc@1"] == silent["acc@161km"] == silent["answered"] == 0.0
    assert silent["mean_km"] > 5000  # the worst candidate, not zero


def test_coverage_picks_the_most_confident():
    lat, lon = np.zeros(2), np.array([0.0, 10.0])
    gold = np.zeros(10, dtype=int)
    ranked = np.array([[0]] * 2 + [[1]] * 8)
    conf = np.array([0.9, 0.8] + [0.1] * 8)
    m = geolocation_metrics(ranked, gold, lat, lon, conf)
    assert m["acc@1"] == pytest.approx(0.2)
    assert m["acc@1_cov20"] == 1.0


def test_coverage_curve_thresholds_and_accuracy():
    from trainer.metrics import coverage_curve

    confidence = np.array([0.9, 0.1, 0.8, 0.3, 0.5])
    correct = np.array([True, False, True, False, False])
    rows = coverage_curve(confidence, correct, coverages=(1.0, 0.4, 0.6))
    assert rows[0] == {"coverage": 1.0, "threshold": 0.1, "accuracy": 0.4}
    assert rows[1] == {"coverage": 0.4, "threshold": 0.8, "accuracy": 1.0}
    assert rows[2]["threshold"] == 0.5 and rows[2]["accuracy"] == pytest.approx(2 / 3)
    # The threshold applied as abstain_below answers exactly that fraction.
    assert (confidence >= rows[2]["threshold"]).mean() == rows[2]["coverage"]


def test_accuracy_at_coverage_averages_over_ties_not_file_order():
    from trainer.metrics import accuracy_at_coverage

    rng = np.random.default_rng(0)
    confidence = rng.choice([1.0, 0.5, 0.0], size=60)  # a gazetteer's confidences
    correct = rng.random(60) < 0.5
    # naive reference: break ties at random many times and average
    m = 12
    naive = []
    for _ in range(20000):
        jitter = rng.random(60)
        order = np.lexsort((jitter, -confidence))
        naive.append(correct[order[:m]].mean())
    got = accuracy_at_coverage(confidence, correct, 0.2)
    assert got == pytest.approx(np.mean(naive), abs=0.005)
    # the file's order no longer decides: sorting the ties' correct ones first changes nothing
    first = np.lexsort((~correct, -confidence))
    assert accuracy_at_coverage(confidence[first], correct[first], 0.2) == pytest.approx(got)
    # without ties it is the plain accuracy of the top m
    distinct = rng.permutation(60).astype(float)
    top = np.argsort(-distinct)[:m]
    assert accuracy_at_coverage(distinct, correct, 0.2) == pytest.approx(correct[top].mean())


def test_paired_bootstrap_interval():
    from trainer.metrics import paired_bootstrap

    rng = np.random.default_rng(1)
    # a method right on 60% of 500 posts, the other on the same posts plus 5% more
    a = rng.random((3, 500)) < 0.6
    b = a | (rng.random((3, 500)) < 0.125)
    mean, low, high = paired_bootstrap([x.astype(float) - y for x, y in zip(b, a, strict=True)])
    assert low < mean < high
    assert mean == pytest.approx(np.mean(b) - np.mean(a))
    assert low > 0 and high < 0.1  # the gain is real and bounded
    # the standard error of a mean difference of 1,500 pairs: the interval's half-width
    diffs = (b.astype(float) - a).ravel()
    se = diffs.std() / np.sqrt(diffs.size)
    assert (high - low) / 2 == pytest.approx(1.96 * se, rel=0.15)
    # no difference: the interval straddles 0
    _, low, high = paired_bootstrap([np.zeros(500), rng.choice([-1.0, 1.0], 500)])
    assert low < 0 < high
