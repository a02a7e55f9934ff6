"""The export's manifest and its checks, without PyTorch: what a worker needs to trust an
exported model folder before it runs it.

``model.export`` writes ``manifest.json`` (model version, config hash, graph facts and a
sha256 per file); ``verify_export(folder)`` reads it back and refuses a half-written or
corrupted folder. Only the standard library here, so that the workers never import torch.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"


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


def verify_export(folder: str | Path) -> dict[str, Any]:
    """The manifest, after checking every listed file's checksum (a half-written or
    corrupted export is refused with the first mismatch)."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.exists():
        raise ValueError(f"{folder} is not an ONNX export: no {MANIFEST}")
    manifest = json.loads(path.read_text())
    for name, digest in manifest["files"].items():
        file = folder / name
        if not file.exists():
            raise ValueError(f"{folder}: {name} is missing")
        if sha256(file) != digest:
            raise ValueError(f"{folder}: {name} does not match its checksum")
    return manifest
