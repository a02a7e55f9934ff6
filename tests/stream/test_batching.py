"""The adaptive batching policy (``stream/batching.py``) on a fake clock: an idle worker
takes a lone post without waiting; under load, batches grow with the load, up to the cap.

The clock is virtual: a post arrives, or the encoder finishes, at a time the test sets,
and the real ``Gathered`` decides what each batch holds. No assertion reads a real clock.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

import pytest

from stream.batching import Gathered


class FakeClock:
    """Virtual time for coroutines: ``await clock.sleep(s)`` resumes when ``run`` has moved
    the clock ``s`` forward; between moves every runnable coroutine runs to its next wait."""

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, asyncio.Future]] = []
        self._order = itertools.count()

    async def sleep(self, seconds: float) -> None:
        wake = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.now + seconds, next(self._order), wake))
        await wake

    async def run(self) -> None:
        """Move the clock from timer to timer until no coroutine waits on one."""
        await settle()
        while self._timers:
            self.now, _, wake = heapq.heappop(self._timers)
            wake.set_result(None)
            await settle()


async def settle() -> None:
    for _ in range(50):  # let every coroutine that can run reach its next wait
        await asyncio.sleep(0)


def simulate(rate: float, cap: int, posts: int = 400, per_batch_s=0.02, per_post_s=0.005):
    """Posts arrive every 1/rate s; the encoder takes a batch as soon as it is free and is
    busy for per_batch_s + per_post_s per post. Returns (batch sizes, latencies)."""

    async def main():
        clock, gathered = FakeClock(), Gathered(cap)
        sizes, latencies = [], []

        async def arrivals():
            for i in range(posts):
                await gathered.put(clock.now)  # the post carries its arrival time
                if i < posts - 1:
                    await clock.sleep(1 / rate)

        async def encoder():
            while sum(sizes) < posts:
                batch = await gathered.take()
                await clock.sleep(per_batch_s + per_post_s * len(batch))
                sizes.append(len(batch))
                latencies.extend(clock.now - arrived for arrived in batch)

        tasks = [asyncio.create_task(arrivals()), asyncio.create_task(encoder())]
        await clock.run()
        stuck = [t for t in tasks if not t.done()]
        for task in stuck:
            task.cancel()
        assert not stuck, f"with nothing left to happen, {sum(sizes)} of {posts} posts encoded"
        await asyncio.gather(*tasks)
        return sizes, latencies

    return asyncio.run(main())


def test_an_idle_encoder_takes_a_lone_post_without_waiting():
    # one post every second; encoding one takes 25 ms: the encoder is idle when each arrives
    sizes, latencies = simulate(rate=1.0, cap=64, posts=20)
    assert sizes == [1] * 20
    assert latencies == pytest.approx([0.025] * 20)  # its own encoding, no wait to fill


def test_batches_grow_with_the_load_up_to_the_cap():
    # capacity: a batch of n posts takes 20 ms + 5 ms a post, so at most 200 posts/s
    light, _ = simulate(rate=20.0, cap=64)
    busy, _ = simulate(rate=120.0, cap=64)
    heavy, heavy_latency = simulate(rate=180.0, cap=64)
    over, _ = simulate(rate=1000.0, cap=64)
    mean = [sum(s) / len(s) for s in (light, busy, heavy, over)]
    assert mean[0] < mean[1] < mean[2] < mean[3]
    assert max(light) <= 2
    assert max(over) == 64 and max(max(s) for s in (light, busy, heavy, over)) <= 64
    # near capacity the batches grow until they keep up: latency stays bounded (a few
    # batches' time), where a fixed batch of 1 would fall behind without limit
    assert max(heavy_latency) < 1.0


def test_gathering_stops_at_the_cap_until_a_batch_is_taken():
    async def main():
        gathered = Gathered(3)
        for i in range(3):
            await gathered.put(i)
        blocked = asyncio.create_task(gathered.put(3))
        await settle()
        assert not blocked.done() and len(gathered) == 3  # back-pressure: the 4th waits
        assert gathered.take_nowait() == [0, 1, 2]
        await settle()
        assert blocked.done() and gathered.take_nowait() == [3]
        assert gathered.take_nowait() == [] and not gathered.arrived.is_set()

    asyncio.run(main())


def test_cleared_items_never_make_a_batch():
    async def main():
        gathered = Gathered(2)
        for item in ("a", "b"):
            await gathered.put(item)
        blocked = asyncio.create_task(gathered.put("c"))
        await settle()
        assert not blocked.done()
        assert gathered.clear() == 2  # a rebalance began: what was gathered is dropped
        await settle()
        assert blocked.done() and gathered.take_nowait() == ["c"]  # room again
        assert gathered.clear() == 0 and not gathered.arrived.is_set()

    asyncio.run(main())


def test_a_cap_below_one_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        Gathered(0)
