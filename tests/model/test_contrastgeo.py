"""The composed model on tiny random BERTs: fusions, masking, gradients, save/load, rerank."""

import pytest
import torch

from model import EncoderConfig, FusionConfig, PostFields, RerankConfig
from model.contrastgeo import ContrastGeo
from model.losses import match_labels, tlm_loss
from tests.support.data import LOCATIONS

STRATEGIES = ["vector", "cross-attention", "token"]
POSTS = [
    PostFields("Beale Street blues tonight", user_location="Memphis"),
    "hot chicken on broadway",
    PostFields("a long post about waffles, canals and bikes in the rain", user_description="x"),
]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_match_logits_shape(make_model, strategy):
    model = make_model(strategy)
    posts = model.encode_posts(POSTS)
    locs = model.encode_locations(LOCATIONS)
    candidates = torch.tensor([[0, 1], [2, 3], [4, 0]])
    assert model.match_logits(posts, locs, candidates).shape == (3, 2, 2)
    assert posts.embeddings.shape == (3, 32)
    assert locs.embeddings.shape == (5, 32)
    torch.testing.assert_close(locs.embeddings.norm(dim=1), torch.ones(5))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_padding_does_not_change_outputs(make_model, strategy):
    """A post scored alone and in a batch with a much longer one (more padding) gets the
    same embedding and matching scores: masks are applied everywhere."""
    model = make_model(strategy).eval()
    short = ["hi memphis"]
    long = ["hi memphis", "a much much longer post " * 5]
    with torch.no_grad():
        alone = model.match(short, LOCATIONS)
        padded = model.match(long, LOCATIONS)[:1]
        torch.testing.assert_close(alone, padded, atol=1e-5, rtol=1e-5)
        e_alone = model.encode_posts(short).embeddings
        e_padded = model.encode_posts(long).embeddings[:1]
        torch.testing.assert_close(e_alone, e_padded, atol=1e-5, rtol=1e-5)


def test_cross_attention_ignores_masked_location_tokens(make_model):
    model = make_model("cross-attention").eval()
    posts = model.encode_posts(POSTS[:2])
    locs = model.encode_locations(LOCATIONS)
    candidates = torch.tensor([[0, 1], [1, 2]])
    base = model.match_logits(posts, locs, candidates)
    locs.states[locs.mask == 0] = 1e4  # garbage where the mask says "padding"
    torch.testing.assert_close(model.match_logits(posts, locs, candidates), base)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_tlm_gradients_reach_the_encoder(make_model, strategy):
    model = make_model(strategy).train()
    posts = model.encode_posts(POSTS)
    locs = model.encode_locations(LOCATIONS)
    candidates = torch.tensor([[0, 1, 2], [1, 0, 3], [4, 2, 1]])
    loss = tlm_loss(model.match_logits(posts, locs, candidates), match_labels(3, 2))
    loss.backward()
    word_emb = model.post_encoder.backbone.embeddings.word_embeddings.weight
    assert word_emb.grad is not None and word_emb.grad.abs().sum() > 0
    assert model.matching_head.linear.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("strategy", ["vector", "cross-attention"])
def test_vector_fusion_variants(make_model, strategy):
    for combine in ("sum", "concat", "interact"):
        for encoder in ("mlp", "transformer"):
            fusion = FusionConfig(
                strategy="vector", vector_combine=combine, vector_encoder=encoder, heads=2
            )
            model = make_model(fusion=fusion)
            assert model.match(POSTS, LOCATIONS).shape == (3, 5)


@pytest.mark.parametrize(
    "strategy,encoder",
    [
        ("vector", EncoderConfig(checkpoint="unused")),
        ("cross-attention", EncoderConfig(checkpoint="unused", shared=False, pooling="cls")),
        ("token", EncoderConfig(checkpoint="unused", projection_dim=16, pooling="max")),
        ("vector", EncoderConfig(checkpoint="unused", pooling="first-last-avg")),
    ],
)
def test_save_load_round_trip_is_identical(make_model, tmp_path, strategy, encoder):
    model = make_model(strategy, encoder=encoder, fusion=FusionConfig(strategy=strategy, heads=2))
    with torch.no_grad():
        model.logit_scale.fill_(2.5)  # a trained value must survive too
    before = model.predict(POSTS, LOCATIONS, k=3)
    model.save(tmp_path / "m")
    loaded = ContrastGeo.load(tmp_path / "m")
    after = loaded.predict(POSTS, LOCATIONS, k=3)
    assert loaded.config == model.config
    assert torch.equal(before.indices, after.indices)
    assert torch.equal(before.scores, after.scores)
    assert torch.equal(model.embed_posts(POSTS), loaded.embed_posts(POSTS))
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir()), "temp folder left"


def test_load_refuses_an_incomplete_folder(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="missing"):
        ContrastGeo.load(tmp_path)


def test_separate_encoders_have_separate_weights(make_model):
    model = make_model(encoder=EncoderConfig(checkpoint="unused", shared=False))
    assert model.location_encoder is not None
    assert model.encoder_for_locations is not model.post_encoder
    shared = make_model()
    assert shared.location_encoder is None and shared.encoder_for_locations is shared.post_encoder


def test_a_locked_location_encoder_is_a_frozen_copy_and_survives_save_and_load(
    make_model, tmp_path
):
    model = make_model("vector").eval()
    before = model.embed_locations(LOCATIONS)
    model.lock_location_encoder()
    assert model.location_encoder is not model.post_encoder
    assert model.location_encoder_locked and not model.config.encoder.shared
    assert all(p.requires_grad for p in model.post_encoder.parameters())
    assert torch.equal(model.embed_locations(LOCATIONS), before)
    with torch.no_grad():  # the post side moves, the locations do not
        for param in model.post_encoder.parameters():
            param.mul_(1.1)
    assert torch.equal(model.embed_locations(LOCATIONS), before)
    model.save(tmp_path / "m")
    loaded = ContrastGeo.load(tmp_path / "m")
    assert not loaded.config.encoder.shared
    assert torch.equal(loaded.embed_locations(LOCATIONS), before)
    assert torch.equal(loaded.embed_posts(POSTS), model.embed_posts(POSTS))
    assert not make_model("vector").location_encoder_locked


def test_predict_matches_unbatched_rank(make_model):
    model = make_model("cross-attention").eval()
    batched = model.predict(POSTS, LOCATIONS, k=4, batch_size=1)
    with torch.no_grad():
        direct = model.rank(model.encode_posts(POSTS), model.encode_locations(LOCATIONS), k=4)
    # same candidates with the same scores (a random tiny model produces exact ties, whose
    # order may differ between batch layouts)
    torch.testing.assert_close(batched.scores, direct.scores)
    assert batched.indices.sort(dim=1).values.equal(direct.indices.sort(dim=1).values)
    by_index = batched.scores.gather(1, batched.indices.argsort(dim=1))
    torch.testing.assert_close(by_index, direct.scores.gather(1, direct.indices.argsort(dim=1)))


def test_batched_location_encodings_come_back_in_input_order(make_model):
    """Length-sorted batches (names of different lengths, batches of 2) give each
    location's encoding in its own row, token states padded to the longest."""
    model = make_model("token").eval()
    batched = model.encode_locations_batched(LOCATIONS, batch_size=2)
    with torch.no_grad():
        direct = model.encode_locations(LOCATIONS)
    assert batched.texts == direct.texts
    torch.testing.assert_close(batched.embeddings, direct.embeddings)
    width = direct.states.shape[1]
    assert torch.equal(batched.mask[:, :width], direct.mask)
    kept = direct.mask.bool()
    torch.testing.assert_close(batched.states[:, :width][kept], direct.states[kept])


@pytest.mark.parametrize("weight", [0.0, 0.25, 0.5, 1.0])
def test_a_tlc_ranking_reranked_by_w_is_the_ranking_with_w(make_model, weight):
    from model.contrastgeo import rerank
    from trainer.train import set_rerank_weight

    model = make_model("vector").eval()
    torch.nn.init.normal_(model.matching_head.linear.weight, std=1.0)  # a head with opinions
    posts, locations = model.encode_posts(POSTS), model.encode_locations(LOCATIONS)
    with torch.no_grad():
        set_rerank_weight(model, 0.0)
        by_tlc = model.rank(posts, locations, k=4)
        set_rerank_weight(model, weight)
        direct = model.rank(posts, locations, k=4)
    again = rerank(by_tlc, weight)
    for name in ("indices", "scores", "tlc_logprob", "tlm_logprob"):
        assert torch.equal(getattr(again, name), getattr(direct, name)), name


def _disagreeing_head(model, monkeypatch):
    """Matching head that prefers the candidate TLC ranks *last* among the top k."""

    def fake_match_logits(posts, locations, candidates):
        k = candidates.shape[1]
        prefer_last = torch.linspace(-3.0, 3.0, k).expand(candidates.shape)
        return torch.stack([torch.zeros_like(prefer_last), prefer_last], dim=-1)

    monkeypatch.setattr(model, "match_logits", fake_match_logits)


def test_predict_rerank_changes_order_when_tlm_disagrees(make_model, monkeypatch):
    model = make_model(rerank=RerankConfig(k=3, tlm_weight=1.0))
    tlc_only = make_model(rerank=RerankConfig(k=3, tlm_weight=0.0))
    _disagreeing_head(model, monkeypatch)
    _disagreeing_head(tlc_only, monkeypatch)
    ranked = model.predict(POSTS, LOCATIONS)
    by_tlc = tlc_only.predict(POSTS, LOCATIONS)
    # TLC order of the top 3 is kept with weight 0 and reversed by the disagreeing head
    assert torch.equal(ranked.indices, by_tlc.indices.flip(1))
    assert not torch.equal(ranked.indices[:, 0], by_tlc.indices[:, 0])
    # tlc log-probabilities are sorted descending in the TLC-only ranking
    assert (by_tlc.tlc_logprob[:, :-1] >= by_tlc.tlc_logprob[:, 1:]).all()


def test_rerank_score_is_the_documented_weighted_sum(make_model):
    model = make_model(rerank=RerankConfig(k=4, tlm_weight=0.3))
    r = model.predict(POSTS, LOCATIONS)
    torch.testing.assert_close(r.scores, 0.7 * r.tlc_logprob + 0.3 * r.tlm_logprob)
    assert (r.scores[:, :-1] >= r.scores[:, 1:]).all()


def test_k_larger_than_locations_is_clamped(make_model):
    assert make_model().predict(POSTS, LOCATIONS, k=50).indices.shape == (3, 5)


def test_temperature_learnable_or_fixed(make_model):
    assert make_model().logit_scale.requires_grad
    fixed = make_model(learnable_temperature=False, temperature=0.1)
    assert not fixed.logit_scale.requires_grad
    assert fixed.inverse_temperature().item() == pytest.approx(10.0)


def test_empty_input_is_a_clear_error(make_model):
    model = make_model()
    with pytest.raises(ValueError, match="empty"):
        model.predict([], LOCATIONS)
    with pytest.raises(ValueError, match="empty"):
        model.embed_locations([])
