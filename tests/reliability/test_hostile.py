"""Crafted inputs of the largest accepted size (``benchmarks/hostile.py`` times them):
each routes to one bounded outcome; a worker fed them beside real tweets keeps going, every
input gets exactly one outcome, an output too large for the broker becomes a ``too-large``
dead letter instead of a batch retried for ever, and each input is counted once."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.hostile import SHAPES, _place, _tweet
from benchmarks.local import start_worker, stop_worker
from schemas.posts import ID_MAX_CHARS
from schemas.twitter import strip_tags
from stream import kafka
from stream.routing import DEAD_LETTER_KEY_MAX_CHARS, Message, Rules, route
from stream.settings import WorkerSettings
from tests.support.data import real_tweets
from tests.support.service import Outputs, stream_settings, wait_for, worker_http

SIZE = 990_000  # just under the worker's 1 MB max_payload_bytes and the producer's limit


def outcomes(routed) -> int:
    return (
        len(routed.dead_letters)
        + len(routed.skipped)
        + len(routed.carried)
        + len(routed.to_predict)
    )


def event_sizes(routed) -> list[int]:
    return (
        [len(d.to_bytes()) for d in routed.dead_letters]
        + [len(c.labeled) + len(c.key) for c in routed.carried]
        + [len(c.geotagged) + len(c.key) for c in routed.carried]
    )


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_hostile_payload_of_each_shape_routes_to_one_bounded_outcome(shape):
    rules = Rules.of(WorkerSettings())
    payload = SHAPES[shape](SIZE)
    routed = route([Message("posts", 0, 7, b"k" * 700_000, payload)], rules)
    assert outcomes(routed) == 1
    assert max([*event_sizes(routed), 0]) < 400_000  # well under the 1 MB record limit
    for letter in routed.dead_letters:
        assert len(letter.key) <= DEAD_LETTER_KEY_MAX_CHARS
        assert letter.payload_size == len(payload)
    for _, post in routed.to_predict:
        assert len(post.id) <= ID_MAX_CHARS and len(post.user_id) <= ID_MAX_CHARS


def test_tag_stripping_is_the_regular_expressions_on_ordinary_sources():
    import re

    tag = re.compile(r"<[^>]+>")
    for source in [
        '<a href="http://twitter.com/download/iphone" rel="nofollow">Twitter for iPhone</a>',
        "plain",
        "a < b",
        "x<y>z<w",
        "<<b>>",
        "",
    ]:
        assert strip_tags(source) == tag.sub("", source)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    field=st.sampled_from(["text", "source", "lang", "id_str", "user", "place"]),
    filler=st.text(min_size=1, max_size=8),
    repeat=st.integers(min_value=1_000, max_value=60_000),
    key=st.binary(max_size=50_000),
)
def test_large_values_in_any_field_and_large_keys_give_one_bounded_outcome(
    field, filler, repeat, key
):
    value = filler * repeat
    tweet = {
        "user": _tweet(user={"id_str": "2", "location": value, "description": value}),
        "place": _tweet(place=_place(value)),
    }.get(field, _tweet(**{field: value}))
    payload = json.dumps(tweet).encode()
    routed = route([Message("posts", 0, 1, key, payload)], Rules.of(WorkerSettings()))
    assert outcomes(routed) == 1
    assert max([*event_sizes(routed), 0]) < 400_000


def http_status(settings, path: str) -> int:
    import urllib.error
    import urllib.request

    try:
        url = f"http://{settings.web_host}:{settings.web_port}{path}"
        return urllib.request.urlopen(url, timeout=5).status
    except urllib.error.HTTPError as error:
        return error.code


async def _send(settings, records: list[tuple[bytes, bytes]]) -> list[tuple[int, int]]:
    producer = kafka.producer(settings, acks="all", max_request_size=2_000_000)
    await producer.start()
    try:
        sent = [await producer.send(settings.input_topic, v, key=k) for k, v in records]
        return [(m.partition, m.offset) for m in await asyncio.gather(*sent)]
    finally:
        await producer.stop()


@pytest.mark.slow
def test_a_worker_fed_hostile_inputs_gives_each_one_outcome_and_counts_it_once(
    broker, served, tmp_path
):
    # outputs above 20 kB are too large for this worker: the profile-heavy, place-tagged
    # post below makes a LabeledPost of about 25 kB, as a 500 kB full_name did before the caps
    settings = stream_settings(
        broker, tmp_path, max_output_bytes=20_000, dead_letter_max_payload_bytes=8_000, **served
    )
    big_profile = _tweet(
        place=_place("Memphis, TN"),
        user={"id_str": "3", "description": "é" * 1000, "location": "\u0001" * 200},
        text="\u0001" * 3000,
    )
    records = [(b"k", t) for t in real_tweets(40)]
    records += [(b"hostile", SHAPES[shape](400_000)) for shape in SHAPES]
    records += [(b"x" * 300_000, b"{not json"), (b"big", json.dumps(big_profile).encode())]
    refs = asyncio.run(_send(settings, records))
    control = {ref for ref, (_, v) in zip(refs, records, strict=True) if b'"delete"' in v}
    expected = set(refs) - control
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        outputs = Outputs(settings).wait(
            lambda o: set(o.input_refs()) >= expected,
            timeout=180,
            alive=lambda: worker.poll() is None,
        )
        assert Counter(outputs.input_refs()) == Counter(expected)  # each input once
        letters = {
            (d["input"]["partition"], d["input"]["offset"]): d
            for d in outputs.events(settings.dead_letter_topic)
        }
        too_large = letters[refs[-1]]
        assert too_large["reason"] == "too-large" and "max_output_bytes" in too_large["detail"]
        assert len(letters[refs[-2]]["key"]) == DEAD_LETTER_KEY_MAX_CHARS
        assert (
            max(len(r.value) + len(r.key or b"") for rs in outputs.records.values() for r in rs)
            <= settings.max_output_bytes
        )
        # counted once per input, after delivery (the retry loop used to count every try)
        wait_for(
            lambda: (
                f"contrastgeo_posts_in_total {float(len(records))}"
                in worker_http(settings, "/metrics")
            ),
            "every input counted once",
            timeout=30,
        )
        metrics = worker_http(settings, "/metrics")
        assert 'contrastgeo_dead_letters_total{reason="too-large"} 1.0' in metrics
        assert "contrastgeo_batch_failures_total 0.0" in metrics  # nothing was retried
        # the port serves the probes and the metrics, none of faust's own views
        assert [http_status(settings, p) for p in ("/healthz", "/readyz", "/metrics")] == [200] * 3
        for path in ("/router/", "/table/", "/stats/", "/graph/", "/performance/"):
            assert http_status(settings, path) == 404, path
    finally:
        assert stop_worker(worker) == 0
