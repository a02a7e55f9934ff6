"""Feed payloads into the input topic (``contrastgeo replay``, the demo, tests, benchmarks).

Each payload is sent as is, keyed by its post id when one can be read (so that a post's
replays land on one partition); a payload without a readable id is sent unkeyed, and the
worker dead-letters it if it is not a post.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable

from stream.settings import ServiceSettings


def post_key(payload: bytes) -> bytes | None:
    """The id of a Twitter v1.1 / v2 / minimal payload, or None."""
    try:
        obj = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("data"), dict):
        obj = obj["data"]
    value = obj.get("id_str") or obj.get("id")
    return str(value).encode() if isinstance(value, (str, int)) and value != "" else None


async def replay(
    settings: ServiceSettings,
    payloads: Iterable[bytes],
    rate: float = 0.0,
    topic: str | None = None,
) -> list[tuple[int, int]]:
    """Send every payload to the input topic (at most ``rate`` per second when > 0) and
    wait until the broker has them all; returns each payload's (partition, offset)."""
    from stream import kafka

    producer = kafka.producer(settings, acks="all", linger_ms=5)
    await producer.start()
    sent, start, pending, refs = 0, time.monotonic(), [], []
    try:
        for payload in payloads:
            pending.append(
                await producer.send(topic or settings.input_topic, payload, key=post_key(payload))
            )
            sent += 1
            if rate > 0 and sent / rate > time.monotonic() - start:
                await asyncio.sleep(sent / rate - (time.monotonic() - start))
            if len(pending) >= 1000:
                refs += [(m.partition, m.offset) for m in await asyncio.gather(*pending)]
                pending.clear()
        refs += [(m.partition, m.offset) for m in await asyncio.gather(*pending)]
    finally:
        await producer.stop()
    return refs
