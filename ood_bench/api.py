"""The plugin API: everything an algorithm or task-family plugin imports, from one place.

``API_VERSION`` follows semantic versioning: a plugin written against 1.x keeps
working on every later 1.y; ``ood-bench plugins`` prints the version in use.
Import from here rather than from the modules behind it, which may move.
"""

from .algorithms import Algorithm, AlgorithmConfig, PostTrainContext, knob_docs, standalone
from .context import STANDARD_DIAGNOSTICS, Context, Counters, LogProbs, RolloutBatch
from .config import ConfigError, check
from .hookspecs import hookimpl
from .model import GPT, ModelConfig
from .tasks.base import AXES, OOD_SPLITS, SPLITS, Problem, Score, TaskFamily
from .tasks.contract import ContractError, check_family
from .tasks.steps import AxisRanges, StepSpace, step_name
from .tokenizer import BOS, EOS, PAD, TOKENIZER

API_VERSION = "1.0"

__all__ = [
    "API_VERSION", "AXES", "BOS", "EOS", "PAD", "TOKENIZER", "Algorithm", "AlgorithmConfig", "ConfigError", "Context", "Counters", "LogProbs",
    "OOD_SPLITS", "PostTrainContext", "Problem", "RolloutBatch", "SPLITS", "STANDARD_DIAGNOSTICS", "Score",
    "TaskFamily", "check", "hookimpl", "knob_docs", "standalone", "AxisRanges", "StepSpace", "step_name",
    "ContractError", "check_family", "GPT", "ModelConfig", "load_base", "get_plugins",
]


def load_base(path):
    """A base (or post-trained) checkpoint as ``(model, its config, the raw checkpoint)``."""
    from .pretrain import load_base as _load

    return _load(path)


def get_plugins():
    """The loaded plugins: ``.tasks.get(name)`` gives a family, ``.algorithm(name)`` an algorithm class."""
    from .plugins import get_plugins as _get

    return _get()
