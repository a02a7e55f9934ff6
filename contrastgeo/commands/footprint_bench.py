"""``contrastgeo footprint-bench``: a worker's cold start, memory and installed size on
this tree next to a baseline commit, in one run (``benchmarks/footprint.py`` says how each
is measured).

Self-contained: exports ``--model`` to a temporary store, indexes its locations in a
temporary embedded index, starts the embedded broker, then starts worker subprocesses
alternately from the baseline's code and this tree's.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", type=Path, default=Path("runs/demo/model"), help="a folder saved by fit"
    )
    parser.add_argument("--data", nargs="+", required=True, help="Twitter JSONL (plain/gzip)")
    parser.add_argument("--baseline", required=True, help="a git revision to compare with")
    parser.add_argument("--posts", type=int, default=300, help="posts per worker (warm-up)")
    parser.add_argument("--runs", type=int, default=3, help="worker starts per tree")
    parser.add_argument("--out", type=Path, default=None, help="folder for JSON + Markdown")


def run(args: argparse.Namespace) -> int:
    from benchmarks import write_results
    from benchmarks.footprint import footprint, footprint_markdown
    from benchmarks.local import local_service
    from benchmarks.stream import model_posts
    from contrastgeo.commands.replay import payloads

    with local_service(args.model, precision="int8") as (settings, _, tmp):
        lines = list(payloads(args.data, "twitter-jsonl", 3 * args.posts * 2 * args.runs))
        posts = model_posts(settings, lines)
        need = args.posts * 2 * args.runs
        if len(posts) < need:
            raise SystemExit(f"only {len(posts)} model-routed posts in --data; need {need}")
        chunks = [posts[i * args.posts : (i + 1) * args.posts] for i in range(2 * args.runs)]
        print(f"{2 * args.runs} worker starts, {args.posts} posts each ...")
        results = footprint(
            settings,
            [[p for p, _ in chunk] for chunk in chunks],
            [{post.id for _, post in chunk} for chunk in chunks],
            args.baseline,
            tmp,
        )
    text = footprint_markdown(results)
    print(text)
    if args.out:
        write_results(args.out, "footprint", results, text)
    return 0
