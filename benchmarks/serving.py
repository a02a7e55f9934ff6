"""Measure the serving path (``contrastgeo serving-bench``), on the same posts in one process:

- ``measure_serving``: PyTorch eager vs ONNX fp32 vs ONNX int8, with and without the rerank
  stage, over the model's own locations; beside them the previous path (int8 quantized from
  the unfused graph, each batch encoded in one run padded to its longest post); and each
  ONNX path's raw encoder (compose, tokenize, run the graph: ``stream-bench``'s raw rate);
- ``profile_stages``: where a served batch spends its time (parse and route, tokenize, the
  ONNX session, the index query, the rerank, the rest of the prediction, the output events);
- ``measure_encoders``: the served int8 encoder of each named encoder (untrained heads: the
  speed does not depend on training) on the same posts, with the export's size and the
  resident memory of a process serving it;
- ``measure_scales``: the served path (ONNX, top k from Qdrant's engine, rerank) over
  indexes of growing size, e.g. 30, 7,500 (a country's catalogue) and 50,000 places (the
  world's towns), as ratios to the smallest.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from model.contrastgeo import ContrastGeo
from model.export import export_onnx
from model.pretrained import named_encoder
from model.prompts import Location
from schemas.posts import Post
from stream.geotagger import geotagged_event
from stream.index import ALIAS, EdgeIndex, collection_name
from stream.predictor import Predictor
from stream.prototypes import build_collection, upsert_prototypes
from stream.routing import Message, Rules, route
from stream.runtime import OnnxModel, int8_can_saturate
from stream.settings import WorkerSettings
from trainer.benchmark import interval_text
from trainer.metrics import paired_bootstrap

PREVIOUS = "onnx-int8-unfused, one run per batch (previous)"
"""The path before issue 35: int8 from the plain graph, a batch encoded in one run."""
FIRST_LAYER_INT8 = "onnx-int8, first layer int8"
"""Today's path with the first layer quantized too, as exports before 2026-12-07."""


def fitted_name(post_max_length: int) -> str:
    """Today's int8 path with posts fitted to fewer tokens (the worker's setting)."""
    return f"onnx-int8, posts fitted to {post_max_length} tokens"


def labeled_posts(
    data: str | Path | Sequence[str | Path],
    fmt: str,
    locations: Sequence[Location],
    radius_km: float = 25.0,
) -> tuple[list[Post], np.ndarray]:
    """The posts of a labeled file that fall on one of ``locations`` (a model's), in file
    order, with their gold location's row in ``locations``."""
    from trainer.data.catalogue import catalogue_of, label_records
    from trainer.data.readers import read_dataset

    records = read_dataset(data if isinstance(data, list | tuple) else [data], fmt).records
    labels = label_records(records, catalogue_of(locations), radius_km).labels
    keep = np.flatnonzero(labels >= 0)
    return [records[i].post for i in keep], labels[keep]


def _time(fn: Callable[[list[Any]], list[str]], posts: Sequence[Any], batch: int):
    """(predicted location ids, per-batch seconds) after one warm-up batch."""
    fn(list(posts[:batch]))
    predicted, seconds = [], []
    for s in range(0, len(posts), batch):
        start = time.perf_counter()
        predicted += fn(list(posts[s : s + batch]))
        seconds.append(time.perf_counter() - start)
    return predicted, np.array(seconds)


def _median_of_rounds(rates: list[float]) -> dict[str, Any]:
    """A path's posts/s: the median round's, with every round's beside it."""
    return {"posts_per_s": float(np.median(rates)), "posts_per_s_rounds": rates}


def _rate_cells(run: dict[str, Any]) -> str:
    """The posts/s and rounds cells of a table row."""
    spread = run.get("posts_per_s_rounds", [run["posts_per_s"]])
    return f"{run['posts_per_s']:.1f} | {min(spread):.0f}–{max(spread):.0f}"


def measure_serving(
    model: ContrastGeo,
    locations: Sequence[Location],
    posts: Sequence[Any],
    gold: np.ndarray,
    workdir: Path,
    batch: int = 32,
    threads: int = 0,
    micro_batch: int = 0,
    rounds: int = 3,
    post_max_length: int = 0,
) -> dict[str, Any]:
    """``batch`` posts go to the predictor at a time (a taken batch); the ONNX paths encode
    them in length-sorted runs of ``micro_batch`` (0 = the worker's default), except the
    ones named "one run per batch". The paths take turns over ``rounds`` rounds, so that a
    drift in the machine's speed reaches all of them; each posts/s is the median round's,
    with the rounds' range beside it. With ``post_max_length``, today's int8 path is also
    served with posts fitted to that many tokens (the worker's setting of that name)."""
    if threads:
        torch.set_num_threads(threads)
    export_onnx(model, workdir / "export", locations=locations)
    # the int8 graph a worker does not serve on this CPU: the 7-bit one where the CPU has
    # VNNI (the worker serves the 8-bit one there), else 8-bit weights, which can saturate
    if int8_can_saturate():
        other = "onnx-int8-8bit-weights"
        export_onnx(model, workdir / other, locations=locations, reduce_range=False)
    else:
        other = "onnx-int8-7bit-weights"
        export_onnx(model, workdir / other, locations=locations, vnni_int8=False)
    # the previous export: 8-bit int8 quantized from the plain graph (no transformer fusions)
    # with the first layer in int8 too
    export_onnx(
        model,
        workdir / "export-unfused",
        locations=locations,
        optimize=False,
        reduce_range=False,
        int8_first_layer_fp32=False,
    )
    variants = {
        "onnx-fp32": (workdir / "export", "fp32", micro_batch),
        "onnx-int8": (workdir / "export", "int8", micro_batch),
        "onnx-int8, one run per batch": (workdir / "export", "int8", batch),
        PREVIOUS: (
            workdir / "export-unfused",
            "int8",
            batch,
        ),
        other: (workdir / other, "int8", micro_batch),
    }
    if post_max_length:
        variants[fitted_name(post_max_length)] = (workdir / "export", "int8", micro_batch)
    named = named_encoder(model.config.encoder.checkpoint)
    if named and named.int8_first_layer_fp32:  # what it costs and buys, in the same run
        folder = workdir / "export-first-layer-int8"
        export_onnx(model, folder, locations=locations, int8_first_layer_fp32=False)
        variants[FIRST_LAYER_INT8] = (folder, "int8", micro_batch)
    served: dict[str, tuple[OnnxModel, EdgeIndex]] = {}
    for name, (folder, precision, runs_of) in variants.items():
        length = post_max_length if name == fitted_name(post_max_length) else 0
        onnx = OnnxModel(
            folder, precision, threads=threads, batch_size=runs_of, post_max_length=length
        )
        if name == PREVIOUS:  # posts truncated from the end, as before the cut by field
            prompts = onnx.config.prompts.model_copy(update={"post_cut_order": ()})
            onnx.config = onnx.config.model_copy(update={"prompts": prompts})
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

    def encoder_only(name: str):
        onnx = served[name][0]

        def fn(chunk):
            onnx.embed_posts(chunk)
            return []  # the raw encoder, as stream-bench times it: no index, no answers

        return fn

    paths = {"pytorch-eager": torch_predict(True), "pytorch-eager, no rerank": torch_predict(False)}
    for name in variants:
        paths[name] = onnx_predict(name, True)
        paths[f"{name}, no rerank"] = onnx_predict(name, False)
    encoders = {name: encoder_only(name) for name in variants}
    timed: dict[str, list[np.ndarray]] = defaultdict(list)
    encoder_rates: dict[str, list[float]] = defaultdict(list)
    answers: dict[str, list[str]] = {}
    for _ in tqdm(range(rounds), desc="rounds", unit="round"):
        for name, fn in paths.items():
            answers[name], seconds = _time(fn, posts, batch)
            timed[name].append(seconds)
        for name, fn in encoders.items():
            encoder_rates[name].append(len(posts) / _time(fn, posts, batch)[1].sum())
    gold_ids = [ids[g] for g in gold]
    correct = {
        name: np.array([p == g for p, g in zip(found, gold_ids, strict=True)], dtype=float)
        for name, found in answers.items()
    }
    runs = {}
    for name, per_round in timed.items():
        rates = [len(posts) / seconds.sum() for seconds in per_round]
        pooled = np.concatenate(per_round)
        # Acc@1 minus fp32's on the same posts, with its paired bootstrap 95% interval
        gap, low, high = paired_bootstrap([correct[name] - correct["onnx-fp32"]])
        runs[name] = {
            **_median_of_rounds(rates),
            "batch_ms_p50": 1000 * float(np.percentile(pooled, 50)),
            "batch_ms_p95": 1000 * float(np.percentile(pooled, 95)),
            "batch_ms_p99": 1000 * float(np.percentile(pooled, 99)),
            "acc@1": float(correct[name].mean()),
            "acc@1_minus_fp32": [gap, low, high],
            "correct": correct[name].astype(int).tolist(),
        }
    folder, precision, runs_of = variants["onnx-int8"]
    profiled = OnnxModel(folder, precision=precision, threads=threads, batch_size=runs_of)
    stages = profile_stages(profiled, served["onnx-int8"][1], posts, batch)
    for _, index in served.values():
        index.close()
    base = runs["pytorch-eager"]["posts_per_s"]
    for r in runs.values():
        r["speed_vs_pytorch"] = r["posts_per_s"] / base
    raw_encoder = {name: _median_of_rounds(rates) for name, rates in encoder_rates.items()}
    for r in raw_encoder.values():
        r["vs_previous"] = r["posts_per_s"] / raw_encoder[PREVIOUS]["posts_per_s"]
    from benchmarks import cpu_description

    return {
        "cpu": cpu_description(),
        "posts": len(posts),
        "locations": len(locations),
        "batch_size": batch,
        "micro_batch": served["onnx-int8"][0].batch_size,
        "rounds": rounds,
        "threads": threads or torch.get_num_threads(),
        "runs": runs,
        # the int8 weights each ONNX path served on this CPU (fp32: none)
        "int8_weight_bits": {name: onnx.int8_weight_bits for name, (onnx, _) in served.items()},
        "raw_encoder": raw_encoder,
        "rerank_overhead": {
            name: runs[f"{name}, no rerank"]["posts_per_s"] / runs[name]["posts_per_s"]
            for name in ("pytorch-eager", *variants)
        },
        "stages": stages,
    }


def post_json(posts: Sequence[Any]) -> list[str]:
    """Each post as the worker reads it (post JSON), without the location a labeled post
    carries (its GPS point or place), which the worker would pass on instead of predicting;
    a bare string becomes a post's text."""
    return [
        (
            Post(id=str(i), text=post)
            if isinstance(post, str)
            else post.model_copy(update={"coordinates": None, "place": None})
        ).model_dump_json()
        for i, post in enumerate(posts)
    ]


class StageClock:
    """Seconds spent in each named stage, summed over calls."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def timed(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - start

        return call


class _Proxy:
    """``target`` with some methods replaced (the others are the target's own)."""

    def __init__(self, target: Any, **methods: Callable[..., Any]) -> None:
        self._target = target
        self.__dict__.update(methods)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


def profile_stages(
    onnx: OnnxModel, index: EdgeIndex, posts: Sequence[Any], batch: int
) -> dict[str, Any]:
    """Milliseconds per batch of ``batch`` posts in each stage of the served path, by timing
    the worker's own code (its tokenizer, ONNX session, index query and matcher are wrapped
    with a clock; ``onnx`` is changed so, use one made for this). The posts go in as post
    JSON; producing to the broker is not here (``stream-bench`` measures it end to end)."""
    clock = StageClock()
    onnx.tokenizer = clock.timed("tokenize", onnx.tokenizer)
    onnx.post_texts = clock.timed("compose posts (fitted to the budget)", onnx.post_texts)
    session = onnx.post_session
    onnx.post_session = _Proxy(session, run=clock.timed("ONNX encoder", session.run))
    onnx.match = clock.timed("rerank (TLM matcher)", onnx.match)
    queried = _Proxy(
        index,
        query=clock.timed("index query (top k)", index.query),
        vectors=clock.timed("candidate vectors read (once per point)", index.vectors),
    )
    predictor = Predictor(onnx, queried)
    rules = Rules.of(WorkerSettings())
    payloads = [line.encode() for line in post_json(posts)]
    predict = clock.timed("predict", predictor.predict)
    serialize = clock.timed(
        "output events (build + JSON)",
        lambda routed, predictions, now: [
            geotagged_event(m, p, pred, now).to_bytes()
            for (m, p), pred in zip(routed, predictions, strict=True)
        ],
    )
    parse = clock.timed("parse + route", route)
    batches = 0
    for s in range(0, len(payloads), batch):
        messages = [
            Message("bench", 0, s + i, None, v) for i, v in enumerate(payloads[s : s + batch])
        ]
        now = datetime.now(UTC)
        routed = parse(messages, rules, now).to_predict
        predictions = predict([p for _, p in routed])
        serialize(routed, predictions, now)
        batches += 1
    seconds = dict(clock.seconds)
    measured = (
        "tokenize",
        "compose posts (fitted to the budget)",
        "ONNX encoder",
        "index query (top k)",
        "candidate vectors read (once per point)",
        "rerank (TLM matcher)",
    )
    seconds["rest of predict (sort, candidates)"] = seconds.pop("predict") - sum(
        seconds.get(stage, 0.0) for stage in measured
    )
    total = sum(seconds.values())
    return {
        "batches": batches,
        "batch_size": batch,
        "ms_per_batch": {k: 1000 * v / batches for k, v in seconds.items()},
        "share": {k: v / total for k, v in seconds.items()},
    }


def stages_markdown(profile: dict[str, Any]) -> str:
    lines = [
        f"Where a served batch ({profile['batch_size']} posts, ONNX int8, rerank on) spends its "
        f"time, {profile['batches']} batches:",
        "",
        "| stage | ms per batch | share |",
        "|---|---:|---:|",
    ]
    for stage, ms in sorted(profile["ms_per_batch"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {stage} | {ms:.1f} | {100 * profile['share'][stage]:.0f}% |")
    return "\n".join(lines) + "\n"


def _minus_fp32(run: dict[str, Any]) -> str:
    if "acc@1_minus_fp32" not in run:
        return "not recorded"
    gap, low, high = run["acc@1_minus_fp32"]
    return f"{100 * gap:+.1f} {interval_text(low, high)}"


def speed_markdown(results: dict[str, Any]) -> str:
    lines = [
        f"{results['posts']} posts, {results['locations']} locations, batches of "
        f"{results['batch_size']} encoded in runs of "
        f"{results.get('micro_batch', '(not recorded)')} (but where it says one run per "
        f"batch), {results['threads']} threads, posts/s the median of "
        f"{results.get('rounds', 1)} alternating rounds; CPU: {results.get('cpu', 'not recorded')}",
        "",
        "| path | posts/s | rounds | × PyTorch | batch p50 ms | p95 ms | p99 ms | Acc@1 (%) "
        "| − fp32 [95%] |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results["runs"].items():
        lines.append(
            f"| {name} | {_rate_cells(r)} | {r['speed_vs_pytorch']:.2f} | "
            f"{r['batch_ms_p50']:.0f} | {r['batch_ms_p95']:.0f} | {r['batch_ms_p99']:.0f} | "
            f"{100 * r['acc@1']:.1f} | {_minus_fp32(r)} |"
        )
    overhead = ", ".join(f"{k} {v:.2f}×" for k, v in results["rerank_overhead"].items())
    lines += ["", f"Rerank cost (throughput without / with the rerank stage): {overhead}."]
    if "int8_weight_bits" in results:
        bits = ", ".join(
            f"{k} {v}-bit" for k, v in results["int8_weight_bits"].items() if v is not None
        )
        lines += ["", f"int8 weights served on this CPU: {bits}."]
    if "raw_encoder" in results:
        lines += ["", raw_encoder_markdown(results["raw_encoder"])]
    if "stages" in results:
        lines += ["", stages_markdown(results["stages"])]
    return "\n".join(lines) + "\n"


def raw_encoder_markdown(raw: dict[str, Any]) -> str:
    lines = [
        "The raw encoder of each ONNX path (the posts composed, tokenized and run through the "
        "graph, as `stream-bench`'s raw rate: no index query, no rerank), timed in the same "
        "alternating rounds:",
        "",
        "| path | posts/s | rounds | × previous |",
        "|---|---:|---:|---:|",
    ]
    for name, r in raw.items():
        lines.append(f"| {name} | {_rate_cells(r)} | {r['vs_previous']:.2f} |")
    return "\n".join(lines) + "\n"


ENCODER_CHILD = """
import json, sys, time
from stream.runtime import OnnxModel
from schemas.posts import Post

folder, batch, threads, runs_of = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
posts = [Post.model_validate_json(line) for line in sys.stdin.read().splitlines()]
onnx = OnnxModel(folder, precision="int8", threads=threads, batch_size=runs_of)
onnx.embed_posts(posts[:batch])  # warm-up
start = time.perf_counter()
for s in range(0, len(posts), batch):
    onnx.embed_posts(posts[s : s + batch])
seconds = time.perf_counter() - start
# VmHWM: this process's own peak. ru_maxrss would not do: Linux carries the peak of the
# memory this child shared with its parent before exec (the parent's, with torch loaded)
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"posts_per_s": len(posts) / seconds, "peak_rss_mb": int(hwm.split()[1]) / 1024,
                  "micro_batch": onnx.batch_size}))
"""


def measure_encoders(
    names: Sequence[str],
    posts: Sequence[Any],
    locations: Sequence[Location],
    workdir: Path,
    batch: int = 32,
    threads: int = 0,
    micro_batch: int = 0,
) -> dict[str, Any]:
    """For each named encoder: export an untrained model (int8, as served), then in a fresh
    process (torch-free, as a worker) time its encoder on ``posts`` and read its peak RSS.
    The encoders take turns in one run, so they share the machine's state."""
    import json
    import subprocess
    import sys

    from model.pretrained import config_for

    lines = "\n".join(post_json(posts))
    rows = {}
    for name in tqdm(names, desc="encoders", unit="encoder"):
        folder = workdir / f"encoder-{name}"
        # the 8-bit VNNI graph only where the child, on this CPU, would serve it
        model = ContrastGeo.from_config(config_for(name))
        export_onnx(model, folder, locations=locations, vnni_int8=not int8_can_saturate())
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                ENCODER_CHILD,
                str(folder),
                str(batch),
                str(threads),
                str(micro_batch),
            ],
            input=lines,
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            raise RuntimeError(f"serving {name} failed:\n{out.stderr[-3000:]}")
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row["export_int8_mib"] = (
            sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and ".int8." in f.name)
            / 2**20
        )
        row["tokenizer_mib"] = (
            sum(f.stat().st_size for f in (folder / "tokenizer").rglob("*") if f.is_file()) / 2**20
        )
        rows[name] = row
    from benchmarks import cpu_description

    return {"cpu": cpu_description(), "posts": len(posts), "batch_size": batch, "runs": rows}


def encoders_markdown(results: dict[str, Any]) -> str:
    lines = [
        f"The served int8 encoder of each named encoder, {results['posts']} posts, batch "
        f"{results['batch_size']} encoded in runs of "
        f"{next(iter(results['runs'].values())).get('micro_batch', '(not recorded)')}, "
        f"one fresh process each; CPU: {results['cpu']}",
        "",
        "| encoder | posts/s | vs minilm | peak RSS (MB) | int8 graphs (MiB) | tokenizer (MiB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    base = results["runs"].get("minilm", {}).get("posts_per_s")
    for name, r in results["runs"].items():
        ratio = f"{r['posts_per_s'] / base:.2f}×" if base else "–"
        lines.append(
            f"| {name} | {r['posts_per_s']:.1f} | {ratio} | {r['peak_rss_mb']:.0f} | "
            f"{r['export_int8_mib']:.1f} | {r['tokenizer_mib']:.1f} |"
        )
    return "\n".join(lines) + "\n"


SCALES = (30, 7_500, 50_000)


def scale_places(own: Sequence[Location], more: Sequence[Location], largest: int) -> list[Location]:
    """The model's own locations, then ``more`` places (by id, those it lacks), up to
    ``largest``: the index at size n holds the first n."""
    ids = {loc.id for loc in own}
    return [*own, *(loc for loc in more if loc.id not in ids)][:largest]


def measure_scales(
    onnx: OnnxModel,
    places: Sequence[Location],
    posts: Sequence[Any],
    workdir: Path,
    sizes: Sequence[int] = SCALES,
    batch: int = 32,
    rounds: int = 3,
) -> dict[str, Any]:
    """Posts/s and batch latency of the served path with ``n`` places indexed, for each n
    of ``sizes``, plus the index's own share (a batch's top-k query). The places are
    embedded once, at the largest size, and each index holds the first n of them; the
    sizes take turns over ``rounds`` rounds, so drift on a shared machine falls on all of
    them alike, and each figure is the median round."""
    sizes = sorted(set(sizes))
    places = list(places[: sizes[-1]])
    if len(places) < sizes[-1]:
        raise ValueError(f"{sizes[-1]} places asked for, only {len(places)} given")
    start = time.perf_counter()
    chunk = 2048
    vectors = np.concatenate(
        [
            onnx.embed_locations(places[s : s + chunk])
            for s in tqdm(range(0, len(places), chunk), desc="embedding places", unit="chunk")
        ]
    )
    embed_seconds = time.perf_counter() - start
    indexes: dict[int, EdgeIndex] = {}
    upsert_seconds: dict[int, float] = {}
    for n in sizes:
        index = indexes[n] = EdgeIndex(workdir / f"scale-{n}")
        name = collection_name(onnx.version)
        index.create(name, vectors.shape[1])
        start = time.perf_counter()
        upsert_prototypes(index, name, places[:n], vectors[:n], [0] * n, onnx.version)
        upsert_seconds[n] = time.perf_counter() - start
        index.set_alias(ALIAS, name)
    embeddings = onnx.embed_posts(list(posts))
    measured: dict[int, list[dict[str, float]]] = {n: [] for n in sizes}
    for _ in tqdm(range(rounds), desc="rounds", unit="round"):
        for n in sizes:
            predictor = Predictor(onnx, indexes[n])
            _, seconds = _time(
                lambda chunk, p=predictor: [x.location.location_id for x in p.predict(chunk)],
                posts,
                batch,
            )
            query = []
            for s in range(0, len(embeddings), batch):
                started = time.perf_counter()
                indexes[n].query(ALIAS, embeddings[s : s + batch], predictor.k)
                query.append(time.perf_counter() - started)
            measured[n].append(
                {
                    "posts_per_s": len(posts) / seconds.sum(),
                    "batch_ms_p50": 1000 * float(np.percentile(seconds, 50)),
                    "batch_ms_p95": 1000 * float(np.percentile(seconds, 95)),
                    "query_ms_per_batch": 1000 * float(np.median(query)),
                }
            )
    for index in indexes.values():
        index.close()
    runs = {
        n: {key: float(np.median([r[key] for r in rows])) for key in rows[0]}
        | {"upsert_s": upsert_seconds[n]}
        for n, rows in measured.items()
    }
    base = runs[sizes[0]]["posts_per_s"]
    for r in runs.values():
        r["ratio"] = r["posts_per_s"] / base
    return {
        "posts": len(posts),
        "batch_size": batch,
        "rounds": rounds,
        "precision": onnx.precision,
        "embed_places_s": embed_seconds,
        "runs": {str(n): r for n, r in runs.items()},
    }


def scale_markdown(results: dict[str, Any]) -> str:
    lines = [
        f"{results['posts']} posts, batch {results['batch_size']}, ONNX {results['precision']}"
        f" + Qdrant's engine + rerank; median of {results['rounds']} alternating rounds; "
        f"embedding the places took {results['embed_places_s']:.0f} s",
        "",
        "| places indexed | posts/s | × smallest | batch p50 ms | p95 ms "
        "| index query ms per batch | upsert s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, r in results["runs"].items():
        lines.append(
            f"| {int(n):,} | {r['posts_per_s']:.1f} | {r['ratio']:.2f} | "
            f"{r['batch_ms_p50']:.0f} | {r['batch_ms_p95']:.0f} | "
            f"{r['query_ms_per_batch']:.1f} | {r['upsert_s']:.1f} |"
        )
    return "\n".join(lines) + "\n"
