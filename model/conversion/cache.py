"""Converted encoders, made once and kept in a folder keyed by their source's checksum.

``converted(name, sources, convert)`` returns ``<cache>/<name>-<digest>/``, where the digest
covers the source files' bytes and the converter's version; the first call (per machine)
runs ``convert(sources, folder)`` into a temporary sibling, writes ``CHECKSUMS.json`` (a
sha256 per file written) and renames it into place, under a file lock so that two processes
never convert at once. Every later call checks the folder against ``CHECKSUMS.json`` once
per process before handing it out: a folder that was damaged or edited is converted again,
never used. The cache lives in ``$CONTRASTGEO_CACHE`` (default ``~/.cache/contrastgeo``).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

CHECKSUMS = "CHECKSUMS.json"
_verified: set[Path] = set()


def cache_root() -> Path:
    return Path(os.environ.get("CONTRASTGEO_CACHE") or Path.home() / ".cache" / "contrastgeo")


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def folder_checksums(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): file_sha256(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != CHECKSUMS
    }


def is_intact(folder: Path) -> bool:
    """True when ``folder`` holds exactly the files its ``CHECKSUMS.json`` names, unchanged."""
    listed = folder / CHECKSUMS
    if not listed.is_file():
        return False
    try:
        expected = json.loads(listed.read_text())
    except ValueError:
        return False
    return expected == folder_checksums(folder)


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (made if missing), waiting for it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def converted(
    name: str,
    sources: Sequence[Path],
    convert: Callable[[Sequence[Path], Path], None],
    version: str,
) -> Path:
    """The converted folder for ``sources`` (made now if missing or damaged)."""
    digest = hashlib.sha256(version.encode())
    for source in sources:
        digest.update(file_sha256(source).encode())
    root = cache_root()
    folder = root / f"{name}-{digest.hexdigest()[:16]}"
    if folder in _verified:
        return folder
    with exclusive(root / f".{name}.lock"):
        if not is_intact(folder):
            if folder.exists():
                log.warning("converted encoder damaged; converting again", folder=str(folder))
                shutil.rmtree(folder)
            log.info("converting encoder once", encoder=name, folder=str(folder))
            tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=root))
            try:
                convert(sources, tmp)
                (tmp / CHECKSUMS).write_text(json.dumps(folder_checksums(tmp), indent=2))
                os.replace(tmp, folder)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
    _verified.add(folder)
    return folder
