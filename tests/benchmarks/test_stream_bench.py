"""The stream benchmark's report: the latency at each load, its plot, the load fractions
the command accepts (the measurement itself runs the real broker: `contrastgeo stream-bench`)."""

import pytest

from benchmarks.stream import check_fractions, latency_plot, stream_markdown
from contrastgeo.cli import build_parser

RESULTS = {
    "cpu": "AMD EPYC, 2 cores, flags avx2",
    "saturated_posts": 1500,
    "stream_posts_per_s": 120.0,
    "saturated_cores": {"process": 1.62, "rest": 0.31, "idle": 0.07},
    "loads": [
        {
            "fraction": 0.5,
            "posts_per_s": 60.0,
            "posts": 750,
            "latency_ms_p50": 40.0,
            "latency_ms_p99": 90.0,
        },
        {
            "fraction": 0.8,
            "posts_per_s": 96.0,
            "posts": 750,
            "latency_ms_p50": 120.0,
            "latency_ms_p99": 410.0,
        },
    ],
    "encoder_posts_per_s": 130.0,
    "stream_vs_encoder": 120.0 / 130.0,
    "batch_size": 64,
    "micro_batch": 8,
    "threads": 2,
    "precision": "int8",
}


def test_the_report_has_every_load_and_the_cpu(tmp_path):
    text = stream_markdown(RESULTS)
    assert "| latency p50 / p99 at 50% load (60 posts/s) | 40 / 90 ms |" in text
    assert "| latency p50 / p99 at 80% load (96 posts/s) | 120 / 410 ms |" in text
    assert "| end to end / raw encoder | 0.92 |" in text and "CPU: AMD EPYC" in text
    assert "batches of up to 64 encoded in runs of 8" in text
    assert (
        "the worker / the rest of the machine (broker, benchmark) / idle | 1.62 / 0.31 / 0.07 |"
        in text
    )
    latency_plot(RESULTS, tmp_path / "latency.png")
    assert (tmp_path / "latency.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("bad", [(), (0.0,), (0.5, 2.0), (-0.1,)])
def test_load_fractions_outside_the_range_are_refused(bad):
    with pytest.raises(ValueError, match="load fractions"):
        check_fractions(bad)


def test_the_command_parses_its_loads(capsys):
    args = build_parser().parse_args(["stream-bench", "--data", "x", "--loads", "0.3,0.5,0.8"])
    assert args.loads == (0.3, 0.5, 0.8)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["stream-bench", "--data", "x", "--loads", "0.5,x"])
    assert "--loads" in capsys.readouterr().err


def test_full_batches_are_timed_from_the_worker_s_own_log_lines(tmp_path):
    from benchmarks.stream import full_batches

    logs = [tmp_path / "worker-0.log", tmp_path / "worker-1.log"]
    logs[0].write_text(
        '{"event": "model loaded", "version": "v1"}\n'
        '{"event": "batch", "inputs": 64, "ms": 300.0, "predict_ms": 240.0}\n'
        '{"event": "batch", "inputs": 12, "ms": 90.0, "predict_ms": 80.0}\n'  # not full
        "a line that is not JSON\n"
    )
    logs[1].write_text(  # a second worker's
        '{"event": "batch", "inputs": 64, "ms": 340.0, "predict_ms": 250.0}\n'
        '{"event": "batch", "inputs": 64, "ms": 320.0, "predict_ms": 270.0}\n'
    )
    timed = full_batches(logs, 64)
    assert timed == {"full_batches": 3, "batch_ms_p50": 320.0, "predict_ms_p50": 250.0}
    text = stream_markdown({**RESULTS, **timed})
    assert "| a full batch in a worker, median of 3: whole / in the model's thread | " in text
    assert "320 / 250 ms (22% outside) |" in text
    assert full_batches(logs, 32) == {"full_batches": 0}
    assert full_batches(logs[:1], 64)["full_batches"] == 1


def test_with_several_workers_the_report_has_both_raw_encoders_and_the_faster_one_counts():
    results = {
        **RESULTS,
        "workers": 2,
        "threads": 1,
        "encoder_posts_per_s": 100.0,
        "encoder_side_by_side_posts_per_s": 115.0,
        "stream_vs_encoder": 103.5 / 115.0,
    }
    text = stream_markdown(results)
    assert "2 workers, 1 threads each" in text
    assert "| raw encoder in one process with 2 threads (same posts, same batch; " in text
    assert "| raw encoder in 2 processes side by side, 1 threads each " in text
    assert "| 115.0 posts/s |" in text
    assert "| end to end / raw encoder (the faster of the two) | 0.90 |" in text
    assert "the workers / the rest of the machine" in text


def test_the_command_parses_its_workers(capsys):
    args = build_parser().parse_args(["stream-bench", "--data", "x", "--workers", "2"])
    assert args.workers == 2
    assert build_parser().parse_args(["stream-bench", "--data", "x"]).workers == 1
    for bad in ("0", "-1", "two"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["stream-bench", "--data", "x", "--workers", bad])
    assert "--workers" in capsys.readouterr().err


def test_more_workers_than_partitions_are_refused_before_anything_starts(tmp_path):
    from benchmarks.stream import measure_stream
    from stream.settings import WorkerSettings
    from tests.support.data import real_tweets

    settings = WorkerSettings(topic_partitions=1, data_dir=tmp_path / "worker")
    with pytest.raises(ValueError, match="2 workers need at least as many partitions, not 1"):
        measure_stream(settings, real_tweets(50), tmp_path, workers=2)
    assert not list(tmp_path.glob("worker-*.log"))  # no worker was started
