import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ood_bench.evaluation.metrics import MeanWithStderr, PassAtK, default_ks, pass_at_k, pass_at_k_exact


@given(st.data())
def test_pass_at_k_matches_the_binomial_formula(data):
    n = data.draw(st.integers(1, 300))
    c = data.draw(st.integers(0, n))
    k = data.draw(st.integers(1, n))
    got = float(pass_at_k(torch.tensor([n]), torch.tensor([c]), k)[0])
    assert got == pytest.approx(pass_at_k_exact(n, c, k), abs=1e-9)


def test_pass_at_k_extremes_and_monotonicity():
    n = torch.tensor([64] * 65)
    c = torch.arange(65)
    for k in (1, 8, 64):
        v = pass_at_k(n, c, k)
        assert v[0] == 0 and v[-1] == 1
        assert (v[1:] >= v[:-1]).all()
    assert torch.allclose(pass_at_k(n, c, 1), c.double() / 64.0, atol=1e-12, rtol=0)


def test_pass_at_k_is_stable_for_large_n():
    # C(1024, 512) overflows float64; the product form must not
    v = float(pass_at_k(torch.tensor([1024]), torch.tensor([3]), 512)[0])
    assert v == pytest.approx(1 - (512 * 511 * 510) / (1024 * 1023 * 1022), rel=1e-9)


def test_pass_at_k_refuses_n_below_k():
    with pytest.raises(ValueError, match="pass@8"):
        pass_at_k(torch.tensor([4]), torch.tensor([1]), 8)


def test_metric_accumulates_batches_like_one_update():
    m1, m2 = PassAtK([1, 4]), PassAtK([1, 4])
    n, c = torch.tensor([8, 8, 8, 8]), torch.tensor([0, 2, 5, 8])
    m1.update(n, c)
    m2.update(n[:2], c[:2])
    m2.update(n[2:], c[2:])
    assert m1.compute() == m2.compute()
    out = m1.compute()
    assert out["pass@1"] == pytest.approx((0 + 2 / 8 + 5 / 8 + 1) / 4)
    per = [pass_at_k_exact(8, x, 1) for x in (0, 2, 5, 8)]
    mean = sum(per) / 4
    se = math.sqrt(sum((p - mean) ** 2 for p in per) / 3) / 2
    assert out["pass@1_stderr"] == pytest.approx(se)


def test_mean_with_stderr():
    m = MeanWithStderr()
    m.update(torch.tensor([1.0, 0.0, 1.0, 0.0]))
    mean, se = m.compute()
    assert mean == 0.5 and se == pytest.approx(math.sqrt(1 / 3) / 2)


def test_default_ks():
    assert default_ks(16) == [1, 2, 4, 8, 16]
    assert default_ks(12) == [1, 2, 4, 8, 12]
