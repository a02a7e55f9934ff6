"""The export's tokenizer on the ``tokenizers`` library alone.

An export carries the fast tokenizer its model was trained with (``tokenizer/``, written by
transformers' ``save_pretrained``). Loading it back through transformers' ``AutoTokenizer``
would import torch into every worker, so the workers read its ``tokenizer.json`` directly
and apply what ``tokenizer(texts, padding=True, truncation=True, max_length=n)`` does:
truncate each text to ``n`` tokens (special tokens included), pad the batch to its longest
text on the configured side. ``tests/stream/test_onnx_parity.py`` checks the ids against
transformers'.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np


class Tokenizer:
    def __init__(self, folder: str | Path):
        from tokenizers import Tokenizer as FastTokenizer

        folder = Path(folder)
        path = folder / "tokenizer.json"
        if not path.exists():
            raise FileNotFoundError(
                f"{path} is missing: the workers need a fast tokenizer's tokenizer.json "
                "(export a model whose tokenizer has a fast version)"
            )
        config_path = folder / "tokenizer_config.json"
        config = json.loads(config_path.read_text()) if config_path.exists() else {}
        self.serialized = path.read_text()  # tokenizer.json as it is
        base = FastTokenizer.from_str(self.serialized)
        pad = config.get("pad_token") or "[PAD]"
        self.pad_token = pad["content"] if isinstance(pad, dict) else pad
        pad_id = base.token_to_id(self.pad_token)
        if pad_id is None:
            raise ValueError(f"{path}: pad token {self.pad_token!r} is not in the vocabulary")
        self.pad_id = pad_id
        self.padding_side = config.get("padding_side", "right")
        self.truncation_side = config.get("truncation_side", "right")
        self._by_length: dict[int, FastTokenizer] = {}

    def _for(self, max_length: int):
        """One configured tokenizer per maximum length (the workers use two: posts and
        location prompts), so that no call changes another's settings."""
        if max_length not in self._by_length:
            from tokenizers import Tokenizer as FastTokenizer

            fast = FastTokenizer.from_str(self.serialized)
            fast.enable_truncation(max_length, direction=self.truncation_side)
            fast.enable_padding(
                direction=self.padding_side, pad_id=self.pad_id, pad_token=self.pad_token
            )
            self._by_length[max_length] = fast
        return self._by_length[max_length]

    def __call__(self, texts: Sequence[str], max_length: int) -> dict[str, np.ndarray]:
        """``input_ids`` and ``attention_mask`` (int64, batch × longest)."""
        encodings = self._for(max_length).encode_batch(list(texts))
        return {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        }
