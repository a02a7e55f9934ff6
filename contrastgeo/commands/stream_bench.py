"""``contrastgeo stream-bench``: posts/s end to end through the broker and one or more
workers, next to the raw int8 encoder rate measured in the same run on the same posts
(``benchmarks/stream.py`` says how each is measured).

Self-contained: exports ``--model`` to a temporary store, indexes its locations in a
temporary embedded index, starts the embedded broker and ``--workers`` worker subprocesses
(each with its own copy of the index).
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
    parser.add_argument(
        "--workers", type=_positive, default=1, help="worker processes in one group (default 1)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="onnxruntime threads of each worker (0 = the cores, divided among the workers)",
    )
    parser.add_argument("--out", type=Path, default=None, help="folder for JSON + Markdown")


def _fractions(text: str) -> tuple[float, ...]:
    from benchmarks.stream import check_fractions

    try:
        fractions = tuple(float(part) for part in text.split(",") if part.strip())
        check_fractions(fractions)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    return fractions


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: need a whole number of at least 1")
    return int(text)


def run(args: argparse.Namespace) -> int:
    from benchmarks.local import local_service
    from benchmarks.stream import (
        encoder_rate,
        encoder_rate_side_by_side,
        measure_stream,
        model_posts,
    )
    from contrastgeo.commands.replay import payloads
    from stream.runtime import cores_given

    cores = cores_given()
    threads = args.threads or max(1, cores // args.workers)  # each worker's
    if args.workers * threads > cores:
        print(f"note: {args.workers} workers x {threads} threads on {cores} cores")
    service = local_service(
        args.model,
        batch_size=args.micro_batch,
        take_max=args.batch_size,
        threads=threads,
        precision="int8",
        topic_partitions=max(4, args.workers),
    )
    with service as (settings, version, tmp):
        # the raw encoder in this process gets every worker's threads
        onnx = settings.model_copy(update={"threads": args.workers * threads}).load_model(version)
        # more raw lines than asked for: some carry GPS or are not posts
        lines = list(payloads(args.data, "twitter-jsonl", 3 * args.posts))
        posts = model_posts(settings, lines)[: args.posts]
        texts = [post for _, post in posts]

        def side_by_side() -> float | None:
            if args.workers == 1:
                return None
            print(f"measuring the raw encoder in {args.workers} processes side by side ...")
            return encoder_rate_side_by_side(
                settings, version, [p for p, _ in posts], args.batch_size, args.workers
            )

        # the raw encoder before and after the stream, so that drift in the machine's load
        # counts against neither side
        print(f"measuring the raw encoder on {len(posts)} posts ...")
        raw_before, apart_before = encoder_rate(onnx, texts, args.batch_size), side_by_side()
        print(f"measuring the stream with {args.workers} worker(s) (saturated, then paced) ...")
        results = measure_stream(
            settings, [p for p, _ in posts], tmp, args.loads, workers=args.workers
        )
        print("measuring the raw encoder again ...")
        raw_after, apart_after = encoder_rate(onnx, texts, args.batch_size), side_by_side()
    raw = (raw_before + raw_after) / 2
    fastest = raw  # the ratio is taken against the faster way to run the encoder
    if args.workers > 1:
        apart = (apart_before + apart_after) / 2
        results.update(
            encoder_side_by_side_posts_per_s=apart,
            encoder_side_by_side_before_after=[apart_before, apart_after],
        )
        fastest = max(raw, apart)
    results.update(
        encoder_posts_per_s=raw,
        encoder_posts_per_s_before_after=[raw_before, raw_after],
        stream_vs_encoder=results["stream_posts_per_s"] / fastest,
        batch_size=args.batch_size,
        micro_batch=onnx.batch_size,
        threads=threads,
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
