"""The faust application: the geotagging agent, model reloads and the HTTP endpoints.

The agent is a thin loop: take a batch of raw messages (what arrived while the previous
batch was processed, at most ``take_max``: ``stream/batching.py``), let
``Geotagger.process`` turn it into outputs, publish them and wait until the broker has
every one, then ack the batch and commit its offsets. A crash before the commit replays at
most that batch, with the same output keys (at-least-once; consumers deduplicate by key).

A batch whose outputs cannot be made or delivered (the broker unreachable, a bug) is retried
with backoff, never skipped. A batch is held out of faust's commits until its outputs are
delivered (``stream/batching.py``: ``take_batches`` hands it out held, the agent releases
it), because whatever was handed out is acked when the stream stops, which would otherwise
commit, at shutdown, inputs that have no outcome.

Every worker follows model updates: a ``ModelUpdated`` event (read by each worker outside
the consumer group, so none misses it) or, as a safety net, a periodic look at the alias.

Endpoints (bound to ``web_host``:``web_port``): ``/healthz`` (liveness), ``/readyz`` (a
model is served and outputs have not been failing to be made or delivered for
``unready_after_s``) and ``/metrics`` (Prometheus); faust's own views are off.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

import faust
import structlog

from stream import kafka
from stream.batching import Gathered, release, take_batches
from stream.geotagger import Backoff, Geotagger, Output
from stream.routing import Message
from stream.settings import MAX_REQUEST_BYTES, WorkerSettings

log = structlog.get_logger(__name__)
PROMETHEUS_TEXT = "text/plain; version=0.0.4"  # aiohttp adds the charset itself


class WorkerApp(faust.App):
    """faust's App with the service's Kafka transport (``kafka.faust_transport``)."""

    fetch_max_wait_ms: int

    def _new_transport(self):
        return kafka.faust_transport(self, self.fetch_max_wait_ms)


def create_app(settings: WorkerSettings, geotagger: Geotagger | None = None) -> faust.App:
    geotagger = geotagger or Geotagger(settings)
    app = WorkerApp(
        settings.group_id,
        broker=settings.broker,
        broker_credentials=kafka.faust_credentials(settings),
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        consumer_auto_offset_reset=settings.auto_offset_reset,
        producer_max_request_size=MAX_REQUEST_BYTES,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        store="memory://",
        datadir=str(settings.data_dir),
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        # only /healthz, /readyz and /metrics (and faust's fixed '{"status": "OK"}' at /):
        # not faust's router, table, statistics or graph views, which would tell anyone who
        # reaches the port about partitions, tables and the topology
        web_router_enabled=False,
        web_tables_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=False,
        autodiscover=False,
    )
    app.fetch_max_wait_ms = settings.fetch_max_wait_ms
    app.geotagger = geotagger  # type: ignore[attr-defined]
    posts = app.topic(settings.input_topic, key_serializer="raw", value_serializer="raw")

    async def publish(output: Output) -> Awaitable[Any]:
        """Hand one output to the producer now; returns the broker's acknowledgement to
        await. Straight to faust's producer: its ``topic.send`` wraps each record in
        futures and sensors of its own, about two thirds of a batch's send time."""
        return await app.producer.send(output.topic, output.key, output.value, None, None, None)

    app.publish = publish  # type: ignore[attr-defined]  # replaced by the agent's tests
    in_flight = InFlight()
    gathered: Gathered = Gathered(settings.take_max)  # the next batch's events

    async def deliver(messages: list[Message]) -> None:
        """Outputs made and acknowledged by the broker, however many tries it takes."""
        backoff = Backoff(settings.retry_max_s)
        started = time.perf_counter()
        while True:
            try:
                batch = await geotagger.process(messages, started)
                pending = [await app.publish(o) for o in batch.outputs]
                await asyncio.gather(*pending)  # every output acknowledged by the broker
                geotagger.delivered(batch)
                return
            except Exception as exc:
                await geotagger.retry_after(
                    "batch failed; retrying it, nothing committed",
                    exc,
                    backoff,
                    geotagger.metrics.batch_failures,
                    inputs=len(messages),
                    first_offset=messages[0].offset,
                )

    @app.agent(posts, name="geotag")
    async def geotag(stream):
        async for events in take_batches(stream, gathered):
            messages = [
                Message(
                    e.message.topic,
                    e.message.partition,
                    e.message.offset,
                    e.message.key,
                    e.message.value,
                )
                for e in events
            ]
            async with in_flight:  # the batch comes held (stream/batching.py)
                await deliver(messages)
                release(events)
                for event in events:
                    await stream.ack(event)
                await app.consumer.commit()

    @app.on_partitions_revoked.connect
    async def finish_batch_in_flight(app, revoked, **kwargs) -> None:
        """A rebalance takes partitions away: let the batch being delivered be delivered
        and committed first (at most ``rebalance_wait_s``; default half the session
        timeout), so that the new owner starts after it instead of processing it again.
        faust's own wait sees held batches as acked and does not wait for them. (The
        posts gathered for the next batch were dropped when the rebalance began: faust's
        flow control clears them with its own queues, ``stream/batching.py``.)"""
        if not await in_flight.wait_idle(settings.rebalance_wait()):
            log.warning(
                "rebalance: a batch is still being delivered; its partitions move on and "
                "it may be processed twice",
                waited_s=settings.rebalance_wait(),
            )

    @app.task
    async def load_model() -> None:
        await geotagger.wait_for_model()

    @app.task
    async def follow_model_updates() -> None:
        await _follow_model_updates(settings, geotagger)

    @app.timer(settings.reload_poll_s)
    async def poll_alias() -> None:
        if geotagger.ready:
            try:
                await geotagger.reload()
            except Exception as exc:  # the index unreachable, the alias gone: keep serving
                log.error("alias check failed; the current model keeps serving", error=repr(exc))

    @app.page("/healthz")
    async def healthz(self, request):
        return self.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(self, request):
        ready = geotagger.ready
        return self.json(
            {
                "ready": ready,
                "model_version": geotagger.version,
                "failing_for_s": geotagger.failing_for(),
            },
            status=200 if ready else 503,
        )

    @app.page("/metrics")
    async def metrics(self, request):
        geotagger.metrics.ready.set(geotagger.ready)
        return self.text(geotagger.metrics.render().decode(), content_type=PROMETHEUS_TEXT)

    return app


class InFlight:
    """Whether a batch is being delivered and committed: ``async with in_flight`` around
    it, ``await in_flight.wait_idle(timeout)`` to wait for it to end."""

    def __init__(self) -> None:
        self._idle = asyncio.Event()
        self._idle.set()

    async def __aenter__(self) -> None:
        self._idle.clear()

    async def __aexit__(self, *exc: object) -> None:
        self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """True when no batch is in flight (now or within ``timeout`` seconds)."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True


async def _follow_model_updates(settings: WorkerSettings, geotagger: Geotagger) -> None:
    """Read every ``ModelUpdated`` from now on (no consumer group: each worker reads all)
    and reload. Errors are logged and retried: the alias poll is the fallback."""
    from aiokafka import TopicPartition

    while True:
        consumer = kafka.consumer(settings, group_id=None, enable_auto_commit=False)
        try:
            await consumer.start()
            partitions = consumer.partitions_for_topic(settings.model_updates_topic) or {0}
            tps = [TopicPartition(settings.model_updates_topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_end(*tps)
            async for record in consumer:
                log.info("model update announced", offset=record.offset)
                await geotagger.reload()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("model-update listener failed; restarting", error=repr(exc))
            await asyncio.sleep(settings.retry_max_s / 10)
        finally:
            await consumer.stop()
