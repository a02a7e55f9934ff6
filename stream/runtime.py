"""The ONNX runtime of an exported model (``model.export``): what the workers run.

``OnnxModel(folder)`` verifies the export's checksums, picks ``CUDAExecutionProvider``
when onnxruntime-gpu sees a GPU (fp32 graph) and the CPU provider otherwise (the int8
graph when the export has one and it is safe on this CPU, a configurable thread count),
and offers the same
operations as the PyTorch model: ``embed_posts``, ``embed_locations`` (template-averaged
prompts) and ``match`` (TLM log-odds of K candidates per post).

The inputs of one call are sorted by length and encoded in micro-batches of
``batch_size``, each padded only to its own longest text. On CPU small runs win: a batch of
64 text + profile posts padded to its longest costs about twice its eight length-sorted
runs of 8 (docs/serving.md), so the CPU default is 8; on CUDA one large run is cheaper.
"""

from __future__ import annotations

import functools
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from model.config import ContrastGeoConfig
from model.manifest import VNNI_INT8_SUFFIX, verify_export
from model.post_budget import counting_tokenizer, fit_post_inputs
from model.prompts import Location, location_inputs
from stream.tokenizer import Tokenizer

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
MIN_POST_LENGTH = 16  # a shorter served budget leaves little besides the profile location
MICRO_BATCH = {CPU: 8, CUDA: 64}  # posts per encoder run when not set (0)
VNNI_FLAGS = {"avx512_vnni", "avx_vnni", "amx_int8"}

log = structlog.get_logger(__name__)


def cpu_info(path: Path = Path("/proc/cpuinfo")) -> dict[str, str]:
    """The first processor's fields in Linux's ``/proc/cpuinfo`` (``model name``,
    ``flags``, ...); empty where it cannot be read."""
    fields: dict[str, str] = {}
    try:
        for line in path.read_text().splitlines():
            key, colon, value = line.partition(":")
            if colon:
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def int8_can_saturate(cpuinfo: Path = Path("/proc/cpuinfo"), machine: str = "") -> bool:
    """Whether 8-bit int8 weights can overflow onnxruntime's kernels here: on an x86 CPU
    without VNNI the u8 x s8 products are summed in pairs into int16, which saturates
    (onnxruntime's quantization docs; measured: an mpnet export's embeddings came out
    uncorrelated with fp32's, docs/serving.md). 7-bit weights (``reduce_range``) cannot.
    An x86 CPU whose flags cannot be read counts as one without VNNI."""
    machine = (machine or platform.machine()).lower()
    if machine not in ("x86_64", "amd64", "i386", "i686"):
        return False
    flags = cpu_info(cpuinfo).get("flags")
    return flags is None or not VNNI_FLAGS & set(flags.split())


def weights_label(int8_weight_bits: int | None) -> str:
    """ " (N-bit weights)" after an int8 precision; nothing for fp32 (None)."""
    return f" ({int8_weight_bits}-bit weights)" if int8_weight_bits else ""


def choose_providers(device: str = "auto") -> list[str]:
    """``auto``: CUDA when available, else CPU; ``cuda`` fails clearly without it."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cpu":
        return [CPU]
    if CUDA in available:
        return [CUDA, CPU]
    if device == "cuda":
        raise RuntimeError(
            f"device=cuda but onnxruntime offers only {available}; install onnxruntime-gpu"
        )
    return [CPU]


def cores_given(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """The cores this process may use: the CPUs it may run on (its affinity), fewer when a
    cgroup v2 CPU quota (a container's CPU limit, ``cpu.max``) allows less, rounded up."""
    import math
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores or 1, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota readable: the affinity stands
    return cores or 1


def normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class OnnxModel:
    def __init__(
        self,
        folder: str | Path,
        precision: str = "auto",
        device: str = "auto",
        threads: int = 0,
        batch_size: int = 0,
        post_max_length: int = 0,
    ):
        """precision: ``fp32``, ``int8`` or ``auto`` (int8 on CPU when exported, unless its
        weights are 8-bit and the CPU has no VNNI: ``int8_can_saturate``; fp32 on GPU);
        int8 is the export's 8-bit graph (``encoder.int8-vnni.onnx``) where it has one and
        the CPU cannot saturate it, else ``encoder.int8.onnx``;
        threads: onnxruntime intra-op threads (0 = the cores given to the process,
        ``cores_given``); batch_size: texts per encoder run (0 = ``MICRO_BATCH`` of the
        provider); post_max_length: the tokens a post is fitted into (0 = the
        ``post_max_length`` the model was trained with; fewer is faster, docs/serving.md)."""
        import onnxruntime as ort

        self.folder = Path(folder)
        self.manifest = verify_export(self.folder)
        self.config = ContrastGeoConfig.from_json((self.folder / "config.json").read_text())
        if post_max_length:
            trained = self.config.encoder.post_max_length
            if not MIN_POST_LENGTH <= post_max_length <= trained:
                raise ValueError(
                    f"post_max_length {post_max_length}: between {MIN_POST_LENGTH} and the "
                    f"{trained} tokens this model was trained with"
                )
            encoder = self.config.encoder.model_copy(update={"post_max_length": post_max_length})
            self.config = self.config.model_copy(update={"encoder": encoder})
        self.version: str = self.manifest["model_version"]
        self.tokenizer = Tokenizer(self.folder / "tokenizer")
        self._counting_tokenizer = counting_tokenizer(self.tokenizer.serialized)
        self.providers = choose_providers(device)
        on_gpu = self.providers[0] == CUDA
        # exports before int8_weight_bits was recorded were all quantized to 8 bits
        exported_bits = self.manifest.get("int8_weight_bits", 8)
        can_saturate = not on_gpu and int8_can_saturate()
        unsafe = exported_bits == 8 and can_saturate
        # the 8-bit graph beside a 7-bit one, where its products cannot saturate
        int8_suffix = VNNI_INT8_SUFFIX
        if can_saturate or f"encoder.{int8_suffix}" not in self.manifest["files"]:
            int8_suffix = "int8.onnx"
        if precision == "auto":
            has_int8 = "encoder.int8.onnx" in self.manifest["files"]
            precision = "int8" if has_int8 and not on_gpu and not unsafe else "fp32"
            if has_int8 and unsafe:
                log.warning(
                    "int8 not used: its 8-bit weights can saturate on a CPU without VNNI; "
                    "serving fp32 (export the model again for 7-bit int8)",
                    version=self.manifest["model_version"],
                )
        elif precision == "int8" and unsafe:
            log.warning(
                "int8 with 8-bit weights on a CPU without VNNI: its products can saturate",
                version=self.manifest["model_version"],
            )
        if precision not in ("fp32", "int8"):
            raise ValueError(f"precision must be fp32, int8 or auto, not {precision!r}")
        self.precision = precision
        # the served int8 graph's weight bits; None when fp32 is served
        self.int8_weight_bits: int | None = None
        if precision == "int8":
            self.int8_weight_bits = 8 if int8_suffix == VNNI_INT8_SUFFIX else exported_bits
        self.batch_size = batch_size or MICRO_BATCH[self.providers[0]]
        options = ort.SessionOptions()
        # onnxruntime's default counts the host's cores, not the container's share of them:
        # in a pod limited to 2 CPUs on a 64-core node it would start 64 threads
        options.intra_op_num_threads = threads or cores_given()
        options.inter_op_num_threads = 1  # one graph at a time: parallelism is intra-op
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL

        def session(name: str) -> Any:
            suffix = f".{int8_suffix}" if precision == "int8" else ".onnx"
            path = self.folder / f"{name}{suffix}"
            if not path.exists():
                raise FileNotFoundError(f"{path} not in the export (exported without int8?)")
            return ort.InferenceSession(str(path), options, providers=self.providers)

        self._open_session = session
        self.post_session = session("encoder")
        # the matcher is a small MLP over B x K rows: it runs on the calling thread. A thread
        # pool of its own would spin after each run and take the cores from the encoder's
        # (measured: about a fifth of the served throughput, docs/serving.md)
        matcher_options = ort.SessionOptions()
        matcher_options.intra_op_num_threads = 1
        matcher_options.inter_op_num_threads = 1
        self.matcher = (
            ort.InferenceSession(
                str(self.folder / "matcher.onnx"), matcher_options, providers=self.providers
            )
            if self.manifest["matcher"]
            else None
        )
        # 1 / temperature; exports made before the key was renamed call it logit_scale
        self.inverse_temperature = float(
            self.manifest.get("inverse_temperature", self.manifest.get("logit_scale"))
        )

    @functools.cached_property
    def location_session(self) -> Any:
        """The graph that embeds location prompts: the post graph when the encoder is
        shared, else its own, opened on first use (building an index, a location added at
        run time), so a worker that only geotags posts never loads it."""
        if self.manifest["shared_encoder"]:
            return self.post_session
        return self._open_session("location_encoder")

    def __repr__(self) -> str:
        return (
            f"OnnxModel({self.folder}, version={self.version}, "
            f"{self.precision}{weights_label(self.int8_weight_bits)}, {self.providers[0]})"
        )

    # ----------------------------------------------------------------------- encoding
    def _encode(
        self, session: Any, texts: Sequence[str], max_length: int, states: bool = False
    ) -> tuple[np.ndarray, list[np.ndarray] | None]:
        """Embeddings (N, D) in input order; with ``states`` also each text's unpadded
        token states."""
        if not texts:
            raise ValueError("nothing to encode: the list of texts is empty")
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.manifest["embedding_dim"]), dtype=np.float32)
        token_states: list[np.ndarray | None] = [None] * len(texts)
        for s in range(0, len(order), self.batch_size):
            idx = order[s : s + self.batch_size]
            batch = self.tokenizer([texts[i] for i in idx], max_length)
            mask = batch["attention_mask"]
            emb, hidden = session.run(None, batch)
            out[idx] = emb
            if states:
                for row, i in enumerate(idx):
                    token_states[i] = hidden[row, : int(mask[row].sum())]
        return out, (token_states if states else None)

    def post_texts(self, posts: Sequence[Any]) -> list[str]:
        """What the encoder reads for each post, fitted into ``post_max_length`` tokens by
        field, as in training (``model.post_budget``)."""
        return fit_post_inputs(
            posts, self.config, self._counting_tokenizer, self.config.encoder.post_max_length
        )

    def embed_posts(self, posts: Sequence[Any]) -> np.ndarray:
        """(N, D) L2-normalized post embeddings (posts composed by the model's template)."""
        return self._encode(
            self.post_session, self.post_texts(posts), self.config.encoder.post_max_length
        )[0]

    def post_states(self, posts: Sequence[Any]) -> tuple[np.ndarray, list[np.ndarray]]:
        emb, states = self._encode(
            self.post_session,
            self.post_texts(posts),
            self.config.encoder.post_max_length,
            states=True,
        )
        return emb, states

    def embed_locations(self, locations: Sequence[Location]) -> np.ndarray:
        """(N, D) prompt embeddings averaged over the templates and renormalized."""
        t = len(self.config.prompts.location_templates)
        flat = location_inputs(locations, self.config)
        emb, _ = self._encode(self.location_session, flat, self.config.encoder.location_max_length)
        return normalize(emb.reshape(t, len(locations), -1).mean(axis=0))

    # ------------------------------------------------------------------------ matching
    def match(self, post_embeddings: np.ndarray, candidate_embeddings: np.ndarray) -> np.ndarray:
        """TLM log-odds (B, K) of each post against its K candidates (vector fusion)."""
        if self.matcher is None or self.manifest["fusion"] != "vector":
            raise RuntimeError(
                f"this export ({self.manifest['fusion']} fusion) has no vector matcher graph"
            )
        return self.matcher.run(
            None,
            {
                "post_embedding": post_embeddings.astype(np.float32),
                "candidate_embeddings": candidate_embeddings.astype(np.float32),
            },
        )[0]
