"""A running worker fed 300 real tweets interleaved with over 3,000 nasty payloads (mutated
real tweets, binary junk, 100 KB texts, deep nesting, stream control notices) and 2,000
well-formed tweets with odd values in their places, coordinates and user fields: it keeps
running, every bad input is dead-lettered with its bytes, every post is geotagged."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections import Counter

import pytest

from benchmarks.local import start_worker, stop_worker
from stream.replay import replay
from stream.routing import Message, Rules, route
from tests.reliability import wellformed
from tests.reliability.nasty import corpus
from tests.support.data import real_tweets
from tests.support.service import Outputs, stream_settings


@pytest.mark.slow
def test_a_worker_survives_a_stream_of_bad_input(broker, served, tmp_path):
    tweets = real_tweets(300)
    bad, control, odd = corpus(tweets, seed=1)
    settings = stream_settings(broker, tmp_path, **served)
    # the odd well-formed tweets: which are refused is the routing's call (tests/reliability/
    # test_fuzz.py checks its reasons); here each must get that one outcome from a worker
    shaped = wellformed.payloads(2000, seed=2)
    routed = route([Message("t", 0, i, None, p) for i, p in enumerate(shaped)], Rules.of(settings))
    bad += [shaped[d.input.offset] for d in routed.dead_letters]
    odd += [shaped[m.offset] for m, _ in routed.to_predict]
    odd += [shaped[c.message.offset] for c in routed.carried]
    payloads = tweets + bad + control + odd
    random.Random(0).shuffle(payloads)
    refs = asyncio.run(replay(settings, payloads))
    kind = {ref: p for ref, p in zip(refs, payloads, strict=True)}
    expected = {ref for ref, p in kind.items() if p not in control}
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        outputs = Outputs(settings).wait(
            lambda o: set(o.input_refs()) >= expected,
            timeout=300,
            alive=lambda: worker.poll() is None,
        )
        assert worker.poll() is None  # still running
    finally:
        assert stop_worker(worker) == 0
    assert Counter(outputs.input_refs()) == Counter(expected)  # each once, no crash: no dupes
    letters = outputs.events(settings.dead_letter_topic)
    assert len(letters) == len(bad)
    assert sorted(d["payload_sha256"] for d in letters) == sorted(
        hashlib.sha256(b).hexdigest() for b in bad
    )
    reasons = Counter(d["reason"] for d in letters)
    assert {
        "not-json",
        "invalid-utf8",
        "wrong-type",
        "missing-id",
        "missing-text",
        "too-large",
        "invalid-place",
        "invalid-coordinates",
    } <= set(reasons)
    assert len(outputs.events(settings.geotagged_topic)) == len(tweets) + len(odd)
