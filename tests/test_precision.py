"""trainer.precision auto: the rule that picks bf16-mixed or 32-true from the CPU, the OOD_BENCH_PRECISION
override, what a run record says about it, and the line on whether a re-run reproduced a committed record.
No test times anything: the rule reads the CPU, and each test forces what it reads."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import ood_bench.training.precision as precision
from ood_bench.cli import main
from ood_bench.errors import ConfigError
from ood_bench.suite.runner import reproduction_line
from ood_bench.suite.suite import expand, load_suite

from .conftest import TINY_SUITE

ROOT = Path(__file__).resolve().parent.parent
AVX512_BF16 = {"capability": "AVX512", "bf16_native": True, "model": "a CPU with AVX512-BF16"}
AVX2 = {"capability": "AVX2", "bf16_native": False, "model": "a CPU with AVX2 only"}


def _probe(faster: bool) -> dict:
    speedup = 1.4 if faster else 0.7
    return {"bf16_faster": faster, "fp32_s": 0.07, "bf16_s": 0.07 / speedup, "speedup": speedup, "cached": False}


@pytest.fixture
def cpu(monkeypatch):
    """Make this machine's CPU look like the one given (what auto and the records read); where its bf16 is
    native, the probe measures it faster unless ``faster=False`` says otherwise."""
    monkeypatch.delenv(precision.ENV, raising=False)

    def make(info, faster=None):
        monkeypatch.setattr(precision, "cpu_info", lambda: dict(info))
        native = info["bf16_native"]
        probe = _probe(native if faster is None else faster)
        if not native:
            probe.update(bf16_faster=False, fp32_s=None, bf16_s=None, speedup=None)
        monkeypatch.setattr(precision, "bf16_probe", functools.lru_cache(maxsize=1)(lambda: dict(probe)))

    return make


@pytest.fixture
def cache(monkeypatch, tmp_path):
    """The real probe, with its timing forced and counted and its cache in a temporary folder."""
    monkeypatch.delenv(precision.ENV, raising=False)
    monkeypatch.setenv(precision.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(precision, "cpu_info", lambda: dict(AVX512_BF16))
    precision.bf16_probe.cache_clear()
    calls = []

    def force(fp32_s, bf16_s):
        def timed(*a, **k):
            calls.append(1)
            return {"fp32_s": fp32_s, "bf16_s": bf16_s}

        monkeypatch.setattr(precision, "time_steps", timed)

    yield force, calls
    precision.bf16_probe.cache_clear()


@pytest.mark.parametrize(
    "fp32_s,bf16_s,want",
    [
        (0.277, 0.383, "32-true"),  # the Xeon with avx512_bf16 and no AMX: native bf16, 1.38x slower
        (0.277, 0.180, "bf16-mixed"),  # 1.54x faster: bf16 pays
        (0.277, 0.260, "32-true"),  # 1.07x: inside the margin a near-tie stays fp32
    ],
)
def test_native_bf16_is_chosen_only_where_the_probe_measures_it_faster(cache, fp32_s, bf16_s, want):
    force, calls = cache
    force(fp32_s, bf16_s)
    assert precision.resolve_precision("auto") == want
    assert calls == [1]
    probe = precision.bf16_probe()
    assert probe["bf16_faster"] == (want == "bf16-mixed") and probe["speedup"] == round(fp32_s / bf16_s, 3)
    assert ("measured" in precision.why_auto()) and want in precision.why_auto()


def test_the_probes_verdict_is_kept_per_machine_so_a_later_process_chooses_the_same(cache, monkeypatch):
    force, calls = cache
    force(0.277, 0.180)
    assert precision.resolve_precision("auto") == "bf16-mixed"
    precision.bf16_probe.cache_clear()  # a new process: the timing would now say otherwise, the cache wins
    force(0.277, 0.5)
    assert precision.resolve_precision("auto") == "bf16-mixed" and precision.bf16_probe()["cached"]
    assert len(calls) == 1
    # another kind of machine (here: another thread count) is probed afresh
    precision.bf16_probe.cache_clear()
    import torch

    monkeypatch.setattr(torch, "get_num_threads", lambda: 97)
    assert precision.resolve_precision("auto") == "32-true" and len(calls) == 2


def test_without_native_bf16_nothing_is_timed(cache, monkeypatch):
    force, calls = cache
    force(1.0, 0.1)  # would say bf16 is 10x faster, but emulated bf16 is never timed
    monkeypatch.setattr(precision, "cpu_info", lambda: dict(AVX2))
    assert precision.resolve_precision("auto") == "32-true" and calls == []
    assert "no native bf16" in precision.why_auto()


def test_a_corrupt_or_unwritable_cache_costs_a_probe_not_a_failure(cache, tmp_path, monkeypatch):
    force, calls = cache
    force(0.277, 0.180)
    path = precision.probe_cache_path()
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert precision.resolve_precision("auto") == "bf16-mixed" and calls == [1]
    assert json.loads(path.read_text())  # rewritten whole
    precision.bf16_probe.cache_clear()
    monkeypatch.setenv(precision.CACHE_ENV, "/proc/no-such-dir")
    assert precision.resolve_precision("auto") == "bf16-mixed" and calls == [1, 1]


def test_a_native_cpu_where_bf16_measured_slower_records_fp32_and_the_probe(cpu, one_base_suite, tmp_path):
    cpu(AVX512_BF16, faster=False)
    assert one_base_suite() == 0
    record = json.loads((tmp_path / "lb" / "tiny" / "records" / "base-e0-s0" / "record.json").read_text())
    assert record["precision"] == "32-true" and record["cpu"] == AVX512_BF16
    assert record["bf16_probe"] == {"bf16_faster": False, "fp32_s": 0.07, "bf16_s": pytest.approx(0.1), "speedup": 0.7}


def test_the_real_probe_times_both_precisions_in_about_a_second():
    """Not a timing assertion: the probe runs on this CPU and gives two positive step times."""
    out = precision.time_steps(rounds=1, rows=2)
    assert out["fp32_s"] > 0 and out["bf16_s"] > 0


@pytest.mark.parametrize(
    "cap,flags,onednn,native",
    [
        ("AVX512", "fma avx2 avx512f avx512_bf16", True, True),
        ("AVX512", "fma avx2 avx512f amx_bf16 amx_tile", True, True),
        ("AVX2", "fma avx2 avx512f avx512_bf16", True, False),  # ATEN_CPU_CAPABILITY=avx2 on a bf16 CPU
        ("AVX512", "fma avx2 avx512f avx512_bf16", False, False),  # ONEDNN_MAX_CPU_ISA=AVX2 on a bf16 CPU
        ("AVX512", "fma avx2 avx512f avx512bw", True, False),  # AVX-512 without bf16: oneDNN emulates it
        ("AVX2", "fma avx2", True, False),  # the 2-core EPYC of the issue
        ("DEFAULT", "", True, False),  # no /proc/cpuinfo flags (macOS, Windows): fp32, which is never slow
    ],
)
def test_bf16_is_native_only_with_the_instructions_the_kernels_and_onednn(cap, flags, onednn, native, monkeypatch):
    monkeypatch.setattr(precision, "capability", lambda: cap)
    monkeypatch.setattr(precision, "_cpuinfo", lambda: {"flags": flags, "model name": "m"} if flags else {})
    monkeypatch.setattr(precision, "_onednn_bf16", lambda: onednn)
    info = precision.cpu_info.__wrapped__()
    assert info == {"capability": cap, "bf16_native": native, "model": info["model"]} and info["model"]


@pytest.mark.parametrize("info,want", [(AVX512_BF16, "bf16-mixed"), (AVX2, "32-true")])
def test_auto_becomes_bf16_only_where_it_is_native_and_names_are_kept(info, want, cpu):
    cpu(info)
    assert precision.resolve_precision("auto") == want
    for named in ("32-true", "bf16-mixed", "16-mixed", 32):  # a precision given by name is never changed
        assert precision.resolve_precision(named) == named


@pytest.mark.parametrize("info,want", [(AVX512_BF16, "bf16-mixed"), (AVX2, "32-true")])
def test_a_run_keyed_by_auto_is_keyed_by_what_it_resolves_to(info, want, cpu):
    """The key hashes the resolved precision: a bf16 run is never taken for an fp32 one, nor the reverse."""
    cpu(info)
    auto = expand(load_suite(str(TINY_SUITE), ["bases.overrides.trainer.precision=auto"]))
    named = expand(load_suite(str(TINY_SUITE), [f"bases.overrides.trainer.precision={want}"]))
    other = expand(
        load_suite(
            str(TINY_SUITE),
            ["bases.overrides.trainer.precision=" + ("32-true" if want == "bf16-mixed" else "bf16-mixed")],
        )
    )
    assert [s.key for s in auto] == [s.key for s in named]
    assert all(a.key != o.key for a, o in zip(auto, other))
    assert {s.config["trainer"]["precision"] for s in auto if s.kind == "base"} == {want}


def test_the_resolver_under_aten_cpu_capability_avx2_picks_fp32():
    """Limiting PyTorch to its AVX2 kernels (as on the 2-core EPYC) makes auto fp32 on any CPU, this one too."""
    env = {
        **os.environ,
        "ATEN_CPU_CAPABILITY": "avx2",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop(precision.ENV, None)
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from ood_bench.training.precision import cpu_info, resolve_precision; "
            "print(resolve_precision('auto'), cpu_info()['capability'], cpu_info()['bf16_native'])",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
    assert out[0] == "32-true" and not out[1].startswith("AVX512") and out[2] == "False", out


@pytest.mark.parametrize(
    "value,info,want",
    [
        ("32-true", AVX512_BF16, "32-true"),
        ("bf16-mixed", AVX2, "bf16-mixed"),
        ("auto", AVX2, "32-true"),
        ("auto", AVX512_BF16, "bf16-mixed"),
        (" bf16-mixed ", AVX2, "bf16-mixed"),
    ],
)
def test_the_environment_variable_decides_what_auto_becomes(value, info, want, cpu, monkeypatch):
    cpu(info)
    monkeypatch.setenv(precision.ENV, value)
    assert precision.resolve_precision("auto") == want
    assert precision.resolve_precision("32-true") == "32-true"  # the standard suite's fp32 keeps its keys


@pytest.mark.parametrize(
    "argv", [["run", "standard", "--dry-run"], ["run", "quick", "--dry-run"], ["pretrain", "--print-config"]]
)
def test_a_bad_environment_value_is_one_line_and_exit_2_before_any_compute(argv, monkeypatch, capsys):
    monkeypatch.setenv(precision.ENV, "bf16")
    with pytest.raises(ConfigError):
        precision.resolve_precision("auto")
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert (
        captured.err == "ood-bench: error: invalid OOD_BENCH_PRECISION='bf16': choose from 32-true, bf16-mixed, auto\n"
        and captured.out == ""
    )


def test_auto_is_a_valid_config_value_and_an_unknown_one_is_still_one_line(cpu, capsys):
    cpu(AVX2)
    assert main(["pretrain", "--print-config", "trainer.precision=auto"]) == 0
    assert "precision: 32-true" in capsys.readouterr().out  # printed resolved, as it will run and be keyed
    assert main(["pretrain", "--print-config", "trainer.precision=automatic"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "trainer.precision='automatic'" in err and "choose from auto, " in err


def test_the_dry_run_says_what_auto_became_and_why(cpu, capsys):
    cpu(AVX2)
    assert main(["run", "quick", "--dry-run", "bases.overrides.trainer.precision=auto"]) == 0
    out = capsys.readouterr().out
    assert (
        "bases: trainer.precision auto -> 32-true (this CPU: a CPU with AVX2 only, PyTorch capability AVX2, "
        "no native bf16)" in out
    )
    cpu(AVX512_BF16, faster=False)
    assert main(["run", "quick", "--dry-run", "bases.overrides.trainer.precision=auto"]) == 0
    assert "auto -> 32-true" in capsys.readouterr().out and "native bf16 measured 0.70x" in precision.why_auto()


@pytest.mark.parametrize("info", [AVX512_BF16, AVX2])
def test_the_readmes_command_pretrains_in_fp32_on_every_kind_of_cpu(info, cpu):
    """The quick suite names 32-true: the same key, and never emulated bf16, on every machine."""
    cpu(info)
    bases = [s for s in expand(load_suite("quick")) if s.kind == "base"]
    assert bases and {s.config["trainer"]["precision"] for s in bases} == {"32-true"}


# ----------------------------------------------------------------------------- records and the reproduction line


@pytest.fixture
def one_base_suite(tmp_path):
    """The tiny suite with one base, no rows, and its bases' precision left to the CPU (auto)."""
    import yaml

    data = yaml.safe_load(TINY_SUITE.read_text())
    data["bases"]["exposures"] = {"e0": {}}
    data["bases"]["overrides"]["trainer"]["precision"] = "auto"
    data["posttrain"]["rows"] = []
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return lambda *extra: main(
        [
            "run",
            str(path),
            "--work-root",
            str(tmp_path / "runs"),
            "--publish-root",
            str(tmp_path / "lb"),
            "--no-progress",
            *extra,
        ]
    )


def test_a_record_names_its_precision_and_cpu_and_a_rerun_on_another_cpu_says_it_cannot_compare(
    cpu, one_base_suite, tmp_path, capsys, monkeypatch
):
    """The same suite, made on a bf16 CPU and then on an AVX2 one: each record says which precision auto chose
    and on what CPU, and the second run says the two cannot be compared bit for bit rather than that they
    differ. In between, --with on the AVX2 CPU adds its row against the published bf16 base, not a new one."""
    record = tmp_path / "lb" / "tiny" / "records" / "base-e0-s0" / "record.json"
    cpu(AVX512_BF16)
    assert one_base_suite() == 0
    first = json.loads(record.read_text())
    assert first["precision"] == "bf16-mixed" and first["cpu"] == AVX512_BF16
    assert first["identity"]["precision"] == "bf16-mixed" and first["config"]["trainer"]["precision"] == "bf16-mixed"
    capsys.readouterr()

    cpu(AVX2)
    assert one_base_suite("--with", "sft", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "bases: trainer.precision auto -> bf16-mixed, the published bases'" in out
    assert f"base-e0-s0 base {first['key']} done" in " ".join(out.split())  # made here, so done, not published
    monkeypatch.setenv(precision.ENV, "32-true")  # said outright, it wins: new fp32 bases
    assert one_base_suite("--with", "sft", "--dry-run") == 0
    assert "base-e0-s0 base" in (out := " ".join(capsys.readouterr().out.split())) and first["key"] not in out
    monkeypatch.delenv(precision.ENV)

    assert one_base_suite() == 0
    second = json.loads(record.read_text())
    assert second["precision"] == "32-true" and second["cpu"] == AVX2 and "precision" not in second["identity"]
    assert second["key"] != first["key"]
    out = capsys.readouterr().out
    assert (
        f"base-e0-s0: committed record made on AVX512/bf16-mixed, this run AVX2/32-true: not comparable bit for "
        f"bit; this record replaced it (its key was {first['key']})"
    ) in out
    assert "DIFFERS" not in out and "reproduced" not in out


def _record(cap="AVX512", precision_="32-true", native=True, **extra) -> dict:
    return {
        "cpu": {"capability": cap, "bf16_native": native, "model": "m"},
        "precision": precision_,
        "config": {"trainer": {"precision": precision_}},
        **extra,
    }


@pytest.mark.parametrize(
    "committed,this,line",
    [
        # the same kind of CPU and precision: the bytes are claimed or denied
        (_record(), _record(reproduced=True), "reproduced the committed record exactly"),
        (_record(), _record(reproduced=False), "DIFFERS from the committed record (see git diff)"),
        # another capability: neither claimed nor denied
        (
            _record("AVX512"),
            _record("AVX2", reproduced=False),
            "committed record made on AVX512/32-true, this run AVX2/32-true: not comparable bit for bit",
        ),
        (
            _record("AVX512"),
            _record("AVX2", reproduced=True),
            "committed record made on AVX512/32-true, this run AVX2/32-true: not comparable bit for bit (yet every file "
            "came out the same)",
        ),
        # bf16 forced on a CPU that emulates it rounds otherwise than native bf16
        (
            _record("AVX512", "bf16-mixed"),
            _record("AVX512", "bf16-mixed", native=False, reproduced=False),
            "committed record made on AVX512/bf16-mixed, this run AVX512 (bf16 emulated)/bf16-mixed: not comparable bit "
            "for bit",
        ),
        # a post run on a base of another precision
        (
            _record(base_precision="bf16-mixed"),
            _record("AVX2", base_precision="32-true", replaced="abc"),
            "committed record made on AVX512/32-true on a bf16-mixed base, this run AVX2/32-true on a 32-true base: not "
            "comparable bit for bit; this record replaced it (its key was abc)",
        ),
        # a record made before CPUs were stamped: its precision still tells, its CPU does not
        (
            {"config": {"trainer": {"precision": "bf16-mixed"}}},
            _record("AVX2", replaced="abc"),
            "committed record made on an unrecorded CPU/bf16-mixed, this run AVX2/32-true: not comparable bit for bit; "
            "this record replaced it (its key was abc)",
        ),
        (
            {"config": {"trainer": {"precision": "32-true"}}},
            _record(reproduced=False),
            "DIFFERS from the committed record (see git diff); that record does not name the CPU that made it, and bytes "
            "reproduce only on the same kind of CPU",
        ),
        (
            {"config": {"trainer": {"precision": "32-true"}}},
            _record(reproduced=True),
            "reproduced the committed record exactly",
        ),
        (_record(), _record(replaced="abc"), "replaced a record of another config (key abc)"),
    ],
)
def test_the_reproduction_line_claims_exactness_only_on_the_same_cpu_and_precision(committed, this, line):
    assert reproduction_line({**this, "committed": committed}) == line
    assert reproduction_line(this) is None  # nothing committed before: nothing to say
