"""End-to-end throughput of the service through a real broker, next to the raw encoder
rate measured in the same run on the same posts (``contrastgeo stream-bench``).

1. **Raw encoder**: the served ONNX encoder embeds the posts in batches (what a worker
   cannot beat: the rest of the pipeline only adds to it), in this process with all the
   workers' threads, and with several workers also in as many processes side by side
   (``encoder_rate_side_by_side``).
2. **Saturated stream**: one or more workers are started in one group, ready, settled and
   warmed up by a few posts of their own; then the posts are written to the input topic
   as fast as the broker takes them; throughput = posts / (last output's
   ``geotagged_at`` - first input's ``received_at``), so start-up and group join are not
   counted. Over the same window, the cores the workers used, the rest of the machine
   (the broker, this benchmark's writer and reader) and what stayed idle
   (``benchmarks.cpu``).
3. **Latency**: the other half of the posts is replayed in turn at each of the given
   fractions of that rate (default 50% and 80%); latency = the time an output is read back
   - the time its input was sent (one clock, one machine).

Only posts that go through the model are used (no dead letters, no GPS-carrying posts),
so both rates count the same work.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.cpu import CpuSampler
from benchmarks.local import replicas, start_worker, stop_worker, worker_ready
from stream.replay import replay
from stream.routing import Message, Rules, route
from stream.runtime import weights_label
from stream.settings import WorkerSettings


def model_posts(settings: WorkerSettings, payloads: list[bytes]) -> list[tuple[bytes, Any]]:
    """(payload, parsed post) of the payloads the worker would send to the model."""
    messages = [Message("bench", 0, i, None, p) for i, p in enumerate(payloads)]
    routed = route(messages, Rules.of(settings))
    return [(m.value, post) for m, post in routed.to_predict]


def encoder_rate(model, posts: list[Any], batch: int) -> float:
    model.embed_posts(posts[:batch])  # warm-up
    start = time.perf_counter()
    for s in range(0, len(posts), batch):
        model.embed_posts(posts[s : s + batch])
    return len(posts) / (time.perf_counter() - start)


def _timed_encoder(settings, version, payloads, batch, barrier) -> tuple[int, float, float]:
    """In a child process: load the served model, warm it up, wait for the others, then
    embed the payloads' posts; (posts, start, end) on the wall clock."""
    model = settings.load_model(version)
    posts = [post for _, post in model_posts(settings, payloads)]
    model.embed_posts(posts[:batch])  # warm-up
    barrier.wait()
    start = time.time()
    for s in range(0, len(posts), batch):
        model.embed_posts(posts[s : s + batch])
    return len(posts), start, time.time()


def encoder_rate_side_by_side(
    settings: WorkerSettings, version: str, payloads: list[bytes], batch: int, processes: int
) -> float:
    """The raw encoder in ``processes`` processes at once (each with ``settings.threads``),
    each on its share of the payloads: all their posts / from the first start to the last
    end. What ``processes`` workers' encoders could do on this machine."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")  # no forked copy of this process's threads
    with context.Manager() as manager, ProcessPoolExecutor(processes, context) as pool:
        barrier = manager.Barrier(processes)
        shares = [payloads[n::processes] for n in range(processes)]
        timed = [
            pool.submit(_timed_encoder, settings, version, share, batch, barrier)
            for share in shares
        ]
        runs = [t.result() for t in timed]
    return sum(n for n, _, _ in runs) / (max(e for _, _, e in runs) - min(s for _, s, _ in runs))


async def collect(settings: WorkerSettings, expected: set[str], timeout: float, lazy: bool = False):
    """Read geotagged events until every expected post id is seen: ({post id: event},
    {post id: read time}). The broker answers a fetch at once (or within 10 ms), so that
    reading adds next to nothing to a latency measured from read times; ``lazy``, where
    only the events count, it waits for a megabyte or half a second (fewer requests)."""
    from stream import kafka

    fetch = {"fetch_max_wait_ms": 500, "fetch_min_bytes": 1 << 20} if lazy else {}
    consumer = kafka.consumer(
        settings,
        settings.geotagged_topic,
        group_id=None,
        auto_offset_reset="earliest",
        **{"fetch_max_wait_ms": 10, **fetch},
    )
    await consumer.start()
    events, read_at = {}, {}
    deadline = time.monotonic() + timeout
    try:
        while not expected <= events.keys():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(expected - events.keys())} posts never came out")
            for records in (await consumer.getmany(timeout_ms=200)).values():
                now = time.time()
                for record in records:
                    event = json.loads(record.value)
                    events.setdefault(event["post_id"], event)
                    read_at.setdefault(event["post_id"], now)
    finally:
        await consumer.stop()
    return events, read_at


async def timed_replay(
    settings: WorkerSettings, payloads: list[bytes], rate: float
) -> dict[str, float]:
    """Replay at ``rate`` posts/s, recording each post's send time."""
    from stream.replay import post_key

    sent_at: dict[str, float] = {}

    def stamped():
        for p in payloads:
            sent_at[post_key(p).decode()] = time.time()
            yield p

    await replay(settings, stamped(), rate=rate)
    return sent_at


LOAD_FRACTIONS = (0.5, 0.8)


def full_batches(log_files: Sequence[Path], size: int) -> dict[str, float]:
    """The workers' own timing of their full batches (``size`` inputs), from their
    ``batch`` log lines: median ms from taking a batch to its outputs acknowledged, and of
    that the ms in the model's thread (embedding, index query, rerank)."""
    lines = [
        json.loads(line)
        for log_file in log_files
        for line in log_file.read_text().splitlines()
        if line.startswith("{")
    ]
    full = [e for e in lines if e.get("event") == "batch" and e.get("inputs") == size]
    if not full:
        return {"full_batches": 0}
    return {
        "full_batches": len(full),
        "batch_ms_p50": float(np.median([e["ms"] for e in full])),
        "predict_ms_p50": float(np.median([e["predict_ms"] for e in full])),
    }


def check_fractions(fractions: Sequence[float]) -> None:
    if not fractions or any(not 0 < f < 1.5 for f in fractions):
        raise ValueError(f"load fractions of the saturated rate must lie in (0, 1.5): {fractions}")


WARMUP_POSTS_PER_WORKER = 16


def took_a_batch(log_file: Path) -> bool:
    return '"event": "batch"' in log_file.read_text(errors="replace")


def start_group(
    settings: WorkerSettings,
    workers: int,
    log_dir: Path,
    warmup: list[tuple[bytes, Any]],
    timeout: float,
) -> list[tuple[subprocess.Popen, Path]]:
    """Start ``workers`` worker subprocesses in one group (``benchmarks.local.replicas``),
    wait until each answers ready, let the group settle, and send the ``warmup`` posts
    through: it is settled once every worker has taken a batch of them. Returns (process,
    log file) of each; on any failure the started ones are stopped."""
    started: list[tuple[subprocess.Popen, Path]] = []
    try:
        group = replicas(settings, workers, log_dir)
        for n, worker_settings in enumerate(group):
            log_file = log_dir / f"worker-{n}.log"
            started.append((start_worker(worker_settings, log_file), log_file))
        deadline = time.monotonic() + timeout
        while not all(worker_ready(s) for s in group):
            for process, log_file in started:
                if process.poll() is not None:
                    tail = log_file.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"a worker exited before it was ready; its log:\n{tail}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the workers were not ready within {timeout:.0f} s")
            time.sleep(0.1)
        # a member's join or leave makes the group rebalance; wait it out before measuring
        time.sleep(3 * settings.rebalance_timeout_s)
        asyncio.run(replay(settings, [p for p, _ in warmup]))
        asyncio.run(collect(settings, {post.id for _, post in warmup}, timeout))
        idle = [str(log_file) for _, log_file in started if not took_a_batch(log_file)]
        if idle:
            raise RuntimeError(f"the group did not settle: no warm-up batch in {idle}")
        return started
    except BaseException:
        for process, _ in started:
            stop_worker(process)
        raise


def measure_stream(
    settings: WorkerSettings,
    payloads: list[bytes],
    log_dir: Path,
    fractions: Sequence[float] = LOAD_FRACTIONS,
    timeout: float = 600,
    workers: int = 1,
) -> dict[str, Any]:
    """Run the stream phases with ``workers`` worker subprocesses in one group (logging in
    ``log_dir``): started, ready and warmed up by a few posts of their own first; then
    half the remaining posts saturated, and the other half split among the ``fractions``
    of that rate, each share replayed at its pace in turn. ``settings`` must point at an
    empty broker with the topics created (at least ``workers`` partitions)."""
    from stream.replay import post_key

    posts = model_posts(settings, payloads)
    if not posts or any(post_key(p) is None for p, _ in posts):
        raise ValueError("need posts with ids that go through the model")
    if workers > settings.topic_partitions:
        raise ValueError(
            f"{workers} workers need at least as many partitions, not {settings.topic_partitions}"
        )
    check_fractions(fractions)
    n_warmup = WARMUP_POSTS_PER_WORKER * workers
    warmup, posts = posts[:n_warmup], posts[n_warmup:]
    saturated, paced = posts[: len(posts) // 2], posts[len(posts) // 2 :]
    share = len(paced) // len(fractions)

    group = start_group(settings, workers, log_dir, warmup, timeout)
    try:
        ids = {post.id for _, post in saturated}

        async def saturated_run() -> dict[str, Any]:
            # the rate comes from the events' own timestamps, not from when they are read: a
            # reader that asks the broker less often leaves the cores to the workers
            collector = asyncio.create_task(collect(settings, ids, timeout, lazy=True))
            await replay(settings, [p for p, _ in saturated])  # as fast as the broker takes
            events, _ = await collector
            return events

        with CpuSampler(*(process.pid for process, _ in group)) as cpu:
            events = asyncio.run(saturated_run())
        first = min(datetime.fromisoformat(events[i]["received_at"]) for i in ids)
        last = max(datetime.fromisoformat(events[i]["geotagged_at"]) for i in ids)
        rate = len(ids) / (last - first).total_seconds()
        saturated_cores = cpu.cores(first.timestamp(), last.timestamp())

        async def paced_run(chunk, pace: float) -> np.ndarray:
            ids = {post.id for _, post in chunk}
            collector = asyncio.create_task(collect(settings, ids, timeout))
            sent_at = await timed_replay(settings, [p for p, _ in chunk], pace)
            _, read_at = await collector
            return np.array([read_at[i] - sent_at[i] for i in ids])

        loads = []
        for n, fraction in enumerate(fractions):
            chunk = paced[n * share : (n + 1) * share]
            latency = asyncio.run(paced_run(chunk, fraction * rate))
            loads.append(
                {
                    "fraction": fraction,
                    "posts_per_s": fraction * rate,
                    "posts": len(chunk),
                    "latency_ms_p50": 1000 * float(np.percentile(latency, 50)),
                    "latency_ms_p99": 1000 * float(np.percentile(latency, 99)),
                }
            )
    finally:
        for process, _ in group:
            stop_worker(process)
    from benchmarks import cpu_description

    return {
        "cpu": cpu_description(),
        "workers": workers,
        "warmup_posts": len(warmup),
        "saturated_posts": len(saturated),
        "stream_posts_per_s": rate,
        # cores used while saturated: the workers, the rest of the machine, idle
        "saturated_cores": saturated_cores,
        "loads": loads,
        **full_batches([log_file for _, log_file in group], settings.take_max),
    }


def workers_label(results: dict[str, Any]) -> str:
    n, threads = results.get("workers", 1), results["threads"]
    return f"one worker, {threads} threads" if n == 1 else f"{n} workers, {threads} threads each"


def stream_markdown(results: dict[str, Any]) -> str:
    r = results
    lines = [
        f"{r['saturated_posts']} posts through the broker (saturated), then "
        f"{sum(load['posts'] for load in r['loads'])} paced at fractions of that rate; batches "
        f"of up to {r['batch_size']} encoded in runs of {r.get('micro_batch', r['batch_size'])}, "
        f"{workers_label(r)}, precision {r['precision']}"
        f"{weights_label(r.get('int8_weight_bits'))}; CPU: {r.get('cpu', 'not recorded')}",
        "",
        "| measure | value |",
        "|---|---:|",
        "| raw encoder (same posts, same batch; mean of before/after) | "
        f"{r['encoder_posts_per_s']:.1f} posts/s |",
    ]
    several = "encoder_side_by_side_posts_per_s" in r
    if several:
        lines[-1] = (
            f"| raw encoder in one process with {r['workers'] * r['threads']} threads (same "
            f"posts, same batch; mean of before/after) | {r['encoder_posts_per_s']:.1f} posts/s |"
        )
        lines.append(
            f"| raw encoder in {r['workers']} processes side by side, {r['threads']} threads "
            f"each (mean of before/after) | {r['encoder_side_by_side_posts_per_s']:.1f} posts/s |"
        )
    lines += [
        f"| end to end through the broker | {r['stream_posts_per_s']:.1f} posts/s |",
        f"| end to end / raw encoder{' (the faster of the two)' if several else ''}"
        f" | {r['stream_vs_encoder']:.2f} |",
    ]
    if r.get("full_batches"):
        outside = 1 - r["predict_ms_p50"] / r["batch_ms_p50"]
        lines.append(
            f"| a full batch in a worker, median of {r['full_batches']}: whole / in the "
            f"model's thread | {r['batch_ms_p50']:.0f} / {r['predict_ms_p50']:.0f} ms "
            f"({100 * outside:.0f}% outside) |"
        )
    if r.get("saturated_cores"):
        c = r["saturated_cores"]
        lines.append(
            f"| CPU while saturated, in cores: the {'workers' if several else 'worker'}"
            " / the rest of the machine "
            f"(broker, benchmark) / idle | {c['process']:.2f} / {c['rest']:.2f} / "
            f"{c['idle']:.2f} |"
        )
    for load in r["loads"]:
        at = f"at {100 * load['fraction']:.0f}% load ({load['posts_per_s']:.0f} posts/s)"
        lines.append(
            f"| latency p50 / p99 {at} | {load['latency_ms_p50']:.0f} / "
            f"{load['latency_ms_p99']:.0f} ms |"
        )
    return "\n".join(lines) + "\n"


def latency_plot(results: dict[str, Any], path: Path) -> None:
    """Latency p50 and p99 against the offered load, the saturated rate marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loads = results["loads"]
    rates = [load["posts_per_s"] for load in loads]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for key, label in (("latency_ms_p50", "p50"), ("latency_ms_p99", "p99")):
        ax.plot(rates, [load[key] for load in loads], "o-", label=f"latency {label}")
    ax.axvline(results["stream_posts_per_s"], color="grey", ls="--", label="saturated rate")
    ax.set_xlabel("offered load (posts/s)")
    ax.set_ylabel("ms, post sent to event read")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"{workers_label(results)}, {results['precision']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
