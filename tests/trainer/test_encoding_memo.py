"""The encoding memo returns exactly what encoding again would, misses on any change of
weights, and spares fit the encodings it repeated (bank refresh and dev evaluation after
the same step, α = 0 and step 0, the untrained model's candidates and dev posts across
fits, one catalogue encoding for the embeddings and the full encodings)."""

import pytest
import torch

from tests.support.data import LOCATIONS
from tests.trainer.test_train import DEV, QUICK, TRAIN, count_calls
from trainer.encoding_memo import EncodingMemo
from trainer.train import TrainConfig, fit


def scale_weights(module: torch.nn.Module) -> None:
    """New weights for ``module``: every parameter × 1.1."""
    with torch.no_grad():
        for param in module.parameters():
            param.mul_(1.1)


def test_a_hit_is_what_encoding_again_gives_and_a_new_weight_misses(make_model):
    model, memo = make_model("vector").eval(), EncodingMemo()
    first = memo.embeddings(model, LOCATIONS)
    assert torch.equal(memo.embeddings(model, LOCATIONS), model.embed_locations(LOCATIONS))
    assert (memo.hits, memo.misses) == (1, 1)
    # the same weights in another instance hit; the full encodings are their own kind
    assert memo.embeddings(make_model("vector"), LOCATIONS) is first
    encoded = memo.encoded(model, LOCATIONS)
    assert torch.equal(encoded.states, model.encode_locations_batched(LOCATIONS).states)
    assert memo.misses == 2
    scale_weights(model.encoder_for_locations)
    changed = memo.embeddings(model, LOCATIONS)
    assert memo.misses == 3
    assert torch.equal(changed, model.embed_locations(LOCATIONS))
    assert not torch.equal(changed, first)
    # other candidates (other prompt texts) miss too
    memo.embeddings(model, LOCATIONS[:-1])
    assert memo.misses == 4
    # a model whose locations get their own locked copy of the same weights hits
    locked = make_model("vector")
    locked.lock_location_encoder()
    assert memo.embeddings(locked, LOCATIONS) is encoded.embeddings  # the full encodings
    assert memo.misses == 4


def test_least_recently_used_entries_are_dropped(make_model):
    memo = EncodingMemo(size=2)
    model = make_model("vector")
    memo.embeddings(model, LOCATIONS)
    memo.embeddings(model, LOCATIONS[:3])
    memo.embeddings(model, LOCATIONS)  # touched: LOCATIONS[:3] is now the oldest
    memo.embeddings(model, LOCATIONS[:2])
    memo.embeddings(model, LOCATIONS)
    assert (memo.hits, memo.misses) == (2, 3)
    memo.embeddings(model, LOCATIONS[:3])
    assert memo.misses == 4
    with pytest.raises(ValueError, match="sizes"):
        EncodingMemo(size=0)
    with pytest.raises(ValueError, match="sizes"):
        EncodingMemo(post_size=0)


def test_fit_encodes_the_candidates_once_per_weights_and_shares_the_untrained_model(
    make_model, monkeypatch
):
    """A bank refreshed on the dev evaluations' steps, α = 0 (the untrained weights) and
    a second fit's step 0 are all hits; the bank's own rows never leak into the memo."""
    model = make_model("vector")
    memo = EncodingMemo(size=16)
    untrained = memo.embeddings(model, LOCATIONS).clone()
    calls = count_calls(monkeypatch, type(model), "embed_locations")
    posts = count_calls(monkeypatch, type(model), "embed_posts")
    config = TrainConfig(
        **{**QUICK, "steps": 12, "patience": 10},
        location_encoder="trained",  # every step changes the locations' weights
        bank_above=0,
        bank_refresh=6,
        interpolation=(0.0, 0.5, 1.0),
        rerank_weights=None,
    )
    result = fit(model, TRAIN, LOCATIONS, config, dev=DEV, memo=memo)
    assert [row["step"] for row in result.history] == [0, 6, 12]
    assert result.alpha in (0.5, 1.0)  # the tiny model learns: α = 0 is evaluated, not kept
    # weights encoded: step 6 and step 12 (dev), α = 0.5; step 0 and α = 0 were hits,
    # and the bank's refreshes at steps 0 and 6 reused the dev evaluations'
    assert len(calls) == 3
    assert len(posts) == 4  # the dev posts at the same weights: step 0 is α = 0
    assert torch.equal(memo.embeddings(make_model("vector"), LOCATIONS), untrained)
    assert len(calls) == 3
    reseeded = config.model_copy(update={"seed": 1})  # other batches, other weights
    fit(make_model("vector"), TRAIN, LOCATIONS, reseeded, dev=DEV, memo=memo)
    assert len(calls) == 6  # the second fit's step 0 and α = 0 were hits too
    assert len(posts) == 7  # and its step 0's dev posts


def test_post_embeddings_hit_on_the_same_post_weights_and_texts_only(make_model):
    model, memo = make_model("vector").eval(), EncodingMemo()
    texts = [ex.post for ex in DEV]
    first = memo.posts(model, texts)
    assert torch.equal(first, model.embed_posts(texts))
    assert memo.posts(make_model("vector"), texts) is first  # same weights, other instance
    assert memo.misses == 1
    memo.posts(model, texts[:-1])  # other texts
    assert memo.misses == 2
    model.lock_location_encoder()  # the location side is not part of the posts' key
    scale_weights(model.location_encoder)
    assert memo.posts(model, texts) is first
    scale_weights(model.post_encoder)
    changed = memo.posts(model, texts)
    assert memo.misses == 3
    assert torch.equal(changed, model.embed_posts(texts))


def test_one_catalogue_encoding_serves_the_embeddings_too(make_model):
    """The full encodings (with token states) hold the embeddings: once they are there,
    asking for the embeddings at the same weights encodes nothing."""
    model, memo = make_model("vector").eval(), EncodingMemo()
    encoded = memo.encoded(model, LOCATIONS)
    assert memo.embeddings(model, LOCATIONS) is encoded.embeddings
    assert (memo.hits, memo.misses) == (1, 1)
    torch.testing.assert_close(encoded.embeddings, model.embed_locations(LOCATIONS))
