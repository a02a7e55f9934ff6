"""The few-shot benchmark: every method on the same splits, shots and seeds, then the report.

``run_benchmark`` loops seeds -> shot counts -> methods on one ``Task`` and returns the
``results.json`` document (each row keeps its per-post correctness and a digest of its
seed's test posts, so methods, and runs on the same splits, can be compared post by post
(``trainer/compare.py``), and what the run chose: ContrastGeo's step, α and rerank
weight, its dev curve); ``write_report`` writes it with ``results.md`` (mean ± std per
method and shot count, and whether ContrastGeo meets the target against the best baseline
by a paired bootstrap interval) and ``acc_vs_shots.png``.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import structlog
import torch
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from tqdm.auto import tqdm

from model.config import ContrastGeoConfig
from model.pretrained import named_encoder
from trainer.data.fewshot import DEFAULT_SHOTS, Shots, shot_label, shot_order
from trainer.methods import BASELINES, METHODS, SHOT_FREE, FrozenEncoder, Predictions, Run
from trainer.metrics import (
    LABEL_BUCKETS,
    accuracy_by_labels,
    geolocation_metrics,
    paired_bootstrap,
)
from trainer.task import Task
from trainer.train import TrainConfig

log = structlog.get_logger(__name__)

METRICS = (
    "acc@1",
    "acc@5",
    "acc@25km",
    "acc@161km",
    "mean_km",
    "median_km",
    "macro_f1",
    "acc@1_cov20",
    "acc@161km_cov20",
)


class BenchmarkConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    shots: tuple[Shots, ...] = DEFAULT_SHOTS["fewshot"]
    seeds: int = Field(5, ge=1)
    methods: tuple[str, ...] = ("contrastgeo", *BASELINES)
    model: ContrastGeoConfig = ContrastGeoConfig()
    train: TrainConfig = TrainConfig(progress=False)


def check_methods(methods: Sequence[str]) -> None:
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {sorted(METHODS)}")


RunKey = tuple[str, Any, int]  # (method, shots, seed)


class CannotResume(ValueError):
    """Earlier results that this benchmark cannot continue: other data or settings."""


def run_benchmark(
    task: Task,
    config: BenchmarkConfig,
    progress: bool = True,
    previous: dict[str, Any] | None = None,
    save: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Every (seed, shots, method) run of ``config`` on ``task``, as the ``results.json``
    document. ``previous``: an earlier document of the same data and settings
    (``check_resumable``) whose runs are kept, not run again, so an interrupted benchmark,
    or one given more seeds, shots or methods, runs only what it lacks. ``save`` is called
    with the document so far after each run (the command writes it to ``results.json``)."""
    check_methods(config.methods)
    catalogue_protocol = task.fewshot.protocol == "catalogue"
    model_config = config.model.model_copy(update={"prompts": task.prompts})
    frozen = FrozenEncoder(model_config)
    kept = check_resumable(previous, task, config) if previous else {}
    rows: list[dict[str, Any]] = list(kept.values())
    first_split = None
    start = time.perf_counter()
    todo = [
        (method, shots, seed)
        for seed in range(config.seeds)
        for shots in config.shots
        for method in config.methods
        if (method, shots, seed) not in kept
    ]
    bar = tqdm(
        total=len(todo),
        desc=f"benchmark {task.name}" + (f" ({len(kept)} runs kept)" if kept else ""),
        unit="run",
        disable=not progress,
    )

    def document() -> dict[str, Any]:
        assert first_split is not None
        fresh = {
            "dataset": task.name,
            "input": task.input,
            "protocol": task.fewshot.protocol,
            "catalogue_size": len(task.catalogue.locations),
            "locations": len(first_split.locations),
            "test_posts": len(first_split.test),
            "user_disjoint": first_split.partition.user_disjoint,
            "seconds": time.perf_counter() - start,
            "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
            "settings": config.model_dump(mode="json"),
            "data_report": dict(task.report),
            "split_report": dict(first_split.partition.report),
        }
        if previous:  # the first seed's figures stay those of the run that scored it
            fresh |= {k: previous[k] for k in RESUMED_FIELDS if k in previous}
            fresh["seconds"] += previous.get("seconds", 0.0)
        return {**fresh, "results": sorted(rows, key=run_order(config))}

    for seed in sorted({seed for _, _, seed in todo}):
        split = task.split(seed)
        first_split = first_split or split
        gold = split.gold(split.test)
        test_digest = split_digest(split.test)
        check_same_test_posts(kept, seed, test_digest)
        shot_free: dict[str, Predictions] = {}
        for shots in config.shots:
            if catalogue_protocol:  # training labels of each test post's gold place at this k
                labels_of_gold = np.bincount(
                    split.gold(split.shots(shots)), minlength=len(split.locations)
                )[gold]
            shared: dict[str, Any] = {}  # what this (seed, k)'s methods reuse
            for method in config.methods:
                if (method, shots, seed) in kept:
                    continue
                bar.set_postfix_str(f"{method} k={shots} seed={seed}")
                if method in shot_free:
                    pred = shot_free[method]
                else:
                    torch.manual_seed(seed)
                    run = Run(
                        split,
                        shots,
                        seed,
                        model_config,
                        config.train.model_copy(update={"seed": seed}),
                        frozen,
                        shared,
                    )
                    pred = METHODS[method](run)
                    if method in SHOT_FREE:
                        shot_free[method] = pred
                metrics = geolocation_metrics(
                    pred.ranked, gold, split.lat, split.lon, pred.confidence
                )
                row = {
                    "method": method,
                    "shots": shots,
                    "seed": seed,
                    **{m: metrics[m] for m in METRICS},
                    "answered": metrics["answered"],
                    "train_seconds": pred.train_seconds,
                    "correct": "".join("1" if c else "0" for c in pred.ranked[:, 0] == gold),
                    "test_digest": test_digest,
                    **pred.info,
                }
                if catalogue_protocol:
                    row["acc@1_by_labels"] = accuracy_by_labels(
                        pred.ranked[:, 0] == gold, labels_of_gold
                    )
                rows.append(row)
                log.info(
                    "benchmark_run",
                    dataset=task.name,
                    **{
                        k: v
                        for k, v in row.items()
                        if k not in ("correct", "dev_curve", "acc@1_by_labels")
                    },
                )
                bar.update(1)
                if save:
                    save(document())
    bar.close()
    if first_split is None:  # every run kept: nothing ran
        first_split = task.split(0)
    return document()


RESUMED_FIELDS = ("locations", "test_posts", "user_disjoint", "split_report")


def run_order(config: BenchmarkConfig) -> Callable[[dict[str, Any]], tuple[int, int, int]]:
    """Sort key of a result row: seed, then shots and method in the config's order."""
    shots, methods = list(config.shots), list(config.methods)
    return lambda row: (row["seed"], shots.index(row["shots"]), methods.index(row["method"]))


RESUME_IGNORES = ("seeds", "shots", "methods", "train.progress")
"""Settings ``--resume`` does not compare: the first three only add runs, the bar of
training steps changes what a run prints, not its results."""


def check_resumable(
    previous: dict[str, Any], task: Task, config: BenchmarkConfig
) -> dict[RunKey, dict[str, Any]]:
    """The rows of ``previous`` that ``config`` asks for, by (method, shots, seed); a
    ``CannotResume`` that names the difference when ``previous`` was run on other data or
    with other settings (seeds, shots and methods may differ: they only add runs)."""
    same = {"dataset": task.name, "input": task.input, "protocol": task.fewshot.protocol}
    for key, value in same.items():
        if previous.get(key, "fewshot" if key == "protocol" else None) != value:
            raise CannotResume(
                f"the earlier results have {key} {previous.get(key)!r}, this run {value!r}"
            )

    def compared(settings: dict[str, Any]) -> dict[str, str]:
        return {
            path: value
            for path, value in setting_paths(settings).items()
            if not any(path == p or path.startswith(f"{p}.") for p in RESUME_IGNORES)
        }

    ours = compared(config.model_dump(mode="json"))
    theirs = compared(previous.get("settings", {}))
    # a setting added since the earlier run is absent from its file: its default then
    for path in ours.keys() - theirs.keys():
        theirs[path] = repr(setting_default(path))
    differ = sorted(
        path for path in ours.keys() | theirs.keys() if ours.get(path) != theirs.get(path)
    )
    if differ:
        raise CannotResume(
            "the earlier results were run with other settings "
            f"({', '.join(differ[:6])}); use another --out"
        )
    wanted = {(m, k, s) for m in config.methods for k in config.shots for s in range(config.seeds)}
    return {
        key: row
        for row in previous.get("results", [])
        if (key := (row["method"], row["shots"], row["seed"])) in wanted
    }


def setting_paths(settings: Any, prefix: str = "") -> dict[str, str]:
    """Settings flattened to ``{dotted.path: repr(value)}``, so that a difference can be
    named; the encoder's checkpoint by its canonical name (older files call ``minilm`` by
    its package's name)."""
    if isinstance(settings, dict):
        return {
            p: v for k, s in settings.items() for p, v in setting_paths(s, f"{prefix}{k}.").items()
        }
    path = prefix.rstrip(".")
    if path == "model.encoder.checkpoint" and (named := named_encoder(settings)):
        settings = named.name
    return {path: repr(settings)}


def setting_default(path: str) -> Any:
    """The default of a ``BenchmarkConfig`` setting given by its dotted path, as JSON."""
    model: type[BaseModel] = BenchmarkConfig
    *parents, leaf = path.split(".")
    for name in parents:
        model = model.model_fields[name].annotation  # type: ignore[assignment]
    field = model.model_fields[leaf]
    return TypeAdapter(field.annotation).dump_python(
        field.get_default(call_default_factory=True), mode="json"
    )


def check_same_test_posts(kept: dict[RunKey, dict[str, Any]], seed: int, digest: str) -> None:
    """A seed partly kept must have the same test posts now (same data, same split)."""
    for (_, _, s), row in kept.items():
        if s == seed and row.get("test_digest", digest) != digest:
            raise CannotResume(
                f"seed {seed}'s test posts differ from the earlier results' "
                "(other data or another split); use another --out"
            )


def split_digest(records: Sequence[int]) -> str:
    """A short fingerprint of a test set (its record indices, in order): two runs whose rows
    carry the same digest for a seed scored the same test posts, so they can be paired."""
    return hashlib.sha1(np.asarray(records, np.int64).tobytes()).hexdigest()[:16]


# ----------------------------------------------------------------------------- report
def is_catalogue(results: dict[str, Any]) -> bool:
    """Whether ``results`` come from the catalogue protocol (older files have no protocol:
    they are few-shot)."""
    return results.get("protocol", "fewshot") == "catalogue"


def summarize(results: dict[str, Any], metric: str) -> dict[str, dict[int, tuple[float, float]]]:
    """method -> shots -> (mean, std over seeds) of ``metric``."""
    values: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in results["results"]:
        values[row["method"]][row["shots"]].append(row[metric])
    return {
        method: {
            k: (float(np.mean(v)), float(np.std(v)))
            for k, v in sorted(by_shot.items(), key=lambda kv: shot_order(kv[0]))
        }
        for method, by_shot in values.items()
    }


def target_check(results: dict[str, Any]) -> list[str]:
    """One line per shot count: ContrastGeo against the best baseline (by mean Acc@1) on the
    same test posts: the mean gap, its paired bootstrap 95% interval, and whether the target
    holds: the interval's lower bound above the required margin (0 at every k; at 1 shot,
    5 points or half the baseline's accuracy, whichever is smaller; the catalogue protocol
    asks for no margin)."""
    table = summarize(results, "acc@1")
    if "contrastgeo" not in table:
        return []
    baselines = [m for m in table if m in BASELINES]
    if not baselines:
        return []
    correct = per_post_correct(results)
    lines = []
    shots = sorted(table["contrastgeo"], key=shot_order)
    fewshot = not is_catalogue(results)
    for k in shots:
        ours = table["contrastgeo"][k][0]
        best = max(baselines, key=lambda m: table[m][k][0])
        theirs = table[best][k][0]
        margin = min(0.05, 0.5 * theirs) if fewshot and k == 1 else 0.0
        diffs = paired_diffs(by_seed(correct, "contrastgeo", k), by_seed(correct, best, k))
        if diffs:
            gap, low, high = paired_bootstrap(diffs)
            interval = interval_text(low, high)
            ok = low > margin
        else:  # results written before per-post correctness was kept
            gap, interval, ok = ours - theirs, "–", ours - theirs > margin
        lines.append(
            f"| {k} | {100 * ours:.1f} | {best} {100 * theirs:.1f} | "
            f"{100 * gap:+.1f} | {interval} | {100 * margin:.1f} | {'met' if ok else 'not met'} |"
        )
    return lines


def per_post_correct(results: dict[str, Any]) -> dict[tuple[str, Shots, int], np.ndarray]:
    """(method, shots, seed) -> 0/1 per test post, for the rows that keep it."""
    return {
        (r["method"], r["shots"], r["seed"]): np.frombuffer(r["correct"].encode(), "u1") - 48
        for r in results["results"]
        if "correct" in r
    }


def by_seed(
    correct: dict[tuple[str, Shots, int], np.ndarray], method: str, k: Shots
) -> dict[int, np.ndarray]:
    """seed -> 0/1 per test post of ``method`` at ``k`` shots."""
    return {s: v for (m, kk, s), v in correct.items() if m == method and kk == k}


def paired_diffs(ours: dict[int, np.ndarray], theirs: dict[int, np.ndarray]) -> list[np.ndarray]:
    """``ours`` minus ``theirs`` per test post, one array per seed both have (``by_seed``
    of two methods, two shot counts or two runs on the same splits), for
    ``paired_bootstrap``. Raises ``ValueError`` where a seed's two arrays differ in length:
    they cannot be the same test posts."""
    diffs = []
    for seed in sorted(ours.keys() & theirs.keys()):
        if len(ours[seed]) != len(theirs[seed]):
            raise ValueError(
                f"seed {seed}: {len(ours[seed])} against {len(theirs[seed])} test posts; "
                "a paired comparison needs the same test posts"
            )
        diffs.append(ours[seed].astype(float) - theirs[seed])
    return diffs


def interval_text(low: float, high: float) -> str:
    """``[+0.5, +1.8]``: a paired bootstrap interval of fractions, in points."""
    return f"[{100 * low:+.1f}, {100 * high:+.1f}]"


def variant_gaps(results: dict[str, Any]) -> list[str]:
    """One line per ContrastGeo variant (``contrastgeo-*``) and shot count: its Acc@1 minus
    ``contrastgeo``'s on the same test posts, with the paired bootstrap 95% interval."""
    correct = per_post_correct(results)
    lines = []
    for method in dict.fromkeys(r["method"] for r in results["results"]):
        if not method.startswith("contrastgeo-"):
            continue
        for k in sorted({kk for m, kk, _ in correct if m == method}, key=shot_order):
            diffs = paired_diffs(by_seed(correct, method, k), by_seed(correct, "contrastgeo", k))
            if diffs:
                gap, low, high = paired_bootstrap(diffs)
                lines.append(
                    f"| {method} | {shot_label(k)} | {len(diffs)} | {100 * gap:+.1f} | "
                    f"{interval_text(low, high)} |"
                )
    return lines


def choices(results: dict[str, Any]) -> list[str]:
    """What ContrastGeo's dev selection chose per shot count, over seeds."""
    rows = [r for r in results["results"] if r["method"] == "contrastgeo" and "best_step" in r]
    lines = []
    for k in sorted({r["shots"] for r in rows}, key=shot_order):
        runs = [r for r in rows if r["shots"] == k]
        cells = [", ".join(f"{r[key]:g}" for r in runs) for key in ("best_step", "alpha")]
        cells.append(", ".join(f"{r['rerank_weight']:g}" for r in runs))
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return lines


FEWSHOT_TABLES = (
    ("acc@1", "Acc@1 (%)"),
    ("acc@161km", "Acc@161km (%)"),
    ("acc@1_cov20", "Acc@1 on the 20% most confident posts (%)"),
    ("median_km", "Median error (km)"),
)
CATALOGUE_TABLES = (
    ("acc@1", "Acc@1 (%)"),
    ("acc@25km", "Acc@25km (%)"),
    ("acc@161km", "Acc@161km (%)"),
    ("median_km", "Median error (km)"),
    ("mean_km", "Mean error (km)"),
    ("answered", "Answered (%)"),
)
RULE_BASED = ("carmen", "gazetteer", "zero-shot")  # the catalogue target's reference systems


def markdown(results: dict[str, Any], command: str = "") -> str:
    methods = list(dict.fromkeys(r["method"] for r in results["results"]))
    shots = sorted({r["shots"] for r in results["results"]}, key=shot_order)
    seeds = len({r["seed"] for r in results["results"]})
    catalogue = is_catalogue(results)
    size = (
        f"catalogue protocol: all {results['catalogue_size']} catalogue places are candidates"
        if catalogue
        else f"{results['locations']} locations"
    )
    out = [
        f"# Benchmark: {results['dataset']} ({results['input']})",
        "",
        f"{size}, {results['test_posts']} test posts (seed 0), "
        f"user-disjoint: {'yes' if results['user_disjoint'] else 'no (no user ids)'}, "
        f"{seeds} seed(s), {results['seconds'] / 60:.1f} min on {results['machine']}.",
    ]
    if command:
        out += ["", f"Command: `{command}`"]
    header = "| method | " + " | ".join(shot_label(k) for k in shots) + " |"
    rule = "|---|" + "---:|" * len(shots)
    for metric, title in CATALOGUE_TABLES if catalogue else FEWSHOT_TABLES:
        table = summarize(results, metric)
        scale = 1 if metric in ("mean_km", "median_km") else 100
        out += ["", f"## {title}, mean ± std over seeds", "", header, rule]
        for method in methods:
            cells = [
                f"{scale * table[method][k][0]:.1f} ± {scale * table[method][k][1]:.1f}"
                if k in table[method]
                else ""
                for k in shots
            ]
            out.append(f"| {method} | " + " | ".join(cells) + " |")
    answered = summarize(results, "answered")
    partial = [m for m in methods if answered[m][shots[0]][0] < 1]
    if partial and not catalogue:
        out += [
            "",
            "Methods that can abstain answered: "
            + ", ".join(f"{m} {100 * answered[m][shots[0]][0]:.0f}%" for m in partial)
            + " of test posts (no answer counts as wrong).",
        ]
    if catalogue:
        out += by_labels_table(results, methods, shots[-1])
    train = summarize(results, "train_seconds")
    out += ["", "## Training time per run (s)", "", header, rule]
    for method in methods:
        out.append(
            f"| {method} | " + " | ".join(f"{train[method][k][0]:.1f}" for k in shots) + " |"
        )
    if catalogue:
        out += catalogue_target(results, shots[-1])
    lines = target_check(results)
    if lines:
        margin = "above the required margin" if not catalogue else "above 0"
        out += [
            "",
            "## Target: ContrastGeo vs the best baseline (Acc@1, mean over seeds)",
            "",
            "Gap: ContrastGeo minus the best baseline on the same test posts, with its paired "
            "bootstrap 95% interval (posts resampled within each seed); met when the "
            f"interval's lower bound is {margin}.",
            "",
            "| shots | contrastgeo | best baseline | gap (points) | 95% interval | "
            "margin | target |",
            "|---:|---:|---|---:|---|---:|---|",
            *lines,
        ]
    gaps = variant_gaps(results)
    if gaps:
        out += [
            "",
            "## ContrastGeo's variants vs contrastgeo (Acc@1, paired)",
            "",
            "Gap: the variant minus contrastgeo on the same test posts, with its paired "
            "bootstrap 95% interval (posts resampled within each seed).",
            "",
            "| variant | shots | seeds | gap (points) | 95% interval |",
            "|---|---:|---:|---:|---|",
            *gaps,
        ]
    chosen = choices(results)
    if chosen:
        out += [
            "",
            "## What dev chose for ContrastGeo (one value per seed)",
            "",
            "| shots | best step (0 = untrained) | WiSE-FT α | rerank weight w |",
            "|---:|---|---|---|",
            *chosen,
        ]
    return "\n".join(out) + "\n"


def by_labels(results: dict[str, Any], method: str, k: Shots) -> dict[str, float | None]:
    """Mean over seeds of ``method``'s Acc@1 per bucket of the gold place's training labels
    at ``k`` (None where no test post falls in the bucket)."""
    rows = [r for r in results["results"] if r["method"] == method and r["shots"] == k]
    out = {}
    for name, *_ in LABEL_BUCKETS:
        values = [r["acc@1_by_labels"][name]["acc@1"] for r in rows]
        values = [v for v in values if v is not None]
        out[name] = float(np.mean(values)) if values else None
    return out


def by_labels_table(results: dict[str, Any], methods: list[str], k: Shots) -> list[str]:
    first = next(r for r in results["results"] if r["shots"] == k and r["seed"] == 0)
    posts = {name: first["acc@1_by_labels"][name]["posts"] for name, *_ in LABEL_BUCKETS}
    out = [
        "",
        f"## Acc@1 (%) by the gold place's training labels ({shot_label(k)}), mean over seeds",
        "",
        "| method | " + " | ".join(f"{n} labels ({posts[n]} posts)" for n in posts) + " |",
        "|---|" + "---:|" * len(posts),
    ]
    for method in methods:
        cells = by_labels(results, method, k)
        out.append(
            f"| {method} | "
            + " | ".join("–" if v is None else f"{100 * v:.1f}" for v in cells.values())
            + " |"
        )
    return out


def catalogue_target(results: dict[str, Any], k: Shots) -> list[str]:
    """The catalogue protocol's target at ``k`` (the largest, "all"): Acc@1 >= 1.8x and
    Acc@161km >= 25 points above the best of carmen, gazetteer and zero-shot, median error
    < 50 km, and on posts whose place had no training label Acc@1 >= zero-shot's."""
    acc, near = summarize(results, "acc@1"), summarize(results, "acc@161km")
    median = summarize(results, "median_km")
    reference = [m for m in RULE_BASED if m in acc]
    if "contrastgeo" not in acc or not reference:
        return []
    best = max(reference, key=lambda m: acc[m][k][0])
    best_near = max(reference, key=lambda m: near[m][k][0])
    ours, ours_near, ours_km = (
        acc["contrastgeo"][k][0],
        near["contrastgeo"][k][0],
        median["contrastgeo"][k][0],
    )
    ratio = ours / acc[best][k][0] if acc[best][k][0] else float("inf")
    gap = ours_near - near[best_near][k][0]
    lines = [
        "",
        f"## Target at {shot_label(k)} (mean over seeds)",
        "",
        "| criterion | contrastgeo | reference | target |",
        "|---|---:|---|---|",
        f"| Acc@1 ≥ 1.8× the best of {', '.join(reference)} | {100 * ours:.1f} | "
        f"{best} {100 * acc[best][k][0]:.1f} ({ratio:.2f}×) | {_met(ratio >= 1.8)} |",
        f"| Acc@161km ≥ 25 points above it | {100 * ours_near:.1f} | "
        f"{best_near} {100 * near[best_near][k][0]:.1f} ({100 * gap:+.1f}) | "
        f"{_met(gap >= 0.25)} |",
        f"| median error < 50 km | {ours_km:.0f} km | | {_met(ours_km < 50)} |",
    ]
    if "zero-shot" in acc:
        unseen, zero = (
            by_labels(results, "contrastgeo", k)["0"],
            by_labels(results, "zero-shot", k)["0"],
        )
        if unseen is not None and zero is not None:
            lines.append(
                f"| no forgetting: Acc@1 on posts whose place has no training label ≥ "
                f"zero-shot's | {100 * unseen:.1f} | zero-shot {100 * zero:.1f} | "
                f"{_met(unseen >= zero)} |"
            )
    return lines


def _met(ok: bool) -> str:
    return "met" if ok else "not met"


def plot(results: dict[str, Any], path: Path) -> None:
    """Acc@1 against shots per method; for the catalogue protocol also Acc@161km against
    shots and Acc@1 by the gold place's training labels at the largest k."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    catalogue = is_catalogue(results)
    shots = sorted({r["shots"] for r in results["results"]}, key=shot_order)
    panels = (
        (("acc@1", "Acc@1 (%)"), ("acc@161km", "Acc@161km (%)"))
        if catalogue
        else (("acc@1", "Acc@1 (%)"),)
    )
    fig, axes = plt.subplots(
        1, len(panels) + catalogue, figsize=(7 * (len(panels) + catalogue), 4.5), squeeze=False
    )
    for ax, (metric, label) in zip(axes[0], panels, strict=False):
        for method, by_shot in summarize(results, metric).items():
            ks = list(by_shot)
            x = [shots.index(k) for k in ks]  # evenly spaced: 1, 2, 4 ... is a log2 axis
            mean = np.array([by_shot[k][0] for k in ks]) * 100
            std = np.array([by_shot[k][1] for k in ks]) * 100
            style = "-" if method.startswith("contrastgeo") else "--"
            width = 2.5 if method == "contrastgeo" else 1.2
            ax.plot(x, mean, style, marker="o", lw=width, label=method)
            ax.fill_between(x, mean - std, mean + std, alpha=0.12)
        ax.set_xticks(range(len(shots)), [str(k) for k in shots])
        ax.set_xlabel("labeled posts per location (shots)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8, loc="best")
    if catalogue:
        ax, k = axes[0][-1], shots[-1]
        methods = list(dict.fromkeys(r["method"] for r in results["results"]))
        names = [name for name, *_ in LABEL_BUCKETS]
        width = 0.8 / len(methods)
        for i, method in enumerate(methods):
            values = by_labels(results, method, k)
            heights = [100 * (values[n] or 0.0) for n in names]
            ax.bar(np.arange(len(names)) + i * width, heights, width, label=method)
        ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names)
        ax.set_xlabel(f"training labels of the gold place ({shot_label(k)})")
        ax.set_ylabel("Acc@1 (%)")
        ax.grid(alpha=0.3, axis="y")
    where = (
        f"all {results['catalogue_size']} places"
        if catalogue
        else f"{results['locations']} locations"
    )
    fig.suptitle(f"{results['dataset']} ({results['input']}), {where}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(results: dict[str, Any], out: Path, command: str = "") -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.json", out / "results.md", out / "acc_vs_shots.png"]
    paths[0].write_text(json.dumps({**results, "command": command}, indent=1) + "\n")
    paths[1].write_text(markdown(results, command))
    plot(results, paths[2])
    return paths
