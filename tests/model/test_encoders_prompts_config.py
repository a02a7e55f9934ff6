"""Pooling, prompts and the typed config."""

import pytest
import torch
from pydantic import ValidationError

from model.config import DEFAULT_CHECKPOINT, ContrastGeoConfig, FusionConfig, PromptConfig
from model.encoders import l2_normalize, pool, resolve_checkpoint
from model.prompts import Location, PostFields, location_texts, post_text

STATES = torch.tensor(
    [[[1.0, 2.0], [3.0, 6.0], [100.0, -100.0]], [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]]
)
MASK = torch.tensor([[1, 1, 0], [1, 1, 1]])


def test_pooling_methods_respect_the_mask():
    assert pool("cls", (STATES,), MASK).tolist() == [[1.0, 2.0], [0.0, 1.0]]
    assert pool("mean", (STATES,), MASK).tolist() == [[2.0, 4.0], [2.0, 3.0]]
    assert pool("max", (STATES,), MASK).tolist() == [[3.0, 6.0], [4.0, 5.0]]
    first = torch.zeros_like(STATES)
    layers = (torch.full_like(STATES, 7.0), first, STATES)  # embeddings, layer 1, layer 2
    assert pool("first-last-avg", layers, MASK).tolist() == [[1.0, 2.0], [1.0, 1.5]]


def test_l2_normalize():
    x = l2_normalize(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
    torch.testing.assert_close(x, torch.tensor([[0.6, 0.8], [0.0, 0.0]]))


def test_default_checkpoint_resolves_to_the_bundled_model():
    path = resolve_checkpoint(DEFAULT_CHECKPOINT)
    assert path.endswith("model")
    assert resolve_checkpoint("/some/folder") == "/some/folder"


def test_location_texts_drop_empty_fields_cleanly():
    config = PromptConfig(location_templates=("{name}, {admin}, {country}", "a post from {place}"))
    assert location_texts(Location("1", "Ghent", "", "BE"), config) == [
        "Ghent, BE",
        "a post from Ghent, BE",
    ]
    memphis = Location("2", "Memphis", "Tennessee", "US")
    assert location_texts(memphis, config)[1] == "a post from Memphis, Tennessee, US"


def test_the_short_form_is_what_profiles_write_where_the_code_is_two_letters():
    config = PromptConfig(location_templates=("{short}",))
    ames = Location("1", "Ames", "Iowa", "US", admin_code="IA")
    assert location_texts(ames, config) == ["Ames, IA"]
    # GeoNames' numeric codes (and none at all) are not what anyone writes
    assert location_texts(Location("2", "Utrecht", "", "NL", admin_code="09"), config) == [
        "Utrecht"
    ]
    assert location_texts(Location("3", "Ghent", "", "BE"), config) == ["Ghent"]


def test_catalogue_locations_carry_the_admin_code_through_a_locations_file(tmp_path):
    from model.prompts import load_locations, save_locations
    from trainer.data.catalogue import build_catalogue

    places = build_catalogue(["US"], min_population=100_000, admin1=["IA"]).locations
    assert {loc.admin_code for loc in places} == {"IA"}
    path = tmp_path / "locations.jsonl"
    save_locations(path, places)
    assert load_locations(path) == places


def test_post_text_fields_order_and_text_only():
    post = PostFields(
        text="Beale Street\ntonight",
        user_location="Memphis, TN",
        user_description="",
        source="Twitter for iPhone",
    )
    config = PromptConfig(post_fields=("user_location", "text", "user_description", "source"))
    assert post_text(post, config) == (
        "location: Memphis, TN | Beale Street tonight | source: Twitter for iPhone"
    )
    assert post_text(post, PromptConfig(post_fields=("text",))) == "Beale Street tonight"
    assert post_text("  plain   string ", config) == "plain string"


def test_post_text_accepts_any_object_with_the_fields():
    class Tweet:
        text = "hi"
        user_location = "Ghent"

    assert post_text(Tweet(), PromptConfig()) == "hi | location: Ghent"


def test_config_json_round_trip_and_fingerprint():
    config = ContrastGeoConfig(fusion=FusionConfig(strategy="token"), temperature=0.1)
    again = ContrastGeoConfig.from_json(config.to_json())
    assert again == config
    assert again.fingerprint() == config.fingerprint()
    assert ContrastGeoConfig().fingerprint() != config.fingerprint()


@pytest.mark.parametrize(
    "bad",
    [
        {"fusion": {"strategy": "late"}},
        {"encoder": {"pooling": "median"}},
        {"prompts": {"location_templates": ["{city}"]}},
        {"prompts": {"post_fields": ["text", "text"]}},
        {"temperature": 0},
        {"unknown_key": 1},
    ],
)
def test_config_rejects_nonsense(bad):
    with pytest.raises(ValidationError):
        ContrastGeoConfig.model_validate(bad)


def test_the_post_field_lists_agree():
    """The fields a post template may name (``PostField``), the model's post type
    (``PostFields``), their labels in the composed text (``FIELD_LABELS``) and the
    service's ``schemas.Post`` are four lists of one set: a field added to one and not the
    others would be silently empty or unlabeled."""
    import dataclasses
    import typing

    from model.config import PostField
    from model.prompts import FIELD_LABELS, PostFields
    from schemas.posts import Post

    fields = set(typing.get_args(PostField))
    assert {f.name for f in dataclasses.fields(PostFields)} == fields
    assert set(FIELD_LABELS) | {"text"} == fields
    assert fields <= set(Post.model_fields)
