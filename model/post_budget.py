"""A post fitted into the encoder's token budget field by field.

A composed post is its text, then ``location: ...``, then ``bio: ...`` (``post_fields``).
Truncating it from the end, as tokenizers do, removes the profile location, the strongest
signal, from exactly the posts whose text is long. Here a post over ``post_max_length``
tokens (special tokens and the encoder's prefix included) instead loses tokens from the end
of the fields in ``PromptConfig.post_cut_order``, one field after the other (by default the
description, then the text); a field cut to nothing vanishes with its label. Fields not in
that order are never cut here; whatever still exceeds the budget is truncated from the end
as before. Training and the workers both compose posts through ``fit_post_inputs``.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from model.config import ContrastGeoConfig
from model.prompts import normalize_spaces, post_inputs

MAX_CUTS_PER_FIELD = 4  # a cut removes the excess at once; retokenizing can leave a token


def counting_tokenizer(serialized: str) -> Any:
    """A ``tokenizers.Tokenizer`` from its JSON, without truncation or padding: it counts
    tokens and gives their offsets."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(serialized)
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def fit_post_inputs(
    posts: Sequence[Any], config: ContrastGeoConfig, tokenizer: Any, max_tokens: int
) -> list[str]:
    """``post_inputs`` with each post over ``max_tokens`` cut by field (module docstring);
    ``tokenizer`` is a ``counting_tokenizer``. A post given as a plain ``str`` has no
    fields and is left to plain truncation."""
    texts = post_inputs(posts, config)
    if not config.prompts.post_cut_order:  # nothing to cut: plain truncation, no count
        return texts
    counts = [len(e.ids) for e in tokenizer.encode_batch_fast(texts)]  # no offsets: faster
    for i, (post, count) in enumerate(zip(posts, counts, strict=True)):
        if count > max_tokens and not isinstance(post, str):
            texts[i] = _cut(post, texts[i], count - max_tokens, config, tokenizer, max_tokens)
    return texts


def _cut(
    post: Any, text: str, over: int, config: ContrastGeoConfig, tokenizer: Any, limit: int
) -> str:
    """``text``, the input of ``post``, with ``over`` tokens too many, cut by field."""
    # the fields as ``post_text`` renders them, so that token offsets index into them
    fields = SimpleNamespace(
        **{f: normalize_spaces(getattr(post, f, None) or "") for f in config.prompts.post_fields}
    )
    for field in config.prompts.post_cut_order:
        for _ in range(MAX_CUTS_PER_FIELD):
            value = getattr(fields, field, "")
            if over <= 0 or not value:
                break
            offsets = tokenizer.encode(value, add_special_tokens=False).offsets
            keep = len(offsets) - over
            setattr(fields, field, value[: offsets[keep][0]].rstrip() if keep > 0 else "")
            text = post_inputs([fields], config)[0]
            over = len(tokenizer.encode(text).ids) - limit
    return text
