"""The export's manifest and its checks, without PyTorch: what a worker needs to trust an
exported model folder before it runs it.

``model.export`` writes ``manifest.json`` (model version, config hash, graph facts and a
sha256 per file); ``verify_export(folder)`` reads it back and refuses a half-written or
corrupted folder. Only the standard library here, so that the workers never import torch.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
# the 8-bit int8 graph an export may carry beside its 7-bit one (``encoder.int8-vnni.onnx``),
# for workers whose CPU cannot saturate 8-bit products (``stream.runtime``)
VNNI_INT8_SUFFIX = "int8-vnni.onnx"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def checked_name(value: str, what: str = "version") -> str:
    """``value``, when it can safely become a file or collection name: letters, digits,
    '.', '_' and '-', starting with a letter or digit, no '..', at most 128 characters.
    Model versions, collections and aliases become paths (``<store>/<version>``, an
    index's ``aliases/<alias>.json``): a name like ``../x`` would point outside."""
    if not isinstance(value, str) or not _NAME.fullmatch(value) or ".." in value:
        raise ValueError(f"invalid {what} {value!r}: letters, digits, '.', '_', '-' only")
    return value


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checksums(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``, by path relative to it."""
    return {str(p.relative_to(folder)): sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")


def verify_export(folder: str | Path, key: str = "files") -> dict[str, Any]:
    """The manifest, after checking the checksum of every file listed under ``key``
    (``files``: what the workers run; ``torch_files``: the PyTorch checkpoint the refit
    job warm-starts from). A half-written or corrupted export is refused with the first
    mismatch."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.exists():
        raise ValueError(f"{folder} is not an ONNX export: no {MANIFEST}")
    manifest = json.loads(path.read_text())
    if key not in manifest:
        raise ValueError(f"{folder}: the manifest lists no {key}")
    for name, digest in manifest[key].items():
        file = folder / name
        if not file.exists():
            raise ValueError(f"{folder}: {name} is missing")
        if sha256(file) != digest:
            raise ValueError(f"{folder}: {name} does not match its checksum")
    return manifest
