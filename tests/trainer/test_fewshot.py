"""The few-shot protocol: no user or text leakage, nested shots, bots dropped, seeded."""

import numpy as np
import pytest

from schemas.posts import Post
from tests.support.data import shared_data
from trainer.data.fewshot import (
    FewShotConfig,
    bot_mask,
    make_catalogue_split,
    make_split,
    normalized_text,
)
from trainer.data.readers import Record


def _synthetic(n_locations=6, users_per_location=12, posts_per_user=4, seed=0):
    rng = np.random.default_rng(seed)
    records, labels = [], []
    for loc in range(n_locations):
        for u in range(users_per_location):
            for p in range(posts_per_user):
                words = " ".join(rng.choice(["sun", "rain", "bus", "tea", "dog"], 4))
                text = f"loc{loc} user{u} post{p} {words}"
                records.append(Record(Post(id=f"{loc}-{u}-{p}", text=text, user_id=f"u{loc}-{u}")))
                labels.append(loc)
    return records, np.array(labels)


def _check_no_leakage(records, labels, split):
    groups = {
        "test": split.test,
        "dev": split.dev,
        "train": [i for loc in split.location_ids for i in split.train_pool.get(loc, [])],
    }
    users = {name: {records[i].post.user_id for i in idx} for name, idx in groups.items()}
    texts = {
        name: {normalized_text(records[i].post.text) for i in idx} for name, idx in groups.items()
    }
    for a, b in [("test", "dev"), ("test", "train"), ("dev", "train")]:
        if split.user_disjoint:
            assert not users[a] & users[b], f"a user is in both {a} and {b}"
        assert not texts[a] & texts[b], f"a text is in both {a} and {b}"
    for name, idx in groups.items():
        assert all(int(labels[i]) in split.location_ids for i in idx), name


def test_synthetic_split_has_no_leakage_and_nested_shots():
    records, labels = _synthetic()
    split = make_split(records, labels, FewShotConfig(shots=(1, 2, 4, 8), min_posts=20))
    assert split.user_disjoint and len(split.location_ids) == 6
    _check_no_leakage(records, labels, split)
    for k in (1, 2, 4):
        assert set(split.shots(k)) < set(split.shots(2 * k))
        assert len(split.shots(k)) == 6 * k
    # round robin: the 4 shots of a location come from 4 different users
    for loc in split.location_ids:
        assert len({records[i].post.user_id for i in split.train_pool[loc][:4]}) == 4


def test_split_is_reproducible_and_seed_dependent():
    records, labels = _synthetic()
    config = FewShotConfig(shots=(1, 4), min_posts=20)
    a, b = make_split(records, labels, config), make_split(records, labels, config)
    assert a.test == b.test and a.shots(4) == b.shots(4)
    c = make_split(records, labels, FewShotConfig(shots=(1, 4), min_posts=20, seed=1))
    assert c.test != a.test


def test_without_user_ids_split_by_post_and_cap_locations():
    records, labels = _synthetic()
    anonymous = [Record(r.post.model_copy(update={"user_id": ""})) for r in records]
    split = make_split(
        anonymous, labels, FewShotConfig(shots=(1, 2), min_posts=20, max_locations=3)
    )
    assert not split.user_disjoint and len(split.location_ids) == 3
    _check_no_leakage(anonymous, labels, split)


def test_bot_rules():
    job = Record(Post(id="j", text="Nurse wanted! #hiring #CareerArc", user_id="hr"))
    station = [
        Record(Post(id=f"w{i}", text=f"Temp {i},{i} C Hum {50 + i}% Wind {i} m/s", user_id="meteo"))
        for i in range(12)
    ]
    person = [
        Record(Post(id=f"p{i}", text=f"lunch number {i} was {w}", user_id="amy"))
        for i, w in enumerate(["good", "bad", "ok"] * 4)
    ]
    # templates: "lunch number # was good" etc. -> 3 templates, top share 1/3 < 0.5
    is_bot, reasons = bot_mask([job, *station, *person])
    assert is_bot[0] and is_bot[1:13].all() and not is_bot[13:].any()
    assert reasons == {"job-ad": 1, "templated": 12}


def test_duplicates_and_unlabeled_are_reported():
    records, labels = _synthetic(n_locations=2)
    records.append(Record(Post(id="dup", text=records[0].post.text.upper(), user_id="x")))
    records.append(Record(Post(id="nolabel", text="somewhere", user_id="y")))
    labels = np.append(labels, [0, -1])
    split = make_split(records, labels, FewShotConfig(shots=(1,), min_posts=10))
    assert split.report["dropped:duplicate-text"] == 1
    assert split.report["dropped:unlabeled"] == 1


@pytest.mark.slow
def test_real_us_south_split_is_user_disjoint():
    from trainer.data.catalogue import build_catalogue, label_records
    from trainer.data.readers import read_dataset

    data = read_dataset(shared_data("us-south-tweets", "tweets.jsonl.gz"), "twitter-jsonl")
    catalogue = build_catalogue(["US"], min_population=5000)
    labels = label_records(data.records, catalogue).labels
    split = make_split(data.records, labels, FewShotConfig(max_locations=20))
    assert split.user_disjoint and len(split.location_ids) == 20
    _check_no_leakage(data.records, labels, split)
    assert split.report["dropped:bot-job-ad"] > 100  # #hiring/#CareerArc are frequent here
    names = [catalogue.locations[i].name for i in split.location_ids]
    assert names[0] == "Memphis"


def test_report_counts_every_dropped_record_once():
    records, labels = _synthetic(n_locations=2)
    records.append(Record(Post(id="ad", text="Nurse wanted #hiring", user_id="hr")))
    records.append(Record(Post(id="ad2", text="Cook wanted #hiring", user_id="hr2")))
    labels = np.append(labels, [-1, 0])  # an unlabeled job ad and a labeled one
    split = make_split(records, labels, FewShotConfig(shots=(1,), min_posts=10))
    assert split.report["dropped:unlabeled"] == 1
    assert split.report["dropped:bot-job-ad"] == 1  # the unlabeled ad is not counted twice


def test_the_catalogue_split_keeps_every_place_and_every_post_of_the_test_users():
    # 40 places; place p has p % 4 + 1 users of 3 posts: many places have a single user,
    # who lands on one side only, so some test posts come from places without a training
    # label, and some places have training labels but no test post
    records, labels = [], []
    for place in range(40):
        for u in range(place % 4 + 1):
            for p in range(3):
                text = f"place{place} user{u} post{p}"
                user = f"u{place}-{u}"
                records.append(Record(Post(id=f"{place}-{u}-{p}", text=text, user_id=user)))
                labels.append(place)
    labels = np.array(labels)
    config = FewShotConfig(shots=(1, 2, "all"), protocol="catalogue", max_dev_posts=10)
    split = make_catalogue_split(records, labels, 50, config)
    assert split.location_ids == list(range(50))  # every catalogue place, even unlabeled
    _check_no_leakage(records, labels, split)
    test_users = {records[i].post.user_id for i in split.test}
    assert sorted(split.test) == [i for i, r in enumerate(records) if r.post.user_id in test_users]
    assert len(split.dev) == 10
    trained = set(split.train_pool)
    assert any(int(labels[i]) not in trained for i in split.test)  # gold without a label
    # k caps the labels per place; "all" is the whole training pool
    everything = [i for posts in split.train_pool.values() for i in posts]
    assert sorted(split.shots("all")) == sorted(everything)
    assert set(split.shots(1)) < set(split.shots(2)) <= set(split.shots("all"))
    assert len(split.shots(1)) == len(trained)
    # seeded
    again = make_catalogue_split(records, labels, 50, config)
    assert again.test == split.test and again.train_pool == split.train_pool


def test_shots_all_is_the_whole_train_pool_of_the_places_the_numeric_shots_keep():
    records, labels = _synthetic(n_locations=4, users_per_location=24)
    # one sparse place: too few training posts for 16 shots, enough for 1
    sparse = [i for i, label in enumerate(labels) if label == 3][:24]
    keep = [i for i, label in enumerate(labels) if label != 3 or i in sparse]
    records, labels = [records[i] for i in keep], labels[keep]
    config = FewShotConfig(shots=(1, 16), min_posts=20)
    numeric = make_split(records, labels, config)
    split = make_split(records, labels, FewShotConfig(shots=(1, 16, "all"), min_posts=20))
    assert split.location_ids == numeric.location_ids == [0, 1, 2]  # "all" asks no more
    assert split.train_pool == numeric.train_pool and split.test == numeric.test
    everything = [i for loc in split.location_ids for i in split.train_pool[loc]]
    assert split.shots("all") == everything and len(everything) > 3 * 16
    assert set(split.shots(16)) < set(split.shots("all"))
    # "all" alone asks for one training post per place: the sparse place stays
    alone = make_split(records, labels, FewShotConfig(shots=("all",), min_posts=20))
    assert sorted(alone.location_ids) == [0, 1, 2, 3]


def test_unknown_protocol():
    with pytest.raises(ValueError, match="unknown protocol"):
        FewShotConfig(protocol="everything")


@pytest.mark.slow
def test_real_us_south_catalogue_split():
    from trainer.data.catalogue import build_catalogue, label_records
    from trainer.data.readers import read_dataset

    data = read_dataset(shared_data("us-south-tweets", "tweets.jsonl.gz"), "twitter-jsonl")
    catalogue = build_catalogue(["US"], min_population=5000)
    labels = label_records(data.records, catalogue).labels
    config = FewShotConfig(shots=(1, "all"), protocol="catalogue")
    split = make_catalogue_split(data.records, labels, len(catalogue.locations), config)
    assert split.user_disjoint and len(split.location_ids) == len(catalogue.locations) > 5000
    _check_no_leakage(data.records, labels, split)
    assert len(split.test) > 1000 and len(split.dev) == config.max_dev_posts
    trained = set(split.train_pool)
    unseen = [i for i in split.test if int(labels[i]) not in trained]
    assert 0 < len(unseen) < 0.5 * len(split.test)  # the long tail, but not most posts
    assert split.report["dropped:bot-job-ad"] > 100
