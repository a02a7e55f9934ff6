"""The serving benchmark measures every path on the same posts (not a timed test)."""

import numpy as np

from benchmarks.serving import measure_serving, speed_markdown
from tests.support.data import LOCATIONS


def test_serving_bench_runs_every_path_and_fp32_agrees_with_pytorch(make_model, tmp_path):
    model = make_model("vector").eval()
    posts = [f"{w} {loc.name.lower()}" for loc in LOCATIONS for w in ("hello", "rain in", "back")]
    gold = np.repeat(np.arange(len(LOCATIONS)), 3)
    results = measure_serving(model, LOCATIONS, posts, gold, tmp_path, batch=4)
    runs = results["runs"]
    assert len(runs) == 8 and results["posts"] == 15
    assert runs["pytorch-eager"]["speed_vs_pytorch"] == 1.0
    # Same answers from the same weights: ONNX fp32 matches PyTorch with and without rerank.
    assert runs["onnx-fp32"]["acc@1"] == runs["pytorch-eager"]["acc@1"]
    assert runs["onnx-fp32, no rerank"]["acc@1"] == runs["pytorch-eager, no rerank"]["acc@1"]
    assert all(
        r["posts_per_s"] > 0 and r["batch_ms_p99"] >= r["batch_ms_p50"] for r in runs.values()
    )
    assert "| onnx-int8 |" in speed_markdown(results)
