"""Evaluate a checkpoint into a folder of its own: the per-problem files, ``eval.json`` with its
manifest and provenance, written fresh and swapped in whole (``evaluate`` and the suite runner)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..plugins import get_plugins
from ..storage.eval_records import fresh_folder, replace_folder, write_eval_record


def evaluate_checkpoint(
    ckpt_path: str | Path, ecfg, seed: int, out_dir: Path, progress: bool, loaded=None
) -> pd.DataFrame:
    # late: it loads torch, which importing this module does not
    from ..evaluation.evaluate import SAMPLING, evaluate

    # late: it loads lightning and what that loads, which importing this module does not
    from ..storage.checkpoints import CHECKSUM_KEY

    # late: it loads lightning and what that loads, which importing this module does not
    from ..training.pretrain import load_base

    # late: it loads torch, which importing this module does not
    from ..training.provenance import environment

    tasks = get_plugins().tasks
    model, cfg, ckpt = loaded or load_base(ckpt_path)
    families = [tasks.get(f) for f in (ecfg.families or list(cfg.mixture.families))]
    out_dir = Path(out_dir)
    work = fresh_folder(out_dir)  # written whole, then swapped in: no stale or half-written files
    try:
        df = evaluate(model, families, ecfg, seed=seed, out_dir=work, progress=progress)
    except Exception:  # a scorer's fault, a full disk: no partial folder is left beside the output
        # late: the command line imports what a command needs only when it runs
        import shutil

        shutil.rmtree(work, ignore_errors=True)
        raise
    meta = {
        "kind": "evaluate",
        "checkpoint": str(ckpt_path),
        "eval_config": ecfg.__dict__,
        "seed": seed,
        "sampling": SAMPLING,
        "checkpoint_sha256": ckpt.get(CHECKSUM_KEY),
        "base_checkpoint_sha256": ckpt.get("hyper_parameters", {}).get("base_sha256"),
        "task_versions": {f.name: f.version for f in families},
        "model_config": cfg.model.__dict__,
        "mixture": cfg.mixture.__dict__,
        **environment(),
    }
    write_eval_record(work, df, meta)
    replace_folder(work, out_dir)
    return df
