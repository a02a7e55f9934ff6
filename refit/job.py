"""The periodic refit (``contrastgeo refit``, the CronJob): newly labeled posts -> a
candidate model -> promoted only if it is not worse.

Steps, each safe to crash in (the served model changes only at the alias switch, one
atomic step, and everything before it is written under names nothing serves yet):

1. **ingest**: read the labeled topic into the label store (``refit.labels``);
2. **select**: snap every stored post to the GeoNames catalogue; *refit locations* are the
   new ones (not among the served model's locations) and the sparse ones (fewer than
   ``refit_sparse_below`` stored labels); each gets up to ``refit_max_shots`` training
   posts. The gate's posts are those of held-out *users* (a stable hash of the user id puts
   about ``refit_holdout`` of all users there, the same ones in every run), so the
   candidate is never judged on a user it trained on; duplicate texts and bots are dropped
   first, as the benchmark does. Other locations contribute a small replay sample to
   training (so that they do not regress) and their held-out posts to the gate;
3. **train**: warm-start from the served model's PyTorch checkpoint, candidate locations =
   the served ones + the new ones, TLC + TLM with hard negatives, a fixed number of steps;
4. **gate**: the served model (new locations as prompt-only candidates, as the workers
   would serve them) and the candidate are scored on the same held-out posts; promote
   only if the candidate's Acc@1 overall is not lower by more than
   ``refit_max_overall_drop`` and its Acc@1 on the refit locations is higher by at least
   ``refit_min_gain``;
5. **promote**: export to the model store, build the version's collection, switch the
   alias, announce ``ModelUpdated``.

A lock file in the model store keeps two refits from running at once (the OS releases it
when a process dies). Each run writes ``<store>/reports/<run>.json`` and ``.md``.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import math
import shutil
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from model.manifest import verify_export
from model.prompts import Location, load_locations
from refit.settings import RefitSettings

log = structlog.get_logger(__name__)

PROMOTED, KEPT, FAILED = "promoted", "kept", "failed"
# Keeping the served model is a routine outcome, not a failed Job: only a failure exits
# non-zero, so that real failures are not drowned among kept runs. The decision is in the
# log, the report and ``reports/refit.prom`` (Prometheus text format).
EXIT_CODES = {PROMOTED: 0, KEPT: 0, FAILED: 1}


@dataclass
class Report:
    run: str
    decision: str = FAILED
    reason: str = ""
    served_version: str | None = None
    candidate_version: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    current: dict[str, float] = field(default_factory=dict)
    candidate: dict[str, float] = field(default_factory=dict)
    per_location: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.decision]


class RefitBusy(RuntimeError):
    pass


@contextmanager
def refit_lock(store: Path) -> Iterator[None]:
    store.mkdir(parents=True, exist_ok=True)
    with open(store / ".refit.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RefitBusy(f"another refit holds {store / '.refit.lock'}") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ------------------------------------------------------------------ data selection
@dataclass
class RefitData:
    locations: list[Location]  # candidate locations: served + new
    refit: set[int]  # indices of the refit locations
    train: list[Any]  # trainer.train.Example
    holdout: list[Any]
    counts: dict[str, int]


def held_out_user(post: Any, share: float) -> bool:
    """Whether the post's author is one of the gate's users: a hash of the user id (of the
    post id when there is none), the same in every run and on every machine."""
    author = post.user_id or f"post:{post.id}"
    digest = hashlib.sha256(author.encode("utf-8", "replace")).digest()
    return int.from_bytes(digest[:8], "big") < share * 2**64


def clean(posts: Sequence[Any]) -> tuple[list[Any], dict[str, int]]:
    """Posts without bots (``trainer.data.fewshot``'s rules) and repeated texts (the first
    in store order is kept), and how many of each were dropped."""
    from trainer.data.fewshot import bot_reasons, normalized_text
    from trainer.data.readers import Record

    bots = bot_reasons([Record(p) for p in posts])
    kept, seen, dropped = [], set(), {"dropped_bot_posts": 0, "dropped_duplicate_texts": 0}
    for post, bot in zip(posts, bots, strict=True):
        text = normalized_text(post.text)
        if bot:
            dropped["dropped_bot_posts"] += 1
        elif text in seen:
            dropped["dropped_duplicate_texts"] += 1
        else:
            seen.add(text)
            kept.append(post)
    return kept, dropped


def per_user_capped(posts: Sequence[Any], cap: int) -> list[Any]:
    """At most ``cap`` posts of each user (in order); posts without a user id are one user,
    so that leaving the id out buys nothing."""
    seen: dict[str, int] = defaultdict(int)
    kept = []
    for post in posts:
        seen[post.user_id] += 1
        if seen[post.user_id] <= cap:
            kept.append(post)
    return kept


def select(posts: Sequence[Any], served: Sequence[Location], s: RefitSettings) -> RefitData:
    """Label stored posts with the catalogue and choose what to train and hold out."""
    from trainer.data.catalogue import (
        build_catalogue,
        catalogue_of,
        label_records,
        load_catalogue,
    )
    from trainer.data.readers import Record
    from trainer.train import Example

    stored = len(posts)
    posts, dropped = clean(posts)
    # Each post snaps to its GeoNames place; a place that is a served location (same id, or
    # same name within the radius when the served ids come from elsewhere) is that one.
    # Posts GeoNames cannot place fall back to the nearest served location in the radius.
    records = [Record(p) for p in posts]
    catalogue = (
        load_catalogue(s.refit_catalogue)
        if s.refit_catalogue
        else build_catalogue(s.refit_countries or None, s.refit_min_population)
    )
    on_catalogue = label_records(records, catalogue, s.refit_radius_km)
    served_catalogue = catalogue_of(served)
    on_served = label_records(records, served_catalogue, s.refit_radius_km).labels
    by_location: dict[str, list[Any]] = defaultdict(list)
    places: dict[str, Location] = {}
    for post, place_index, served_index in zip(posts, on_catalogue.labels, on_served, strict=True):
        if place_index >= 0:
            place = catalogue.locations[place_index]
            same = served_index >= 0 and (
                served[served_index].id == place.id
                or served[served_index].name.casefold() == place.name.casefold()
            )
            place = served[served_index] if same else place
        elif served_index >= 0:
            place = served[served_index]
        else:
            continue
        places.setdefault(place.id, place)
        by_location[place.id].append(post)
    served_ids = {loc.id for loc in served}
    new = sorted(
        (i for i in by_location if i not in served_ids), key=lambda i: (-len(by_location[i]), i)
    )
    locations = [*served, *(places[i] for i in new)]
    index = {loc.id: n for n, loc in enumerate(locations)}
    refit_ids = {
        i
        for i, items in by_location.items()
        if len(items) >= s.refit_min_labels
        and (i not in served_ids or len(items) < s.refit_sparse_below)
    }
    train, holdout = [], []
    for location_id in sorted(by_location):
        items = per_user_capped(by_location[location_id], s.refit_max_labels_per_user)
        held = [p for p in items if held_out_user(p, s.refit_holdout)][: s.refit_gate_max_posts]
        rest = [p for p in items if not held_out_user(p, s.refit_holdout)]
        holdout += [Example(p, index[location_id]) for p in held]
        keep = s.refit_max_shots if location_id in refit_ids else s.refit_replay_per_location
        train += [Example(p, index[location_id]) for p in rest[:keep]]
    counts = {
        "stored_posts": stored,
        **dropped,
        "labeled_posts": sum(len(v) for v in by_location.values()),
        "served_locations": len(served),
        "new_locations": len(new),
        "refit_locations": len(refit_ids),
        "train_posts": len(train),
        "holdout_posts": len(holdout),
        **{k: v for k, v in on_catalogue.report.items() if k.startswith("unlabeled")},
    }
    return RefitData(locations, {index[i] for i in refit_ids}, train, holdout, counts)


# ------------------------------------------------------------------ evaluation and gate
def judged_places(data: RefitData, s: RefitSettings) -> set[int]:
    """The refit places whose held-out posts are enough to judge a gain on: at least
    ``refit_gate_min_posts`` posts from ``refit_gate_min_users`` distinct users (one
    fabricated post, or a few accounts, cannot carry the gate)."""
    posts: dict[int, int] = defaultdict(int)
    users: dict[int, set[str]] = defaultdict(set)
    for ex in data.holdout:
        posts[ex.location] += 1
        users[ex.location].add(ex.post.user_id)
    return {
        loc
        for loc in data.refit
        if posts[loc] >= s.refit_gate_min_posts and len(users[loc]) >= s.refit_gate_min_users
    }


def score(model: Any, data: RefitData, judged: set[int]) -> tuple[dict[str, float], np.ndarray]:
    """Acc@1 overall and on the judged refit places' held-out posts; and each prediction."""
    posts = [ex.post for ex in data.holdout]
    gold = np.array([ex.location for ex in data.holdout])
    predicted = model.predict(posts, data.locations).indices[:, 0].numpy()  # as served: reranked
    on_refit = np.isin(gold, list(judged))
    correct = predicted == gold
    return {
        "acc@1": float(correct.mean()),
        "acc@1_refit": float(correct[on_refit].mean()) if on_refit.any() else float("nan"),
        "holdout_refit": int(on_refit.sum()),
        "judged_places": len(judged),
    }, predicted


def trusted_posts(s: RefitSettings, locations: Sequence[Location]) -> tuple[list[Any], np.ndarray]:
    """The trusted evaluation file's posts that fall on a candidate location, and where."""
    from trainer.data.catalogue import catalogue_of, label_records
    from trainer.data.readers import read_dataset

    records = read_dataset(s.refit_trusted_eval, s.refit_trusted_format).records
    labels = label_records(records, catalogue_of(locations), s.refit_radius_km).labels
    keep = np.flatnonzero(labels >= 0)
    if len(keep) == 0:
        raise ValueError(f"no post of {s.refit_trusted_eval} falls on a candidate location")
    return [records[i].post for i in keep], labels[keep]


def trusted_accuracy(model: Any, posts: list[Any], gold: np.ndarray, locations) -> float:
    return float((model.predict(posts, locations).indices[:, 0].numpy() == gold).mean())


def decide(
    current: dict[str, float], candidate: dict[str, float], s: RefitSettings
) -> tuple[str, str]:
    if candidate["holdout_refit"] == 0:
        return KEPT, (
            f"no refit place has {s.refit_gate_min_posts} held-out posts from "
            f"{s.refit_gate_min_users} users: nothing to judge the gain on"
        )
    if "acc@1_trusted" in candidate:
        trusted_drop = current["acc@1_trusted"] - candidate["acc@1_trusted"]
        if trusted_drop > s.refit_trusted_max_drop:
            return KEPT, (
                f"Acc@1 on the trusted file drops {trusted_drop:.3f} > {s.refit_trusted_max_drop}"
            )
    drop = current["acc@1"] - candidate["acc@1"]
    gain = candidate["acc@1_refit"] - current["acc@1_refit"]
    if drop > s.refit_max_overall_drop:
        return KEPT, f"overall Acc@1 drops {drop:.3f} > {s.refit_max_overall_drop}"
    if gain < s.refit_min_gain:
        return KEPT, f"Acc@1 on refit locations gains {gain:+.3f} < {s.refit_min_gain}"
    return PROMOTED, f"refit locations {gain:+.3f}, overall {-drop:+.3f}"


def per_location(data: RefitData, current: np.ndarray, candidate: np.ndarray) -> list[dict]:
    gold = np.array([ex.location for ex in data.holdout])
    rows = []
    for loc in sorted(set(gold.tolist())):
        mask = gold == loc
        rows.append(
            {
                "location": data.locations[loc].name,
                "id": data.locations[loc].id,
                "refit": loc in data.refit,
                "holdout": int(mask.sum()),
                "current": float((current[mask] == loc).mean()),
                "candidate": float((candidate[mask] == loc).mean()),
            }
        )
    return rows


# ------------------------------------------------------------------ the run
def refit(settings: RefitSettings, ingest_labels: bool = True) -> Report:
    report = Report(run=datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))
    try:
        with refit_lock(settings.model_store):
            try:
                _run(settings, report, ingest_labels)
            finally:  # whatever the decision: the volume does not grow without bound
                try:
                    report.counts["deleted_versions"] = len(prune_versions(settings))
                except Exception as exc:  # never hides the run's own outcome or error
                    log.error("old versions not deleted", error=f"{type(exc).__name__}: {exc}")
    except RefitBusy as exc:
        report.decision, report.reason = KEPT, str(exc)
    except Exception as exc:
        report.decision, report.reason = FAILED, f"{type(exc).__name__}: {exc}"
        log.exception("refit failed; the served model is unchanged")
    write_report(settings, report)
    log.info(
        "refit",
        decision=report.decision,
        reason=report.reason,
        served=report.served_version,
        candidate=report.candidate_version,
        **{k: v for k, v in report.counts.items() if not k.startswith("unlabeled")},
        acc1_current=report.current.get("acc@1"),
        acc1_candidate=report.candidate.get("acc@1"),
        seconds=round(sum(report.seconds.values()), 1),
    )
    return report


@contextmanager
def _timed(report: Report, step: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    report.seconds[step] = round(time.perf_counter() - start, 2)


def _run(s: RefitSettings, report: Report, ingest_labels: bool) -> None:
    import torch

    from model import ContrastGeo
    from refit.labels import LabelStore, ingest
    from refit.publish import TORCH_DIR, announce, export_to_store, index_version
    from stream.index import version_of
    from trainer.train import TrainConfig, fit

    store = LabelStore(s.label_store)
    report.counts["expired_labels"] = store.prune(s.refit_label_window_days * 86400)
    try:
        if ingest_labels:
            with _timed(report, "ingest"):
                asyncio.run(ingest(s, store, s.refit_group_id))
        posts = [event.post for event in store.all()]
    finally:
        store.close()

    with s.open_index() as index:
        collection = index.resolve(s.index_alias)
    if collection is None:
        raise RuntimeError(f"no model is served under {s.index_alias!r}: nothing to refit from")
    served = report.served_version = version_of(collection)
    folder = s.model_folder(served)
    if not (folder / TORCH_DIR).exists():
        raise RuntimeError(f"{folder} has no PyTorch checkpoint ({TORCH_DIR}/) to warm-start from")
    verify_export(folder, "torch_files")  # a tampered or half-copied checkpoint: refused

    with _timed(report, "select"):
        data = select(posts, load_locations(folder / "locations.jsonl"), s)
    report.counts = data.counts
    if not data.refit:
        report.decision, report.reason = KEPT, "no new or sparse location has enough labels"
        return

    with _timed(report, "train"):
        torch.manual_seed(0)
        candidate = ContrastGeo.load(folder / TORCH_DIR)
        config = TrainConfig(
            steps=s.refit_steps, batch_size=s.refit_batch_size, progress=False, seed=0
        )
        fit(candidate, data.train, data.locations, config)
        candidate.eval()
    with _timed(report, "evaluate"):
        judged = judged_places(data, s)
        report.candidate, predicted_candidate = score(candidate, data, judged)
        current = ContrastGeo.load(folder / TORCH_DIR).eval()
        report.current, predicted_current = score(current, data, judged)
        report.per_location = per_location(data, predicted_current, predicted_candidate)
        if s.refit_trusted_eval:
            posts, gold = trusted_posts(s, data.locations)
            for model, scores in ((candidate, report.candidate), (current, report.current)):
                scores["acc@1_trusted"] = trusted_accuracy(model, posts, gold, data.locations)
    report.decision, report.reason = decide(report.current, report.candidate, s)
    if report.decision != PROMOTED:
        return

    with _timed(report, "promote"):
        version = report.candidate_version = export_to_store(
            candidate, s.model_store, data.locations
        )
        with s.open_index() as index:
            collection = index_version(s, index, version)  # builds, then switches the alias
        if s.refit_announce:
            try:
                asyncio.run(announce(s, version, collection, served))
            except Exception as exc:  # the workers' alias poll picks the model up anyway
                log.warning("ModelUpdated not published", error=repr(exc))


def prune_versions(s: RefitSettings) -> list[str]:
    """Delete the model versions beyond the newest ``refit_keep_versions`` (by their
    manifest's creation time), never the served one, with their index collections. Run
    under the job's lock; returns the versions deleted."""
    from model.manifest import MANIFEST, checked_name
    from stream.index import collection_name, version_of

    versions = []
    for folder in s.model_store.iterdir():
        try:
            name = checked_name(folder.name)
            manifest = folder / MANIFEST
            # the manifest's time has seconds; its file's, finer, orders exports in one second
            created = (json.loads(manifest.read_text())["created"], manifest.stat().st_mtime_ns)
        except (ValueError, OSError, KeyError):
            continue  # not a version (reports, the label store, a half-written folder)
        versions.append((created, name))
    versions.sort(reverse=True)
    with s.open_index() as index:
        collection = index.resolve(s.index_alias)
        served = version_of(collection) if collection else None
        old = [v for _, v in versions[s.refit_keep_versions :] if v != served]
        for version in old:
            name = collection_name(version)
            if index.exists(name):
                index.drop(name)
            shutil.rmtree(s.model_folder(version))
    if old:
        log.info("old model versions deleted", versions=old, kept=s.refit_keep_versions)
    return old


def write_report(s: RefitSettings, report: Report) -> Path:
    folder = s.model_store / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    data = {k: v for k, v in report.__dict__.items()}
    (folder / f"{report.run}.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    (folder / f"{report.run}.md").write_text(markdown(report))
    (folder / "refit.prom").write_text(prometheus_text(report))
    return folder / f"{report.run}.json"


def prometheus_text(report: Report) -> str:
    """The last run's decision as metrics, for a textfile collector (node-exporter's
    ``--collector.textfile.directory`` pointed at the reports folder) or a scrape sidecar."""
    finished = datetime.strptime(report.run, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    lines = [
        "# HELP contrastgeo_refit_decision The last refit's decision (1 for the one taken).",
        "# TYPE contrastgeo_refit_decision gauge",
        *(
            f'contrastgeo_refit_decision{{decision="{d}"}} {int(d == report.decision)}'
            for d in (PROMOTED, KEPT, FAILED)
        ),
        "# HELP contrastgeo_refit_last_run_timestamp_seconds When the last refit started.",
        "# TYPE contrastgeo_refit_last_run_timestamp_seconds gauge",
        f"contrastgeo_refit_last_run_timestamp_seconds {finished:.0f}",
    ]
    return "\n".join(lines) + "\n"


def markdown(r: Report) -> str:
    def pct(x: float | None) -> str:
        return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"

    lines = [
        f"# Refit {r.run}: {r.decision}",
        "",
        f"{r.reason}",
        "",
        f"Served: `{r.served_version}`; candidate: `{r.candidate_version or '(not exported)'}`",
        "",
        "| data | count |",
        "|---|---:|",
        *(f"| {k} | {v} |" for k, v in r.counts.items()),
        "",
        "| Acc@1 (%) on held-out posts | current | candidate |",
        "|---|---:|---:|",
        f"| all locations | {pct(r.current.get('acc@1'))} | {pct(r.candidate.get('acc@1'))} |",
        f"| refit locations | {pct(r.current.get('acc@1_refit'))} | "
        f"{pct(r.candidate.get('acc@1_refit'))} |",
        "",
    ]
    if r.per_location:
        lines += [
            "| location | refit | held out | current | candidate |",
            "|---|---|---:|---:|---:|",
        ]
        lines += [
            f"| {row['location']} | {'yes' if row['refit'] else ''} | {row['holdout']} | "
            f"{pct(row['current'])} | {pct(row['candidate'])} |"
            for row in r.per_location
        ]
        lines.append("")
    lines.append("Seconds: " + ", ".join(f"{k} {v}" for k, v in r.seconds.items()))
    return "\n".join(lines) + "\n"
