"""Readers on real lines of each shared file and on user files; catalogue and labeling."""

import gzip
import itertools
import json

import numpy as np
import pytest

from schemas.posts import Place
from tests.support.data import shared_data
from trainer.data.catalogue import build_catalogue, haversine_km, label_records
from trainer.data.readers import FORMATS, read_dataset


def _head(src, dst, n, gz=False):
    """Copy the first n lines of a real file into a temp file (never into the repo)."""
    opener = gzip.open if src.suffix == ".gz" else open
    with opener(src, "rt", encoding="utf-8") as f:
        lines = list(itertools.islice(f, n))
    (gzip.open if gz else open)(dst, "wt", encoding="utf-8").writelines(lines)
    return lines


def test_twitter_jsonl_real_lines(tmp_path):
    src = shared_data("us-south-tweets", "tweets.jsonl.gz")
    lines = _head(src, tmp_path / "t.jsonl.gz", 200, gz=True)
    data = read_dataset(tmp_path / "t.jsonl.gz", "twitter-jsonl")
    assert len(data.records) == 200 and not data.skipped and data.has_users
    assert data.records[5].post.id == json.loads(lines[5])["id_str"]


def test_nl_tsv_real_lines_are_lon_then_lat(tmp_path):
    src = shared_data("nl-tweets", "25maart.txt")
    lines = _head(src, tmp_path / "nl.txt", 100)
    data = read_dataset(tmp_path / "nl.txt", "nl-tsv")
    assert len(data.records) == 100
    text, lonlat, user, _ = lines[0].rstrip("\n").split("\t")
    first = data.records[0]
    lon, lat = map(float, lonlat.split())
    assert first.point == (lat, lon) and 50 < lat < 54 and 2 < lon < 8  # NL/BE
    assert (first.post.text, first.post.user_id) == (text, user)
    assert first.post.created_at.utcoffset().total_seconds() == 3600  # CET


def test_latlon_tsv_real_lines(tmp_path):
    src = shared_data("smg2020", "SMG2020_bcms_dev.txt")
    lines = _head(src, tmp_path / "smg.txt", 100)
    data = read_dataset(tmp_path / "smg.txt", "latlon-tsv")
    assert len(data.records) == 100 and not data.has_users
    lat, lon, text = lines[0].rstrip("\n").split("\t", 2)
    assert data.records[0].point == (float(lat), float(lon))
    assert data.records[0].post.text == text.strip()


def test_user_jsonl_and_csv_with_bad_lines_counted(tmp_path):
    (tmp_path / "p.jsonl").write_text(
        '{"text": "a", "lat": 35.1, "lon": -90.0, "user_id": "u1"}\n'
        '{"text": "b", "location_id": "4641239", "user_location": "Memphis"}\n'
        "not json\n"
        '{"text": "", "lat": 1, "lon": 2}\n'
        '{"text": "c"}\n'
        '{"text": "d", "lat": 999, "lon": 0}\n'
    )
    data = read_dataset(tmp_path / "p.jsonl", "jsonl")
    assert [r.post.text for r in data.records] == ["a", "b"]
    assert data.records[1].location_id == "4641239"
    assert data.records[1].post.user_location == "Memphis"
    assert data.skipped == {"not-json": 1, "empty-text": 1, "no-label": 1, "bad-coordinates": 1}
    (tmp_path / "p.csv").write_text('id,text,lat,lon\n7,"hi, there",52.09,5.12\n8,,1,1\n')
    data = read_dataset(tmp_path / "p.csv", "csv")
    assert [(r.post.id, r.post.text) for r in data.records] == [("7", "hi, there")]
    assert data.skipped == {"empty-text": 1}


def test_unknown_format_and_missing_path_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="choose one of"):
        read_dataset(tmp_path, "xml")
    with pytest.raises(FileNotFoundError, match="no data"):
        read_dataset(tmp_path / "nope*.txt", "jsonl")
    assert set(FORMATS) == {"twitter-jsonl", "latlon-tsv", "nl-tsv", "jsonl", "csv"}


def test_haversine_against_exact_spherical_distances():
    import math

    r = 6371.0088
    assert haversine_km(0, 0, 1, 0) == pytest.approx(math.pi * r / 180)  # one degree
    assert haversine_km(0, 0, 0, 90) == pytest.approx(math.pi * r / 2)  # quarter equator
    assert haversine_km(90, 0, -90, 0) == pytest.approx(math.pi * r)  # pole to pole
    assert haversine_km(35.1, -90.0, 35.1, -90.0) == 0
    # broadcasting: 2 points x 3 points
    assert haversine_km([[0], [1]], [[0], [0]], [[0, 1, 2]], [[0, 0, 0]]).shape == (2, 3)


@pytest.fixture(scope="module")
def serbia():
    return build_catalogue(["RS"], min_population=5000)


def test_districts_merge_into_their_city(serbia):
    names = [loc.name for loc in serbia.locations]
    assert "Belgrade" in names and "Zemun" not in names  # Zemun: 6 km, 8x smaller
    assert "Pančevo" in names  # its own city, 14 km away
    # a point in Zemun snaps to Belgrade
    idx = serbia.snap(np.array([44.8458]), np.array([20.40116]), 25.0)[0]
    assert serbia.locations[idx].name == "Belgrade"


def test_snap_respects_the_radius(serbia):
    far = serbia.snap(np.array([0.0]), np.array([0.0]), 25.0)
    assert far.tolist() == [-1]


def test_label_records_by_gps_place_and_reason(tmp_path):
    catalogue = build_catalogue(["US"], min_population=15000)
    memphis_box = Place(
        name="Memphis",
        full_name="Memphis, TN",
        place_type="city",
        country_code="US",
        bbox=(-90.14, 34.99, -89.71, 35.27),
    )
    state_box = Place(name="Tennessee", place_type="admin", bbox=(-90.3, 34.9, -81.6, 36.7))
    from schemas.posts import Coordinates, Post
    from trainer.data.readers import Record

    records = [
        Record(Post(id="1", text="x", coordinates=Coordinates(lat=35.15, lon=-90.05))),
        Record(Post(id="2", text="x", place=memphis_box)),
        Record(Post(id="3", text="x", place=state_box)),
        Record(Post(id="4", text="x")),
        Record(Post(id="5", text="x", coordinates=Coordinates(lat=0, lon=0))),
    ]
    result = label_records(records, catalogue)
    names = [catalogue.locations[i].name if i >= 0 else None for i in result.labels]
    assert names == ["Memphis", "Memphis", None, None, None]
    assert catalogue.locations[result.labels[0]].admin == "Tennessee"
    assert result.report == {
        "gps": 1,
        "place": 1,
        "unlabeled:admin-place-too-coarse": 1,
        "unlabeled:no-location": 1,
        "unlabeled:gps-outside-radius": 1,
    }
