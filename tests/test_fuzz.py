"""Fuzzing the command line: whatever hypothesis generates, a command that validates and exits
(``--print-config``, ``compare`` on missing folders, ...) ends in success or in exit 2 with exactly
one ``ood-bench: error:`` line. Never a traceback, never a second line."""

import contextlib
import io
import string

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ood_bench.cli import main
from ood_bench.config import load_config
from ood_bench.training.pretrain import PretrainConfig


def _keys(tree: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in tree.items():
        out.append(prefix + k)
        if isinstance(v, dict):
            out += _keys(v, f"{prefix}{k}.")
    return out


KNOWN = _keys(load_config(PretrainConfig, "quick").to_dict())
SCALARS = st.one_of(
    st.integers(-3, 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(string.printable, max_size=12),
    st.sampled_from(
        ["id", "ood_depth", "string", "graph", "auto", "cpu", "gpu", "bogus", "32-true", "bf16", "[]", "{}"]
    ),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.dictionaries(st.sampled_from(["string", "graph", "depth", "comp", "nosuch"]), SCALARS, max_size=3),
)
KEYS = st.one_of(st.sampled_from(KNOWN), st.text(string.ascii_lowercase + "._", min_size=1, max_size=15))


def _value_text(v) -> str:
    text = yaml.safe_dump(v, default_flow_style=True).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


OVERRIDES = st.lists(
    st.one_of(
        st.tuples(KEYS, VALUES).map(lambda kv: f"{kv[0]}={_value_text(kv[1])}"),
        st.text(string.printable.replace("\n", "").replace("\r", ""), max_size=20),  # anything at all
    ),
    max_size=4,
)


def run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse's own exit (a usage error, or --help)
            rc = exc.code
    return rc, err.getvalue()


def assert_clean(argv: list[str]) -> None:
    rc, err = run(argv)
    assert rc in (0, 2), (argv, rc, err)
    if rc == 2:
        assert err.startswith("ood-bench: error:") and err.count("\n") == 1, (argv, err)
    assert "Traceback" not in err, (argv, err)


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(OVERRIDES)
def test_pretrain_overrides_validate_or_fail_in_one_line(overrides):
    assert_clean(["pretrain", "--print-config", *overrides])


@FUZZ
@given(
    OVERRIDES,
    st.sampled_from(["grpo", "dapo", "ppo", "rloo", "sft", "expert_iteration", "nosuch"]),
    st.sampled_from(["id", "ood_depth", "edge", "nope"]),
)
def test_posttrain_overrides_validate_or_fail_in_one_line(overrides, algo, split):
    algo_keys = [o if o.startswith(("algo.", "budget.")) or "=" not in o else "algo." + o for o in overrides]
    assert_clean(["posttrain", "--print-config", "--algo", algo, "--base", "b.ckpt", "--rl-split", split, *algo_keys])


ARGS = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "--n",
                "--k",
                "--n-test",
                "--seed",
                "--splits",
                "--families",
                "--out",
                "--null",
                "--json",
                "--outside",
                "--check",
                "--family",
                "--temperature",
                "--config",
                "id",
                "string",
                "0",
                "-1",
                "nan",
                "x",
                "quick",
            ]
        ),
        st.text(string.ascii_letters + string.digits + "-_.=", max_size=10),
    ),
    max_size=5,
)


@FUZZ
@given(
    st.sampled_from(
        [
            "evaluate --checkpoint missing.ckpt",
            "compare nowhere-a nowhere-b",
            "tasks",
            "algorithms",
            "leaderboard",
            "plugins",
            "pretrain --print-config",
            "run",
        ]
    ),
    ARGS,
)
def test_any_arguments_end_in_success_or_one_line(command, args):
    argv = command.split() + args
    if argv[0] == "run":  # only ever validate a suite here, never start one
        argv += ["--print-config"]
    if argv[0] == "leaderboard":  # read-only: never rewrite a records folder
        argv += ["--check"]
    rc, err = run(argv)
    if "--help" in argv or "-h" in argv:
        return
    assert rc in (0, 2), (argv, rc, err)
    if rc == 2:
        assert err.startswith("ood-bench: error:") and err.count("\n") == 1, (argv, err)
