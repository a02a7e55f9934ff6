"""A bounded soak: posts fed at a fixed rate for a fixed time through the broker and one
worker subprocess, sampled every few seconds (``contrastgeo soak``).

Each sample records: outputs per second, consumer lag (posts sent minus posts accounted
for), latency p99 of the outputs read in the window (read time - send time, one clock),
and the worker's resident memory (RSS, from /proc). At the end every input must be
accounted for. The samples go to ``soak.json``; ``soak.png`` plots them.
"""

from __future__ import annotations

import asyncio
import json
import time
from itertools import cycle
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.local import start_worker, stop_worker
from stream.replay import post_key
from stream.settings import WorkerSettings


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def unique_payloads(payloads: list[bytes]):
    """The payloads again and again, each copy with a fresh post id (so each is a new post)."""
    for n, payload in enumerate(cycle(payloads)):
        obj = json.loads(payload)
        obj["id_str"] = obj["id"] = f"soak-{n}"
        yield json.dumps(obj).encode()


async def _soak(
    settings: WorkerSettings,
    payloads: list[bytes],
    rate: float,
    seconds: float,
    every: float,
    pid: int,
    drain: float,
):
    from stream import kafka

    producer = kafka.producer(settings, linger_ms=5)
    consumer = kafka.consumer(
        settings,
        settings.geotagged_topic,
        settings.dead_letter_topic,
        group_id=None,
        auto_offset_reset="latest",
    )
    await producer.start()
    await consumer.start()
    await consumer.seek_to_end()
    sent_at: dict[str, float] = {}
    seen: set[str] = set()
    samples: list[dict[str, Any]] = []
    window: list[float] = []
    start = time.monotonic()
    last_sample = start
    outputs_in_window = 0

    async def feed():
        source = unique_payloads(payloads)
        n = 0
        while time.monotonic() - start < seconds:
            payload = next(source)
            key = post_key(payload)
            sent_at[key.decode()] = time.time()
            await producer.send(settings.input_topic, payload, key=key)
            n += 1
            ahead = n / rate - (time.monotonic() - start)
            if ahead > 0:
                await asyncio.sleep(ahead)
        await producer.flush()

    feeder = asyncio.create_task(feed())
    deadline = start + seconds + drain
    while time.monotonic() < deadline and not (feeder.done() and seen >= sent_at.keys()):
        for records in (await consumer.getmany(timeout_ms=200)).values():
            now = time.time()
            for record in records:
                post_id = record.key.decode() if record.key else ""
                if post_id in sent_at and post_id not in seen:
                    seen.add(post_id)
                    window.append(now - sent_at[post_id])
                    outputs_in_window += 1
        if time.monotonic() - last_sample >= every:
            elapsed = time.monotonic() - last_sample
            samples.append(
                {
                    "t": round(time.monotonic() - start, 1),
                    "sent": len(sent_at),
                    "accounted": len(seen),
                    "out_per_s": outputs_in_window / elapsed,
                    "lag": len(sent_at) - len(seen),
                    "latency_ms_p99": 1000 * float(np.percentile(window, 99)) if window else None,
                    "rss_mb": rss_mb(pid),
                }
            )
            window, outputs_in_window, last_sample = [], 0, time.monotonic()
    await feeder
    await producer.stop()
    await consumer.stop()
    return samples, len(sent_at), len(seen)


def soak(
    settings: WorkerSettings,
    payloads: list[bytes],
    rate: float,
    seconds: float,
    log_file: Path,
    every: float = 5.0,
    drain: float = 120.0,
) -> dict[str, Any]:
    """``payloads`` must be posts that the worker geotags (one output each); the worker
    subprocess logs to ``log_file``."""
    worker = start_worker(settings, log_file)
    try:
        time.sleep(5)  # the worker joins its group; its first reads start from "earliest"
        samples, sent, accounted = asyncio.run(
            _soak(settings, payloads, rate, seconds, every, worker.pid, drain)
        )
    finally:
        stop_worker(worker)
    rss = [s["rss_mb"] for s in samples]
    warm = rss[len(rss) // 4 :] or rss
    return {
        "rate": rate,
        "seconds": seconds,
        "sent": sent,
        "accounted": accounted,
        "lost": sent - accounted,
        "samples": samples,
        "rss_mb_after_warmup_max": max(warm) if warm else None,
        "rss_mb_after_warmup_min": min(warm) if warm else None,
    }


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = results["samples"]
    t = [x["t"] for x in s]
    fig, axes = plt.subplots(4, 1, figsize=(8, 9), sharex=True)
    for ax, key, label in zip(
        axes,
        ("out_per_s", "lag", "latency_ms_p99", "rss_mb"),
        ("outputs / s", "lag (posts)", "latency p99 (ms)", "worker RSS (MB)"),
        strict=True,
    ):
        ax.plot(t, [x[key] if x[key] is not None else np.nan for x in s], marker=".")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].axhline(results["rate"], color="gray", linestyle="--", label="input rate")
    axes[0].legend()
    axes[-1].set_xlabel("seconds")
    r = results
    fig.suptitle(f"soak: {r['rate']:.0f} posts/s for {r['seconds']:.0f} s, lost {r['lost']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
