"""The decode kernel (ood_bench/model/kernels): the same attention as the eager path, chosen by OOD_BENCH_ENGINE,
and a run that goes on eagerly (saying so once) where it cannot be built."""

import pytest
import torch

from ood_bench.cli import main
from ood_bench.errors import OodBenchError
from ood_bench.model import kernels
from ood_bench.model.model import GPT, KVCache, ModelConfig, SelfAttention, SharedPrefix
from ood_bench.model.rollout import sample
from ood_bench.training.provenance import environment


@pytest.fixture(scope="module")
def built():
    """The extension, compiled once (about a minute the first time, then cached on disk)."""
    kernels.reset()
    try:
        return kernels.build()
    except Exception as exc:  # noqa: BLE001 - no compiler, no ninja, a failed link: say which
        pytest.skip(f"the decode kernel cannot be built on this machine: {type(exc).__name__}: {exc}")


@pytest.fixture
def engine(monkeypatch, built):
    """Set OOD_BENCH_ENGINE for the duration of a test; the built module stays loaded."""

    def use(mode):
        monkeypatch.setenv(kernels.ENV, mode)

    kernels._loaded["module"] = built
    yield use
    kernels.reset()


@pytest.fixture
def unbuildable(monkeypatch):
    """A machine where building fails (no compiler, say)."""

    def fail():
        raise OSError("no C++ compiler found")

    kernels.reset()
    monkeypatch.setattr(kernels, "build", fail)
    yield
    kernels.reset()


def close(a, b, rtol=1e-5):
    """Within ``rtol`` of the larger magnitude: the paths differ only in the order of their float sums."""
    return (a - b).abs().max() <= rtol * max(a.abs().max(), b.abs().max())


@pytest.mark.parametrize(
    "P,n,H,hd,Tp,t",
    [(3, 4, 2, 16, 7, 1), (2, 5, 4, 32, 11, 9), (4, 2, 3, 8, 5, 17), (1, 3, 2, 64, 20, 30), (2, 2, 2, 24, 1, 4)],
)
def test_attention_with_a_shared_prompt_matches_eager(engine, P, n, H, hd, Tp, t):
    g = torch.Generator().manual_seed(P * 100 + t)
    cfg = ModelConfig(n_head=H, n_embd=H * hd)
    attn = SelfAttention(cfg, layer=1)
    N = P * n
    pk, pv = torch.randn(2, P, H, Tp, hd, generator=g), torch.randn(2, P, H, Tp, hd, generator=g)
    mask = torch.ones(P, Tp, dtype=torch.bool)
    for p in range(P):  # left padding of various lengths, at least one real token each
        mask[p, : int(torch.randint(0, Tp, (1,), generator=g))] = False
    # own keys as the cache holds them: a slice of a longer buffer, strided along rows and keys
    ck, cv = torch.randn(2, N, H, t + 5, hd, generator=g), torch.randn(2, N, H, t + 5, hd, generator=g)
    q = torch.randn(N, H, 1, hd, generator=g)
    prefix = SharedPrefix(pk, pv, mask, n)
    out = {}
    for mode in ("eager", "kernel"):
        engine(mode)
        with torch.inference_mode():
            out[mode] = attn._attend_with_prefix(q, ck[1, :, :, :t], cv[1, :, :, :t], prefix)
    assert out["eager"].shape == out["kernel"].shape == (N, H, 1, hd)
    assert close(out["eager"], out["kernel"])


def decode_logits(m: GPT, prompts: list[list[int]], n: int, steps: list[torch.Tensor], compact_at: int):
    """Logits of each decode step fed the given tokens, through the shared-prompt cache (the prompt path)
    and, from step ``compact_at`` on, a compacted cache with every key per row (the masked path)."""
    P, Tp = len(prompts), max(len(p) for p in prompts)
    ids = torch.zeros(P, Tp, dtype=torch.long)
    valid = torch.zeros(P, Tp, dtype=torch.bool)
    for i, p in enumerate(prompts):
        ids[i, Tp - len(p) :], valid[i, Tp - len(p) :] = torch.tensor(p), True
    pos = (valid.long().cumsum(1) - 1).clamp(min=0)
    cache = KVCache.empty(m.cfg, P, Tp, "cpu", torch.float32)
    cache.key_mask[:, :Tp] = valid
    attn = (torch.ones(Tp, Tp, dtype=torch.bool).tril() & valid[:, None, :]) | torch.eye(Tp, dtype=torch.bool)
    out = [m(ids, pos, attn[:, None], cache)[:, -1].repeat_interleave(n, 0)]
    cache.share_prefix(n, len(steps))
    next_pos = (pos[:, -1] + 1).repeat_interleave(n)
    for s, tok in enumerate(steps):
        if s == compact_at:
            cache.select(torch.arange(P * n))
        L = cache.length
        cache.key_mask[:, L] = True
        out.append(m(tok[:, None], next_pos[:, None] + s, cache.key_mask[:, None, None, : L + 1], cache)[:, -1])
    return torch.stack(out, 1)


@pytest.mark.parametrize("pos,n_head,n_embd", [("rope", 2, 32), ("learned", 4, 128), ("rope", 3, 72)])
def test_decoded_logits_match_eager_with_ragged_prompts(engine, pos, n_head, n_embd):
    torch.manual_seed(0)
    m = GPT(ModelConfig(n_layer=2, n_head=n_head, n_embd=n_embd, block_size=64, pos_encoding=pos)).eval()
    prompts = [[1, 5, 6, 7, 8, 9, 10], [1, 9], [1, 11, 12, 13]]
    n = 3
    steps = [torch.randint(3, 40, (len(prompts) * n,)) for _ in range(12)]
    logits = {}
    for mode in ("eager", "kernel"):
        engine(mode)
        with torch.inference_mode():
            logits[mode] = decode_logits(m, prompts, n, steps, compact_at=7)
    assert close(logits["eager"], logits["kernel"])


def test_a_seed_gives_the_same_tokens_run_to_run_with_the_kernel(engine):
    engine("kernel")
    torch.manual_seed(0)
    m = GPT(ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=64)).eval()
    prompts = [[1, 5, 6], [1, 9, 9, 9, 9, 9], [1, 7]]
    a, b = (sample(m, prompts, n=4, max_new_tokens=20, generator=torch.Generator().manual_seed(3)) for _ in "ab")
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.logprobs, b.logprobs)
    assert kernels.engine() == "kernel" and environment()["engine"] == "kernel"


def test_the_kernel_is_the_default_where_it_builds_and_records_say_so(monkeypatch, built):
    """Results version 2 made ``auto`` the default: the kernel decodes wherever it builds."""
    monkeypatch.delenv(kernels.ENV, raising=False)
    kernels._loaded["module"] = built
    try:
        assert kernels.env_engine() == "auto" and kernels.decode_kernel() is built
        assert environment()["engine"] == "kernel"
    finally:
        kernels.reset()


def test_without_a_compiler_the_default_decodes_eagerly_and_records_say_so(monkeypatch, unbuildable):
    monkeypatch.delenv(kernels.ENV, raising=False)
    assert kernels.decode_kernel() is None
    assert environment()["engine"] == "eager"


def test_auto_without_a_kernel_decodes_eagerly_and_says_so_once(unbuildable, monkeypatch, capsys):
    monkeypatch.setenv(kernels.ENV, "auto")
    torch.manual_seed(0)
    m = GPT(ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=32)).eval()
    r = sample(m, [[1, 5, 6]], n=2, max_new_tokens=5, generator=torch.Generator().manual_seed(0))
    assert r.tokens.shape == (2, 5) and kernels.engine() == "eager"
    sample(m, [[1, 5, 6]], n=2, max_new_tokens=5, generator=torch.Generator().manual_seed(0))
    assert capsys.readouterr().err == (
        "ood-bench: note: decode kernel unavailable (OSError: no C++ compiler found): using the eager path\n"
    )


def test_a_broken_source_falls_back_like_a_missing_compiler(monkeypatch, tmp_path, capsys):
    broken = tmp_path / "decode_attention.cpp"
    broken.write_text("#error this source does not compile\n")
    monkeypatch.setattr(kernels, "SOURCE", broken)
    monkeypatch.setenv(kernels.DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(kernels.ENV, "auto")
    kernels.reset()
    try:
        assert kernels.decode_kernel() is None
        err = capsys.readouterr().err
        assert err.startswith("ood-bench: note: decode kernel unavailable (RuntimeError: ") and err.count("\n") == 1
        assert "this source does not compile" in err  # the compiler's own error line, not its command line
    finally:
        kernels.reset()


def test_kernel_mode_without_a_kernel_is_one_line_and_exit_2(unbuildable, monkeypatch, capsys):
    monkeypatch.setenv(kernels.ENV, "kernel")
    with pytest.raises(OodBenchError):
        kernels.decode_kernel()
    assert main(["run", "quick", "--dry-run"]) == 2
    captured = capsys.readouterr()
    assert (
        captured.err.startswith(
            "ood-bench: error: OOD_BENCH_ENGINE=kernel but the decode kernel cannot be "
            "built (OSError: no C++ compiler found)"
        )
        and captured.err.count("\n") == 1
    )
    assert captured.out == ""


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "standard", "--dry-run"],
        ["pretrain", "--print-config"],
        ["evaluate", "--checkpoint", "missing.ckpt"],
        ["posttrain", "--base", "missing.ckpt"],
    ],
)
def test_a_bad_engine_value_is_one_line_and_exit_2_before_any_compute(argv, monkeypatch, capsys):
    monkeypatch.setenv(kernels.ENV, "fast")
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err == "ood-bench: error: invalid OOD_BENCH_ENGINE='fast': choose from eager, kernel, auto\n"
    assert captured.out == ""


def test_a_rerun_with_the_other_engine_says_it_cannot_compare_bit_for_bit():
    from ood_bench.suite.runner import reproduction_line

    cpu = {"capability": "AVX512", "bf16_native": True, "model": "m"}
    committed = {"cpu": cpu, "precision": "32-true", "engine": "eager"}
    assert reproduction_line({**committed, "engine": "kernel", "reproduced": False, "committed": committed}) == (
        "committed record made on AVX512/32-true (eager decoding), this run AVX512/32-true (kernel decoding): not "
        "comparable bit for bit"
    )
    older = {"cpu": cpu, "precision": "32-true"}  # made before records named their engine: compared as before
    assert (
        reproduction_line({**committed, "reproduced": True, "committed": older})
        == "reproduced the committed record exactly"
    )


def test_a_sigterm_during_the_kernel_build_is_not_taken_for_a_failed_build(monkeypatch):
    """On a fresh clone the kernel builds during the first evaluation; a SIGTERM then must end the command
    (exit 143), not read as "kernel unavailable" and let it finish with exit 0."""
    from ood_bench.cli import Terminated

    def build():
        raise Terminated()

    monkeypatch.setattr(kernels, "_loaded", {})
    monkeypatch.setattr(kernels, "build", build)
    monkeypatch.setenv(kernels.ENV, "auto")
    with pytest.raises(Terminated):
        kernels.decode_kernel()
    assert "module" not in kernels._loaded  # nothing cached as a failure: the next call builds again


def test_a_rerun_on_another_thread_count_says_it_cannot_compare_bit_for_bit():
    """A matmul split over another number of threads adds in another order: the quick recipe pretrained on one
    thread and on two gave other weights from the same seed and config."""
    from ood_bench.suite.runner import reproduction_line

    cpu = {"capability": "AVX512", "bf16_native": True, "model": "m"}
    committed = {"cpu": cpu, "precision": "32-true", "engine": "kernel", "threads": 2}
    assert reproduction_line({**committed, "threads": 1, "reproduced": False, "committed": committed}) == (
        "committed record made on AVX512/32-true on 2 threads, this run AVX512/32-true on 1 thread: not comparable "
        "bit for bit"
    )
    assert (
        reproduction_line({**committed, "reproduced": True, "committed": committed})
        == "reproduced the committed record exactly"
    )


def test_the_engine_is_no_part_of_any_run_key(monkeypatch, unbuildable):
    """Records name their engine, but a run's key hashes only the config, task versions and results version:
    a machine where the kernel does not build re-runs the same runs eagerly, and its reproduction line says
    the two are not comparable bit for bit rather than that they differ."""
    from ood_bench.suite.suite import expand, load_suite

    keys = {}
    for mode in ("eager", "auto"):
        monkeypatch.setenv(kernels.ENV, mode)
        keys[mode] = [spec.key for spec in expand(load_suite("quick"))]
    assert keys["eager"] == keys["auto"] and len(keys["eager"]) > 5
