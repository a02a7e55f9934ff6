"""The encoder's speed on a GPU: a standalone script for a borrowed GPU machine.

Nothing in the project depends on a GPU; this measures what one would give. It needs only
torch, transformers and tokenizers (and onnxruntime with its CUDA provider, when that is
installed) and reads a folder prepared on the development machine:

    MODEL/            all-MiniLM-L6-v2 in fp16 (``save_pretrained``) with its tokenizer
    posts.txt         one JSON string per line: posts as the model reads them (text+profile)

For each batch size it encodes every post (sorted by length, each batch padded to its
longest, as ``stream.runtime`` does) and reports posts/s and batch-latency percentiles:
tokenization on the CPU plus the encoder (mean pooling, L2 norm) on the GPU, in fp16 and
fp32 through PyTorch, and through onnxruntime's CUDA provider when it is there.

    python benchmarks/gpu_encoder.py FOLDER OUT_JSON [MAX_POSTS]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np


def main(folder: Path, out: Path, limit: int = 0) -> dict:
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: a smoke run only
    from tokenizers import Tokenizer
    from transformers import AutoModel

    texts = [json.loads(line) for line in (folder / "posts.txt").read_text().splitlines()]
    texts = texts[:limit] if limit else texts
    order = np.argsort([len(t) for t in texts], kind="stable")
    texts = [texts[i] for i in order]
    tokenizer = Tokenizer.from_file(str(folder / "minilm" / "tokenizer.json"))
    tokenizer.enable_truncation(128)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    try:
        import onnxruntime as ort

        providers = ort.get_available_providers()
    except ImportError:
        ort, providers = None, []
    result = {
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else "none (smoke run)",
        "torch": torch.__version__,
        "onnxruntime_providers": providers,
        "posts": len(texts),
        "rows": [],
    }

    def batches(size: int):
        for s in range(0, len(texts), size):
            enc = tokenizer.encode_batch(texts[s : s + size])
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            yield ids, mask

    def measure(name: str, size: int, run) -> None:
        for ids, mask in batches(size):  # warm-up pass: kernels, allocator, autotuning
            run(ids, mask)
        seconds = []
        for ids, mask in batches(size):
            start = time.perf_counter()
            run(ids, mask)
            seconds.append(time.perf_counter() - start)
        seconds = np.array(seconds)
        row = {
            "path": name,
            "batch": size,
            "posts_per_s": round(len(texts) / seconds.sum(), 1),
            "batch_ms_p50": round(1000 * float(np.percentile(seconds, 50)), 2),
            "batch_ms_p99": round(1000 * float(np.percentile(seconds, 99)), 2),
        }
        result["rows"].append(row)
        print(row, flush=True)

    tokenize_s = time.perf_counter()
    for _ in batches(64):
        pass
    result["tokenize_posts_per_s"] = round(len(texts) / (time.perf_counter() - tokenize_s), 1)

    for dtype in (torch.float16, torch.float32):
        model = AutoModel.from_pretrained(folder / "minilm", dtype=dtype).to(device).eval()

        @torch.inference_mode()
        def run(ids, mask, model=model):
            ids, mask = torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)
            states = model(input_ids=ids, attention_mask=mask).last_hidden_state
            weights = mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * weights).sum(1) / weights.sum(1).clamp_min(1)
            out = torch.nn.functional.normalize(pooled.float(), dim=-1).cpu()
            return out.numpy()

        for size in (32, 128, 512):
            measure(f"pytorch {str(dtype).split('.')[-1]}", size, run)

    if ort is not None and "CUDAExecutionProvider" in providers:
        model = AutoModel.from_pretrained(folder / "minilm", dtype=torch.float16).to(device).eval()
        path = out.parent / "encoder.fp16.onnx"
        ids, mask = next(batches(2))
        torch.onnx.export(
            model,
            (torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={n: {0: "batch", 1: "sequence"} for n in ("input_ids", "attention_mask")},
            opset_version=17,
            dynamo=False,
        )
        session = ort.InferenceSession(str(path), providers=["CUDAExecutionProvider"])

        def run_ort(ids, mask):
            states = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            weights = mask[..., None].astype(np.float32)
            return (states.astype(np.float32) * weights).sum(1) / weights.sum(1)

        for size in (32, 128, 512):
            measure("onnxruntime CUDA fp16", size, run_ort)
    out.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 0)
