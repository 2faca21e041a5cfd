"""Post-training a base model with any registered algorithm, under Lightning.

The module uses manual optimisation: an algorithm's ``step`` may take several
optimizer steps per rollout batch (GRPO's inner iterations, PPO's epochs) or
none (a batch filtered out). Budgets are counted in prompts, rollouts, gradient
steps and tokens; the run stops at whichever is reached first, so algorithms can
be compared at a matched budget of any kind.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn
from torch.utils.data import DataLoader

from ..config import build, check, deep_merge, parse_overrides, read_yaml
from ..data import TEST_SET_SIZE, PromptStream, check_context_holds
from ..faults import checked_diagnostics, checked_extra_modules, checked_state, plugin_call
from ..hookspecs import API_VERSION
from ..plugins import get_plugins
from ..storage.atomic import atomic_write_json
from ..storage.checkpoints import CHECKSUM_KEY, home_folder, state_digest
from ..tasks.base import SPLITS
from .algorithms import Algorithm, build_algorithm_config
from .context import Context
from .pretrain import load_base, task_sources
from .provenance import environment
from .training import TrainerConfig, fit_once, make_trainer, run_identity

RL_SPLITS = SPLITS  # RL prompts may come from any split, the OOD ones included


@dataclass
class Budget:
    """Stop at the first limit reached; ``None`` means no limit of that kind."""

    grad_steps: int = 100
    prompts: int | None = None
    rollouts: int | None = None
    tokens: int | None = None  # rollout tokens plus training tokens
    # Rollout batches, stepped or not; by default 10x grad_steps, so a run whose
    # batches are all filtered out (no reward signal at all) still ends.
    batches: int | None = None
    # The stopping rule. "fixed": the limits above alone. "plateau": also stop once the run's own objective
    # (training reward for RL, the gold traces' NLL for SFT: the algorithm's ``objective``) has stopped
    # improving: its mean over the last ``window`` gradient steps beats the mean over the ``window`` before
    # by less than ``delta``. grad_steps stays the cap; the record says where and why the run stopped.
    stop: str = "fixed"
    window: int = 10
    delta: float = 0.01

    def validate(self, prefix: str = "budget") -> None:
        check(self.grad_steps >= 1, f"{prefix}.grad_steps", self.grad_steps, "must be >= 1")
        for k in ("prompts", "rollouts", "tokens", "batches"):
            v = getattr(self, k)
            check(v is None or v >= 1, f"{prefix}.{k}", v, "must be >= 1 or null")
        check(self.stop in STOP_RULES, f"{prefix}.stop", self.stop, f"choose from {', '.join(STOP_RULES)}")
        check(isinstance(self.window, int) and self.window >= 2, f"{prefix}.window", self.window, "must be >= 2")
        check(
            isinstance(self.delta, (int, float)) and math.isfinite(self.delta) and self.delta >= 0,
            f"{prefix}.delta",
            self.delta,
            "must be a number >= 0",
        )


STOP_RULES = ("fixed", "plateau")


def plateaued(values: list[float], window: int, delta: float, direction: str = "max") -> bool:
    """True once the mean of the last ``window`` values improves on the mean of the ``window`` before them
    by less than ``delta`` (``direction`` "max": higher is better; "min": lower is). Never before there are
    two windows of values, so a run is not judged on its first noisy steps."""
    if len(values) < 2 * window:
        return False
    last = sum(values[-window:]) / window
    before = sum(values[-2 * window : -window]) / window
    gain = last - before if direction == "max" else before - last
    return gain < delta


def budget_identity(budget: dict) -> dict:
    """The budget as a run's key hashes it: the stopping rule's knobs only where it is not "fixed", so the
    records made before the rule existed keep their keys."""
    if budget.get("stop", "fixed") == "fixed":
        return {k: v for k, v in budget.items() if k not in ("stop", "window", "delta")}
    return dict(budget)


# Settings that decide where a run goes, and how fast and in how much memory it runs, never its numbers:
# left out of what identifies a run (for resuming it, and in the suite runner's keys).
NOT_RESULTS = ("out_dir", "trainer", "activation_checkpointing")


@dataclass
class PostTrainConfig:
    algorithm: str = "grpo"
    base: str = ""
    rl_split: str = "id"
    families: list[str] = field(default_factory=list)  # empty: the base mixture's families
    seed: int = 0
    out_dir: str = ""
    prompts_per_step: int = 32
    ckpt_every: int = 20
    # Recompute each block's activations in the backward pass rather than keep them: the same gradients
    # bit for bit, less peak memory, a somewhat slower step (docs/performance.md has the figures). Like most ``trainer`` settings it decides no result, so it is not part of a run's key.
    activation_checkpointing: bool = True
    budget: Budget = field(default_factory=Budget)
    algo: dict = field(default_factory=dict)  # the algorithm's knobs, checked against its config_class
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def validate(self, need_base: bool = True) -> None:
        check(bool(self.base) or not need_base, "base", self.base, "give the base checkpoint (--base)")
        check(self.seed >= 0, "seed", self.seed, "must be a non-negative integer")
        check(self.rl_split in RL_SPLITS, "rl_split", self.rl_split, f"choose from {', '.join(RL_SPLITS)}")
        check(self.prompts_per_step >= 1, "prompts_per_step", self.prompts_per_step, "must be >= 1")
        check(self.ckpt_every >= 1, "ckpt_every", self.ckpt_every, "must be >= 1")
        self.budget.validate()
        self.trainer.validate()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def load_posttrain_config(path: str | None, overrides: list[str], need_base: bool = True) -> PostTrainConfig:
    """The config of a run from a YAML file and ``key=value`` overrides; ``need_base=False`` for
    showing it (``--print-config``), which needs no checkpoint."""
    data = read_yaml(path) if path else {}
    if "posttrain" in data:  # a suite file keeps post-training settings in its own section
        data = data["posttrain"] or {}
    data = deep_merge(data, parse_overrides(overrides))
    cfg = build(PostTrainConfig, data)
    cfg.validate(need_base)
    return cfg


class BudgetStop(Callback):
    def __init__(self, budget: Budget) -> None:
        self.budget = budget

    def on_train_batch_end(self, trainer, module, *args):
        c, b = module.ctx.counters, self.budget
        if (
            (b.prompts and c.prompts >= b.prompts)
            or (b.rollouts and c.rollouts >= b.rollouts)
            or (b.tokens and c.rollout_tokens + c.train_tokens >= b.tokens)
            or c.batches >= (b.batches or 10 * b.grad_steps)
        ):
            trainer.should_stop = True
        if b.stop == "plateau" and plateaued(module.objective_history, b.window, b.delta, module.objective[1]):
            module.stopped_on_plateau = c.grad_steps
            trainer.should_stop = True


class PostTrainModule(L.LightningModule):
    """Lightning's side of a post-training run: the loop, checkpoints and logs around a ``Context``."""

    def __init__(
        self, config: dict, base_config: dict, algorithm: dict, base_model=None, repeat_prompts: bool = False
    ) -> None:
        super().__init__()
        self.automatic_optimization = False

        plugins = get_plugins()
        self.cfg = build(PostTrainConfig, config)
        # Stored as ``model`` so a post-trained checkpoint loads exactly like a base one.
        # ``base_model``: the base already loaded by ``posttrain`` (not loaded a second time)
        self.model, base_cfg, base_ckpt = base_model if base_model is not None else load_base(self.cfg.base)
        # task_sources: a post-trained checkpoint, like a base one, names the plugins its families need;
        # base_sha256: which base it came from, so its evaluation is compared with that base's only
        self.save_hyperparameters(
            {
                "config": base_config,
                "posttrain": config,
                "algorithm": algorithm,
                "task_sources": task_sources(base_config["mixture"]["families"]),
                "base_sha256": base_ckpt.get(CHECKSUM_KEY),
            }
        )
        self.reference = copy.deepcopy(self.model).requires_grad_(False).eval()
        self.model.recompute = self.cfg.activation_checkpointing
        algo_cls = plugins.algorithm(self.cfg.algorithm)
        self.algo_config = build_algorithm_config(algo_cls, self.cfg.algo)
        names = self.cfg.families or [f for f, s in base_cfg.mixture.families.items() if s > 0]
        self.families = [plugins.tasks.get(n) for n in names]
        self.prompts = PromptStream(
            self.families, self.cfg.rl_split, self.cfg.seed, self.cfg.prompts_per_step, repeat=repeat_prompts
        )
        # The optimizer arrives in on_train_start (Lightning makes it after the modules exist).
        self.ctx = Context(
            self.model,
            self.reference,
            self.families,
            self.algo_config,
            optimizer=None,
            seed=self.cfg.seed,
            draw=self.prompts.extra,
            backward=self.manual_backward,
            clip=self._clip,
        )
        name = self.cfg.algorithm
        with plugin_call("algorithm", name, "__init__"):
            self.algorithm: Algorithm = algo_cls(self.algo_config, self.ctx)
        with plugin_call("algorithm", name, "extra_modules"):
            self.extra = nn.ModuleDict(checked_extra_modules(name, self.algorithm.extra_modules()))
        self.last_batch_tokens = 0
        # the run's own objective per gradient step: what the stopping rule and the "did it train" check read
        self.objective = tuple(getattr(algo_cls, "objective", ("reward", "max")))
        self.objective_history: list[float] = []
        self.stopped_on_plateau: int | None = None
        self.last_logs: dict[str, float] = {}

    @property
    def policy(self):
        return self.model

    @property
    def counters(self) -> dict[str, int]:
        return self.ctx.counters.as_dict()

    def _clip(self, max_norm: float) -> None:
        self.clip_gradients(self.optimizers(), gradient_clip_val=max_norm, gradient_clip_algorithm="norm")

    # ------------------------------------------------------------ Lightning hooks
    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return batch  # a list of Problem records: nothing to move

    def configure_optimizers(self):
        ac = self.algo_config
        params = list(self.policy.parameters()) + list(self.extra.parameters())
        return torch.optim.AdamW(params, lr=ac.lr, weight_decay=ac.weight_decay, betas=(0.9, ac.adam_beta2))

    def train_dataloader(self):
        self.prompts.start_step = self.ctx.counters.batches
        return DataLoader(self.prompts, batch_size=None, collate_fn=lambda b: b, num_workers=0)

    def on_train_start(self):
        self.ctx.optimizer = self.optimizers()
        self.ctx.device = self.device

    def training_step(self, problems, batch_idx):
        c = self.ctx.counters
        before = c.rollout_tokens + c.train_tokens
        self.policy.train()
        self.ctx.begin_step()
        with plugin_call("algorithm", self.cfg.algorithm, "step"):
            diag = self.algorithm.step(problems)
        diag = checked_diagnostics(self.cfg.algorithm, diag)
        standard = self.ctx.end_step()
        self.last_batch_tokens = c.rollout_tokens + c.train_tokens - before
        logs = {f"algo/{k}": v for k, v in diag.items()}
        logs.update({f"diag/{k}": v for k, v in standard.items()})
        logs.update({f"budget/{k}": float(v) for k, v in c.as_dict().items()})
        self.last_logs = logs  # this step's scalars alone (Lightning's callback_metrics keep older steps' too)
        self.log_dict(logs, on_step=True, prog_bar=False)
        if "reward" in standard:
            self.log("reward", standard["reward"], prog_bar=True)
        value = standard.get(self.objective[0], diag.get(self.objective[0]))
        if value is not None and c.grad_steps > len(self.objective_history):  # a skipped batch made no step
            self.objective_history.append(float(value))
            self.log("objective", float(value), on_step=True)

    def on_save_checkpoint(self, checkpoint):
        checkpoint["counters"] = self.ctx.counters.as_dict()
        checkpoint["objective_history"] = list(self.objective_history)  # a resumed plateau rule sees it all
        with plugin_call("algorithm", self.cfg.algorithm, "state_dict"):
            state = self.algorithm.state_dict()
        checkpoint["algorithm_state"] = checked_state(self.cfg.algorithm, state)

    def on_load_checkpoint(self, checkpoint):
        self.ctx.counters.load(checkpoint.get("counters", {}))
        self.objective_history = list(checkpoint.get("objective_history", []))
        # every checkpoint since algorithm state was saved has it, {} included: load_state_dict is called on
        # every resume, so an algorithm can count on it (older checkpoints, without the key, skip it)
        if "algorithm_state" in checkpoint:
            with plugin_call("algorithm", self.cfg.algorithm, "load_state_dict"):
                self.algorithm.load_state_dict(checkpoint["algorithm_state"])


def default_out_dir(cfg: PostTrainConfig) -> Path:
    """``<base folder>/posttrain/<algo>-<split>-s<seed>``: one base per folder, so two bases never share it."""

    return home_folder(cfg.base) / "posttrain" / f"{cfg.algorithm}-{cfg.rl_split}-s{cfg.seed}"


def posttrain(
    cfg: PostTrainConfig,
    progress: bool = True,
    callbacks: list[Callback] | None = None,
    repeat_prompts: bool = False,
) -> Path:
    """Run (or resume, or skip if finished) one post-training run; returns its checkpoint.

    ``repeat_prompts``: every step trains on the run's first batch of prompts (``ood-bench dev-check``); it is
    part of the run's identity, so such a run never passes for an ordinary one of the same config."""

    plugins = get_plugins()
    algo_cfg = build_algorithm_config(plugins.algorithm(cfg.algorithm), cfg.algo)
    base = load_base(cfg.base)
    base_cfg = base[1]
    out = Path(cfg.out_dir or default_out_dir(cfg))
    pretrained = [f for f, s in base_cfg.mixture.families.items() if s > 0]
    names = cfg.families or pretrained
    for name in names:
        check(
            name in pretrained,
            "families",
            cfg.families,
            f"the base was pretrained on {', '.join(pretrained)} only, not on {name!r}",
        )
    versions = {n: plugins.tasks.get(n).version for n in names}
    check_context_holds(
        [plugins.tasks.get(n) for n in names],
        [cfg.rl_split],
        base_cfg.model.block_size,
        TEST_SET_SIZE // 5,
        key=f"the base's model.block_size (for --rl-split {cfg.rl_split})",
    )
    resolved = {**cfg.to_dict(), "algo": dataclasses.asdict(algo_cfg)}
    keep = tuple(k for k in resolved if k not in NOT_RESULTS)
    # The base by what it is (its weights' sha256), not where it lies: a runs folder moved to another disk
    # still resumes. Runs checkpointed before this named the base by its path; they are still accepted.
    digest = base[2].get(CHECKSUM_KEY) or state_digest(base[2]["state_dict"])
    identity = run_identity({**resolved, "base": f"sha256:{digest}"}, keep, versions)
    by_path = run_identity(resolved, keep, versions)
    if repeat_prompts:
        identity, by_path = {**identity, "repeat_prompts": True}, {**by_path, "repeat_prompts": True}

    def build_module():
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        return PostTrainModule(
            cfg.to_dict(),
            base_cfg.to_dict(),
            dataclasses.asdict(algo_cfg),
            base_model=base,
            repeat_prompts=repeat_prompts,
        )

    def build_trainer():
        return make_trainer(
            cfg.trainer,
            out,
            cfg.budget.grad_steps,
            cfg.ckpt_every,
            1,
            progress,
            cfg.algorithm,
            [BudgetStop(cfg.budget), *(callbacks or [])],
        )

    def write_record(module, trainer, run):
        atomic_write_json(
            out / "posttrain_record.json",
            {
                "kind": "posttrain",
                "algorithm": cfg.algorithm,
                "algorithm_config": dataclasses.asdict(algo_cfg),
                "plugin": plugins.algorithm_owner(cfg.algorithm),
                "plugin_api": API_VERSION,
                "config": cfg.to_dict(),
                "base_config": base_cfg.to_dict(),
                "counters": module.counters,
                "objective": {"name": module.objective[0], "direction": module.objective[1]},
                # where the run ended: the plateau rule's step, or None (a limit of the budget ended it)
                "stopped": {"rule": cfg.budget.stop, "plateau_at_step": module.stopped_on_plateau},
                "task_versions": versions,
                **run,
                **environment(),
            },
        )

    return fit_once(
        out,
        out / "posttrained.ckpt",
        identity,
        "post-trained",
        build_module,
        build_trainer,
        write_record,
        out / "posttrain_record.json",
        also_accept=(by_path,),
    )
