"""The soak in a short form: 40 s at a modest rate through the real broker and a worker
(tiny model). Nothing is lost and the worker's memory stays bounded; the full soak is the
documented ``contrastgeo soak`` command (docs/reliability.md)."""

from __future__ import annotations

import pytest

from benchmarks.soak import plot, soak
from benchmarks.stream import model_posts
from tests.support.data import real_tweets
from tests.support.service import stream_settings


@pytest.mark.slow
def test_short_soak_loses_nothing_and_memory_stays_bounded(broker, served, tmp_path):
    settings = stream_settings(broker, tmp_path, **served)
    posts = [p for p, _ in model_posts(settings, real_tweets(500))]
    results = soak(
        settings,
        posts,
        rate=40,
        seconds=40,
        log_file=tmp_path / "worker.log",
        every=4,
    )
    assert results["sent"] >= 1000 and results["lost"] == 0
    assert len(results["samples"]) >= 8
    # bounded: after warm-up the worker's RSS moves within 25%. This short run only catches
    # gross leaks (tens of KB per post); the documented 10-minute soak is the real check.
    assert results["rss_mb_after_warmup_max"] <= 1.25 * results["rss_mb_after_warmup_min"]
    plot(results, tmp_path / "soak.png")
    assert (tmp_path / "soak.png").stat().st_size > 10_000
