"""int8 that stays correct on a CPU without VNNI: exports quantize weights to 7 bits by
default and say so in the manifest; a worker does not pick an 8-bit int8 graph itself on
an x86 CPU without VNNI, where onnxruntime's u8 x s8 products can saturate (the CPU is
faked here; the real failure, an mpnet export's embeddings uncorrelated with fp32's, is in
docs/serving.md and tests/integration/test_named_encoders.py)."""

from __future__ import annotations

import numpy as np
import pytest
import structlog

from model.export import export_onnx
from model.manifest import verify_export
from stream import runtime
from stream.runtime import OnnxModel, int8_can_saturate
from tests.support.data import LOCATIONS

AVX2 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
VNNI = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma avx512f avx512_vnni\n"


@pytest.mark.parametrize(
    ("cpuinfo", "machine", "saturates"),
    [
        (AVX2, "x86_64", True),
        (VNNI, "x86_64", False),
        (AVX2.replace("avx2", "avx2 avx_vnni"), "AMD64", False),
        (AVX2, "aarch64", False),  # ARM's int8 kernels do not pair products into int16
        (None, "x86_64", True),  # flags unreadable: assume the worst
    ],
)
def test_which_cpus_can_saturate_8_bit_weights(tmp_path, cpuinfo, machine, saturates):
    path = tmp_path / "cpuinfo"
    if cpuinfo is not None:
        path.write_text(cpuinfo)
    assert int8_can_saturate(path, machine) is saturates


@pytest.fixture
def exports(make_model, tmp_path):
    model = make_model("vector").eval()
    seven = export_onnx(model, tmp_path / "7bit", locations=LOCATIONS)
    eight = export_onnx(model, tmp_path / "8bit", locations=LOCATIONS, reduce_range=False)
    assert seven["int8_weight_bits"] == 7 and eight["int8_weight_bits"] == 8
    return tmp_path / "7bit", tmp_path / "8bit"


def test_an_export_carries_an_8_bit_graph_for_vnni_beside_its_7_bit_one(exports, tmp_path):
    seven, eight = (verify_export(folder)["files"] for folder in exports)
    assert {"encoder.int8.onnx", "encoder.int8-vnni.onnx"} <= set(seven)
    # the VNNI graph is the 8-bit export's int8 graph, byte for byte
    assert seven["encoder.int8-vnni.onnx"] == eight["encoder.int8.onnx"]
    assert seven["encoder.int8.onnx"] != eight["encoder.int8.onnx"]
    assert "encoder.int8-vnni.onnx" not in eight  # 8-bit already: nothing to add


def test_no_vnni_graph_when_asked_for_none(make_model, tmp_path):
    manifest = export_onnx(make_model("vector").eval(), tmp_path / "e", vnni_int8=False)
    assert "encoder.int8-vnni.onnx" not in manifest["files"]
    assert manifest["int8_weight_bits"] == 7


def test_a_cpu_with_vnni_serves_the_8_bit_graph_and_one_without_the_7_bit(exports, monkeypatch):
    texts = ["heading downtown for brunch", "y'all the traffic on i-40 is wild"]
    monkeypatch.setattr(runtime, "int8_can_saturate", lambda: False)
    vnni = OnnxModel(exports[0])
    eight_bit = OnnxModel(exports[1]).embed_posts(texts)
    monkeypatch.setattr(runtime, "int8_can_saturate", lambda: True)
    avx2 = OnnxModel(exports[0])
    assert (vnni.precision, vnni.int8_weight_bits) == ("int8", 8)
    assert (avx2.precision, avx2.int8_weight_bits) == ("int8", 7)
    assert "8-bit weights" in repr(vnni)
    np.testing.assert_array_equal(vnni.embed_posts(texts), eight_bit)
    assert not np.array_equal(avx2.embed_posts(texts), eight_bit)


@pytest.mark.parametrize("saturates", [True, False])
def test_7_bit_int8_is_chosen_on_any_cpu(exports, monkeypatch, saturates):
    monkeypatch.setattr(runtime, "int8_can_saturate", lambda: saturates)
    assert OnnxModel(exports[0]).precision == "int8"


def test_8_bit_int8_is_not_chosen_where_it_can_saturate(exports, monkeypatch):
    monkeypatch.setattr(runtime, "int8_can_saturate", lambda: True)
    with structlog.testing.capture_logs() as logs:
        model = OnnxModel(exports[1])
    assert model.precision == "fp32"
    assert any("int8 not used" in entry["event"] for entry in logs)
    with structlog.testing.capture_logs() as logs:  # asked for by name: served, with a warning
        assert OnnxModel(exports[1], precision="int8").precision == "int8"
    assert any("can saturate" in entry["event"] for entry in logs)
    monkeypatch.setattr(runtime, "int8_can_saturate", lambda: False)
    assert OnnxModel(exports[1]).precision == "int8"


def test_an_export_made_before_the_bits_were_recorded_counts_as_8_bit(exports, monkeypatch):
    import json

    from model.manifest import write_manifest

    folder = exports[0]
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["int8_weight_bits"]
    write_manifest(folder, manifest)
    monkeypatch.setattr(runtime, "int8_can_saturate", lambda: True)
    assert OnnxModel(folder).precision == "fp32"
