import os

import pytest

from ood_bench.plugins import get_plugins

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `pytest -n 2` (the README's test command): two workers share two cores, so each computes on one thread,
    # and so do the processes its tests start (a run in a suite sets its own: resources.cpus)
    os.environ["OMP_NUM_THREADS"] = "1"
    __import__("torch").set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _machine_cache(tmp_path_factory):
    """Machine-local caches (the bf16 probe's verdict) go to a temporary folder, never the user's home."""
    import os

    os.environ["OOD_BENCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def tasks():
    return get_plugins().tasks


# The core's own families. Tests of built-in behaviour name them rather than iterate over whatever is installed:
# CI installs the example plugins too (.ci/run), and a test of the built-ins must not test (or trip on) those.
BUILTIN_FAMILIES = ("graph", "string")


@pytest.fixture(scope="session")
def families(tasks):
    return [tasks.get(name) for name in BUILTIN_FAMILIES]


TINY_SUITE = __import__("pathlib").Path(__file__).parent / "data" / "tiny_suite.yaml"  # a suite in seconds

TINY_OVERRIDES = [
    "model.n_layer=1",
    "model.n_head=2",
    "model.n_embd=16",
    "model.block_size=192",
    "train.batch_size=8",
    "train.max_steps=4",
    "train.warmup_steps=1",
    "train.ckpt_every=2",
    "train.log_every=1",
    "eval.n_test=4",
    "eval.n_samples=2",
    "eval.splits=[id,ood_comp]",
    "eval.max_new_tokens=24",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
]


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory):
    """A base pretrained in seconds with TINY_OVERRIDES, shared by the whole session: every test that uses it
    writes its runs and evaluations under an --out of its own, never beside the base."""
    from ood_bench.cli import main

    out = tmp_path_factory.mktemp("base")
    assert main(["pretrain", "--no-progress", f"out_dir={out}", *TINY_OVERRIDES]) == 0
    return out / "base.ckpt"


def write_eval_folder(folder, files: dict, seed: int = 0, **meta):
    """An evaluation folder as ``evaluate`` writes it: ``samples/<name>.jsonl`` for each list of
    per-problem records in ``files``, and an ``eval.json`` whose manifest names them."""
    import json
    from pathlib import Path

    import pandas as pd

    from ood_bench.storage.eval_records import write_eval_record

    folder = Path(folder)
    (folder / "samples").mkdir(parents=True, exist_ok=True)
    for name, records in files.items():
        (folder / "samples" / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    write_eval_record(folder, pd.DataFrame(), {"kind": "evaluate", "seed": seed, **meta})
    return folder
