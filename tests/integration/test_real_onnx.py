"""ONNX parity on the real all-MiniLM-L6-v2 and real tweets: embeddings to 1e-4 (fp32) and
the serving predictor's ranking equal to ``ContrastGeo.predict``."""

from __future__ import annotations

import numpy as np
import pytest

from model import ContrastGeo
from model.export import export_onnx
from stream.index import ALIAS, EdgeIndex
from stream.predictor import Predictor
from stream.prototypes import build_collection
from stream.runtime import OnnxModel
from tests.support.data import shared_data
from trainer.data.readers import read_dataset
from trainer.examples import load_example


@pytest.mark.slow
def test_real_encoder_onnx_matches_pytorch_on_real_tweets(tmp_path):
    data = read_dataset(shared_data("us-south-tweets", "tweets.jsonl.gz"), "twitter-jsonl")
    posts = [r.post for r in data.records[:200] if r.post.lang == "en"][:64]
    locations = load_example().locations
    model = ContrastGeo.from_config().eval()
    export_onnx(model, tmp_path / "export", quantize=False, locations=locations)
    onnx = OnnxModel(tmp_path / "export", precision="fp32", batch_size=16)

    got = onnx.embed_posts(posts)
    np.testing.assert_allclose(got, model.embed_posts(posts).numpy(), atol=1e-4)

    index = EdgeIndex(tmp_path / "index")
    index.set_alias(ALIAS, build_collection(index, onnx, locations))
    served = Predictor(onnx, index).predict(posts)
    ranking = model.predict(posts, locations)
    assert [p.location.location_id for p in served] == [
        locations[i].id for i in ranking.indices[:, 0].tolist()
    ]
    index.close()
