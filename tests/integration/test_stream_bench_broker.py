"""stream-bench's measurement itself on the real broker: real tweets, a worker subprocess
with a tiny model, the saturated rate, the worker's full batches, the CPU split and one
paced share (the figures are the benchmark's; here only that each is measured)."""

import pytest

from benchmarks.stream import measure_stream
from tests.support.data import real_tweets
from tests.support.service import stream_settings


@pytest.mark.slow
def test_the_stream_benchmark_measures_each_phase(broker, served, tmp_path):
    settings = stream_settings(broker, tmp_path, **served, take_max=16)
    results = measure_stream(settings, real_tweets(200), tmp_path / "worker.log", (0.5,), 120)
    assert results["stream_posts_per_s"] > 0 and results["saturated_posts"] >= 32
    assert results["full_batches"] >= 1 and results["predict_ms_p50"] <= results["batch_ms_p50"]
    cores = results["saturated_cores"]
    assert cores is not None and cores["process"] > 0
    assert min(cores.values()) >= 0
    (load,) = results["loads"]
    assert load["posts"] in (results["saturated_posts"], results["saturated_posts"] + 1)
    assert 0 < load["latency_ms_p50"] <= load["latency_ms_p99"]
