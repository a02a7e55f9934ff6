"""stream-bench's measurement itself on the real broker: real tweets, worker subprocesses
with a tiny model, the saturated rate, the workers' full batches, the CPU split and one
paced share (the figures are the benchmark's; here only that each is measured)."""

import pytest

from benchmarks.stream import encoder_rate_side_by_side, measure_stream, model_posts
from tests.support.data import real_tweets
from tests.support.service import stream_settings


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_the_stream_benchmark_measures_each_phase(broker, served, tmp_path, workers):
    settings = stream_settings(broker, tmp_path, **served, take_max=16, threads=1)
    results = measure_stream(settings, real_tweets(200), tmp_path, (0.5,), 120, workers=workers)
    assert results["workers"] == workers and results["warmup_posts"] == 16 * workers
    assert results["stream_posts_per_s"] > 0 and results["saturated_posts"] >= 32
    assert results["full_batches"] >= 1 and results["predict_ms_p50"] <= results["batch_ms_p50"]
    cores = results["saturated_cores"]
    assert cores is not None and cores["process"] > 0
    assert min(cores.values()) >= 0
    (load,) = results["loads"]
    assert load["posts"] in (results["saturated_posts"], results["saturated_posts"] + 1)
    assert 0 < load["latency_ms_p50"] <= load["latency_ms_p99"]
    # every worker of the group took batches, each from its own log
    logs = sorted(tmp_path.glob("worker-*.log"))
    assert len(logs) == workers
    assert all('"event": "batch"' in log.read_text() for log in logs)


def test_two_encoder_processes_side_by_side_embed_every_post(served, tmp_path):
    from stream.settings import WorkerSettings

    settings = WorkerSettings(**served, threads=1, precision="int8")
    version = settings.version_in_service(settings.open_index())
    payloads = real_tweets(120)
    assert len(model_posts(settings, payloads)) >= 64
    assert encoder_rate_side_by_side(settings, version, payloads, 16, 2) > 0
