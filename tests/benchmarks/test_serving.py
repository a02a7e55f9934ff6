"""The serving benchmark measures every path on the same posts (not a timed test)."""

import json
import resource

import numpy as np
import pytest

from benchmarks.serving import (
    PREVIOUS,
    fitted_name,
    labeled_posts,
    measure_serving,
    speed_markdown,
)
from schemas.posts import Coordinates, Post
from tests.support.data import LOCATIONS


def test_serving_bench_runs_every_path_and_fp32_agrees_with_pytorch(make_model, tmp_path):
    model = make_model("vector").eval()
    posts = [f"{w} {loc.name.lower()}" for loc in LOCATIONS for w in ("hello", "rain in", "back")]
    # labeled posts, as the benchmark reads them, carry their location (here a whole
    # batch): the profile times them through the model all the same
    posts[:4] = [
        Post(id=str(i), text=text, coordinates=Coordinates(lat=35.1, lon=-90.0))
        for i, text in enumerate(posts[:4])
    ]
    gold = np.repeat(np.arange(len(LOCATIONS)), 3)
    results = measure_serving(
        model, LOCATIONS, posts, gold, tmp_path, batch=4, rounds=2, post_max_length=16
    )
    runs = results["runs"]
    assert all(len(r["posts_per_s_rounds"]) == 2 for r in runs.values())
    assert len(runs) == 14 and results["posts"] == 15 and results["micro_batch"] == 8
    # the path with posts fitted to 16 tokens: these short posts fit, so its answers are int8's
    assert runs[fitted_name(16)]["acc@1"] == runs["onnx-int8"]["acc@1"]
    assert runs["pytorch-eager"]["speed_vs_pytorch"] == 1.0
    # Same answers from the same weights: ONNX fp32 matches PyTorch with and without rerank.
    assert runs["onnx-fp32"]["acc@1"] == runs["pytorch-eager"]["acc@1"]
    assert runs["onnx-fp32"]["acc@1_minus_fp32"] == [0.0, 0.0, 0.0]
    gap, low, high = runs["onnx-int8"]["acc@1_minus_fp32"]
    assert low <= gap <= high
    assert gap == pytest.approx(runs["onnx-int8"]["acc@1"] - runs["onnx-fp32"]["acc@1"])
    assert runs["onnx-fp32, no rerank"]["acc@1"] == runs["pytorch-eager, no rerank"]["acc@1"]
    assert all(
        r["posts_per_s"] > 0 and r["batch_ms_p99"] >= r["batch_ms_p50"] for r in runs.values()
    )
    # each ONNX path's raw encoder, timed in the same rounds, as a ratio to the previous path's
    raw = results["raw_encoder"]
    assert set(raw) == {name for name in runs if name.startswith("onnx") and "rerank" not in name}
    assert all(len(r["posts_per_s_rounds"]) == 2 and r["posts_per_s"] > 0 for r in raw.values())
    assert raw[PREVIOUS]["vs_previous"] == 1.0
    assert raw["onnx-int8"]["vs_previous"] == pytest.approx(
        raw["onnx-int8"]["posts_per_s"] / raw[PREVIOUS]["posts_per_s"]
    )
    # the stage profile times the served path's own parts, every batch through each
    stages = results["stages"]
    assert stages["batches"] == 4 and stages["batch_size"] == 4
    assert set(stages["ms_per_batch"]) == {
        "parse + route",
        "tokenize",
        "ONNX encoder",
        "index query (top k)",
        "candidate vectors read (once per point)",
        "rerank (TLM matcher)",
        "compose posts (fitted to the budget)",
        "rest of predict (sort, candidates)",
        "output events (build + JSON)",
    }
    assert all(ms > 0 for ms in stages["ms_per_batch"].values())
    assert sum(stages["share"].values()) == pytest.approx(1.0)
    text = speed_markdown(results)
    assert "| onnx-int8 |" in text and "| onnx-int8-unfused, one run per batch (previous) |" in text
    assert "| ONNX encoder |" in text
    assert f"| {PREVIOUS} |" in text.split("The raw encoder of each ONNX path")[1]
    assert "CPU: " in text and "flags" in results["cpu"]


def test_scale_bench_serves_each_index_size_from_the_models_locations_up(make_model, tmp_path):
    from benchmarks.serving import measure_scales, scale_markdown, scale_places
    from model.export import export_onnx
    from stream.index import ALIAS, EdgeIndex
    from stream.runtime import OnnxModel
    from trainer.data.catalogue import build_catalogue

    more = build_catalogue(["US"], min_population=50_000).locations  # real places
    places = scale_places(LOCATIONS, [*LOCATIONS[:2], *more], 300)
    assert places[: len(LOCATIONS)] == list(LOCATIONS)  # the model's own first
    assert len(places) == 300 and len({p.id for p in places}) == 300  # no place twice
    export_onnx(make_model("vector").eval(), tmp_path / "export", quantize=False)
    onnx = OnnxModel(tmp_path / "export", precision="fp32", batch_size=16)
    posts = [f"hello {loc.name.lower()}" for loc in places[:20]]
    results = measure_scales(onnx, places, posts, tmp_path, sizes=(300, 5, 40), batch=8, rounds=2)
    assert list(results["runs"]) == ["5", "40", "300"]  # smallest first
    assert results["runs"]["5"]["ratio"] == 1.0
    assert all(
        r["posts_per_s"] > 0 and r["query_ms_per_batch"] > 0 for r in results["runs"].values()
    )
    for n in (5, 40, 300):  # each index holds the first n places
        with EdgeIndex(tmp_path / f"scale-{n}") as index:
            assert index.count(ALIAS) == n
    assert "| 300 |" in scale_markdown(results)
    with pytest.raises(ValueError, match="301 places asked for"):
        measure_scales(onnx, places, posts, tmp_path / "more", sizes=(5, 301))


def test_serving_bench_rejects_bad_scales(capsys):
    from contrastgeo.cli import main

    with pytest.raises(SystemExit):
        main(
            [
                "serving-bench",
                "--model",
                "m",
                "--data",
                "d",
                "--format",
                "jsonl",
                "--scales",
                "30,x",
            ]
        )
    assert "not a list of sizes" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["serving-bench", "--model", "m", "--data", "d", "--format", "jsonl"], "--encoders"),
        (["training-bench"], "--checkpoints"),
    ],
)
def test_the_benchmarks_take_only_named_encoders(argv, flag, capsys):
    from contrastgeo.cli import build_parser

    assert build_parser().parse_args([*argv, flag, "minilm, e5-small"]).__dict__[
        flag.lstrip("-")
    ] == ("minilm", "e5-small")
    with pytest.raises(SystemExit):
        build_parser().parse_args([*argv, flag, "minilm,bert"])
    assert "unknown encoder(s) ['bert']" in capsys.readouterr().err


@pytest.mark.slow
def test_the_encoders_are_served_side_by_side_on_the_same_posts(tmp_path):
    """Each named encoder exported and served int8 in its own torch-free process."""
    from benchmarks.serving import encoders_markdown, measure_encoders

    posts = [f"hello from {loc.name.lower()}" for loc in LOCATIONS]
    results = measure_encoders(["minilm", "e5-small"], posts, LOCATIONS, tmp_path, batch=4)
    runs = results["runs"]
    assert list(runs) == ["minilm", "e5-small"] and results["posts"] == len(posts)
    assert all(r["posts_per_s"] > 0 and r["peak_rss_mb"] > 0 for r in runs.values())
    # each child's own peak, not the peak of this (torch-holding) parent it was spawned from
    # (Linux hands a parent's peak to a child's ru_maxrss across fork and exec)
    parent_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert all(r["peak_rss_mb"] < parent_mb for r in runs.values())
    # e5-small's 250k-token table makes its export far larger than minilm's
    assert runs["e5-small"]["export_int8_mib"] > 3 * runs["minilm"]["export_int8_mib"]
    assert "| e5-small |" in encoders_markdown(results) and "flags" in results["cpu"]


def test_labeled_posts_keeps_the_posts_on_the_models_locations_in_file_order(tmp_path):
    rows = [  # Nashville, far from every location, Memphis, Utrecht
        {"id": "a", "text": "hot chicken", "lat": 36.16, "lon": -86.77, "user_id": "u1"},
        {"id": "b", "text": "middle of nowhere", "lat": 40.0, "lon": -100.0, "user_id": "u2"},
        {"id": "c", "text": "on Beale", "lat": 35.14, "lon": -90.04, "user_id": "u3"},
        {"id": "d", "text": "fietsen", "lat": 52.1, "lon": 5.11, "user_id": "u4"},
    ]
    path = tmp_path / "posts.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    posts, labels = labeled_posts(path, "jsonl", LOCATIONS)
    assert [post.text for post in posts] == ["hot chicken", "on Beale", "fietsen"]
    assert [LOCATIONS[i].name for i in labels] == ["Nashville", "Memphis", "Utrecht"]
