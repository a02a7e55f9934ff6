"""The serving path gives the PyTorch model's answers: ONNX graphs vs PyTorch on a tiny
random model (fp32 to 1e-4), the predictor's top-1 vs ``ContrastGeo.predict``, int8
export, manifest checks, and a location added at run time."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.export import export_onnx
from model.manifest import verify_export
from model.prompts import Location, PostFields
from stream.index import ALIAS, EdgeIndex, ServerIndex
from stream.predictor import Predictor
from stream.prototypes import add_locations, build_collection
from stream.runtime import CPU, MICRO_BATCH, OnnxModel
from stream.tokenizer import Tokenizer
from tests.support.data import LOCATIONS

POSTS = [
    "hello from memphis",
    PostFields("going to lunch", user_location="nashville, tennessee"),
    "rain in ghent again",
    PostFields("back in split", user_location="split"),
    "utrecht",
    "a post with words the tiny vocabulary spells out letter by letter, 123!",
]


@pytest.fixture
def exported(make_model, tmp_path):
    model = make_model("vector").eval()
    manifest = export_onnx(model, tmp_path / "export", locations=LOCATIONS)
    return model, tmp_path / "export", manifest


def test_fp32_graphs_match_pytorch(exported):
    model, folder, manifest = exported
    onnx = OnnxModel(folder, precision="fp32", batch_size=4)
    assert onnx.precision == "fp32" and manifest["opset"] == 17
    post = onnx.embed_posts(POSTS)
    np.testing.assert_allclose(post, model.embed_posts(POSTS).numpy(), atol=1e-4)
    locs = onnx.embed_locations(LOCATIONS)
    np.testing.assert_allclose(locs, model.embed_locations(LOCATIONS).numpy(), atol=1e-4)
    candidates = torch.tensor([[0, 1, 2], [4, 3, 2], [1, 1, 0], [2, 0, 4], [3, 2, 1], [0, 4, 3]])
    with torch.no_grad():
        enc_posts, enc_locs = model.encode_posts(POSTS), model.encode_locations(LOCATIONS)
        logits = model.match_logits(enc_posts, enc_locs, candidates)
    expected = (logits[..., 1] - logits[..., 0]).numpy()
    got = onnx.match(post, locs[candidates.numpy()])
    np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_runs_of_a_few_posts_give_one_run_s_embeddings_in_input_order(exported, precision):
    """A call's texts are length-sorted and encoded in runs of ``batch_size``, each padded to
    its own longest: the embeddings and token states are the one-run ones, row for row."""
    _, folder, _ = exported
    posts = [*POSTS, *reversed(POSTS), "x"]  # lengths in no order, duplicates apart
    whole = OnnxModel(folder, precision=precision, batch_size=len(posts))
    runs = OnnxModel(folder, precision=precision, batch_size=2)
    one, one_states = whole.post_states(posts)
    split, split_states = runs.post_states(posts)
    # int8 quantizes activations per run (dynamic ranges): close, not equal
    atol = 1e-5 if precision == "fp32" else 0.05
    np.testing.assert_allclose(split, one, atol=atol)
    for a, b in zip(split_states, one_states, strict=True):
        assert a.shape == b.shape  # each text's own tokens, no padding
        np.testing.assert_allclose(a, b, atol=atol if precision == "fp32" else 0.5)
    alone = np.stack([whole.embed_posts([post])[0] for post in posts])  # no sorting at all
    np.testing.assert_allclose(split, alone, atol=atol)


def test_cpu_runs_are_small_and_the_matcher_runs_on_the_calling_thread(exported):
    _, folder, _ = exported
    onnx = OnnxModel(folder, threads=2)
    assert onnx.batch_size == MICRO_BATCH[CPU] == 8
    assert onnx.post_session.get_session_options().intra_op_num_threads == 2
    # a second thread pool would spin after each run and take the encoder's cores
    assert onnx.matcher.get_session_options().intra_op_num_threads == 1


def test_a_locked_location_encoder_is_served_by_its_own_graph(make_model, tmp_path):
    """A model trained with a locked location encoder has two encoders: the post graph and the
    location graph each give their PyTorch encoder's embeddings."""
    model = make_model("vector").eval()
    model.lock_location_encoder()
    with torch.no_grad():  # what training does: the post side moves away from the locations'
        for param in model.post_encoder.parameters():
            param.mul_(1.1)
    manifest = export_onnx(model, tmp_path / "export", locations=LOCATIONS, quantize=False)
    assert not manifest["shared_encoder"]
    onnx = OnnxModel(tmp_path / "export", precision="fp32")
    post, locs = model.embed_posts(POSTS).numpy(), model.embed_locations(LOCATIONS).numpy()
    np.testing.assert_allclose(onnx.embed_posts(POSTS), post, atol=1e-4)
    assert "location_session" not in vars(onnx)  # geotagging posts never loads it
    np.testing.assert_allclose(onnx.embed_locations(LOCATIONS), locs, atol=1e-4)


@pytest.mark.parametrize("max_length", [6, 64])
def test_worker_tokenizer_gives_transformers_ids(exported, max_length):
    """The workers tokenize without transformers (``stream.tokenizer``): same ids, same
    mask, same truncation and padding as the model's own tokenizer."""
    model, folder, _ = exported
    texts = [*(t if isinstance(t, str) else t.text for t in POSTS), "Café ☕ in Zürich!", ""]
    ours = Tokenizer(folder / "tokenizer")(texts, max_length)
    theirs = model.tokenizer(
        texts, padding=True, truncation=True, max_length=max_length, return_tensors="np"
    )
    np.testing.assert_array_equal(ours["input_ids"], theirs["input_ids"])
    np.testing.assert_array_equal(ours["attention_mask"], theirs["attention_mask"])


def test_int8_export_is_close_and_chosen_on_cpu(exported):
    model, folder, _ = exported
    onnx = OnnxModel(folder)  # auto: int8 on CPU
    assert onnx.precision == "int8"
    cosine = (onnx.embed_posts(POSTS) * model.embed_posts(POSTS).numpy()).sum(1)
    assert cosine.min() > 0.9


@pytest.mark.parametrize("backend", ["edge", "qdrant-client"])
def test_predictor_top1_equals_pytorch_predict(exported, tmp_path, backend):
    model, folder, _ = exported
    onnx = OnnxModel(folder, precision="fp32")
    if backend == "edge":
        index = EdgeIndex(tmp_path / "index")
    else:
        index = ServerIndex.connect(path=str(tmp_path / "client"))
    index.set_alias(ALIAS, build_collection(index, onnx, LOCATIONS))
    predictions = Predictor(onnx, index, k=4).predict(POSTS)
    ranking = model.predict(POSTS, LOCATIONS, k=4)
    assert [p.location.location_id for p in predictions] == [
        LOCATIONS[i].id for i in ranking.indices[:, 0].tolist()
    ]
    assert [[c.location_id for c in p.candidates] for p in predictions] == [
        [LOCATIONS[i].id for i in row] for row in ranking.indices.tolist()
    ]
    assert all(p.model_version == onnx.version for p in predictions)
    # Without the rerank stage the order is TLC's alone.
    plain = Predictor(onnx, index, k=4, rerank=False).predict(POSTS)
    tlc = (model.embed_posts(POSTS) @ model.embed_locations(LOCATIONS).T).argmax(1)
    assert [p.location.location_id for p in plain] == [LOCATIONS[i].id for i in tlc.tolist()]
    # Abstention keeps the candidates but names no location.
    shy = Predictor(onnx, index, k=4, abstain_below=1.01).predict(POSTS[:2])
    assert all(p.abstained and p.location is None and p.candidates for p in shy)
    index.close()


def test_predictor_over_a_catalogue_index_equals_pytorch(make_model, tmp_path):
    """Catalogue scale: every US place of GeoNames with population >= 20,000 (over 1,000
    real places, namesakes in several states) in Qdrant's engine; the served top k are the
    PyTorch model's."""
    from trainer.data.catalogue import build_catalogue

    locations = build_catalogue(["US"], min_population=20_000).locations
    assert len(locations) >= 1000
    assert len({loc.name for loc in locations}) < len(locations)  # namesakes, told apart
    model = make_model("vector").eval()
    export_onnx(model, tmp_path / "export", locations=locations, quantize=False)
    onnx = OnnxModel(tmp_path / "export", precision="fp32", batch_size=64)
    with EdgeIndex(tmp_path / "index") as index:
        index.set_alias(ALIAS, build_collection(index, onnx, locations))
        assert index.count(ALIAS) == len(locations)
        predictions = Predictor(onnx, index, k=5).predict(POSTS)
    ranking = model.predict(POSTS, locations, k=5)
    assert [[c.location_id for c in p.candidates] for p in predictions] == [
        [locations[i].id for i in row] for row in ranking.indices.tolist()
    ]
    for p in predictions:  # the hierarchy sums the candidates' shares
        assert p.country.name == "United States"
        assert p.country.probability == pytest.approx(1.0)
        assert 0 < p.admin.probability <= 1


def test_prototypes_mix_in_labeled_posts_only_where_there_are_some(exported):
    from model.prototypes import mix_prototypes
    from stream.prototypes import prototypes

    _, folder, _ = exported
    onnx = OnnxModel(folder, precision="fp32")
    posts = ["hello from memphis", "beale street tonight"]
    vectors, counts = prototypes(onnx, LOCATIONS, {LOCATIONS[0].id: posts}, support_weight=0.3)
    prompts = onnx.embed_locations(LOCATIONS)
    sums = np.zeros_like(prompts)
    sums[0] = onnx.embed_posts(posts).sum(0)
    np.testing.assert_allclose(vectors, mix_prototypes(prompts, sums, 0.3), atol=1e-6)
    np.testing.assert_allclose(vectors[1:], prompts[1:], atol=1e-6)
    assert counts == [2] + [0] * (len(LOCATIONS) - 1)
    assert not np.allclose(vectors[0], prompts[0], atol=1e-3)


def test_corrupt_or_half_written_export_is_refused(exported):
    _, folder, _ = exported
    verify_export(folder)
    with open(folder / "matcher.onnx", "r+b") as f:
        f.seek(100)
        f.write(b"\0\0\0\0")
    with pytest.raises(ValueError, match="checksum"):
        OnnxModel(folder)
    (folder / "matcher.onnx").unlink()
    with pytest.raises(ValueError, match="missing"):
        OnnxModel(folder)
    (folder / "manifest.json").unlink()
    with pytest.raises(ValueError, match="not an ONNX export"):
        OnnxModel(folder)


def test_token_fusion_exports_without_matcher(make_model, tmp_path):
    manifest = export_onnx(make_model("token"), tmp_path / "t", quantize=False)
    assert manifest["matcher"] is False
    assert not (tmp_path / "t" / "matcher.onnx").exists()
    onnx = OnnxModel(tmp_path / "t")
    assert onnx.precision == "fp32"  # nothing quantized to choose


def test_cross_attention_matcher_graph_matches_pytorch(make_model, tmp_path):
    import onnxruntime as ort

    model = make_model("cross-attention").eval()
    export_onnx(model, tmp_path / "x", quantize=False)
    session = ort.InferenceSession(str(tmp_path / "x" / "matcher.onnx"))
    candidates = torch.tensor([[0, 2], [1, 3], [4, 4]])
    with torch.no_grad():
        posts, locs = model.encode_posts(POSTS[:3]), model.encode_locations(LOCATIONS)
        logits = model.match_logits(posts, locs, candidates)
    cand = locs.select(candidates)
    got = session.run(
        None,
        {
            "post_states": posts.states.numpy(),
            "post_mask": posts.mask.numpy(),
            "candidate_states": cand.states.numpy(),
            "candidate_mask": cand.mask.numpy(),
        },
    )[0]
    np.testing.assert_allclose(got, (logits[..., 1] - logits[..., 0]).numpy(), atol=1e-4)


def test_prompt_only_location_added_at_run_time_is_predicted(exported, tmp_path):
    _, folder, _ = exported
    onnx = OnnxModel(folder, precision="fp32")
    index = EdgeIndex(tmp_path / "index")
    index.set_alias(ALIAS, build_collection(index, onnx, LOCATIONS[:4]))
    new = Location("99", "Utrecht", "Utrecht", "NL", 52.09, 5.12)
    add_locations(index, ALIAS, onnx, [new])
    assert index.count(ALIAS) == 5
    # The tiny model is untrained, so "names it" = the post is the location's own prompt.
    from model.prompts import location_texts

    post = location_texts(new, onnx.config.prompts)[0]
    top = Predictor(onnx, index, k=5, rerank=False).predict([post])[0]
    assert top.location.location_id == "99"
    index.close()


def test_export_leaves_the_model_in_its_mode(make_model, tmp_path):
    model = make_model("vector")
    model.train()
    export_onnx(model, tmp_path / "a", quantize=False)
    assert all(m.training for m in model.modules())
    model.eval()
    export_onnx(model, tmp_path / "b", quantize=False)
    assert not any(m.training for m in model.modules())


def test_manifests_of_either_release_are_served(exported):
    """The 1/temperature is written under its new and its former name (workers of the
    previous release read ``logit_scale``), and a manifest with only the former name, as
    earlier exports have, still loads."""
    import json

    model, folder, manifest = exported
    scale = float(model.inverse_temperature())
    assert manifest["inverse_temperature"] == manifest["logit_scale"] == pytest.approx(scale)
    old = {k: v for k, v in manifest.items() if k != "inverse_temperature"}
    (folder / "manifest.json").write_text(json.dumps(old))
    assert OnnxModel(folder).inverse_temperature == pytest.approx(scale)


def test_predictions_carry_the_most_probable_admin_area_and_country(exported, tmp_path):
    """The areas' probabilities are the candidates' combined scores normalized over the k
    candidates and summed per area; abstentions keep them."""
    _, folder, _ = exported
    onnx = OnnxModel(folder, precision="fp32")
    index = EdgeIndex(tmp_path / "index")
    index.set_alias(ALIAS, build_collection(index, onnx, LOCATIONS))
    for prediction in Predictor(onnx, index, k=5, abstain_below=1.01).predict(POSTS):
        total = sum(c.score for c in prediction.candidates)
        countries: dict[str, float] = {}
        admins: dict[str, float] = {}
        for c in prediction.candidates:
            countries[c.country] = countries.get(c.country, 0.0) + c.score / total
            if c.admin:
                admins[c.admin] = admins.get(c.admin, 0.0) + c.score / total
        assert prediction.abstained and prediction.country is not None
        assert prediction.country.probability == pytest.approx(countries[prediction.country.name])
        assert prediction.country.probability == pytest.approx(max(countries.values()))
        assert prediction.admin.probability == pytest.approx(max(admins.values()))
    index.close()
