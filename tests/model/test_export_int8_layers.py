"""Which parts of an encoder its int8 graphs keep in fp32: a named encoder that says so
(minilm, e5-small) keeps its first transformer layer's dense MatMuls fp32 in both int8
graphs (7-bit and the 8-bit VNNI one) and quantizes every other layer; asked not to
(serving-bench's earlier paths), the export quantizes them all, as before 2026-12-07."""

from __future__ import annotations

import onnx

from model.config import EncoderConfig
from model.export import export_onnx
from model.pretrained import ENCODERS

INT8_GRAPHS = ("encoder.int8.onnx", "encoder.int8-vnni.onnx")


def layer_matmuls(path, op_type: str) -> set[str]:
    """The names of the transformer layers' ``op_type`` nodes that multiply by a weight
    (MatMul: kept fp32; MatMulInteger: quantized)."""
    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {w.name for w in graph.initializer}
    return {
        n.name
        for n in graph.node
        if n.op_type == op_type and "/layer." in n.name and weights & set(n.input)
    }


def test_minilm_keeps_its_first_layer_fp32_in_both_int8_graphs(make_model, tmp_path):
    assert ENCODERS["minilm"].int8_first_layer_fp32
    model = make_model(encoder=EncoderConfig(checkpoint="minilm"))  # a tiny 2-layer BERT
    export_onnx(model, tmp_path / "today")
    export_onnx(model, tmp_path / "before", int8_first_layer_fp32=False)
    first_layer = {
        f"/backbone/encoder/layer.0/{part}/dense/MatMul"
        for part in ("attention/output", "intermediate", "output")
    }
    for graph in INT8_GRAPHS:
        assert layer_matmuls(tmp_path / "today" / graph, "MatMul") == first_layer, graph
        quantized = layer_matmuls(tmp_path / "today" / graph, "MatMulInteger")
        assert quantized and all("/layer.1/" in name for name in quantized), graph
        assert layer_matmuls(tmp_path / "before" / graph, "MatMul") == set(), graph
        assert len(layer_matmuls(tmp_path / "before" / graph, "MatMulInteger")) == 6, graph


def test_a_model_on_an_encoder_folder_quantizes_its_first_layer(make_model, tmp_path):
    export_onnx(make_model(encoder=EncoderConfig(checkpoint="some/folder")), tmp_path / "path")
    for graph in INT8_GRAPHS:
        assert layer_matmuls(tmp_path / "path" / graph, "MatMul") == set(), graph


def test_which_named_encoders_keep_their_first_layer_fp32():
    # measured (docs/serving.md, "The first layer in fp32"): closer to fp32 for these two,
    # no different for mpnet
    assert {n for n, e in ENCODERS.items() if e.int8_first_layer_fp32} == {"minilm", "e5-small"}
