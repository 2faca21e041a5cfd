"""The plugin API: everything an algorithm or task-family plugin imports, from one place.

``API_VERSION`` follows semantic versioning: a plugin written against 1.x keeps
working on every later 1.y; ``ood-bench plugins`` prints the version in use, and
every run record written since 1.1 carries it. Import from here rather than from
the modules behind it, which may move: the built-in algorithms and the example
plugins import nothing else from ``ood_bench`` (a test checks it).

``docs/api.md`` is generated from the docstrings of what ``__all__`` names
(``python docs/make_api.py``); a test fails when it is stale.
"""

from .config import ConfigError, check
from .hookspecs import API_VERSION, hookimpl
from .model.model import GPT, ModelConfig
from .model.tokenizer import BOS, EOS, PAD, TOKENIZER
from .plugins import get_plugins as _get
from .tasks.base import AXES, OOD_SPLITS, SPLITS, Problem, Score, TaskFamily, parse_completion
from .tasks.contract import ContractError, check_family
from .tasks.steps import AxisRanges, StepSpace, step_name
from .training.algorithms import Algorithm, AlgorithmConfig, PostTrainContext, knob, knob_docs, standalone
from .training.context import STANDARD_DIAGNOSTICS, Context, Counters, LogProbs, RolloutBatch
from .training.rl import (
    AGGREGATIONS,
    KL_ESTIMATORS,
    aggregate,
    approx_kl,
    clipped_surrogate,
    entropy_from_logits,
    explained_variance,
    gae,
    group_advantages,
    kl_estimate,
    leave_one_out_baseline,
    masked_mean,
)

__all__ = sorted(
    [
        # versions and plugin wiring
        "API_VERSION",
        "hookimpl",
        "get_plugins",
        # algorithms
        "Algorithm",
        "AlgorithmConfig",
        "ConfigError",
        "check",
        "knob",
        "knob_docs",
        "standalone",
        "Context",
        "PostTrainContext",
        "Counters",
        "LogProbs",
        "RolloutBatch",
        "STANDARD_DIAGNOSTICS",
        # RL math
        "AGGREGATIONS",
        "KL_ESTIMATORS",
        "aggregate",
        "approx_kl",
        "clipped_surrogate",
        "entropy_from_logits",
        "explained_variance",
        "gae",
        "group_advantages",
        "kl_estimate",
        "leave_one_out_baseline",
        "masked_mean",
        # task families
        "AXES",
        "OOD_SPLITS",
        "SPLITS",
        "Problem",
        "Score",
        "TaskFamily",
        "parse_completion",
        "ContractError",
        "check_family",
        "AxisRanges",
        "StepSpace",
        "step_name",
        # model and tokens
        "GPT",
        "ModelConfig",
        "load_base",
        "BOS",
        "EOS",
        "PAD",
        "TOKENIZER",
    ]
)

# What is not a function or a class carries no docstring of its own: its entry in docs/api.md is this.
CONSTANT_DOCS = {
    "API_VERSION": 'The plugin API\'s version, ``"MAJOR.MINOR"`` (str). Example: ``assert API_VERSION.startswith("1.")``.',
    "hookimpl": "Decorator marking a plugin's hook implementations: ``register_algorithms(register)``, "
    "``register_tasks(register)``, ``register_metrics(register)``. Example::\n\n"
    "    @hookimpl\n    def register_algorithms(register):\n        register(MyAlgo)",
    "AGGREGATIONS": "The ``mode`` names ``aggregate`` accepts (tuple of str): "
    "``seq-mean-token-mean``, ``token-mean``, ``seq-mean-token-sum-norm``. "
    "Example: ``check(cfg.mode in AGGREGATIONS, ...)``.",
    "KL_ESTIMATORS": "The ``estimator`` names ``kl_estimate`` accepts (tuple of str): ``k1``, ``k3``.",
    "STANDARD_DIAGNOSTICS": "The diagnostics the core logs for every algorithm (tuple of str): reward, accuracy, "
    "response_length, kl_ref, entropy; ``ctx.end_step()`` returns them.",
    "AXES": "The four out-of-distribution axes (tuple of str): depth, length, repr, comp.",
    "OOD_SPLITS": "``ood_<axis>`` for each axis (tuple of str).",
    "SPLITS": "Every split a family must generate, in order (tuple of str): id, the four ood_*, edge. "
    "Example: ``for split in SPLITS: family.generate(split, 0, 0)``.",
    "BOS": "Id of the begin-of-sequence token (int).",
    "EOS": "Id of the end-of-sequence token (int).",
    "PAD": "Id of the padding token (int); rows from ``ctx.rollout`` are right-padded with it.",
    "TOKENIZER": "The shared character tokenizer: ``encode(text, bos=False, eos=False) -> list[int]``, "
    '``decode(ids) -> str``, ``vocab_size``. Example: ``TOKENIZER.decode(TOKENIZER.encode("S:AB"))``.',
}


def load_base(path):
    """A base (or post-trained) checkpoint as ``(model, its config, the raw checkpoint)``.

    Returns ``(GPT in eval mode, PretrainConfig, dict)``; a file that is no ood-bench checkpoint
    raises a one-line error.

    Example::

        model, config, ckpt = load_base("runs/quick/base.ckpt")
    """
    # late: it loads lightning and what that loads, with pandas, which importing this module does not
    from .training.pretrain import load_base as _load

    return _load(path)


def get_plugins():
    """The loaded plugins: ``.tasks.get(name)`` gives a family, ``.algorithm(name)`` an algorithm class.

    Returns the process-wide ``Plugins`` object (built once, on first use). ``.tasks.names()`` lists the
    registered task families (sorted), ``.algorithms`` maps each algorithm's name to its class, and ``.info``
    says which plugin registered what (what ``ood-bench plugins`` prints).

    Example::

        print(get_plugins().tasks.names())  # ['graph', 'string', ...] with the installed plugins' families
        string = get_plugins().tasks.get("string")
        GRPO = get_plugins().algorithm("grpo")
    """

    return _get()
