import pytest

from ood_bench.config import build, load_config, parse_overrides
from ood_bench.errors import ConfigError
from ood_bench.evaluation.evaluate import EvalConfig
from ood_bench.training.pretrain import PretrainConfig


@pytest.mark.parametrize(
    "override, message",
    [
        ("mixture.exposure.depth=-0.1", "mixture.exposure.depth=-0.1"),
        ("mixture.exposure.width=0.1", "unknown axis"),
        ("mixture.families.string=0.9", "sum to 1.4"),
        ("model.pos_encoding=alibi", "model.pos_encoding='alibi'"),
        ("model.n_embd=130", "divisible"),
        ("train.lr=0", "train.lr=0.0"),
        ("train.max_steps=ten", "train.max_steps='ten'"),
        ("train.maxsteps=10", "unknown config key 'train.maxsteps'"),
        ("eval.splits=[id,ood_banana]", "ood_banana"),
        ("eval.n_test=100000", "eval.n_test"),
        ("eval.n_samples=0", "eval.n_samples"),
        ("train.loss_on_prompt=3", "expected true or false"),
    ],
)
def test_invalid_values_name_the_key_and_value(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_config(PretrainConfig, "quick", [override])


def test_unknown_family_in_mixture():
    from ood_bench.errors import OodBenchError

    with pytest.raises(OodBenchError, match="unknown task family 'chess'"):
        load_config(PretrainConfig, None, ["mixture.families={chess: 1.0}"])


def test_quick_config_is_valid_and_overrides_apply():
    cfg = load_config(PretrainConfig, "quick", ["train.max_steps=7", "mixture.exposure.depth=0.1"])
    assert cfg.train.max_steps == 7 and cfg.mixture.exposure["depth"] == 0.1
    assert cfg.eval.families == ["string", "graph"]


def test_parse_overrides_nests_and_types():
    assert parse_overrides(["a.b=1", "a.c=x", "d=[1, 2]"]) == {"a": {"b": 1, "c": "x"}, "d": [1, 2]}
    with pytest.raises(ConfigError):
        parse_overrides(["novalue"])


def test_int_is_accepted_for_float_and_lists_from_strings():
    cfg = build(EvalConfig, {"temperature": 1, "splits": "id,ood_depth"})
    assert cfg.temperature == 1.0 and cfg.splits == ["id", "ood_depth"]


def test_exponent_without_a_dot_is_a_float_and_junk_is_not():
    # YAML 1.1 reads 3e-4 as a string; a float knob must still take it.
    cfg = load_config(PretrainConfig, "quick", ["train.lr=3e-4"])
    assert cfg.train.lr == pytest.approx(3e-4)
    with pytest.raises(ConfigError, match="train.lr='fast'"):
        load_config(PretrainConfig, "quick", ["train.lr=fast"])


def test_a_mapping_given_whole_replaces_the_one_it_overrides():
    from ood_bench.training.pretrain import PretrainConfig

    cfg = load_config(PretrainConfig, "quick", ["mixture.families={string: 1.0}"])
    assert cfg.mixture.families == {"string": 1.0}  # graph dropped, not merged back in
    cfg = load_config(PretrainConfig, "quick", ["mixture.exposure.depth=0.1"])
    assert cfg.mixture.exposure["depth"] == 0.1 and cfg.mixture.families == {"string": 0.45, "graph": 0.55}


def test_bf16_on_a_cpu_without_bf16_instructions_is_named_as_slower(monkeypatch, capsys):
    """bf16-mixed asked for by name where the CPU only emulates bf16 is slower than fp32, and the user is told
    so (one line) rather than left with a slow run."""
    import torch

    import ood_bench.training.precision as precision
    from ood_bench.training.training import TrainerConfig, warn_if_bf16_is_emulated

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(precision, "cpu_info", lambda: {"capability": "AVX2", "bf16_native": False, "model": "x"})
    warn_if_bf16_is_emulated(TrainerConfig(precision="bf16-mixed"))
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no native bf16" in err and "32-true" in err
    warn_if_bf16_is_emulated(TrainerConfig(precision="32-true"))
    monkeypatch.setattr(precision, "cpu_info", lambda: {"capability": "AVX512", "bf16_native": True, "model": "x"})
    warn_if_bf16_is_emulated(TrainerConfig(precision="bf16-mixed"))
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("native", [True, False])
def test_the_quick_and_standard_suites_pretrain_in_fp32_on_every_cpu(native, monkeypatch):
    """A precision is part of a run's key: both suites name 32-true, so a CPU with native bf16 and one
    without expand the same keys, and neither pretrains in emulated bf16."""
    import ood_bench.training.precision as precision
    from ood_bench.suite.suite import expand, load_suite

    monkeypatch.delenv(precision.ENV, raising=False)
    monkeypatch.setattr(
        precision,
        "cpu_info",
        lambda: {"capability": "AVX512" if native else "AVX2", "bf16_native": native, "model": "x"},
    )
    for suite in ("quick", "standard"):
        bases = [s for s in expand(load_suite(suite)) if s.kind == "base"]
        assert {str(s.config["trainer"]["precision"]) for s in bases} == {"32-true"}
        assert all(s.identity.get("precision", "32-true") == "32-true" for s in bases)


def test_a_suite_asks_lightning_once_per_distinct_trainer_setting_and_every_time_for_a_bad_one(monkeypatch):
    """Validating a suite builds a Lightning Trainer to check its settings; once per distinct setting, not once
    per run (the paper suite's 3,220 runs spent 80 s on it). A setting Lightning refused is refused again."""
    import lightning as L

    from ood_bench.suite.suite import expand, load_suite
    from ood_bench.training import training

    built = []
    real = L.Trainer
    monkeypatch.setattr(training, "_TRAINER_SETTINGS_OK", set())
    monkeypatch.setattr(training.L, "Trainer", lambda *a, **kw: built.append(kw) or real(*a, **kw))
    specs = expand(load_suite("standard"))
    assert len(specs) > 60 and 1 <= len(built) <= 2, len(built)
    bad = training.TrainerConfig(strategy="no_such_strategy")
    for _ in range(2):
        with pytest.raises(ConfigError, match="invalid trainer settings"):
            bad.validate()
