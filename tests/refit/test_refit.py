"""The refit job on a tiny model: the label store, location selection, the gate, the lock,
and crashes at each step (the served model keeps serving; the next run finishes)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

import pytest

from refit import job as refit_module
from refit.job import (
    KEPT,
    PROMOTED,
    RefitBusy,
    decide,
    refit,
    refit_lock,
    select,
)
from refit.labels import LabelStore
from refit.settings import RefitSettings
from schemas.events import InputRef, LabeledPost
from schemas.posts import Coordinates, Post
from stream.index import EdgeIndex, version_of

NOW = datetime(2026, 1, 1, tzinfo=UTC)
# GeoNames coordinates of US cities the tiny model does not serve (it serves tests.conftest
# LOCATIONS: Memphis, Nashville, Ghent, Split, Utrecht)
NEW = {"Little Rock": (34.74648, -92.28959), "Knoxville": (35.96064, -83.92074)}
MEMPHIS = (35.14953, -90.04898)


def labeled(post_id: str, text: str, lat: float, lon: float, user: str = "") -> LabeledPost:
    return LabeledPost(
        post=Post(id=post_id, text=text, user_id=user, coordinates=Coordinates(lat=lat, lon=lon)),
        source="gps",
        lat=lat,
        lon=lon,
        received_at=NOW,
        input=InputRef(topic="posts.labeled", partition=0, offset=0),
    )


def label_events(per_city: int = 8) -> list[LabeledPost]:
    """``per_city`` posts in each city, two per user."""
    events = []
    for city, (lat, lon) in {**NEW, "Memphis": MEMPHIS}.items():
        for n in range(per_city):
            user = f"{city[:3]}-user{n // 2}"
            text = f"{city.lower()} post {n}"
            events.append(labeled(f"{city[:3]}-{n:02d}", text, lat, lon, user))
    return events


def test_the_label_store_keeps_each_post_once_and_durably(tmp_path):
    store = LabelStore(tmp_path / "labels.sqlite")
    events = label_events(3)
    assert store.add(events) == len(events)
    assert store.add(events[:4]) == 0  # replays of at-least-once delivery
    store.close()
    reopened = LabelStore(tmp_path / "labels.sqlite")
    assert reopened.count() == len(events)
    assert reopened.all() == sorted(events, key=lambda e: e.post.id)
    reopened.close()


def test_select_finds_new_and_sparse_locations_and_holds_users_out(tiny_store):
    import random

    from tests.support.data import LOCATIONS

    settings = RefitSettings(
        refit_countries=("US",), refit_sparse_below=30, refit_replay_per_location=1
    )
    posts = [e.post for e in label_events(40)]
    repeated = posts[0].model_copy(update={"id": "again", "user_id": "someone-else"})
    data = select([*posts, repeated], LOCATIONS, settings)
    names = [loc.name for loc in data.locations]
    assert names[: len(LOCATIONS)] == [loc.name for loc in LOCATIONS]
    assert sorted(names[len(LOCATIONS) :]) == sorted(NEW)  # new candidates after the served
    refit_names = sorted(data.locations[i].name for i in data.refit)
    assert refit_names == sorted(NEW)  # Memphis has 40 >= 30 labels: not sparse
    assert data.counts["dropped_duplicate_texts"] == 1
    # no user on both sides; the gate holds about refit_holdout of the users
    train_users = {ex.post.user_id for ex in data.train}
    held_users = {ex.post.user_id for ex in data.holdout}
    assert held_users and train_users and not train_users & held_users
    every_user = {p.user_id for p in posts}
    assert 0.1 < len(held_users) / len(every_user) < 0.45
    assert all(ex.post.user_id in held_users for ex in data.holdout)
    assert len(data.holdout) == 2 * len(held_users)  # all their posts
    # the same users are held out whatever the order the store returns the posts in
    shuffled = random.Random(0).sample(posts, len(posts))
    again = select(shuffled, LOCATIONS, settings)
    assert {ex.post.id for ex in again.holdout} == {ex.post.id for ex in data.holdout}
    # one place weighs at most refit_gate_max_posts held-out posts in the gate
    capped = select(posts, LOCATIONS, settings.model_copy(update={"refit_gate_max_posts": 3}))
    per_place = Counter(ex.location for ex in capped.holdout)
    assert max(per_place.values()) == 3 < max(Counter(ex.location for ex in data.holdout).values())


def test_select_labels_with_the_catalogue_file_it_is_given(tmp_path):
    from tests.support.data import LOCATIONS
    from trainer.data.catalogue import build_catalogue, save_catalogue

    arkansas = tmp_path / "ar.jsonl"
    save_catalogue(arkansas, build_catalogue(["US"], admin1=["AR"]))
    settings = RefitSettings(refit_catalogue=arkansas, refit_sparse_below=30)
    data = select([e.post for e in label_events(8)], LOCATIONS, settings)
    new = [loc.name for loc in data.locations[len(LOCATIONS) :]]
    # Knoxville, Tennessee is not in the file's catalogue; Memphis posts snap to the
    # nearest place it holds, West Memphis, Arkansas (8 km away), not served
    assert sorted(new) == ["Little Rock", "West Memphis"]


def test_one_user_buys_at_most_the_per_user_cap_of_labels():
    from refit.job import per_user_capped

    posts = [Post(id=f"p{i}", text="t", user_id="spammer") for i in range(10)]
    posts += [Post(id=f"a{i}", text="t") for i in range(10)]  # no user id: one user
    posts += [Post(id="honest", text="t", user_id="someone")]
    kept = per_user_capped(posts, 2)
    assert [p.id for p in kept] == ["p0", "p1", "a0", "a1", "honest"]


def test_a_place_counts_in_the_gate_only_with_enough_held_out_posts_and_users():
    from refit.job import RefitData, judged_places
    from trainer.train import Example

    def holdout(location: int, users: list[str]) -> list:
        return [
            Example(Post(id=f"{location}-{i}", text="t", user_id=u), location)
            for i, u in enumerate(users)
        ]

    s = RefitSettings(refit_gate_min_posts=5, refit_gate_min_users=3)
    data = RefitData(
        locations=[],
        refit={0, 1, 2, 3},
        train=[],
        holdout=[
            *holdout(0, ["a", "b", "c", "d"]),  # 4 posts: too few
            *holdout(1, ["a", "a", "a", "b", "b", "b"]),  # 6 posts, 2 users: too few users
            *holdout(2, ["a", "b", "c", "a", "b"]),  # 5 posts, 3 users: judged
            *holdout(4, ["a", "b", "c", "d", "e"]),  # not a refit place
        ],
        counts={},
    )
    assert judged_places(data, s) == {2}


def test_the_gate_keeps_a_candidate_that_loses_on_the_trusted_file():
    s = RefitSettings(refit_min_gain=0.0, refit_trusted_max_drop=0.0)
    current = {"acc@1": 0.5, "acc@1_refit": 0.2, "holdout_refit": 10, "acc@1_trusted": 0.6}
    bought = {"acc@1": 0.6, "acc@1_refit": 0.9, "holdout_refit": 10, "acc@1_trusted": 0.55}
    decision, reason = decide(current, bought, s)
    assert decision == KEPT and "trusted file drops 0.050" in reason
    fair = {**bought, "acc@1_trusted": 0.6}
    assert decide(current, fair, s)[0] == PROMOTED
    nothing = {**fair, "holdout_refit": 0}
    assert decide(current, nothing, s)[0] == KEPT


def test_a_refit_scores_both_models_on_the_trusted_file(refit_settings, tmp_path):
    trusted = tmp_path / "trusted.jsonl"
    lat, lon = MEMPHIS
    rows = [{"id": f"t{i}", "text": f"memphis post {i}", "lat": lat, "lon": lon} for i in range(6)]
    trusted.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    settings = refit_settings.model_copy(
        update={"refit_trusted_eval": trusted, "refit_trusted_format": "jsonl"}
    )
    report = refit(settings, ingest_labels=False)
    assert 0 <= report.current["acc@1_trusted"] <= 1
    assert 0 <= report.candidate["acc@1_trusted"] <= 1
    assert report.decision in (PROMOTED, KEPT)


def test_fabricated_labels_from_many_fake_users_are_not_promoted(served, tmp_path):
    """The attack the gate's caps cannot stop alone: 40 fake accounts, two labels each (the
    per-user cap), tag "memphis" posts at Little Rock. They train the candidate and, agreeing
    with each other, pass its held-out check; the trusted file (Memphis posts the operators
    vouch for) is what keeps the served model. Without it the same labels are promoted,
    the limit docs/reliability.md states."""
    lat, lon = NEW["Little Rock"]
    fabricated = [
        labeled(f"fake{u}-{n}", f"memphis post {u} {n}", lat, lon, user=f"fake{u}")
        for u in range(40)
        for n in range(2)
    ]
    store = LabelStore(tmp_path / "labels.sqlite")
    honest = [e for e in label_events(8) if not e.post.id.startswith("Mem")]  # Knoxville's
    store.add([*honest, *fabricated])
    store.close()
    trusted = tmp_path / "trusted.jsonl"
    m_lat, m_lon = MEMPHIS
    rows = [
        {"id": f"t{i}", "text": f"memphis post {i}", "lat": m_lat, "lon": m_lon} for i in range(16)
    ]
    trusted.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    settings = RefitSettings(
        **served,
        label_store=tmp_path / "labels.sqlite",
        refit_countries=("US",),
        refit_steps=60,
        refit_announce=False,
        refit_trusted_eval=trusted,
        refit_trusted_format="jsonl",
    )
    before = served_version(settings)
    guarded = refit(settings, ingest_labels=False)
    assert guarded.decision == KEPT, (guarded.reason, guarded.current, guarded.candidate)
    assert "trusted file drops" in guarded.reason
    assert guarded.candidate["holdout_refit"] >= settings.refit_gate_min_posts
    assert served_version(settings) == before
    unguarded = refit(settings.model_copy(update={"refit_trusted_eval": None}), ingest_labels=False)
    assert unguarded.decision == PROMOTED, unguarded.reason


def test_the_gate():
    s = RefitSettings(refit_max_overall_drop=0.01, refit_min_gain=0.05)
    current = {"acc@1": 0.5, "acc@1_refit": 0.2, "holdout_refit": 10}
    assert (
        decide(current, {"acc@1": 0.6, "acc@1_refit": 0.4, "holdout_refit": 10}, s)[0] == PROMOTED
    )
    worse_overall = {"acc@1": 0.45, "acc@1_refit": 0.6, "holdout_refit": 10}
    assert decide(current, worse_overall, s) == (KEPT, "overall Acc@1 drops 0.050 > 0.01")
    assert decide(current, {"acc@1": 0.5, "acc@1_refit": 0.22, "holdout_refit": 10}, s)[0] == KEPT
    assert (
        decide(current, {"acc@1": 0.9, "acc@1_refit": float("nan"), "holdout_refit": 0}, s)[0]
        == KEPT
    )


def test_one_refit_at_a_time(tmp_path):
    with refit_lock(tmp_path), pytest.raises(RefitBusy), refit_lock(tmp_path):
        pass
    with refit_lock(tmp_path):  # released
        pass


@pytest.fixture
def refit_settings(served, tmp_path) -> RefitSettings:
    store = LabelStore(tmp_path / "labels.sqlite")
    store.add(label_events(8))
    store.close()
    return RefitSettings(
        **served,
        label_store=tmp_path / "labels.sqlite",
        refit_countries=("US",),
        refit_steps=5,
        refit_min_gain=0.0,
        refit_max_overall_drop=1.0,  # the tiny model is random: this tests the steps
        refit_gate_min_posts=1,  # 8 posts a city from 4 users: about one is held out
        refit_gate_min_users=1,
        refit_announce=False,
    )


def served_version(settings) -> str:
    index = EdgeIndex(settings.index_path)
    try:
        return version_of(index.resolve(settings.index_alias))
    finally:
        index.close()


@pytest.mark.parametrize(
    "step",
    # training; halfway through the export (the ONNX graphs written into the staging
    # folder, then the PyTorch checkpoint fails); building the index
    ["trainer.train.fit", "model.contrastgeo.ContrastGeo.save", "refit.publish.index_version"],
)
def test_a_crash_at_any_step_keeps_the_served_model_and_the_next_run_finishes(
    refit_settings, monkeypatch, step
):
    before = served_version(refit_settings)
    module, name = step.rsplit(".", 1)

    def crash(*args, **kwargs):
        raise RuntimeError(f"crash in {name}")

    with monkeypatch.context() as patch:
        patch.setattr(f"{module}.{name}", crash)
        report = refit(refit_settings, ingest_labels=False)
    assert report.decision == "failed" and f"crash in {name}" in report.reason
    assert report.exit_code == 1
    assert served_version(refit_settings) == before  # still serving
    staging = refit_settings.model_store / ".staging"
    # the export crash happened halfway: its staging folder is left behind for the next run
    assert staging.exists() == (name == "save")

    report = refit(refit_settings, ingest_labels=False)
    assert report.decision == PROMOTED, report.reason
    assert not staging.exists()
    after = served_version(refit_settings)
    assert after == report.candidate_version != before
    locations = (refit_settings.model_folder(after) / "locations.jsonl").read_text()
    assert "Little Rock" in locations and "Knoxville" in locations
    reports = sorted((refit_settings.model_store / "reports").glob("*.json"))
    assert [json.loads(p.read_text())["decision"] for p in reports][-1] == PROMOTED


def test_nothing_to_refit_keeps_the_model(refit_settings):
    store = LabelStore(refit_settings.label_store)
    store.db.execute("DELETE FROM labeled_posts")
    store.db.commit()
    store.close()
    before = served_version(refit_settings)
    report = refit(refit_settings, ingest_labels=False)
    assert report.decision == KEPT and report.exit_code == 0
    assert served_version(refit_settings) == before


def test_a_busy_lock_keeps_the_model(refit_settings):
    with refit_lock(refit_settings.model_store):
        report = refit(refit_settings, ingest_labels=False)
    assert report.decision == KEPT and "another refit" in report.reason
    assert report.exit_code == 0  # routine: not a failed Job
    metrics = (refit_settings.model_store / "reports" / "refit.prom").read_text()
    assert 'contrastgeo_refit_decision{decision="kept"} 1' in metrics
    assert 'contrastgeo_refit_decision{decision="failed"} 0' in metrics


def test_reports_are_written(refit_settings):
    report = refit(refit_settings, ingest_labels=False)
    folder = refit_settings.model_store / "reports"
    data = json.loads((folder / f"{report.run}.json").read_text())
    assert data["counts"]["refit_locations"] >= 2 and data["seconds"]["train"] > 0
    assert (folder / f"{report.run}.md").read_text().startswith(f"# Refit {report.run}")
    assert refit_module.EXIT_CODES[report.decision] == report.exit_code


def test_a_tampered_warm_start_checkpoint_is_refused(refit_settings):
    folder = refit_settings.model_folder(served_version(refit_settings))
    weights = next((folder / "torch").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-8] + b"tampered")
    report = refit(refit_settings, ingest_labels=False)
    assert report.decision == "failed" and "does not match its checksum" in report.reason


@pytest.mark.parametrize("name", ["../x", "a/b", "..", "", ".hidden", "x" * 200, "a..b"])
def test_names_that_would_become_paths_outside_are_refused(name, tmp_path):
    from model.manifest import checked_name
    from stream.index import collection_name

    with pytest.raises(ValueError, match="invalid"):
        checked_name(name)
    with pytest.raises(ValueError, match="invalid"):
        RefitSettings(model_store=tmp_path).model_folder(name)
    if name:
        with pytest.raises(ValueError, match="invalid"):
            collection_name(name)
    index = EdgeIndex(tmp_path / "index")
    try:
        with pytest.raises(ValueError, match="invalid"):
            index.resolve(name)
    finally:
        index.close()
    assert checked_name("20261204151649-4d16796d") == "20261204151649-4d16796d"


def test_labels_older_than_the_window_are_deleted(tmp_path):
    store = LabelStore(tmp_path / "labels.sqlite")
    store.add(label_events(2))
    store.db.execute("UPDATE labeled_posts SET stored_at = stored_at - 100 * 86400")
    store.db.commit()
    store.add([labeled("fresh", "new post", *MEMPHIS, "u")])
    assert store.prune(90 * 86400) == len(label_events(2))
    assert [e.post.id for e in store.all()] == ["fresh"]
    store.close()


def test_old_versions_and_their_collections_are_deleted_the_served_one_kept(refit_settings):
    import torch

    from model import ContrastGeo
    from refit.job import prune_versions
    from refit.publish import export_to_store, index_version
    from stream.index import collection_name
    from tests.support.data import LOCATIONS

    first = served_version(refit_settings)
    model = ContrastGeo.load(refit_settings.model_folder(first) / "torch")
    newer = []
    for seed in range(3):
        torch.manual_seed(seed)
        with torch.no_grad():  # other weights: another version (its name hashes the encoder)
            next(model.post_encoder.parameters()).add_(torch.randn(1).item())
        version = export_to_store(model, refit_settings.model_store, LOCATIONS)
        with refit_settings.open_index() as index:
            index_version(refit_settings, index, version, switch=False)
        newer.append(version)
    # the first (served) version is the oldest: kept anyway; of the others, the newest 2
    settings = refit_settings.model_copy(update={"refit_keep_versions": 2})
    deleted = prune_versions(settings)
    assert deleted == [newer[0]]
    assert not settings.model_folder(newer[0]).exists()
    with settings.open_index() as index:
        assert not index.exists(collection_name(newer[0]))
        assert index.exists(collection_name(first)) and index.exists(collection_name(newer[2]))
    assert served_version(settings) == first and (settings.model_folder(first) / "torch").exists()


@pytest.mark.slow
def test_a_refit_killed_mid_export_leaves_nothing_that_breaks_the_next_run(
    refit_settings, tmp_path
):
    import signal
    import subprocess
    import sys

    from benchmarks.local import worker_env
    from tests.support.service import wait_for

    store = refit_settings.model_store
    before = served_version(refit_settings)

    def exporting() -> bool:
        return any(p.is_dir() and "staging" in p.name for p in store.iterdir())

    log = open(tmp_path / "refit.log", "wb")  # noqa: SIM115
    job = subprocess.Popen(
        [sys.executable, "-m", "contrastgeo", "refit", "--no-ingest"],
        env=worker_env(refit_settings),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: exporting() or job.poll() is not None, "an export", 300, every=0.005)
        job.send_signal(signal.SIGKILL)  # a real kill: no handler, no finally
        assert job.wait() == -signal.SIGKILL, "the refit ended before it could be killed"
    finally:
        log.close()
    assert exporting()  # it did die halfway through an export
    assert served_version(refit_settings) == before  # the workers' model is untouched
    report = refit(refit_settings, ingest_labels=False)
    assert report.decision == PROMOTED, report.reason
    assert not exporting()  # the leftovers are gone
    assert served_version(refit_settings) == report.candidate_version
