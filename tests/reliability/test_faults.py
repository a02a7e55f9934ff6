"""Faults on the real broker with workers as subprocesses: a worker of two killed mid-stream
(its partitions move to the other), and the broker restarted under a running worker."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
from collections import Counter

import pytest

from contrastgeo.commands.demo import start_worker, stop_worker
from stream.broker import EmbeddedBroker, ensure_topics_sync, free_port
from stream.replay import replay
from tests.conftest import copy_version, real_tweets
from tests.integration.conftest import (
    Feeder,
    Outputs,
    served_version,
    stream_settings,
    wait_for,
    worker_http,
)


@pytest.mark.slow
def test_one_of_two_workers_killed_mid_stream(broker, served, tmp_path):
    import time

    tweets = real_tweets(1200)
    settings = stream_settings(broker, tmp_path, **served)
    feeder = Feeder(settings, tweets, rate=150)
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    # its own copy of the embedded index, as on another host: the embedded engine opens a
    # collection in one process only (several workers share a Qdrant server in production)
    shutil.copytree(served["index_path"], tmp_path / "second-index")
    second_settings = settings.model_copy(
        update={"web_port": free_port(), "index_path": tmp_path / "second-index"}
    )
    first = start_worker(settings, logs[0])
    second = start_worker(second_settings, logs[1])

    def both_alive() -> bool:
        return first.poll() is None and second.poll() is None

    try:
        # both in the group before the posts flow: the kill is the only group change
        wait_for(
            lambda: all(
                json.loads(worker_http(s, "/readyz") or "{}").get("ready")
                for s in (settings, second_settings)
            ),
            "both workers ready",
            timeout=90,
            alive=both_alive,
        )
        time.sleep(3 * settings.session_timeout_s)  # the join rebalance settles
        feeder.start()
        # kill the first worker once both are working (a slow start can leave one idle)
        wait_for(
            lambda: all(p.exists() and '"event": "batch"' in p.read_text() for p in logs),
            "both workers processed a batch",
            timeout=90,
            alive=both_alive,
        )
        first.send_signal(signal.SIGKILL)
        first.wait()
        feeder.join()
        outputs = Outputs(settings).wait(
            lambda o: set(o.input_refs()) >= set(feeder.refs),
            timeout=180,
            alive=lambda: second.poll() is None,
        )
    finally:
        if feeder.is_alive():
            feeder.join()
        stop_worker(first)
        stop_worker(second)
    counts = Counter(outputs.input_refs())
    assert set(counts) == set(feeder.refs)  # nothing lost: the survivor took the partitions over
    # a group change replays what was in flight and uncommitted: at most one batch per
    # worker (the killed one's, and the survivor's if its partitions were revoked mid-batch)
    assert sum(n - 1 for n in counts.values()) <= 2 * settings.take_max
    keys: dict = {}
    for record in outputs.records[settings.geotagged_topic]:
        ref = tuple(json.loads(record.value)["input"].values())
        keys.setdefault(ref, set()).add(record.key)
    assert all(len(k) == 1 for k in keys.values())


@pytest.mark.slow
def test_a_worker_reconnects_after_the_broker_restarts(served, tmp_path):
    """tansu keeps topics, offsets and groups in memory: a restart loses them (a Kafka
    cluster keeps them on disk). A running worker reconnects and goes on consuming, but its
    in-memory positions may point past the new, shorter logs, so it can skip their first
    records, and commit past them. So after a memory broker restart the workers are
    restarted too; every input sent after that is accounted for."""
    import time

    tweets = real_tweets(300)
    broker = EmbeddedBroker(log_file=tmp_path / "tansu.log").start()
    worker = None
    try:
        settings = stream_settings(broker, tmp_path, **served)
        worker = start_worker(settings, tmp_path / "worker.log")
        before = asyncio.run(replay(settings, tweets[:100]))
        Outputs(settings).wait(
            lambda o: set(o.input_refs()) >= set(before), alive=lambda: worker.poll() is None
        )
        broker.stop()
        broker.start()  # same port, empty
        ensure_topics_sync(settings)
        after = asyncio.run(replay(settings, tweets[100:200]))
        Outputs(settings).wait(
            lambda o: len(o.input_refs()) > 0, timeout=120, alive=lambda: worker.poll() is None
        )
        assert stop_worker(worker) == 0  # it reconnected, produced, and stops cleanly
        worker = start_worker(settings, tmp_path / "worker.log")
        wait_for(
            lambda: json.loads(worker_http(settings, "/readyz") or "{}").get("ready"),
            "the restarted worker is ready",
            alive=lambda: worker.poll() is None,
        )
        time.sleep(3 * settings.session_timeout_s)  # joined, positions set
        later = asyncio.run(replay(settings, tweets[200:]))
        outputs = Outputs(settings).wait(
            lambda o: set(o.input_refs()) >= set(later),
            timeout=120,
            alive=lambda: worker.poll() is None,
        )
        counts = Counter(outputs.input_refs())
        assert set(counts) <= set(after) | set(later)  # the memory broker kept nothing older
        assert sum(counts[ref] - 1 for ref in later) <= settings.take_max
    finally:
        if worker is not None:
            stop_worker(worker)
        broker.stop()


@pytest.mark.slow
def test_a_corrupt_model_is_refused_and_the_old_one_keeps_serving(broker, served, tmp_path):

    from stream.index import EdgeIndex, version_of
    from stream.publish import announce

    tweets = real_tweets(200)
    settings = stream_settings(broker, tmp_path, **served, reload_poll_s=3600)
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        first = asyncio.run(replay(settings, tweets[:100]))
        Outputs(settings).wait(
            lambda o: set(o.input_refs()) >= set(first), alive=lambda: worker.poll() is None
        )
        index = EdgeIndex(settings.index_path)
        old = version_of(index.resolve(settings.index_alias))
        # a half-written version: its files do not match the manifest's checksums
        copy_version(settings, old, "broken")
        (settings.model_folder("broken") / "encoder.int8.onnx").write_bytes(b"\0" * 100)
        shutil.copytree(
            index.root / "collections" / f"locations-{old}",
            index.root / "collections" / "locations-broken",
        )
        index.set_alias(settings.index_alias, "locations-broken")
        index.close()
        asyncio.run(announce(settings, "broken", "locations-broken", old))
        log = tmp_path / "worker.log"
        wait_for(lambda: "model refused" in log.read_text(), "the worker tried the corrupt version")
        assert served_version(settings) == old
        second = asyncio.run(replay(settings, tweets[100:]))
        outputs = Outputs(settings).wait(
            lambda o: set(o.input_refs()) >= set(first + second),
            alive=lambda: worker.poll() is None,
        )
    finally:
        stop_worker(worker)
    assert Counter(outputs.input_refs()) == Counter(first + second)
    versions = {
        e["model_version"]
        for e in outputs.events(settings.geotagged_topic)
        if e["source"] == "model"
    }
    assert versions == {old}
    refused = [json.loads(line) for line in log.read_text().splitlines() if "model refused" in line]
    assert refused[0]["level"] == "error" and "checksum" in refused[0]["error"]


@pytest.mark.slow
def test_an_unavailable_index_pauses_the_worker_and_nothing_is_lost(broker, served, tmp_path):
    """The served collection is missing when posts arrive (the index is down): the worker
    retries with backoff, publishes no geotagged event and no dead letter for a valid post,
    commits nothing; once the collection is back it resumes and every post comes out once."""
    import os

    from stream.index import EdgeIndex, version_of
    from stream.publish import index_version

    index = EdgeIndex(served["index_path"])
    collection = index.resolve("locations")
    version = version_of(collection)
    index.close()
    shutil.rmtree(served["index_path"] / "collections" / collection)  # the index is "down"
    settings = stream_settings(broker, tmp_path, **served, retry_max_s=2.0)
    tweets = real_tweets(100)
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        refs = asyncio.run(replay(settings, [*tweets, b"{not json"]))
        wait_for(  # paused, retrying with backoff
            lambda: _retries(worker_http(settings, "/metrics")) >= 3,
            "three retries",
            alive=lambda: worker.poll() is None,
            every=0.5,
        )
        during = Outputs(settings).wait(lambda o: True)
        assert not [e for e in during.events(settings.geotagged_topic) if e["source"] == "model"]
        assert all(e["reason"] == "not-json" for e in during.events(settings.dead_letter_topic))
        # the index comes back: the collection appears whole (built aside, then renamed in)
        aside = EdgeIndex(tmp_path / "aside")
        index_version(
            settings.model_copy(update={"index_path": tmp_path / "aside"}), aside, version
        )
        aside.close()
        os.rename(
            tmp_path / "aside" / "collections" / collection,
            served["index_path"] / "collections" / collection,
        )
        outputs = Outputs(settings).wait(
            lambda o: set(o.input_refs()) >= set(refs),
            timeout=120,
            alive=lambda: worker.poll() is None,
        )
    finally:
        stop_worker(worker)
    assert Counter(outputs.input_refs()) == Counter(refs)  # each once: nothing was committed early
    assert len(outputs.events(settings.dead_letter_topic)) == 1


def _retries(metrics: str) -> float:
    import re

    match = re.search(r"^contrastgeo_predict_retries_total (\S+)$", metrics, re.MULTILINE)
    return float(match.group(1)) if match else 0.0
