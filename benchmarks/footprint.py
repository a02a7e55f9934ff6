"""What one worker costs to run (``contrastgeo footprint-bench``): the same measurements
on this tree and on a baseline commit, in one run, on one machine.

For each tree (a baseline git revision is checked out into a temporary worktree; the
workers run its code with ``PYTHONPATH``, in the same virtualenv):

- **cold start**: a worker process is started and timed until its ``/readyz`` answers 200
  (model loaded, index open, consumer group joined);
- **RSS after warm-up**: the worker then geotags ``posts`` real posts; its resident memory
  is read from ``/proc`` once every output is out;
- **torch loaded**: whether ``libtorch`` is mapped into the worker's memory.

Starts alternate between the trees (``runs`` each) so that drift in the machine's load
does not count against one side; medians are reported. Installed size: the bytes on disk
of every distribution that installing the worker pulls in (the core requirements plus
``cpu``, walked through the installed packages' own requirements), for this tree's
``pyproject.toml`` and the baseline's; that is the size of the CPU image's virtualenv layer.
"""

from __future__ import annotations

import asyncio
import importlib.metadata as metadata
import re
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

from benchmarks.local import stop_worker, worker_env, worker_ready
from benchmarks.soak import rss_mb
from benchmarks.stream import collect
from stream.replay import replay
from stream.settings import WorkerSettings

REPO = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------ installed size
def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def install_closure(requirements: list[str]) -> set[str]:
    """Names of the distributions that installing ``requirements`` pulls in, walked through
    the installed packages' own requirements (environment markers evaluated here; extras
    of a requirement followed)."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = _name(req.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requires:
            sub = Requirement(line)
            wanted = {""} | set(req.extras)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in wanted):
                sub.marker = None
                todo.append(sub)
    return seen


def worker_requirements(pyproject: str, extras: tuple[str, ...] = ("cpu",)) -> list[str]:
    """The core dependencies plus ``extras`` of a ``pyproject.toml``'s text."""
    project = tomllib.loads(pyproject)["project"]
    optional = project.get("optional-dependencies", {})
    return [*project["dependencies"], *(r for e in extras for r in optional.get(e, []))]


def installed_mb(names: set[str]) -> float:
    total = 0
    for name in names:
        try:
            files = metadata.distribution(name).files or []
        except metadata.PackageNotFoundError:
            continue
        for f in files:
            path = Path(f.locate())
            if path.is_file():
                total += path.stat().st_size
    return total / 1e6


def install_size(pyproject: str) -> dict[str, Any]:
    names = install_closure(worker_requirements(pyproject))
    names.discard("contrastgeo")
    heavy = sorted(n for n in names if n in ("torch", "transformers", "scikit-learn", "scipy"))
    return {"installed_mb": installed_mb(names), "distributions": len(names), "heavy": heavy}


# ------------------------------------------------------------------ one worker
def torch_mapped(pid: int) -> bool:
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text()


def measure_worker(
    tree: Path, settings: WorkerSettings, payloads: list[bytes], ids: set[str], log_file: Path
) -> dict[str, Any]:
    """Start a worker running ``tree``'s code, time it to ready, feed it the payloads, and
    read its memory once every post is out."""
    env = worker_env(settings)
    env["PYTHONPATH"] = str(tree)
    start = time.perf_counter()
    with open(log_file, "ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "contrastgeo", "--log-json", "worker"],
            cwd=tree,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        while not worker_ready(settings):
            if worker.poll() is not None or time.perf_counter() - start > 300:
                tail = log_file.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the worker ({tree}) never got ready; its log ends:\n{tail}")
            time.sleep(0.05)
        ready_s = time.perf_counter() - start
        rss_ready = rss_mb(worker.pid)
        asyncio.run(replay(settings, payloads))
        asyncio.run(collect(settings, ids, timeout=600))
        return {
            "ready_s": ready_s,
            "rss_ready_mb": rss_ready,
            "rss_warm_mb": rss_mb(worker.pid),
            "torch_loaded": torch_mapped(worker.pid),
        }
    finally:
        stop_worker(worker)


def footprint(
    settings: WorkerSettings,
    payloads_per_run: list[list[bytes]],
    ids_per_run: list[set[str]],
    baseline: str,
    workdir: Path,
) -> dict[str, Any]:
    """Alternate worker starts of the baseline revision and this tree; ``settings`` point
    at a served model and a broker with the topics created. Each run gets fresh posts
    (``payloads_per_run``) and a fresh consumer group, so nothing is read twice."""
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        base_tree = Path(tmp) / "baseline"
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(base_tree), baseline],
            check=True,
            capture_output=True,
        )
        try:
            trees = {"baseline": base_tree, "this tree": REPO}
            samples: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
            for run, (payloads, ids) in enumerate(zip(payloads_per_run, ids_per_run, strict=True)):
                name = list(trees)[run % 2]
                group = settings.model_copy(update={"group_id": f"footprint-{run}"})
                samples[name].append(
                    measure_worker(trees[name], group, payloads, ids, workdir / f"worker-{run}.log")
                )
            sizes = {
                "baseline": install_size(
                    subprocess.run(
                        ["git", "-C", str(REPO), "show", f"{baseline}:pyproject.toml"],
                        check=True,
                        capture_output=True,
                        text=True,
                    ).stdout
                ),
                "this tree": install_size((REPO / "pyproject.toml").read_text()),
            }
        finally:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(base_tree)],
                check=False,
                capture_output=True,
            )
    out: dict[str, Any] = {"baseline": baseline, "posts": len(ids_per_run[0]), "trees": {}}
    for name, runs in samples.items():
        out["trees"][name] = {
            "runs": runs,
            **{
                key: statistics.median(r[key] for r in runs)
                for key in ("ready_s", "rss_ready_mb", "rss_warm_mb")
            },
            "torch_loaded": all(r["torch_loaded"] for r in runs),
            **sizes[name],
        }
    return out


def footprint_markdown(results: dict[str, Any]) -> str:
    base, ours = results["trees"]["baseline"], results["trees"]["this tree"]
    rows = [
        ("cold start to ready (s)", "ready_s", "{:.1f}"),
        ("RSS at ready (MB)", "rss_ready_mb", "{:.0f}"),
        (f"RSS after {results['posts']} posts (MB)", "rss_warm_mb", "{:.0f}"),
        ("installed size of the worker's install (MB)", "installed_mb", "{:.0f}"),
        ("distributions installed", "distributions", "{}"),
    ]
    lines = [
        f"| worker | baseline `{results['baseline']}` | this tree | ratio |",
        "|---|---:|---:|---:|",
    ]
    for label, key, fmt in rows:
        ratio = ours[key] / base[key] if base[key] else float("nan")
        lines.append(
            f"| {label} | {fmt.format(base[key])} | {fmt.format(ours[key])} | {ratio:.2f} |"
        )
    lines.append(
        f"| torch loaded | {'yes' if base['torch_loaded'] else 'no'} | "
        f"{'yes' if ours['torch_loaded'] else 'no'} | |"
    )
    lines.append(
        f"| training libraries installed | {', '.join(base['heavy']) or 'none'} | "
        f"{', '.join(ours['heavy']) or 'none'} | |"
    )
    runs = len(base["runs"])
    return "\n".join(lines) + f"\n\nMedians of {runs} worker starts per tree, alternating.\n"
