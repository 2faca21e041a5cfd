"""Lightning plumbing shared by pretraining and post-training."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, get_args

import lightning as L
import torch
from lightning.fabric import connector
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, Timer, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger

from .. import phases
from ..config import check
from ..errors import ConfigError, NonFiniteError, OodBenchError, RunInterrupted
from ..storage.atomic import writable_folder
from ..storage.checkpoints import AtomicCheckpointIO, read_checkpoint
from . import precision  # called through the module, so a stand-in is used
from .precision import AUTO, resolve_precision


@dataclass
class TrainerConfig:
    """Passed straight to ``lightning.Trainer``: the same config scales to GPUs and nodes."""

    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    # any precision Lightning accepts (32-true, 16-mixed, bf16-mixed, 32, ...), or auto: bf16-mixed where the CPU
    # multiplies bf16 natively, else 32-true (ood_bench/training/precision.py), resolved by validate before any key is made
    precision: Any = "32-true"
    logger: str = "csv"  # csv (always there), tensorboard or wandb (when installed); logs go to <out_dir>/logs

    def validate(self, prefix: str = "trainer") -> None:
        # once, here: the resolved precision is what a run's config, key and record hold
        self.precision = resolve_precision(self.precision)
        check(self.num_nodes >= 1, f"{prefix}.num_nodes", self.num_nodes, "must be >= 1")
        check(self.logger in LOGGERS, f"{prefix}.logger", self.logger, f"choose from {', '.join(LOGGERS)}")
        needs = {"tensorboard": "tensorboard", "wandb": "wandb"}.get(self.logger)
        if needs:
            # late: the command line imports what a command needs only when it runs
            import importlib.util

            check(
                importlib.util.find_spec(needs) is not None,
                f"{prefix}.logger",
                self.logger,
                f"the {needs} package is not installed (pip install {needs})",
            )
        # Checked here, before any compute, rather than by Lightning after the data is built.

        precisions = sorted(
            {
                str(p)
                for kind in (
                    connector._PRECISION_INPUT_STR,
                    connector._PRECISION_INPUT_STR_ALIAS,
                    connector._PRECISION_INPUT_INT,
                )
                for p in get_args(kind)
            }
        )
        check(
            str(self.precision) in precisions,
            f"{prefix}.precision",
            self.precision,
            f"choose from {AUTO}, {', '.join(precisions)}",
        )
        devices_ok = (
            self.devices == "auto"
            or (isinstance(self.devices, int) and (self.devices >= 1 or self.devices == -1))
            or (isinstance(self.devices, list) and len(self.devices) > 0)
        )
        check(devices_ok, f"{prefix}.devices", self.devices, "give auto, a count >= 1 (-1: all), or a list of ids")
        if self.accelerator in ("gpu", "cuda"):
            check(
                torch.cuda.is_available(),
                f"{prefix}.accelerator",
                self.accelerator,
                "no CUDA GPU is visible on this machine (use auto or cpu)",
            )
        elif self.accelerator == "mps":
            check(
                torch.backends.mps.is_available(),
                f"{prefix}.accelerator",
                self.accelerator,
                "MPS is not available on this machine (use auto or cpu)",
            )
        self._check_with_lightning(prefix)

    def _check_with_lightning(self, prefix: str) -> None:
        """What only Lightning knows (a strategy that needs a GPU or a package, devices a CPU cannot
        have, a precision this machine lacks): build a Trainer with these settings and nothing else."""
        settings = repr((self.accelerator, self.devices, self.num_nodes, self.strategy, self.precision))
        # A Trainer takes ~25 ms to build (it scans every installed entry point for callbacks), and a suite
        # validates one per run: 3,220 for the paper suite, 80 s. Settings that passed once pass again in
        # this process; a failure is never remembered, so it is raised every time.
        if settings in _TRAINER_SETTINGS_OK:
            return
        quiet = logging.getLogger("lightning.pytorch.utilities.rank_zero")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            L.Trainer(
                accelerator=self.accelerator,
                devices=self.devices,
                num_nodes=self.num_nodes,
                strategy=self.strategy,
                precision=self.precision,
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
            )
        except Exception as exc:  # Lightning raises ValueError, TypeError, ImportError, its own exceptions...
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ConfigError(
                f"invalid trainer settings (accelerator={self.accelerator}, devices={self.devices}, "
                f"strategy={self.strategy}, precision={self.precision}, num_nodes={self.num_nodes}): "
                f"{reason}"
            ) from None
        finally:
            quiet.setLevel(level)
        _TRAINER_SETTINGS_OK.add(settings)


# the trainer settings Lightning accepted in this process (TrainerConfig._check_with_lightning)
_TRAINER_SETTINGS_OK: set[str] = set()


class StepProgressBar(TQDMProgressBar):
    """Data streams are endless, so show progress in optimizer steps out of max_steps."""

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label

    def on_train_epoch_start(self, trainer, *args) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.reset(total=trainer.max_steps)
        self.train_progress_bar.n = trainer.global_step
        self.train_progress_bar.set_description(self.label)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # Lightning counts batches, but a post-training batch may take several optimizer steps (GRPO's
        # inner_iterations) or none (a skipped batch), and a resumed run's batch_idx starts again at 0:
        # the bar shows the optimizer steps, the unit of its total.
        bar = self.train_progress_bar
        if bar is not None and self._should_update(trainer.global_step, bar.total):
            bar.n = trainer.global_step
            bar.set_postfix(self.get_metrics(trainer, pl_module))
            bar.refresh()


class Throughput(Callback):
    """Tokens per second of the training loop, logged with the other scalars."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        tokens = getattr(pl_module, "last_batch_tokens", 0)
        if tokens:
            pl_module.log("train/tokens_per_s", tokens / max(time.perf_counter() - self._t0, 1e-9))


class StepPhases(Callback):
    """Charges a training step's parts to the phase clock (``ood_bench.phases``): ``<prefix>.forward`` (the
    training step up to its loss), ``.backward``, ``.optimizer`` (gradient clipping and the update) and
    ``.data`` (from the end of one step to the start of the next: the end-of-step hooks, logging and
    fetching the next batch; checkpoint writes are ``io``). For automatic optimisation only: a manual
    step (post-training) times its own parts."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def on_train_batch_start(self, *args) -> None:
        phases.switch(f"{self.prefix}.forward")

    def on_before_backward(self, *args) -> None:
        phases.switch(f"{self.prefix}.backward")

    def on_before_optimizer_step(self, *args) -> None:
        phases.switch(f"{self.prefix}.optimizer")

    def on_train_batch_end(self, *args) -> None:
        phases.switch(f"{self.prefix}.data")

    def on_train_end(self, *args) -> None:
        phases.switch(None)


class FiniteGuard(Callback):
    """Stop a run, with one line, the step its loss or weights stop being finite.

    It runs before the checkpoint callback at the end of each step (Lightning runs
    checkpointing last), so a non-finite weight is never written: the last checkpoint
    on disk is the last finite state, and resuming from it with a smaller learning
    rate is the way on. (Post-training checks each loss in ``Context.optimize`` too.)
    """

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        bad = loss is not None and not torch.isfinite(loss).all()
        # one reduction and one device sync for all weights: a norm is non-finite iff a weight is
        bad = bad or not bool(torch.isfinite(torch.stack(torch._foreach_norm(list(pl_module.parameters())))).all())
        if bad:
            raise NonFiniteError(
                f"training stopped at step {trainer.global_step}: the loss or the weights are "
                f"no longer finite (NaN or inf); nothing non-finite was saved. Lower the learning "
                f"rate and run again to resume from the last checkpoint"
            )


class GracefulStop(Callback):
    """On SIGINT or SIGTERM, finish the current step, save ``last.ckpt``, and stop with ``RunInterrupted``.

    Lightning's own handling would exit 1 on Ctrl-C, and on SIGTERM could return as if the
    run had finished; a scheduler or an ``&&`` chain must see neither.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, checkpoint: Path) -> None:
        self.checkpoint = checkpoint
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum, frame) -> None:
        self.signum = signum

    def _arm(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                previous = signal.signal(s, self._handler)
                self._previous.setdefault(s, previous)  # the handler from before fit, restored at teardown

    def setup(self, trainer, pl_module, stage) -> None:
        # Armed from the start of fit: building the data (the reserved test sets) takes seconds before the first
        # step, and a signal there would otherwise reach Lightning, which ends a Ctrl-C with exit status 1.
        # The run then stops at the end of its first step, with a checkpoint, like any other.
        self._arm()

    def on_train_start(self, trainer, pl_module) -> None:
        self._arm()  # again: Lightning installs its own SIGTERM handler between setup and here

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.signum is not None:
            trainer.save_checkpoint(self.checkpoint, weights_only=False)
            raise RunInterrupted(self.signum, trainer.global_step, self.checkpoint)

    def teardown(self, trainer, pl_module, stage) -> None:
        for s, previous in self._previous.items():
            signal.signal(s, previous)
        self._previous.clear()


LOGGERS = ("csv", "tensorboard", "wandb")


def make_logger(kind: str, out: Path):
    """Lightning's own logger of that kind, writing under ``out/logs``."""
    if kind == "tensorboard":
        # late: an optional dependency, needed only here
        from lightning.pytorch.loggers import TensorBoardLogger

        return TensorBoardLogger(str(out), name="logs")
    if kind == "wandb":
        # late: an optional dependency, needed only here
        from lightning.pytorch.loggers import WandbLogger

        return WandbLogger(save_dir=str(out), name=out.name)
    return CSVLogger(str(out), name="logs")


def make_trainer(
    tc: TrainerConfig,
    out: Path,
    max_steps: int,
    ckpt_every: int,
    log_every: int,
    progress: bool,
    label: str,
    callbacks: list[Callback] | None = None,
    **kwargs,
) -> L.Trainer:
    """A Trainer that checkpoints atomically to ``out/checkpoints`` and logs CSV to ``out/logs``.

    A resumed run logs to a new ``logs/version_N`` rather than over the old one.
    """

    warn_if_bf16_is_emulated(tc)
    return L.Trainer(
        accelerator=tc.accelerator,
        devices=tc.devices,
        num_nodes=tc.num_nodes,
        strategy=tc.strategy,
        precision=resolve_precision(tc.precision),
        max_steps=max_steps,
        log_every_n_steps=log_every,
        logger=make_logger(tc.logger, out),
        callbacks=[
            ModelCheckpoint(dirpath=out / "checkpoints", every_n_train_steps=ckpt_every, save_last=True, save_top_k=0),
            Throughput(),
            FiniteGuard(),
            GracefulStop(out / "checkpoints" / "last.ckpt"),
            # No time limit: it only measures. Its elapsed time travels in every checkpoint, so a resumed
            # run's record counts the training of every session, not just the last one (see train_seconds).
            Timer(duration=None, verbose=False),
            *(callbacks or []),
        ]
        + ([StepProgressBar(label)] if progress else []),
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=progress,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        **kwargs,
    )


def warn_if_bf16_is_emulated(tc: TrainerConfig) -> None:
    """bf16 on a CPU without bf16 instructions (AVX512-BF16 or AMX) is emulated and slower than fp32: say so in
    one line, since the config (and a run's key) asks for it, and leave the choice to the user (``auto``
    never chooses it there)."""

    if not str(tc.precision).startswith("bf16") or torch.cuda.is_available() or tc.accelerator not in ("auto", "cpu"):
        return
    if not precision.cpu_info()["bf16_native"]:
        print(
            f"ood-bench: warning: trainer.precision={tc.precision}, but this CPU has no native bf16 "
            f"instructions: training will be slower than in fp32 (trainer.precision=32-true or auto, a different "
            f"run key)",
            file=sys.stderr,
            flush=True,
        )


def run_identity(config: dict, keep: tuple[str, ...], task_versions: dict[str, int]) -> dict:
    """What decides a run's weights: the named parts of its resolved config, its numeric precision
    (when not full fp32) and the task versions.

    Output folders, devices and evaluation settings are left out, so moving a run or changing
    how it is evaluated does not make it a different run.
    """
    return {
        **{k: config.get(k) for k in keep},
        **precision_identity(config.get("trainer")),
        "task_versions": dict(sorted(task_versions.items())),
    }


def precision_identity(trainer: dict | None) -> dict:
    """``trainer.precision`` as part of what identifies a run: it changes every number (the device
    does not, beyond float rounding). Full fp32 adds nothing, so fp32 runs keep the keys they had. ``auto``
    counts as what it resolves to here, so a bf16 run is never keyed like an fp32 one."""

    precision = str(resolve_precision((trainer or {}).get("precision", "32-true")))
    return {} if precision in ("32-true", "32") else {"precision": precision}


def fit_once(
    out: Path,
    final: Path,
    identity: dict,
    kind: str,
    build_module: Callable[[], L.LightningModule],
    build_trainer: Callable[[], L.Trainer],
    write_record: Callable[[L.LightningModule, L.Trainer, dict], None],
    record: Path | None = None,
    also_accept: tuple[dict, ...] = (),
) -> Path:
    """The one lifecycle of a training run, pretraining or post-training alike.

    Skip it if ``final`` exists with the same identity (refuse if another); resume from
    ``out/checkpoints/last.ckpt`` if that belongs to the same identity (refuse if not); fit;
    save ``final``; write the run's record. The identity is stored in the checkpoint's
    hyperparameters as ``identity``; checkpoints whose identity is one of ``also_accept`` (the same
    run as an older version identified it) count as the same run. A finished run whose ``record``
    file went missing gets it back, rebuilt from ``final``.
    """
    try:
        before = set(out.iterdir()) if out.is_dir() else None
    except OSError:  # a name too long, a folder not readable: run_folder_lock says so in one line
        before = ...  # and what is there is not known, so nothing is removed
    try:
        with run_folder_lock(out):
            return _fit_locked(
                out, final, identity, kind, build_module, build_trainer, write_record, record, (identity, *also_accept)
            )
    except BaseException:
        if before is not ...:
            _remove_what_a_failed_start_wrote(out, before)
        raise


def _remove_what_a_failed_start_wrote(out: Path, before: set[Path] | None) -> None:
    """A run that failed before its first checkpoint (a plugin's fault, a bad base) leaves nothing to
    resume from: remove what it created (the lock file, an empty log folder), the folder too if it made
    it, so no half-written run is left looking like one in progress. A run with a checkpoint is kept."""

    try:
        if (
            not out.is_dir()
            or any((out / "checkpoints").glob("*.ckpt"))
            or (before is not None and out / "checkpoints" in before)
        ):
            return
        if before is None:
            shutil.rmtree(out, ignore_errors=True)
            return
        for path in set(out.iterdir()) - before:
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    except OSError:  # tidying up must never hide the error that ended the run
        pass


@contextlib.contextmanager
def run_folder_lock(out: Path):
    """Own ``out`` for the length of a run: a second writer is refused with one line.

    An OS file lock (``flock``) on ``out/.lock``: the kernel releases it however the
    holder ends (exit, crash, SIGKILL), so a lock left by a dead run is never stale.
    Half-written ``.tmp`` files of interrupted saves are removed once the lock is held.
    """

    if not Path(out).resolve().name:
        raise OodBenchError(f"out_dir {str(out)!r} is the root of the file system; give a folder of its own")
    writable_folder(out, "out_dir")
    handle = open(out / ".lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise OodBenchError(
            f"run folder {str(out)!r} is in use by {holder}; wait for it, or choose another out_dir"
        ) from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}")
        handle.flush()
        for orphan in out.rglob(".*.tmp"):  # left by a save that was killed mid-write
            orphan.unlink(missing_ok=True)
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _fit_locked(out, final, identity, kind, build_module, build_trainer, write_record, record, accepted) -> Path:
    if final.exists():
        done = read_checkpoint(final, f"{kind} checkpoint")
        if (done.get("hyper_parameters") or {}).get("identity") in accepted:
            if record is not None and not record.is_file():  # finished, but its record was lost
                module = build_module()
                module.on_load_checkpoint(done)
                write_record(
                    module,
                    SimpleNamespace(global_step=done.get("global_step", 0), is_global_zero=True),
                    {
                        "wall_seconds_this_session": None,
                        **checkpoint_train_seconds(done),
                        "resumed_from": None,
                        "identity": identity,
                        "record_rebuilt_from": str(final),
                    },
                )
            return final  # finished already with this exact config
        raise OodBenchError(f"{final} was trained with a different config; choose another out_dir or remove it")
    module = build_module()
    module.hparams["identity"] = identity
    last = out / "checkpoints" / "last.ckpt"
    resume = None
    if last.exists():
        prior = read_checkpoint(last, "resume checkpoint")
        if (prior.get("hyper_parameters") or {}).get("identity") not in accepted:
            raise OodBenchError(f"{last} belongs to a run with a different config; choose another out_dir")
        resume = str(last)
    trainer = build_trainer()
    t0 = time.time()
    trainer.fit(module, ckpt_path=resume)
    trainer.save_checkpoint(final, weights_only=False)
    if trainer.is_global_zero:
        write_record(
            module,
            trainer,
            {
                "wall_seconds_this_session": round(time.time() - t0, 2),
                **train_seconds(trainer),
                "resumed_from": resume,
                "identity": identity,
            },
        )
    return final


def train_seconds(trainer: L.Trainer) -> dict:
    """Seconds spent in the training loop, over every session of a resumed run (``train_seconds``) and in
    the sessions before this one (``train_seconds_earlier``), from Lightning's ``Timer``, whose elapsed time
    each checkpoint carries. An interrupted session counts up to its last checkpoint: steps after it were
    lost and done again, so they are not part of the result's cost. A resume from a checkpoint already at
    the last step trains nothing (the Timer never starts): all of its time is earlier."""
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
    if timer is None:
        return {}
    total = timer.time_elapsed("train")
    start = timer.start_time("train")
    this_session = 0.0 if start is None else (timer.end_time("train") or time.monotonic()) - start
    return {"train_seconds": round(total, 2), "train_seconds_earlier": round(max(0.0, total - this_session), 2)}


def checkpoint_train_seconds(ckpt: dict) -> dict:
    """``train_seconds`` as the Timer state in a finished checkpoint gives it (for a record rebuilt from it)."""
    state = (ckpt.get("callbacks") or {}).get(Timer.__qualname__) or {}
    seconds = (state.get("time_elapsed") or {}).get("train")
    return {} if seconds is None else {"train_seconds": round(seconds, 2), "train_seconds_earlier": round(seconds, 2)}
