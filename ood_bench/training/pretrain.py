"""Pretraining a base model from scratch with Lightning.

The LightningModule holds the whole resolved config as hyperparameters, so a
checkpoint alone is enough to rebuild its model, its mixture and its test sets.
Batches are a pure function of (seed, global step), which makes a resumed run
bit-for-bit the continuation of the interrupted one.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from ..config import build, check
from ..data import (
    IGNORE_INDEX,
    PAD,
    Mixture,
    MixtureConfig,
    PretrainStream,
    check_context_holds,
    collate,
    collate_packed,
)
from ..errors import OodBenchError
from ..evaluation.evaluate import EvalConfig
from ..model.model import GPT, ModelConfig
from ..plugins import family_source, find_family
from ..storage.atomic import atomic_write_json
from ..storage.checkpoints import read_checkpoint
from .provenance import environment
from .training import StepPhases, TrainerConfig, fit_once, make_trainer, run_identity


@dataclass
class TrainConfig:
    batch_size: int = 128
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    warmup_steps: int = 50
    max_steps: int = 600  # matched across exposures: compare at equal steps, not wall time
    grad_clip: float = 1.0
    ckpt_every: int = 50
    log_every: int = 10
    loss_on_prompt: bool = False  # prompts are random draws; only the completion is learnable
    # Pack each step's examples into rows of this many tokens (block-diagonal
    # attention) instead of padding each to the longest: the same examples, about
    # half the compute on a CPU. Short rows keep attention cheap. 0: no packing.
    pack_len: int = 128
    # Positional skip (PoSE): move the positions after a random cut of each
    # example on by up to this many, so positions and distances past the ID
    # lengths are trained without longer problems. 0: off. Lets a reader tell
    # "a deeper / longer problem" from "a problem at untrained positions".
    position_skip: int = 0
    adam_beta2: float = 0.95  # AdamW's second-moment decay (nanoGPT's choice for short pretraining runs)

    def validate(self, prefix: str = "train") -> None:
        for k in ("batch_size", "max_steps", "ckpt_every", "log_every"):
            check(getattr(self, k) > 0, f"{prefix}.{k}", getattr(self, k), "must be positive")
        check(math.isfinite(self.lr) and self.lr > 0, f"{prefix}.lr", self.lr, "must be a positive number")
        check(self.pack_len >= 0, f"{prefix}.pack_len", self.pack_len, "must be >= 0 (0: no packing)")
        check(0 < self.adam_beta2 < 1, f"{prefix}.adam_beta2", self.adam_beta2, "must be in (0, 1)")
        check(self.position_skip >= 0, f"{prefix}.position_skip", self.position_skip, "must be >= 0 (0: off)")
        check(0 <= self.min_lr_ratio <= 1, f"{prefix}.min_lr_ratio", self.min_lr_ratio, "must be in [0, 1]")
        check(self.warmup_steps >= 0, f"{prefix}.warmup_steps", self.warmup_steps, "must be >= 0")
        check(self.weight_decay >= 0, f"{prefix}.weight_decay", self.weight_decay, "must be >= 0")
        check(self.grad_clip >= 0, f"{prefix}.grad_clip", self.grad_clip, "must be >= 0")


@dataclass
class PretrainConfig:
    seed: int = 0
    out_dir: str = "runs/quick/base"
    model: ModelConfig = field(default_factory=ModelConfig)
    mixture: MixtureConfig = field(default_factory=MixtureConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def validate(self) -> None:
        check(isinstance(self.seed, int) and self.seed >= 0, "seed", self.seed, "must be a non-negative integer")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if hasattr(value, "validate"):
                value.validate(f.name)
        if not self.eval.families:
            self.eval.families = [f for f, share in self.mixture.families.items() if share > 0]
        self._check_context_holds_the_test_problems()

    def _check_context_holds_the_test_problems(self) -> None:
        """A model whose context cannot hold a test problem would train for minutes, then fail to score it."""

        check_context_holds(
            [find_family(n) for n in self.eval.families], self.eval.splits, self.model.block_size, self.eval.n_test
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class PretrainModule(L.LightningModule):
    def __init__(self, config: dict) -> None:
        super().__init__()
        self.cfg: PretrainConfig = build(PretrainConfig, config)
        # Which plugin provided each family, so a checkpoint can say what it needs when that plugin is missing.
        self.save_hyperparameters({"config": config, "task_sources": task_sources(self.cfg.mixture.families)})
        self.model = GPT(self.cfg.model)
        self.tokens_seen = 0
        self.last_batch_tokens = 0

    def training_step(self, batch, batch_idx):
        logits = self.model(
            batch["x"], batch.get("positions"), batch.get("attn_mask"), doc_index=batch.get("doc_index")
        )
        loss = F.cross_entropy(logits.flatten(0, 1), batch["y"].flatten(), ignore_index=IGNORE_INDEX)
        n_tokens = int((batch["x"] != PAD).sum())
        self.tokens_seen += n_tokens
        self.last_batch_tokens = n_tokens
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/tokens", float(self.tokens_seen))
        self.log("train/lr", self.optimizers().param_groups[0]["lr"])
        return loss

    def configure_optimizers(self):
        tc = self.cfg.train
        decay = [p for n, p in self.model.named_parameters() if p.dim() >= 2]
        no_decay = [p for n, p in self.model.named_parameters() if p.dim() < 2]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": tc.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=tc.lr,
            betas=(0.9, tc.adam_beta2),
        )

        def schedule(step: int) -> float:  # linear warmup, then cosine to min_lr_ratio
            if step < tc.warmup_steps:
                return (step + 1) / tc.warmup_steps
            progress = min(1.0, (step - tc.warmup_steps) / max(1, tc.max_steps - tc.warmup_steps))
            return tc.min_lr_ratio + (1 - tc.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def train_dataloader(self):
        # On resume Lightning restores global_step before asking for data, so the
        # stream restarts at the first batch the interrupted run had not trained on.
        return pretrain_loader(self.cfg, self.trainer.global_step, self.global_rank, self.trainer.world_size)

    def on_save_checkpoint(self, checkpoint):
        checkpoint["tokens_seen"] = self.tokens_seen

    def on_load_checkpoint(self, checkpoint):
        self.tokens_seen = checkpoint.get("tokens_seen", 0)


def pretrain_loader(cfg: PretrainConfig, start_step: int = 0, rank: int = 0, world_size: int = 1) -> DataLoader:
    """The pretraining batches from ``start_step`` on: the mixture's stream, packed (or padded)."""
    tc = cfg.train
    stream = PretrainStream(
        Mixture(cfg.mixture, cfg.seed),
        tc.batch_size,
        cfg.model.block_size,
        start_step=start_step,
        rank=rank,
        world_size=world_size,
        position_skip=tc.position_skip,
    )
    if tc.pack_len:
        row = min(tc.pack_len, cfg.model.block_size)
        collate_fn = lambda ex: collate_packed(ex, row, tc.loss_on_prompt)  # noqa: E731
    else:
        collate_fn = lambda ex: collate(ex, tc.loss_on_prompt)  # noqa: E731
    return DataLoader(stream, batch_size=tc.batch_size, collate_fn=collate_fn, num_workers=0)


def base_checkpoint(out_dir: str | Path) -> Path:
    return Path(out_dir) / "base.ckpt"


def pretrain(cfg: PretrainConfig, progress: bool = True, callbacks: list[Callback] | None = None) -> Path:
    """Train (or resume, or skip if done) the base model; returns ``base.ckpt``."""

    out = Path(cfg.out_dir)
    versions = {n: find_family(n).version for n, share in cfg.mixture.families.items() if share > 0}
    identity = run_identity(cfg.to_dict(), ("seed", "model", "mixture", "train"), versions)

    def build_module():
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        return PretrainModule(cfg.to_dict())

    def build_trainer():
        return make_trainer(
            cfg.trainer,
            out,
            cfg.train.max_steps,
            cfg.train.ckpt_every,
            cfg.train.log_every,
            progress,
            "pretrain",
            [StepPhases("pretrain"), *(callbacks or [])],
            gradient_clip_val=cfg.train.grad_clip or None,
        )

    def write_record(module, trainer, run):
        atomic_write_json(
            out / "pretrain_record.json",
            {
                "kind": "pretrain",
                "config": cfg.to_dict(),
                "global_step": trainer.global_step,
                "tokens_seen": module.tokens_seen,
                "num_params": module.model.num_params(),
                "task_versions": versions,
                **run,
                **environment(),
            },
        )

    return fit_once(
        out,
        base_checkpoint(out),
        identity,
        "base",
        build_module,
        build_trainer,
        write_record,
        out / "pretrain_record.json",
    )


def task_sources(families: dict[str, float]) -> dict[str, dict]:
    """Version, plugin and distribution of each family of a mixture."""

    return {name: src for name in families if (src := family_source(name))}


def check_tasks_available(path: str | Path, cfg: PretrainConfig, sources: dict) -> None:
    """A checkpoint whose families are not all installed names what it needs and where it came from."""

    for name, share in cfg.mixture.families.items():
        if share <= 0:
            continue
        try:
            find_family(name)
        except OodBenchError:
            src = sources.get(name) or {}
            where = (
                f" (v{src.get('version')}, from the distribution {src.get('distribution')!r}: install it)"
                if src.get("distribution")
                else " (install the plugin that provides it)"
            )
            raise OodBenchError(
                f"checkpoint {str(path)!r} was pretrained on task family {name!r}, which no "
                f"installed plugin provides{where}"
            ) from None


def load_base(path: str | Path) -> tuple[GPT, PretrainConfig, dict]:
    """Rebuild a base model from a checkpoint: (model in eval mode, its config, raw ckpt)."""
    ckpt = read_checkpoint(path, "checkpoint")
    hparams = ckpt.get("hyper_parameters")
    config = hparams.get("config") if isinstance(hparams, dict) else None
    if not isinstance(config, dict):
        raise OodBenchError(f"checkpoint {str(path)!r} carries no ood-bench config")
    try:
        cfg = build(PretrainConfig, config)
        cfg.model.validate()
    except OodBenchError as exc:
        raise OodBenchError(f"checkpoint {str(path)!r} carries a broken config: {exc}") from None
    sources = hparams.get("task_sources")
    check_tasks_available(path, cfg, sources if isinstance(sources, dict) else {})
    model = GPT(cfg.model)
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise OodBenchError(
            f"checkpoint {str(path)!r} does not match its model config: {str(exc).splitlines()[0]}"
        ) from None
    model.eval()
    return model, cfg, ckpt
