"""Helpers to run a worker subprocess against the session's real broker (the ``broker``
fixture of tests/conftest.py) and read back everything it published; model versions in a
store."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import threading
import time
from pathlib import Path

from stream import kafka
from stream.broker import EmbeddedBroker, ensure_topics_sync, free_port, wait_for_port
from stream.settings import WorkerSettings

_names = itertools.count()


class LocalS3:
    """A local S3 server (moto) with one bucket: durable storage for a broker that is
    killed and restarted while the server lives on. ``env`` is what tansu needs."""

    def __init__(self, log_file: Path, bucket: str = "tansu"):
        self.port, self.bucket, self.log_file = free_port(), bucket, log_file
        self.process: subprocess.Popen | None = None

    @property
    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT": f"http://127.0.0.1:{self.port}",
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def __enter__(self) -> LocalS3:
        import sys
        import urllib.request

        out = open(self.log_file, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        wait_for_port("127.0.0.1", self.port, timeout=60)
        url = f"http://127.0.0.1:{self.port}/{self.bucket}"
        urllib.request.urlopen(urllib.request.Request(url, method="PUT"), timeout=10)
        return self

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)


def stream_settings(broker: EmbeddedBroker, tmp_path: Path, **overrides) -> WorkerSettings:
    """WorkerSettings of a worker with its own topics and group (tests share the broker), short
    group timeouts and small batches; topics created."""
    n = f"t{next(_names)}"
    fields = dict(
        broker=broker.url,
        input_topic=f"{n}.posts",
        geotagged_topic=f"{n}.geotagged",
        labeled_topic=f"{n}.labeled",
        dead_letter_topic=f"{n}.dead-letter",
        model_updates_topic=f"{n}.models",
        group_id=f"{n}-worker",
        topic_partitions=3,
        session_timeout_s=2.0,
        heartbeat_interval_s=0.3,
        rebalance_timeout_s=2.0,
        take_max=16,
        web_port=free_port(),
        data_dir=tmp_path / "worker",
    )
    settings = WorkerSettings(**{**fields, **overrides})
    ensure_topics_sync(settings)
    return settings


def committed_offsets(settings: WorkerSettings) -> dict[int, int]:
    """The workers' group's committed offset per input partition (absent: none yet). Read
    with the group's id but no subscription, so the group is not joined."""
    from aiokafka import TopicPartition

    async def read() -> dict[int, int]:
        consumer = kafka.consumer(settings, group_id=settings.group_id, enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = consumer.partitions_for_topic(settings.input_topic) or set()
            committed = {
                p: await consumer.committed(TopicPartition(settings.input_topic, p))
                for p in sorted(partitions)
            }
        finally:
            await consumer.stop()
        return {p: offset for p, offset in committed.items() if offset is not None}

    return asyncio.run(read())


class Outputs:
    """Everything published on the three output topics so far, read from the start."""

    def __init__(self, settings: WorkerSettings):
        self.settings = settings
        self.records: dict[str, list] = {}

    async def _read(self, until, timeout: float, alive, at_least: float) -> None:
        s = self.settings
        topics = (s.geotagged_topic, s.labeled_topic, s.dead_letter_topic)
        consumer = kafka.consumer(s, *topics, group_id=None, auto_offset_reset="earliest")
        self.records = {t: [] for t in topics}
        await consumer.start()
        start = time.monotonic()
        deadline = start + timeout
        try:
            while not until(self) or time.monotonic() - start < at_least:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"outputs so far: { {t: len(r) for t, r in self.records.items()} }"
                    )
                if alive is not None and not alive():
                    raise RuntimeError("the worker died")
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    for r in batch:
                        self.records[r.topic].append(r)
        finally:
            await consumer.stop()

    def wait(self, until, timeout: float = 120, alive=None, at_least: float = 0.0) -> Outputs:
        """Read until ``until(self)`` holds and, when ``at_least`` > 0, for that many
        seconds at least (to see that something is *not* published)."""
        asyncio.run(self._read(until, timeout, alive, at_least))
        return self

    def events(self, topic: str) -> list[dict]:
        return [json.loads(r.value) for r in self.records.get(topic, [])]

    def input_refs(self) -> list[tuple[int, int]]:
        """(partition, offset) of the input behind every geotagged event and dead letter."""
        s = self.settings
        return [
            (e["input"]["partition"], e["input"]["offset"])
            for t in (s.geotagged_topic, s.dead_letter_topic)
            for e in self.events(t)
        ]


class Feeder(threading.Thread):
    """Replays payloads into the input topic at ``rate`` per second in the background;
    ``refs`` then holds each payload's (partition, offset)."""

    def __init__(self, settings: WorkerSettings, payloads: list[bytes], rate: float):
        super().__init__(daemon=True)
        self.settings, self.payloads, self.rate = settings, payloads, rate
        self.refs: list[tuple[int, int]] = []

    def run(self) -> None:
        from stream.replay import replay

        self.refs = asyncio.run(replay(self.settings, self.payloads, rate=self.rate))


def wait_for(condition, what: str, timeout: float = 60, alive=None, every: float = 0.2) -> None:
    """Poll ``condition`` every ``every`` s until it holds; fail with ``what`` once
    ``timeout`` s have passed, or as soon as ``alive`` (the workers still run) is false."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert alive is None or alive(), f"a worker died before: {what}"
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        time.sleep(every)


def worker_http(settings: WorkerSettings, path: str) -> str:
    """A worker endpoint's body (``/readyz``, ``/metrics``), a 503's included, or "" while
    it does not answer."""
    import urllib.error
    import urllib.request

    url = f"http://{settings.web_host}:{settings.web_port}{path}"
    try:
        return urllib.request.urlopen(url, timeout=2).read().decode()
    except urllib.error.HTTPError as error:
        return error.read().decode()
    except OSError:
        return ""


def worker_model_version(settings: WorkerSettings) -> str | None:
    """The model version a worker reports on /readyz (None before it answers)."""
    return json.loads(worker_http(settings, "/readyz") or "{}").get("model_version")


def copy_version(settings, old: str, new: str) -> None:
    """Another model version in the store: ``old``'s export under the name ``new``."""
    import shutil

    shutil.copytree(settings.model_folder(old), settings.model_folder(new))
    manifest = settings.model_folder(new) / "manifest.json"
    manifest.write_text(manifest.read_text().replace(old, new))
