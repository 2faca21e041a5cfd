"""Suites: the paper's experiment as a grid of runs, read from YAML and keyed by content.

A suite names the bases (mixtures x exposure levels x pretraining seeds), the
post-training rows (algorithm, knobs, budget) and the splits they train on, and
the evaluation every model gets. ``expand`` turns it into ``RunSpec`` objects:
one base run per (mixture, exposure, seed) — pretrain, evaluate, evaluate again
with another sampling seed for the null — and one post run per (base, row,
training split) — post-train, evaluate. Each run is keyed by a hash of what
decides its numbers: its resolved config (defaults filled in, output folders and
devices left out), the task-family versions, the base's key for a post run, and
``RESULTS_VERSION``. The git commit is provenance, never part of the key, so an
unrelated commit leaves committed records valid.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Whole, build, check, deep_merge, parse_overrides, read_yaml
from ..errors import ConfigError, OodBenchError
from ..plugins import find_family, get_plugins
from ..tasks.base import AXES, SPLITS

# Bump when a change to the code alters the numbers a run produces (sampling, scoring, training
# arithmetic); every record made before then is re-run. Unrelated commits leave it alone.
# 2: the decode kernel became the default engine where it builds (another order of float sums, so other
#    sampled tokens); the step-only "trace_pass@1" of eval summaries became "steps_pass@1" beside
#    "full_pass@1"; the experiment's redesign (bases with headroom, recipes from the sweeps, five seeds).
RESULTS_VERSION = 2
SUITE_DIR = Path(__file__).parents[1] / "suites"


@dataclass
class BasesConfig:
    """The pretrained bases: one per (mixture, exposure level, seed), all from one recipe."""

    config: str = "quick"  # the pretraining recipe: an embedded config name or a YAML file
    overrides: dict = field(default_factory=dict)  # pretraining keys on top of it, e.g. {train: {max_steps: 500}}
    # name -> family shares; empty: the recipe's own mixture (named "default")
    mixtures: dict[str, dict[str, float]] = field(default_factory=dict)
    # name -> mixture.exposure (per-axis fraction of the corpus from that axis's OOD split)
    exposures: dict[str, dict[str, float]] = field(default_factory=lambda: {"e0": {}})
    seeds: list[int] = field(default_factory=lambda: [0])
    # level -> the pretraining seeds of that level when it has fewer than `seeds` (a subset of them): a suite
    # spends five seeds on the level its verdicts rest on and three on the others
    exposure_seeds: dict[str, list[int]] = field(default_factory=dict)

    def validate(self, prefix: str = "bases") -> None:
        check(bool(self.exposures), f"{prefix}.exposures", self.exposures, "name at least one exposure level")
        check(bool(self.seeds), f"{prefix}.seeds", self.seeds, "name at least one pretraining seed")
        check(len(set(self.seeds)) == len(self.seeds), f"{prefix}.seeds", self.seeds, "a seed is given twice")
        for name in (*self.mixtures, *self.exposures):
            check(_is_name(name), prefix, name, "names are letters, digits, '_' and '.' only")
        for level, seeds in self.exposure_seeds.items():
            key = f"{prefix}.exposure_seeds.{level}"
            check(level in self.exposures, key, seeds, f"no such exposure level (levels: {', '.join(self.exposures)})")
            check(isinstance(seeds, list) and bool(seeds), key, seeds, "a non-empty list of pretraining seeds")
            check(len(set(seeds)) == len(seeds), key, seeds, "a seed is given twice")
            for seed in seeds:
                check(seed in self.seeds, key, seed, f"not one of bases.seeds ({', '.join(map(str, self.seeds))})")

    def seeds_of(self, level: str) -> list[int]:
        """The pretraining seeds of one exposure level."""
        return list(self.exposure_seeds.get(level) or self.seeds)


@dataclass
class RowConfig:
    """One post-training row of the leaderboard: an algorithm with its knobs, at the suite's budget
    unless ``budget`` says otherwise (a row that deliberately spends more says so in ``note``)."""

    name: str = ""
    algorithm: str = ""
    algo: dict = field(default_factory=dict)  # the algorithm's knobs (`ood-bench algorithms NAME`)
    budget: dict = field(default_factory=dict)  # keys of the suite's budget this row changes
    splits: list[str] = field(default_factory=list)  # training splits; empty: the suite's
    # pretraining seeds whose bases this row post-trains; empty: every seed of `bases.seeds`. A suite
    # spends its seeds where a verdict rests (five there) and fewer elsewhere (three)
    seeds: list[int] = field(default_factory=list)
    # exposure levels whose bases this row post-trains; empty: every level of `bases.exposures`
    exposures: list[str] = field(default_factory=list)
    overrides: dict = field(default_factory=dict)  # any other post-training key (prompts_per_step, ...)
    note: str = ""


@dataclass
class PosttrainSection:
    splits: list[str] = field(default_factory=lambda: ["id"])  # the splits training prompts come from
    budget: dict = field(default_factory=lambda: {"grad_steps": 100})  # matched across rows
    prompts_per_step: int = 32
    seed: int = 0
    rows: list[RowConfig] = field(default_factory=list)
    add_rows: list[RowConfig] = field(default_factory=list)  # a suite that extends another adds rows here

    def validate(self, prefix: str = "posttrain") -> None:
        for split in self.splits:
            check(split in SPLITS, f"{prefix}.splits", split, f"unknown split (choose from {', '.join(SPLITS)})")


@dataclass
class PositiveControl:
    """Which runs show that the suite's RL algorithm trains at all (the board's first table): the runs of
    ``row`` trained on ``split`` from the bases of ``exposures`` (empty: every level). Named in the suite
    file before anything runs, so the control is not picked after seeing which runs rose."""

    row: str = "grpo"
    split: str = "id"
    exposures: list[str] = field(default_factory=list)


@dataclass
class SuiteEval:
    """How every model of the suite is evaluated (the same for all, so comparisons are paired)."""

    splits: list[str] = field(default_factory=lambda: list(SPLITS))
    n_test: int = 100
    n_samples: int = 16
    temperature: float = 1.0
    null_seed: int = 1  # each base is evaluated again with this sampling seed: the base-vs-base null


@dataclass
class Resources:
    """What one run asks of a machine; the Ray and Slurm launchers schedule by it, and each run uses this many
    CPU threads under every launcher (so a record does not depend on the launcher)."""

    cpus: int = 2
    gpus: float = 0.0
    # --launcher slurm: more submitit parameters for each job, e.g. {slurm_partition: gpu, timeout_min: 240, mem_gb: 16}
    slurm: dict = field(default_factory=dict)


@dataclass
class SuiteConfig:
    name: str = ""
    description: str = ""
    extends: str = ""  # another suite (embedded name or file) this one builds on
    # Suites whose published runs this one reuses when a run's key matches (their bases' weights, and their
    # records and evaluations): filled in from `extends` (nearest first), so a suite that extends quick and only
    # adds a row pretrains nothing. Runs of another recipe have other keys, and are run here.
    parents: list[str] = field(default_factory=list)
    # A fresh clone continues from the committed records (true) or re-runs everything, writing its
    # records over the committed ones so `git diff` shows whether they were reproduced (false).
    reuse_published: bool = False
    # Runs reused from their committed records (and a base's weights) even where reuse_published is false: the
    # quick suite pretrains one base again to show it reproduces, and starts the other's runs from its
    # committed weights (five minutes less). Names of runs of this grid, e.g. [base-e0-s0].
    reuse_runs: list[str] = field(default_factory=list)
    left_out: str = ""  # what the grid leaves out and why: printed with the leaderboard
    bases: BasesConfig = field(default_factory=BasesConfig)
    posttrain: PosttrainSection = field(default_factory=PosttrainSection)
    positive_control: PositiveControl = field(default_factory=PositiveControl)
    eval: SuiteEval = field(default_factory=SuiteEval)
    resources: Resources = field(default_factory=Resources)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _is_name(name: str) -> bool:
    return bool(name) and all(ch.isalnum() or ch in "_.+" for ch in name)


def read_suite_file(name: str) -> dict:
    """A suite's YAML, with ``extends`` resolved (the child's keys win; ``posttrain.add_rows`` appends;
    ``name`` is never inherited: a suite without one is named after its file). A relative ``extends``
    path is found beside the file that names it, else as an embedded suite."""
    try:
        data = read_yaml(name, builtin_dir=SUITE_DIR)
    except ConfigError as exc:
        if not Path(str(name)).suffix and not Path(str(name)).exists():
            embedded = ", ".join(sorted(p.stem for p in SUITE_DIR.glob("*.yaml")))
            raise ConfigError(f"no suite {str(name)!r}: give a suite YAML file or one of {embedded}") from None
        raise exc
    own_name = data.get("name") or Path(str(name)).stem
    here = Path(str(name)).parent if Path(str(name)).is_file() else Path(".")
    chain = [str(name)]
    lineage = []  # the suites extended, by name (their published folders), nearest first
    while data.get("extends"):
        parent_name = str(data.pop("extends"))
        if not Path(parent_name).is_absolute() and (here / parent_name).is_file():
            parent_name = str(here / parent_name)
        if parent_name in chain:
            raise ConfigError(f"suite {chain[0]!r} extends itself through {' -> '.join(chain + [parent_name])}")
        chain.append(parent_name)
        parent = read_yaml(parent_name, builtin_dir=SUITE_DIR)
        lineage.append(str(parent.get("name") or Path(parent_name).stem))
        if Path(parent_name).is_file():
            here = Path(parent_name).parent
        child_rows = (data.get("posttrain") or {}).get("add_rows") or []
        parent_rows = (parent.get("posttrain") or {}).get("add_rows") or []
        merged = deep_merge(parent, data)
        if child_rows or parent_rows:
            merged.setdefault("posttrain", {})["add_rows"] = list(parent_rows) + list(child_rows)
        merged["extends"] = parent.get("extends", "")
        data = merged
    data.pop("extends", None)
    data["name"] = own_name
    named = data.get("parents") or []
    if lineage or named:
        if not isinstance(named, list):
            raise ConfigError(f"invalid config value parents={named!r}: give a list of suite names")
        data["parents"] = [p for p in dict.fromkeys([*lineage, *map(str, named)]) if p != own_name]
    return data


def load_suite(name: str, overrides: list[str] | None = None, with_rows: list[RowConfig] | None = None) -> SuiteConfig:
    """The resolved suite, validated before anything runs (unknown algorithm, split or key: one line)."""
    data = deep_merge(read_suite_file(name), parse_overrides(overrides or []))
    suite = build(SuiteConfig, data)
    check(_is_name(suite.name), "name", suite.name, "a suite name is letters, digits, '_' and '.' only")
    for parent in suite.parents:
        check(_is_name(parent), "parents", parent, "a suite name is letters, digits, '_' and '.' only")
    suite.posttrain.rows = suite.posttrain.rows + suite.posttrain.add_rows + list(with_rows or [])
    suite.posttrain.add_rows = []
    suite.bases.validate()
    suite.posttrain.validate()
    check(suite.resources.cpus >= 1, "resources.cpus", suite.resources.cpus, "must be >= 1")
    names = [r.name for r in suite.posttrain.rows]
    for row in suite.posttrain.rows:
        check(_is_name(row.name), "posttrain.rows.name", row.name, "give each row a name (letters, digits, '_')")
        check(names.count(row.name) == 1, "posttrain.rows.name", row.name, "two rows share this name")
        for split in row.splits:
            check(split in SPLITS, f"posttrain.rows.{row.name}.splits", split, "unknown split")
        for seed in row.seeds:
            check(
                seed in suite.bases.seeds,
                f"posttrain.rows.{row.name}.seeds",
                seed,
                f"not a seed of the bases (bases.seeds: {', '.join(map(str, suite.bases.seeds))})",
            )
        for level in row.exposures:
            check(
                level in suite.bases.exposures,
                f"posttrain.rows.{row.name}.exposures",
                level,
                f"not an exposure level of the bases (bases.exposures: {', '.join(suite.bases.exposures)})",
            )
    _check_control(suite)
    grid = expand(suite)  # resolves every run's config: the one place every bad value is caught
    runs = [s.name for s in grid]
    for name in suite.reuse_runs:
        check(name in runs, "reuse_runs", name, f"not a run of this suite (its runs: {_some(runs)})")
    return suite


def _some(names: list[str], n: int = 4) -> str:
    return ", ".join(names[:n]) + (f", ... ({len(names)} in all)" if len(names) > n else "")


def _check_control(suite: SuiteConfig) -> None:
    """The positive control names runs the suite makes (a suite without rows has no control to name)."""
    pc = suite.positive_control
    rows = {r.name: r for r in suite.posttrain.rows}
    if not rows:
        return
    if pc.row not in rows:
        # a suite without the default control row (a third-party suite of other algorithms) has no RL control
        check(pc.row == PositiveControl.row, "positive_control.row", pc.row, f"no such row (rows: {', '.join(rows)})")
        return
    splits = rows[pc.row].splits or suite.posttrain.splits
    check(pc.split in splits, "positive_control.split", pc.split, f"row {pc.row} trains on {', '.join(splits)} only")
    for level in pc.exposures:
        check(level in suite.bases.exposures, "positive_control.exposures", level, "not an exposure level of the bases")


def with_row(algorithm: str, knobs: list[str]) -> RowConfig:
    """``--with my_algo algo.lr=1e-4``: a row for an installed algorithm, named after it (and its knobs)."""
    given = parse_overrides(knobs)
    extra = set(given) - {"algo"}
    if extra:
        raise ConfigError(f"--with takes only algo.KEY=VALUE knobs after the algorithm, not {', '.join(sorted(extra))}")
    algo = {k: (dict(v) if isinstance(v, Whole) else v) for k, v in (given.get("algo") or {}).items()}
    name = algorithm if not algo else f"{algorithm}_{_digest(algo)[:6]}"
    return RowConfig(name=name, algorithm=algorithm, algo=algo, note="added with --with")


# ----------------------------------------------------------------------------- the grid


@dataclass
class RunSpec:
    kind: str  # "base" or "post"
    name: str  # unique in the suite, readable: base-e0-s0, grpo-ood_depth-e0-s0
    key: str  # content hash: what decides the run's numbers
    config: dict  # resolved pretraining or post-training config (out_dir and base filled in by the runner)
    eval: dict  # resolved evaluation config
    base: str = ""  # a post run's base run name
    row: str = ""
    split: str = ""  # a post run's training split
    exposure: str = ""
    mixture: str = ""
    seed: int = 0
    identity: dict = field(default_factory=dict)  # what the key hashes

    def describe(self) -> str:
        return self.name


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _pretrain_config(suite: SuiteConfig, mixture: dict | None, exposure: dict, seed: int):
    # late: it loads lightning and what that loads, with pandas, which importing this module does not
    from ..training.pretrain import PretrainConfig

    data = deep_merge(read_yaml(suite.bases.config), suite.bases.overrides)
    data = deep_merge(data, {"seed": seed, "mixture": {"exposure": Whole({a: 0.0 for a in AXES} | exposure)}})
    if mixture:
        data = deep_merge(data, {"mixture": {"families": Whole(mixture)}})
    ev = suite.eval
    data = deep_merge(
        data,
        {
            "eval": {
                "splits": list(ev.splits),
                "n_test": ev.n_test,
                "n_samples": ev.n_samples,
                "temperature": ev.temperature,
            }
        },
    )
    cfg = build(PretrainConfig, data)
    cfg.validate()
    return cfg


def _family_versions(names) -> dict[str, int]:
    return {n: find_family(n).version for n in sorted(names)}


def expand(suite: SuiteConfig) -> list[RunSpec]:
    """Every run of the suite, bases first, each with its resolved config and content key."""
    # late: it loads torch, which importing this module does not
    from ..data import TEST_SET_SIZE, check_context_holds

    # late: it loads torch, which importing this module does not
    from ..training.algorithms import build_algorithm_config

    # late: it loads lightning and what that loads, with pandas, which importing this module does not
    from ..training.posttrain import NOT_RESULTS, Budget, PostTrainConfig, budget_identity

    # late: it loads lightning and what that loads, which importing this module does not
    from ..training.training import precision_identity

    specs: list[RunSpec] = []
    mixtures = suite.bases.mixtures or {"default": None}
    single_mixture = len(mixtures) == 1
    for mix_name, shares in mixtures.items():
        for exp_name, exposure in suite.bases.exposures.items():
            for seed in suite.bases.seeds_of(exp_name):
                try:
                    cfg = _pretrain_config(suite, shares, exposure, seed)
                except ConfigError as exc:
                    raise ConfigError(f"bases (exposure {exp_name}, pretraining keys): {exc}") from None
                families = [f for f, s in cfg.mixture.families.items() if s > 0]
                d = cfg.to_dict()
                identity = {
                    "kind": "base",
                    "results_version": RESULTS_VERSION,
                    **{k: d[k] for k in ("seed", "model", "mixture", "train")},
                    # how many sequences decode together does not change a result (samples are keyed
                    # per problem), so it is not part of the key
                    "eval": {k: v for k, v in d["eval"].items() if k != "batch_size"},
                    "null_seed": suite.eval.null_seed,
                    **precision_identity(d.get("trainer")),
                    "task_versions": _family_versions(families),
                }
                name = "-".join(["base", *([] if single_mixture else [mix_name]), exp_name, f"s{seed}"])
                specs.append(
                    RunSpec(
                        "base",
                        name,
                        _digest(identity)[:16],
                        d,
                        d["eval"],
                        exposure=exp_name,
                        mixture=mix_name,
                        seed=seed,
                        identity=identity,
                    )
                )
    plugins = get_plugins() if suite.posttrain.rows else None
    bases = list(specs)
    for base in bases:
        for row in suite.posttrain.rows:
            if not row.algorithm:
                raise ConfigError(f"invalid config value posttrain.rows.{row.name}.algorithm='': name the algorithm")
            algo_cls = plugins.algorithm(row.algorithm)  # an unknown algorithm is one line, here
            if (row.seeds and base.seed not in row.seeds) or (row.exposures and base.exposure not in row.exposures):
                continue
            for split in row.splits or suite.posttrain.splits:
                data = deep_merge(
                    {
                        "algorithm": row.algorithm,
                        "base": "<base>",
                        "rl_split": split,
                        "seed": suite.posttrain.seed,
                        "prompts_per_step": suite.posttrain.prompts_per_step,
                        "budget": Whole(
                            deep_merge(
                                dataclasses.asdict(Budget()) | {"grad_steps": None},
                                deep_merge(suite.posttrain.budget, row.budget),
                            )
                        ),
                        "algo": Whole(row.algo),
                    },
                    row.overrides,
                )
                if data["budget"].get("grad_steps") is None:
                    raise ConfigError(f"row {row.name!r}: the suite's budget names no grad_steps")
                try:
                    cfg = build(PostTrainConfig, data)
                    cfg.validate()
                    algo = dataclasses.asdict(build_algorithm_config(algo_cls, cfg.algo))
                except ConfigError as exc:
                    raise ConfigError(f"row {row.name!r} (posttrain keys): {exc}") from None
                families = cfg.families or [f for f, s in base.config["mixture"]["families"].items() if s > 0]
                check_context_holds(
                    [find_family(n) for n in families],
                    [split],
                    base.config["model"]["block_size"],
                    TEST_SET_SIZE // 5,
                    key=f"the base's model.block_size (row {row.name}, {split})",
                )
                d = cfg.to_dict()
                identity = {
                    "kind": "post",
                    "results_version": RESULTS_VERSION,
                    "base_key": base.key,
                    **{k: v for k, v in d.items() if k not in ("base", "ckpt_every", *NOT_RESULTS)},
                    "budget": budget_identity(d["budget"]),
                    "algo": algo,
                    "eval": base.identity["eval"],
                    **precision_identity(d.get("trainer")),
                    "task_versions": _family_versions(families),
                }
                name = "-".join(
                    [row.name, split, *([] if single_mixture else [base.mixture]), base.exposure, f"s{base.seed}"]
                )
                specs.append(
                    RunSpec(
                        "post",
                        name,
                        _digest(identity)[:16],
                        {**d, "algo": row.algo},
                        base.eval,
                        base=base.name,
                        row=row.name,
                        split=split,
                        exposure=base.exposure,
                        mixture=base.mixture,
                        seed=base.seed,
                        identity=identity,
                    )
                )
    return specs


def shard(specs: list[RunSpec], index: int, count: int) -> list[RunSpec]:
    """Shard ``index`` (1-based) of ``count``: whole bases with every run that starts from them, dealt
    round-robin, so no shard waits on another and every run is in exactly one shard."""
    if not 1 <= index <= count:
        raise OodBenchError(f"invalid --shard {index}/{count}: write i/n with 1 <= i <= n")
    bases = [s.name for s in specs if s.kind == "base"]
    mine = {b for i, b in enumerate(bases) if i % count == index - 1}
    return [s for s in specs if (s.name if s.kind == "base" else s.base) in mine]


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    i, sep, n = text.partition("/")
    if not sep or not i.isdigit() or not n.isdigit() or not 1 <= int(i) <= int(n):
        raise OodBenchError(f"invalid --shard {text!r}: write i/n with 1 <= i <= n, e.g. --shard 2/4")
    return int(i), int(n)
