"""The faust agent in faust's test context, its producer replaced by a sink (``app.publish``)
and its commits by AsyncMocks: a batch's outputs are all sent and delivered before its
offsets are committed."""

from __future__ import annotations

import asyncio
import json
from unittest.mock import AsyncMock

from faust.types.tuples import Message

from schemas.events import DeadLetter, GeotaggedPost
from stream.app import create_app
from stream.settings import WorkerSettings


def agent_app(served, tmp_path, **overrides):
    """Worker settings on the served model (a broker that is never contacted: the sinks and
    the commit are mocks) and the faust app built from them, ready for a test context."""
    settings = WorkerSettings(
        **served, data_dir=tmp_path / "worker", broker="kafka://127.0.0.1:1", **overrides
    )
    app = create_app(settings)
    app.finalize()
    app.conf.store = "memory://"
    return settings, app


def test_the_agent_publishes_a_batch_then_commits(served, tmp_path):
    settings, app = agent_app(served, tmp_path)
    calls: list[tuple] = []

    async def publish(output):
        calls.append(("send", output.topic, output.key, output.value))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)  # the broker's acknowledgement
        return done

    app.publish = publish
    payloads = [
        json.dumps({"id": f"p{i}", "text": "hello from memphis"}).encode() for i in range(3)
    ]
    payloads.append(b"{oops")

    async def go():
        await app.geotagger.wait_for_model()
        app.consumer.commit = AsyncMock(side_effect=lambda: calls.append(("commit",)))
        async with app.agents["geotag"].test_context() as agent:
            for payload in payloads:
                await agent.put(payload, key=None)
            for _ in range(200):
                if len([c for c in calls if c[0] == "send"]) == 4 and calls[-1] == ("commit",):
                    break
                await asyncio.sleep(0.05)
        app.geotagger.close()

    asyncio.run(go())
    sends = [c for c in calls if c[0] == "send"]
    # the posts may come in more than one batch (each is taken as the encoder is free);
    # every batch's outputs are sent before its commit, so no output follows the last one
    assert calls[-1] == ("commit",) and calls[0] != ("commit",)
    geotagged = [
        GeotaggedPost.model_validate_json(v)
        for _, t, _, v in sends
        if t == settings.geotagged_topic
    ]
    assert sorted(e.post_id for e in geotagged) == ["p0", "p1", "p2"]
    (letter,) = [
        DeadLetter.model_validate_json(v) for _, t, _, v in sends if t == settings.dead_letter_topic
    ]
    assert letter.reason == "not-json"


def test_a_failed_batch_is_retried_and_a_stopped_one_never_acked(served, tmp_path, monkeypatch):
    """process() fails once (say the broker refused the outputs): the same batch is made
    again and committed only after its outputs are delivered. An agent stopped mid-batch
    leaves that batch unacked, so no commit can pass it."""
    _settings, app = agent_app(
        served,
        tmp_path,
        retry_max_s=0.05,
    )
    calls: list = []

    async def publish(output):
        calls.append("send")
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    app.publish = publish
    process = app.geotagger.process
    attempts = []

    async def flaky_process(messages, started=None):
        attempts.append(len(messages))
        if len(attempts) == 1:
            raise ConnectionError("the broker went away")
        if messages[0].value == b"hang":
            await asyncio.Event().wait()  # stopped mid-batch
        return await process(messages, started)

    app.geotagger.process = flaky_process
    acked: list = []  # offsets faust marked safe to commit (its final ack of a message)
    final_ack = Message.on_final_ack

    def spy(message, consumer):
        acked.append(message.offset)
        return final_ack(message, consumer)

    monkeypatch.setattr(Message, "on_final_ack", spy)

    async def go():
        await app.geotagger.wait_for_model()
        app.consumer.commit = AsyncMock(side_effect=lambda: calls.append("commit"))
        async with app.agents["geotag"].test_context() as agent:
            await agent.put(json.dumps({"id": "p", "text": "hello"}).encode(), key=None)
            for _ in range(200):
                if "commit" in calls:
                    break
                await asyncio.sleep(0.05)
            assert len(acked) == 1
            await agent.put(b"hang", key=None)
            for _ in range(200):
                if len(attempts) == 3:
                    break
                await asyncio.sleep(0.05)
        app.geotagger.close()

    asyncio.run(go())
    assert attempts == [1, 1, 1]  # failed, retried, then the batch that hangs
    assert calls == ["send", "commit"]  # the retried batch delivered, then committed
    assert len(acked) == 1  # the stopped batch was never acked
    assert "contrastgeo_batch_failures_total 1.0" in app.geotagger.metrics.render().decode()


def test_a_rebalance_waits_for_the_batch_in_flight_to_be_committed(served, tmp_path):
    """Partitions revoked while a batch's outputs are still being delivered: the revocation
    (faust's ``on_partitions_revoked`` signal, which faust awaits before the partitions
    move) completes only after that batch is delivered and committed, so that the new
    owner does not process it again."""
    _settings, app = agent_app(
        served,
        tmp_path,
        session_timeout_s=30.0,
        rebalance_timeout_s=30.0,  # rebalance_wait_s: 15 s by default
    )
    calls: list = []
    broker_acks = asyncio.Event()  # set: the broker acknowledges the sends

    async def publish(output):
        calls.append("send")
        done = asyncio.get_running_loop().create_future()

        async def acknowledge():
            await broker_acks.wait()
            done.set_result(None)

        asyncio.get_running_loop().create_task(acknowledge())
        return done

    app.publish = publish

    async def go():
        await app.geotagger.wait_for_model()
        app.consumer.commit = AsyncMock(side_effect=lambda: calls.append("commit"))
        async with app.agents["geotag"].test_context() as agent:
            await agent.put(json.dumps({"id": "p", "text": "hello"}).encode(), key=None)
            for _ in range(200):
                if "send" in calls:
                    break
                await asyncio.sleep(0.05)
            revocation = asyncio.create_task(app.on_partitions_revoked.send(set()))
            for _ in range(10):  # the revocation keeps waiting while the batch is in flight
                await asyncio.sleep(0.05)
                assert not revocation.done()
            broker_acks.set()
            await revocation
            assert calls[-1] == "commit"  # the batch was committed before it returned
        app.geotagger.close()

    asyncio.run(go())


def test_failed_deliveries_turn_the_worker_unready_and_count_nothing(served, tmp_path):
    """The broker refuses every output (predictions all succeed): after unready_after_s of
    failed deliveries /readyz's readiness is false, and no input is counted while its
    outputs are undelivered; once the broker takes them, ready again and counted once."""
    _settings, app = agent_app(
        served,
        tmp_path,
        retry_max_s=0.05,
        unready_after_s=1.0,  # longer than any one wait between tries (0.5 s at most)
    )
    broker_up = False

    async def publish(output):
        if not broker_up:
            raise ConnectionError("the broker refuses the record")
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    app.publish = publish

    def metric(name: str) -> str:
        text = app.geotagger.metrics.render().decode()
        return next(line for line in text.splitlines() if line.startswith(name))

    async def go():
        nonlocal broker_up
        await app.geotagger.wait_for_model()
        app.consumer.commit = AsyncMock()
        async with app.agents["geotag"].test_context() as agent:
            await agent.put(json.dumps({"id": "p", "text": "hello"}).encode(), key=None)
            for _ in range(400):
                if not app.geotagger.ready:
                    break
                await asyncio.sleep(0.05)
            assert not app.geotagger.ready  # deliveries failing: not ready
            assert metric("contrastgeo_posts_in_total") == "contrastgeo_posts_in_total 0.0"
            broker_up = True
            for _ in range(400):
                if app.geotagger.ready:
                    break
                await asyncio.sleep(0.05)
            assert app.geotagger.ready
            assert metric("contrastgeo_posts_in_total") == "contrastgeo_posts_in_total 1.0"
        app.geotagger.close()

    asyncio.run(go())
