"""What a training step costs as the catalogue grows (``contrastgeo training-bench``).

For each catalogue size N (the N most populous GeoNames places of the world at population
>= 15,000, districts not merged: only the count matters here), a fresh process builds the
model of each named encoder asked for (default ``minilm``) and times ``steps`` ContrastGeo
training steps (after 2 warm-up steps) on posts composed from place names, gold places
drawn at random, once per way of handling the location side (``MODES``):

- ``locked``: a frozen location encoder (``TrainConfig.location_encoder``, the default
  over a catalogue):
  every place encoded once, without gradient, then only the posts are;
- ``bank``: a trained location encoder with the location bank
  (``trainer.train.LocationBank``);
- ``plain``: a trained location encoder re-encoding every candidate with gradients at
  every step (only up to ``plain_up_to`` places).

The one encoding of every place without gradient (once for ``locked``, every
``bank_refresh`` steps for ``bank``) is timed apart. Peak memory is the process's maximum
resident set size.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

CHILD = """
import json, random, resource, sys, time
import torch
from model import ContrastGeo
from trainer.data.catalogue import build_catalogue
from trainer.encoding_memo import EncodingMemo
from model.pretrained import config_for
from trainer.train import (
    Example, LocationBank, LockedLocations, TrainConfig, freeze_word_embeddings, training_step
)

n, mode, steps, batch, checkpoint = {n}, {mode!r}, {steps}, {batch}, {checkpoint!r}
torch.set_num_threads({threads}) if {threads} else None
torch.manual_seed(0)
rng = random.Random(0)
locations = build_catalogue(None, 15000, merge_km=0).locations[:n]  # no merging: timing only
model = ContrastGeo.from_config(config_for(checkpoint))
if mode == "locked":
    model.lock_location_encoder()
model.train()
config = TrainConfig(progress=False)
freeze_word_embeddings(model, config.word_embeddings)  # as fit does (e5-small: frozen)
trainable = [p for p in model.parameters() if p.requires_grad]
optimizer = torch.optim.AdamW(trainable, lr=1e-5)
words = ["heading to", "back in", "so hot in", "traffic near", "dinner downtown,"]
def batch_of():
    gold = [rng.randrange(n) for _ in range(batch)]
    text = "{{}} {{}} tonight with friends"
    return [Example(text.format(rng.choice(words), locations[g].name), g) for g in gold]
generator = torch.Generator().manual_seed(0)
location_bank = None
if mode == "bank":
    location_bank = LocationBank(refresh=10**9, negatives=config.bank_negatives)
locked = refresh_s = None
if mode != "plain":
    start = time.perf_counter()
    if mode == "locked":
        locked = LockedLocations(model, locations, EncodingMemo())  # what every step reuses
    else:
        with torch.no_grad():
            model.eval(); model.embed_locations(locations); model.train()
    refresh_s = time.perf_counter() - start
times = []
for step in range(steps + 2):
    start = time.perf_counter()
    loss, _ = training_step(
        model, batch_of(), locations, config, generator, cache=locked, bank=location_bank
    )
    optimizer.zero_grad(); loss.backward(); optimizer.step()
    if step >= 2:
        times.append(time.perf_counter() - start)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
times.sort()
print(json.dumps({{"checkpoint": checkpoint, "places": n, "mode": mode,
                   "step_s_median": times[len(times) // 2], "step_s_max": times[-1],
                   "peak_rss_mb": peak, "refresh_s": refresh_s}}))
"""


MODES = {
    "locked": "locked, encoded once",
    "bank": "trained, bank",
    "plain": "trained, every place every step",
}


def check_modes(modes: Sequence[str]) -> None:
    """Refuse a mode that is not in ``MODES`` (before anything is measured)."""
    if unknown := sorted(set(modes) - set(MODES)):
        raise ValueError(f"unknown mode(s) {unknown}: expected some of {', '.join(MODES)}")


def measure_step(
    places: int,
    mode: str,
    steps: int = 10,
    batch: int = 16,
    threads: int = 0,
    checkpoint: str = "minilm",
) -> dict[str, Any]:
    """One fresh process: timed training steps of the ``checkpoint`` encoder at ``places``
    candidates (``MODES``)."""
    check_modes([mode])
    code = CHILD.format(
        n=places, mode=mode, steps=steps, batch=batch, threads=threads, checkpoint=checkpoint
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"the measurement at {places} places failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_training(
    sizes: list[int],
    plain_up_to: int = 1000,
    steps: int = 10,
    batch: int = 16,
    modes: tuple[str, ...] = tuple(MODES),
    checkpoints: Sequence[str] = ("minilm",),
) -> dict[str, Any]:
    check_modes(modes)
    rows = [
        measure_step(n, mode, steps=steps, batch=batch, checkpoint=checkpoint)
        for checkpoint in checkpoints
        for n in sizes
        for mode in modes
        if mode != "plain" or n <= plain_up_to
    ]
    return {"steps": steps, "batch": batch, "rows": rows}


def training_markdown(results: dict[str, Any]) -> str:
    rows = results["rows"]
    fewest = {}
    for r in sorted(rows, key=lambda r: r["places"]):
        fewest.setdefault((r.get("checkpoint", "minilm"), r["mode"]), r)
    lines = [
        "| encoder | places | location encoder | step (s, median) | vs the same at the fewest "
        "places | peak RSS (MB) | every place encoded once (s) |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        checkpoint = r.get("checkpoint", "minilm")  # rows measured before encoders had names
        ratio = r["step_s_median"] / fewest[(checkpoint, r["mode"])]["step_s_median"]
        refresh = f"{r['refresh_s']:.1f}" if r["refresh_s"] is not None else "–"
        lines.append(
            f"| {checkpoint} | {r['places']:,} | {MODES[r['mode']]} | "
            f"{r['step_s_median']:.2f} | {ratio:.2f}× | {r['peak_rss_mb']:.0f} | {refresh} |"
        )
    return (
        "\n".join(lines)
        + f"\n\nBatch {results['batch']}, median of {results['steps']} steps after 2 warm-up "
        "steps, one fresh process per row; the word-embedding table frozen or trained as "
        "`fit` does for each encoder.\n"
    )
