"""The refit loop end to end on real tweets, the real broker and the real encoder.

A model that serves five cities of the shared Arkansas/Tennessee/Mississippi stream (the
pre-trained encoder, zero-shot) runs in a worker. Real tweets that carry their location
(GPS or a city place) for five other cities go through the worker, which publishes them
as labeled posts; ``contrastgeo refit`` reads them from the topic, trains a candidate,
and must promote it only because it is better on those cities. The running worker
switches to it without losing a post. A refit whose gate cannot be met keeps the model.
"""

from __future__ import annotations

import asyncio
import gzip
from collections import Counter

import pytest

from benchmarks.local import start_worker, stop_worker
from model import ContrastGeo
from refit.job import KEPT, PROMOTED, refit
from refit.publish import serve
from refit.settings import RefitSettings
from schemas.twitter import parse_post
from stream.replay import replay
from stream.routing import carried_location
from tests.support.data import shared_data
from tests.support.service import Outputs, stream_settings, wait_for, worker_model_version
from trainer.data.catalogue import build_catalogue, label_records
from trainer.data.readers import Record

PER_NEW_CITY = 10


def city_tweets() -> tuple[list, dict[str, list[bytes]], list[bytes]]:
    """(the 5 most frequent cities, raw located tweets of the next 5 cities, unlocated tweets)"""
    with gzip.open(shared_data("us-south-tweets", "tweets.jsonl.gz"), "rb") as f:
        lines = [line.rstrip(b"\n") for line in f]
    posts = [parse_post(line) for line in lines]
    trusted = ("city", "neighborhood", "poi")
    located = [i for i, p in enumerate(posts) if carried_location(p, trusted) and p.lang == "en"]
    catalogue = build_catalogue(["US"])
    labels = label_records([Record(posts[i]) for i in located], catalogue).labels
    by_city: dict[int, list[int]] = {}
    for i, label in zip(located, labels, strict=True):
        if label >= 0:
            by_city.setdefault(int(label), []).append(i)
    # one post per user: a city's labels should not be one person's
    for city, items in by_city.items():
        seen, unique = set(), []
        for i in items:
            if posts[i].user_id not in seen:
                seen.add(posts[i].user_id)
                unique.append(i)
        by_city[city] = unique
    ranked = sorted(by_city, key=lambda c: -len(by_city[c]))
    served = [catalogue.locations[c] for c in ranked[:5]]
    new = {
        catalogue.locations[c].name: [lines[i] for i in by_city[c][:PER_NEW_CITY]]
        for c in ranked[5:10]
    }
    assert all(len(v) == PER_NEW_CITY for v in new.values())
    unlocated = [lines[i] for i, p in enumerate(posts[:3000]) if not carried_location(p, trusted)][
        :100
    ]
    return served, new, unlocated


@pytest.mark.slow
def test_refit_promotes_a_better_model_to_a_running_worker(broker, tmp_path):
    served, new, unlocated = city_tweets()
    settings = stream_settings(
        broker,
        tmp_path,
        model_store=tmp_path / "models",
        index_path=tmp_path / "index",
        reload_poll_s=3600,
    )
    serve(settings, ContrastGeo.from_config(), served)

    worker = start_worker(settings, tmp_path / "worker.log")
    alive = lambda: worker.poll() is None  # noqa: E731
    try:
        labeled = [t for tweets in new.values() for t in tweets]
        first = asyncio.run(replay(settings, labeled + unlocated[:50]))
        Outputs(settings).wait(lambda o: set(o.input_refs()) >= set(first), alive=alive)

        refit_settings = RefitSettings(
            **settings.model_dump(),
            label_store=tmp_path / "labels.sqlite",
            refit_group_id=f"{settings.group_id}-refit",
            refit_countries=("US",),
            refit_steps=20,
            # 10 labels a city, one per user: about 2 or 3 of them are held out per city
            refit_gate_min_posts=2,
            refit_gate_min_users=2,
        )
        report = refit(refit_settings)
        assert report.decision == PROMOTED, report.reason
        assert report.counts["new_locations"] == 5 and report.counts["stored_posts"] == len(labeled)
        assert report.candidate["acc@1_refit"] > report.current["acc@1_refit"]
        wait_for(  # ModelUpdated -> reload
            lambda: worker_model_version(settings) == report.candidate_version,
            "the worker loaded the promoted model",
        )
        second = asyncio.run(replay(settings, unlocated[50:]))
        outputs = Outputs(settings).wait(
            lambda o: set(o.input_refs()) >= set(first + second), alive=alive
        )

        # a gate that cannot be met: the served model stays (the candidate's training
        # length does not matter to that, so it trains 2 steps, not 20)
        strict = refit_settings.model_copy(update={"refit_min_gain": 1.0, "refit_steps": 2})
        kept = refit(strict)
        assert kept.decision == KEPT and kept.exit_code == 0
        assert worker_model_version(settings) == report.candidate_version
    finally:
        stop_worker(worker)
    assert Counter(outputs.input_refs()) == Counter(first + second)  # no post lost or doubled
    versions = {
        e["model_version"]
        for e in outputs.events(settings.geotagged_topic)
        if e["source"] == "model" and (e["input"]["partition"], e["input"]["offset"]) in set(second)
    }
    assert versions == {report.candidate_version}
    names = {
        e["location"]["name"]
        for e in outputs.events(settings.geotagged_topic)
        if e["source"] == "model" and e["location"]
    }
    assert names & set(new)  # the new cities are served after the refit
