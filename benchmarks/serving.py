"""Measure the serving path: PyTorch eager vs ONNX fp32 vs ONNX int8, with and without the
rerank stage, on the same posts in the same process (``contrastgeo serving-bench``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.contrastgeo import ContrastGeo
from model.export import export_onnx
from model.prompts import Location
from stream.index import ALIAS, EdgeIndex
from stream.predictor import Predictor
from stream.prototypes import build_collection
from stream.runtime import OnnxModel


def _time(fn: Callable[[list[Any]], list[str]], posts: Sequence[Any], batch: int):
    """(predicted location ids, per-batch seconds) after one warm-up batch."""
    fn(list(posts[:batch]))
    predicted, seconds = [], []
    for s in range(0, len(posts), batch):
        start = time.perf_counter()
        predicted += fn(list(posts[s : s + batch]))
        seconds.append(time.perf_counter() - start)
    return predicted, np.array(seconds)


def measure_serving(
    model: ContrastGeo,
    locations: Sequence[Location],
    posts: Sequence[Any],
    gold: np.ndarray,
    workdir: Path,
    batch: int = 32,
    threads: int = 0,
) -> dict[str, Any]:
    if threads:
        torch.set_num_threads(threads)
    export_onnx(model, workdir / "export", locations=locations)
    export_onnx(model, workdir / "export-rr", locations=locations, reduce_range=True)
    variants = {
        "onnx-fp32": (workdir / "export", "fp32"),
        "onnx-int8": (workdir / "export", "int8"),
        "onnx-int8-reduce-range": (workdir / "export-rr", "int8"),
    }
    served: dict[str, tuple[OnnxModel, EdgeIndex]] = {}
    for name, (folder, precision) in variants.items():
        onnx = OnnxModel(folder, precision=precision, threads=threads, batch_size=batch)
        index = EdgeIndex(workdir / f"index-{name}")  # prototypes from the same precision
        index.set_alias(ALIAS, build_collection(index, onnx, locations))
        served[name] = (onnx, index)
    ids = [loc.id for loc in locations]
    encoded = model.encode_locations_batched(locations)
    k = model.config.rerank.k

    def torch_predict(rerank: bool):
        def fn(chunk):
            if rerank:
                top = model.predict(
                    chunk, locations, k=k, batch_size=batch, encoded_locations=encoded
                )
                return [ids[i] for i in top.indices[:, 0].tolist()]
            emb = model.embed_posts(chunk, batch_size=batch)
            return [ids[i] for i in (emb @ encoded.embeddings.T).argmax(1).tolist()]

        return fn

    def onnx_predict(name: str, rerank: bool):
        predictor = Predictor(*served[name], k=k, rerank=rerank)
        return lambda chunk: [p.location.location_id for p in predictor.predict(chunk)]

    paths = {"pytorch-eager": torch_predict(True), "pytorch-eager, no rerank": torch_predict(False)}
    for name in variants:
        paths[name] = onnx_predict(name, True)
        paths[f"{name}, no rerank"] = onnx_predict(name, False)
    runs = {}
    for name, fn in paths.items():
        predicted, seconds = _time(fn, posts, batch)
        gold_ids = [ids[g] for g in gold]
        runs[name] = {
            "posts_per_s": len(posts) / seconds.sum(),
            "batch_ms_p50": 1000 * float(np.percentile(seconds, 50)),
            "batch_ms_p95": 1000 * float(np.percentile(seconds, 95)),
            "batch_ms_p99": 1000 * float(np.percentile(seconds, 99)),
            "acc@1": float(np.mean([p == g for p, g in zip(predicted, gold_ids, strict=True)])),
        }
    for _, index in served.values():
        index.close()
    base = runs["pytorch-eager"]["posts_per_s"]
    for r in runs.values():
        r["speed_vs_pytorch"] = r["posts_per_s"] / base
    return {
        "posts": len(posts),
        "locations": len(locations),
        "batch_size": batch,
        "threads": threads or torch.get_num_threads(),
        "runs": runs,
        "rerank_overhead": {
            name: runs[f"{name}, no rerank"]["posts_per_s"] / runs[name]["posts_per_s"]
            for name in ("pytorch-eager", *variants)
        },
    }


def speed_markdown(results: dict[str, Any]) -> str:
    lines = [
        f"{results['posts']} posts, {results['locations']} locations, batch "
        f"{results['batch_size']}, {results['threads']} threads",
        "",
        "| path | posts/s | × PyTorch | batch p50 ms | p95 ms | p99 ms | Acc@1 (%) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results["runs"].items():
        lines.append(
            f"| {name} | {r['posts_per_s']:.1f} | {r['speed_vs_pytorch']:.2f} | "
            f"{r['batch_ms_p50']:.0f} | {r['batch_ms_p95']:.0f} | {r['batch_ms_p99']:.0f} | "
            f"{100 * r['acc@1']:.1f} |"
        )
    overhead = ", ".join(f"{k} {v:.2f}×" for k, v in results["rerank_overhead"].items())
    lines += ["", f"Rerank cost (throughput without / with the rerank stage): {overhead}."]
    return "\n".join(lines) + "\n"
