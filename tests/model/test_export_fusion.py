"""onnxruntime's transformer optimizer fuses the exported encoder graph without changing
what it computes: on a tiny BERT the fused graph's embeddings and token states equal the
plain graph's, and attention is fused."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import torch

from model.export import _export_encoder, fuse


def run(path, feeds):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def test_the_fused_graph_computes_what_the_plain_graph_computes(make_model, tmp_path):
    model = make_model().eval()
    plain, fused = tmp_path / "encoder.onnx", tmp_path / "encoder.fused.onnx"
    with torch.no_grad():
        _export_encoder(model.post_encoder, plain)
    config = model.post_encoder.backbone.config
    assert fuse(plain, fused, "bert", config.num_attention_heads, config.hidden_size)
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 40, size=(4, 9)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[1, 5:] = mask[3, 2:] = 0  # padded rows
    feeds = {"input_ids": ids, "attention_mask": mask}
    (emb_plain, states_plain), (emb_fused, states_fused) = run(plain, feeds), run(fused, feeds)
    np.testing.assert_allclose(emb_fused, emb_plain, atol=1e-5)
    keep = mask.astype(bool)  # padded positions' states are not read by anything
    np.testing.assert_allclose(states_fused[keep], states_plain[keep], atol=1e-4)
