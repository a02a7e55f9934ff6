"""Exploration (not a project command): where the served int8 encoder spends its time, by
operator type, from onnxruntime's own profiler.

Run: .venv/bin/python docs/benchmarks/int8-op-profile/op_profile.py runs/truncation 1000
(needs runs/us-16 from `contrastgeo fit`, see docs/serving.md; the export under WORK is
made once and shared with docs/benchmarks/truncation/truncation.py). Embeds the last N
labeled us-south posts as a worker does (the graph this CPU is served, runs of 8, length
sorted, 2 threads), once to warm up and once profiled, and prints each operator type's
share of the time spent inside operators.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import onnxruntime as ort

from benchmarks import cpu_description
from benchmarks.serving import labeled_posts
from model import ContrastGeo
from model.export import export_onnx
from model.prompts import load_locations
from stream.runtime import OnnxModel

MODEL = Path("runs/us-16")
DATA = "../shared/data/us-south-tweets/tweets.jsonl.gz"


def main(work: Path, n: int) -> None:
    locations = load_locations(MODEL / "locations.jsonl")
    posts = labeled_posts(DATA, "twitter-jsonl", locations)[0][-n:]
    export = work / "export"
    if not (export / "encoder.int8.onnx").exists():
        export_onnx(ContrastGeo.load(MODEL), export, locations=locations)
    served = OnnxModel(export, precision="int8", threads=2)
    graph = served.post_session._model_path
    served.embed_posts(posts)  # warm-up, and the served session's own threads settle

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 2, 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_profiling = True
    options.profile_file_prefix = str(work / "int8-profile")
    served.post_session = ort.InferenceSession(graph, options, providers=served.providers)
    served.embed_posts(posts[:64])  # warm-up of the profiled session, counted below too
    served.embed_posts(posts)
    trace = json.loads(Path(served.post_session.end_profiling()).read_text())

    by_op: dict[str, float] = defaultdict(float)
    runs = 0.0
    for event in trace:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by_op[event["args"]["op_name"]] += event["dur"]
        elif event.get("cat") == "Session" and event["name"] == "model_run":
            runs += event["dur"]
    total = sum(by_op.values())
    print(f"{Path(graph).name}, {len(posts)} posts (+64 warm-up), {cpu_description()}")  # noqa: T201
    print(f"session runs {runs / 1e6:.2f} s, in operators {total / 1e6:.2f} s")  # noqa: T201
    print("| operator | share of operator time |\n|---|---:|")  # noqa: T201
    for op, us in sorted(by_op.items(), key=lambda kv: -kv[1]):
        if us / total >= 0.005:
            print(f"| {op} | {100 * us / total:.1f}% |")  # noqa: T201


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
