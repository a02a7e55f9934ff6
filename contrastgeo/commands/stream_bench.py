"""``contrastgeo stream-bench``: posts/s end to end through the broker and a worker, next
to the raw int8 encoder rate measured in the same run on the same posts
(``benchmarks/stream.py`` says how each is measured).

Self-contained: exports ``--model`` to a temporary store, indexes its locations in a
temporary embedded index, starts the embedded broker and one worker subprocess.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", type=Path, default=Path("runs/demo/model"), help="a folder saved by fit"
    )
    parser.add_argument("--data", nargs="+", required=True, help="Twitter JSONL (plain/gzip)")
    parser.add_argument("--posts", type=int, default=3000, help="posts used (half paced)")
    parser.add_argument(
        "--loads",
        type=_fractions,
        default="0.5,0.8",
        help="fractions of the saturated rate to measure latency at (default 0.5,0.8)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=64, help="posts per taken batch at most (TAKE_MAX)"
    )
    parser.add_argument(
        "--micro-batch",
        type=int,
        default=0,
        help="posts per encoder run within a batch (BATCH_SIZE; 0 = the worker's default)",
    )
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0 = all)")
    parser.add_argument("--out", type=Path, default=None, help="folder for JSON + Markdown")


def _fractions(text: str) -> tuple[float, ...]:
    from benchmarks.stream import check_fractions

    try:
        fractions = tuple(float(part) for part in text.split(",") if part.strip())
        check_fractions(fractions)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    return fractions


def run(args: argparse.Namespace) -> int:
    import os

    from benchmarks.local import local_service
    from benchmarks.stream import encoder_rate, measure_stream, model_posts
    from contrastgeo.commands.replay import payloads

    service = local_service(
        args.model,
        batch_size=args.micro_batch,
        take_max=args.batch_size,
        threads=args.threads,
        precision="int8",
    )
    with service as (settings, version, tmp):
        onnx = settings.load_model(version)
        # more raw lines than asked for: some carry GPS or are not posts
        lines = list(payloads(args.data, "twitter-jsonl", 3 * args.posts))
        posts = model_posts(settings, lines)[: args.posts]
        # the raw encoder before and after the stream, so that drift in the machine's load
        # counts against neither side
        print(f"measuring the raw encoder on {len(posts)} posts ...")
        raw_before = encoder_rate(onnx, [post for _, post in posts], args.batch_size)
        print("measuring the stream (saturated, then paced) ...")
        results = measure_stream(
            settings,
            [p for p, _ in posts],
            tmp / "worker.log",
            args.loads,
        )
        print("measuring the raw encoder again ...")
        raw_after = encoder_rate(onnx, [post for _, post in posts], args.batch_size)
    raw = (raw_before + raw_after) / 2
    results.update(
        encoder_posts_per_s=raw,
        encoder_posts_per_s_before_after=[raw_before, raw_after],
        stream_vs_encoder=results["stream_posts_per_s"] / raw,
        batch_size=args.batch_size,
        micro_batch=onnx.batch_size,
        threads=args.threads or os.cpu_count(),
        precision=onnx.precision,
        int8_weight_bits=onnx.int8_weight_bits,
        model=str(args.model),
    )
    from benchmarks import write_results
    from benchmarks.stream import latency_plot, stream_markdown

    text = stream_markdown(results)
    print(text)
    if args.out:
        write_results(args.out, "stream", results, text)
        latency_plot(results, args.out / "latency.png")
    return 0
