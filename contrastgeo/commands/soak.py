"""``contrastgeo soak``: a bounded soak through the embedded broker and one worker: posts at
``--rate`` per second for ``--minutes``, sampled every 5 s (throughput, consumer lag,
latency p99, worker RSS); writes soak.json and soak.png to ``--out``. Exits 1 if any post
is lost. Pick the rate from ``contrastgeo stream-bench`` (e.g. 70% of its end-to-end
rate)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=Path("runs/demo/model"), help="a saved model")
    parser.add_argument("--data", nargs="+", required=True, help="Twitter JSONL (plain/gzip)")
    parser.add_argument("--rate", type=float, required=True, help="posts per second")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=Path("runs/soak"))


def run(args: argparse.Namespace) -> int:

    from benchmarks import write_results
    from benchmarks.local import local_service
    from benchmarks.soak import plot, soak
    from benchmarks.stream import model_posts
    from contrastgeo.commands.replay import payloads

    with local_service(args.model) as (settings, _, tmp):
        posts = [
            p for p, _ in model_posts(settings, list(payloads(args.data, "twitter-jsonl", 3000)))
        ]
        print(f"soak: {args.rate} posts/s for {args.minutes} min ...")
        results = soak(
            settings,
            posts,
            args.rate,
            60 * args.minutes,
            tmp / "worker.log",
        )
    write_results(args.out, "soak", results)
    plot(results, args.out / "soak.png")
    last = results["samples"][-1] if results["samples"] else {}
    print(
        f"sent {results['sent']}, accounted {results['accounted']}, lost {results['lost']}; "
        f"RSS after warm-up {results['rss_mb_after_warmup_min']:.0f}-"
        f"{results['rss_mb_after_warmup_max']:.0f} MB; "
        f"last p99 {last.get('latency_ms_p99')} ms; wrote {args.out}/soak.json and soak.png"
    )
    return 1 if results["lost"] else 0
