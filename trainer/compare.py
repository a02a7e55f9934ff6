"""Paired comparisons of benchmark results (``results.json``), beyond the report's own gap
column: two methods of one run, one method in two runs on the same splits (e.g. two step
budgets), or one method across its shot counts. Each cell is the mean difference in Acc@1
on the same test posts with its paired bootstrap 95% interval (``paired_bootstrap``), in
points, as markdown table rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from model.pretrained import named_encoder
from trainer.benchmark import by_seed, interval_text, paired_diffs, per_post_correct
from trainer.data.fewshot import Shots, places_need, shot_label, shot_order
from trainer.methods import ENCODER_FREE, SHOT_FREE
from trainer.metrics import paired_bootstrap

Correct = dict[tuple[str, Shots, int], np.ndarray]


def load_results(path: Path) -> dict[str, Any]:
    """A benchmark's ``results.json``, given the file or the folder that holds it."""
    file = path / "results.json" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"{path}: no results.json (a `contrastgeo benchmark --out`)")
    results = json.loads(file.read_text())
    if not any("correct" in row for row in results.get("results", ())):
        raise ValueError(
            f"{file}: its rows keep no per-post correctness (written before it was kept); "
            "a paired comparison needs it"
        )
    return results


def cell(diffs: list[np.ndarray]) -> str:
    """``+1.2 [+0.5, +1.8]``: the mean difference and its interval, in points."""
    if not diffs:
        return "–"
    mean, low, high = paired_bootstrap(diffs)
    return f"{100 * mean:+.1f} {interval_text(low, high)}"


def row(name: str, pairs: list[tuple[dict[int, np.ndarray], dict[int, np.ndarray]]]) -> list[str]:
    """A table row: ``name``, then one ``cell`` per (ours, theirs) pair of ``by_seed`` maps."""
    return [name, *(cell(paired_diffs(ours, theirs)) for ours, theirs in pairs)]


def per_shot_table(
    rows: dict[str, tuple[Correct, str, Correct, str]], shots: list[Shots]
) -> list[str]:
    """One row per name, (ours, method) minus (theirs, other): one ``cell`` per shot count."""
    body = [
        row(name, [(by_seed(ours, method, k), by_seed(theirs, other, k)) for k in shots])
        for name, (ours, method, theirs, other) in rows.items()
    ]
    return table(["paired 95%", *map(shot_label, shots)], body)


def shots_of(correct: Correct, method: str) -> list[Shots]:
    return sorted({k for m, k, _ in correct if m == method}, key=shot_order)


def methods_of(correct: Correct) -> list[str]:
    return list(dict.fromkeys(m for m, _, _ in correct))


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _check_known(correct: Correct, methods: list[str], where: str) -> None:
    unknown = [m for m in methods if m not in methods_of(correct)]
    if unknown:
        raise ValueError(f"{where} has no method {unknown}; it has {methods_of(correct)}")


def against(results: dict[str, Any], methods: list[str], other: str) -> list[str]:
    """Each of ``methods`` minus ``other`` in one run, per shot count."""
    correct = per_post_correct(results)
    _check_known(correct, [*methods, other], "the run")
    shots = shots_of(correct, methods[0])
    return per_shot_table(
        {f"{method} − {other}": (correct, method, correct, other) for method in methods}, shots
    )


def across_shots(results: dict[str, Any], methods: list[str]) -> list[str]:
    """Each of ``methods`` at each shot count minus itself at the one before, and the
    largest minus the smallest: does it grow with its shots?"""
    correct = per_post_correct(results)
    _check_known(correct, methods, "the run")
    shots = shots_of(correct, methods[0])
    if len(shots) < 2:
        raise ValueError(f"{methods[0]} ran at one shot count only: nothing to compare")
    pairs = list(zip(shots[1:], shots[:-1], strict=True))
    if len(shots) > 2:
        pairs.append((shots[-1], shots[0]))
    rows = [
        row(
            method,
            [(by_seed(correct, method, hi), by_seed(correct, method, lo)) for hi, lo in pairs],
        )
        for method in methods
    ]
    header = [f"{shot_label(hi)} − {shot_label(lo)}" for hi, lo in pairs]
    return table(["paired 95%", *header], rows)


def between_runs(
    ours: dict[str, Any], theirs: dict[str, Any], methods: list[str], names: tuple[str, str]
) -> list[str]:
    """Each of ``methods`` in run ``ours`` minus the same method in run ``theirs``, per shot
    count both ran, then how it is known that the runs scored the same test posts
    (``same_test_posts``; refused where they did not)."""
    a, b = per_post_correct(ours), per_post_correct(theirs)
    _check_known(a, methods, names[0])
    _check_known(b, methods, names[1])
    how = same_test_posts(ours, theirs)
    shots = [k for k in shots_of(a, methods[0]) if k in shots_of(b, methods[0])]
    rows = {f"{method}, {names[0]} − {names[1]}": (a, method, b, method) for method in methods}
    return [*per_shot_table(rows, shots), "", f"Same splits: {how}."]


def same_test_posts(ours: dict[str, Any], theirs: dict[str, Any]) -> str:
    """How it is known that two runs scored the same test posts, or ``ValueError``. Runs
    that record a test-set digest per row are compared by it; older ones by their dataset,
    input, test-set size and, where both ran a shot-free method (its answers depend on the
    test posts only), by those answers on every seed; between runs on different encoders,
    by the answers of those that read no language model."""
    for key in ("dataset", "protocol", "test_posts", "locations"):
        if ours.get(key) != theirs.get(key):
            raise ValueError(
                f"the runs differ in {key}: {ours.get(key)!r} against {theirs.get(key)!r}"
            )
    digests = [_digests(results) for results in (ours, theirs)]
    if all(digests):
        common = digests[0].keys() & digests[1].keys()
        differ = sorted(s for s in common if digests[0][s] != digests[1][s])
        if differ:
            raise ValueError(
                f"the runs scored different test posts at seeds {differ}{_shots_hint(ours, theirs)}"
            )
        return "same test-set digest on every seed"
    if ours.get("input") != theirs.get("input"):
        raise ValueError(
            "the runs differ in input and record no test-set digest: cannot tell whether "
            "they scored the same test posts"
        )
    a, b = per_post_correct(ours), per_post_correct(theirs)
    shot_free = [m for m in sorted(SHOT_FREE) if m in methods_of(a) and m in methods_of(b)]
    if _encoder(ours) != _encoder(theirs):  # zero-shot answers with each run's own encoder
        shot_free = [m for m in shot_free if m in ENCODER_FREE]
    for method in shot_free:
        for k in shots_of(a, method):
            left, right = by_seed(a, method, k), by_seed(b, method, k)
            for seed in sorted(left.keys() & right.keys()):
                if not np.array_equal(left[seed], right[seed]):
                    raise ValueError(
                        f"{method} answers differently at seed {seed}: the runs did not "
                        f"score the same test posts (or not with the same {method})"
                        + _shots_hint(ours, theirs)
                    )
    if shot_free:
        return f"{', '.join(shot_free)} right on the same posts in both runs, every seed"
    return "same dataset, input and test-set size (the runs record nothing finer)"


def _shots_hint(ours: dict[str, Any], theirs: dict[str, Any]) -> str:
    """Why two few-shot runs on the same data may split a seed differently: a seed keeps
    the places with ``places_need(shots)`` training posts (``make_split``), so runs asked
    for different largest shot counts can keep other places."""
    asked = [run.get("settings", {}).get("shots") for run in (ours, theirs)]
    if ours.get("protocol") != "fewshot" or None in asked:
        return ""
    largest = [places_need(shots) for shots in asked]
    if largest[0] == largest[1]:
        return ""
    return (
        f"; the runs asked for up to {largest[0]} and {largest[1]} shots, and a seed keeps "
        "only the places with that many training posts: ask both for the same --shots"
    )


def _encoder(results: dict[str, Any]) -> str | None:
    """The run's encoder by name (a checkpoint saved under an older name counts as its
    named encoder), or its checkpoint path."""
    checkpoint = results.get("settings", {}).get("model", {}).get("encoder", {}).get("checkpoint")
    named = named_encoder(checkpoint) if checkpoint else None
    return named.name if named else checkpoint


def _digests(results: dict[str, Any]) -> dict[int, str]:
    """seed -> test-set digest; empty for runs written before it was recorded."""
    return {r["seed"]: r["test_digest"] for r in results["results"] if "test_digest" in r}
