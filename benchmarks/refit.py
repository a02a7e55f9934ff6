"""The refit benchmark (``contrastgeo refit-bench``): how long a refit takes, and what it
gains, for N new locations with k labeled posts each, on a labeled dataset.

Sets up a served model that knows the dataset's ``served`` most frequent locations
(the pre-trained encoder with untrained heads, i.e. zero-shot), and with
``whole_catalogue`` every other place of the catalogue too except the ``new`` ones (new
places among thousands, as a catalogue-scale service sees them); fills a label store with
k + 2 posts for each of the ``new`` next most frequent locations (and 3 for each of the
``served`` ones), then runs the refit job on it (without Kafka) in the settings' model
store and index. Everything is timed by the refit's own report.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import structlog

log = structlog.get_logger(__name__)


def labeled_events(task: Any, split: Any, served: int, shots: int) -> list[Any]:
    """``LabeledPost`` events: 3 per served location, ``shots`` + 2 per other location
    (their GPS point, or the place's centre for posts labeled by a city place)."""
    from schemas.events import InputRef, LabeledPost

    by_location: dict[int, list[int]] = {}
    for records in (split.shots(shots), split.test):
        for record, gold in zip(records, split.gold(records), strict=True):
            by_location.setdefault(int(gold), []).append(record)
    now = datetime.now(UTC)
    events = []
    for location, records in sorted(by_location.items()):
        keep = 3 if location < served else shots + 2
        for record in records[:keep]:
            post = task.records[record].post
            place = split.locations[location]
            lat, lon = (
                (post.coordinates.lat, post.coordinates.lon)
                if post.coordinates
                else (place.lat, place.lon)
            )
            events.append(
                LabeledPost(
                    post=post,
                    source="gps",
                    lat=lat,
                    lon=lon,
                    received_at=now,
                    input=InputRef(topic="bench", partition=0, offset=len(events)),
                )
            )
    return events


def served_locations(
    catalogue: Sequence[Any],
    ranked: Sequence[Any],
    served: int,
    new: int,
    whole_catalogue: bool,
) -> list[Any]:
    """What the base model serves: the first ``served`` of the ``ranked`` (most frequent
    first) locations, then, with ``whole_catalogue``, every catalogue place that is not
    among the ``new`` ones that follow them."""
    if len(ranked) < served + new:
        raise SystemExit(f"only {len(ranked)} locations have enough posts; lower --new/--served")
    known = list(ranked[:served])
    if not whole_catalogue:
        return known
    left_out = {loc.id for loc in ranked[: served + new]}
    return known + [loc for loc in catalogue if loc.id not in left_out]


def refit_bench(
    task: Any,
    settings: Any,
    served: int,
    new: int,
    shots: int,
    checkpoint: str,
    whole_catalogue: bool = False,
) -> Any:
    """Serve a zero-shot model (see the module doc), store labels for its ``served``
    most frequent locations and ``new`` more, run the refit; returns its
    ``refit.job.Report``."""
    from model import ContrastGeo, ContrastGeoConfig, EncoderConfig
    from refit.job import refit
    from refit.labels import LabelStore
    from refit.publish import serve

    split = task.split(0)
    locations = served_locations(
        task.catalogue.locations, split.locations, served, new, whole_catalogue
    )
    base = ContrastGeo.from_config(
        ContrastGeoConfig(encoder=EncoderConfig(checkpoint=checkpoint), prompts=task.prompts)
    )
    serve(settings, base, locations)
    events = labeled_events(task, split, served, shots)
    store = LabelStore(settings.label_store)
    store.add(events)
    store.close()
    log.info("refit bench set up", labeled_posts=len(events), served_locations=len(locations))
    return refit(settings, ingest_labels=False)
