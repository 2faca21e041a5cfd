"""RL loss arithmetic against hand computations, and the exponential-tilt theory on a bandit."""

import math

import pytest
import torch
from ood_bench_algorithms.grpo import GRPOConfig, grpo_loss
from ood_bench_algorithms.ppo import token_rewards, value_loss
from ood_bench_algorithms.rloo import rloo_loss

from ood_bench.training.rl import (
    aggregate,
    clipped_surrogate,
    gae,
    group_advantages,
    kl_estimate,
    leave_one_out_baseline,
)


def test_group_advantages_by_hand():
    r = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    adv, std = group_advantages(r, 4, scale_std=False)
    assert torch.allclose(adv, torch.tensor([0.75, -0.25, -0.25, -0.25, 0, 0, 0, 0]))
    # sample std (Bessel), as TRL and verl: sum of squares 0.75 over G - 1 = 3
    assert torch.allclose(std, torch.tensor([math.sqrt(0.25), 0.0]))
    adv, _ = group_advantages(r, 4, scale_std=True, eps=0.0)
    s = math.sqrt(0.25)
    assert torch.allclose(adv[:4], torch.tensor([0.75 / s, -0.25 / s, -0.25 / s, -0.25 / s]))
    assert torch.equal(adv[4:], torch.zeros(4))  # all-equal group: no signal


def test_group_std_matches_trl_and_verl_at_g2():
    # TRL: rewards.view(-1, G).std(dim=1) (unbiased); verl: torch.std(scores[idx]) (unbiased)
    adv, std = group_advantages(torch.tensor([1.0, 0.0]), 2, scale_std=True, eps=0.0)
    assert float(std[0]) == pytest.approx(math.sqrt(0.5))
    assert torch.allclose(adv, torch.tensor([0.5, -0.5]) / math.sqrt(0.5))


@pytest.mark.parametrize("value", [0.1, 0.3, 0.7, 1.3])
def test_an_all_equal_group_of_non_binary_rewards_has_exactly_zero_advantage(value):
    r = torch.full((8,), value)
    for scale in (True, False):
        adv, std = group_advantages(r, 8, scale_std=scale)
        assert torch.equal(adv, torch.zeros(8)) and torch.equal(std, torch.zeros(1))


def test_approx_kl_is_cleanrls_unbiased_estimator_for_old_policy_samples():
    from ood_bench.training.rl import approx_kl

    old = torch.tensor([0.6, 0.3, 0.1])
    new = torch.tensor([0.3, 0.4, 0.3])
    est = approx_kl(new.log(), old.log())  # per outcome, samples drawn from old
    exact = _exact_kl(old, new)  # KL(old || new)
    assert float((old * est).sum()) == pytest.approx(exact, rel=1e-6)
    ratio = new / old
    assert torch.allclose(est, (ratio - 1) - ratio.log())


def test_ratio_algorithms_refuse_a_truncated_sampler():
    from ood_bench.errors import ConfigError
    from ood_bench.plugins import get_plugins
    from ood_bench.training.algorithms import build_algorithm_config

    plugins = get_plugins()
    for name in ("grpo", "ppo", "rloo"):
        with pytest.raises(ConfigError, match="algo.top_p=0.9"):
            build_algorithm_config(plugins.algorithms[name], {"top_p": 0.9})
    for name in ("sft", "expert_iteration"):
        assert build_algorithm_config(plugins.algorithms[name], {"top_p": 0.9}).top_p == 0.9


def test_leave_one_out_baseline_by_hand():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])
    b = leave_one_out_baseline(r, 3)
    assert torch.allclose(b, torch.tensor([0.0, 0.5, 0.5, 0.0, 0.5, 0.5]))
    seq_logp = torch.tensor([-1.0, -2.0, -3.0, -1.0, -1.0, -1.0], requires_grad=True)
    loss = rloo_loss(seq_logp, r, 3)
    loss.backward()
    adv = r - b
    assert torch.allclose(seq_logp.grad, -adv / 6)


def _exact_kl(p, q):
    return float((p * (p / q).log()).sum())


@pytest.mark.parametrize("estimator", ["k1", "k3"])
def test_kl_estimators_are_unbiased_on_categoricals(estimator):
    p = torch.tensor([0.5, 0.3, 0.15, 0.05])
    q = torch.tensor([0.25, 0.25, 0.25, 0.25])
    # Expectation over samples from p, computed exactly by enumerating the outcomes.
    est = kl_estimate(p.log(), q.log(), estimator)
    assert float((p * est).sum()) == pytest.approx(_exact_kl(p, q), rel=1e-6)
    if estimator == "k3":
        assert (est >= 0).all()


def test_k3_by_hand():
    logp, ref = torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)])
    assert float(kl_estimate(logp, ref, "k3")) == pytest.approx(0.5 - 1 - math.log(0.5))
    assert float(kl_estimate(logp, ref, "k1")) == pytest.approx(math.log(2))


def test_clipping_on_both_sides_by_hand():
    old = torch.zeros(1, 4)
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.1, 0.7]]))  # ratios 1.5, 0.5, 1.1, 0.7
    adv = torch.tensor([[1.0, -1.0, 1.0, 1.0]])
    loss, active = clipped_surrogate(logp, old, adv, eps_low=0.2, eps_high=0.3)
    # A>0: min(r, clip(r)) -> 1.3 (clip high), 1.1, 0.7 (below 1-eps: not clipped for A>0)
    # A<0: min(-r, -clip(r)) -> -0.8 for r=0.5 (clip low binds)
    assert torch.allclose(loss, torch.tensor([[-1.3, 0.8, -1.1, -0.7]]))
    assert active.tolist() == [[True, True, False, False]]


def test_aggregation_modes_by_hand():
    per_token = torch.tensor([[1.0, 2.0, 3.0, 0.0], [4.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    assert float(aggregate(per_token, mask, "seq-mean-token-mean")) == pytest.approx((2.0 + 4.0) / 2)
    assert float(aggregate(per_token, mask, "token-mean")) == pytest.approx(10.0 / 4)
    assert float(aggregate(per_token, mask, "seq-mean-token-sum-norm", max_len=8)) == pytest.approx((6 / 8 + 4 / 8) / 2)
    with pytest.raises(ValueError):
        aggregate(per_token, mask, "median")


@pytest.mark.parametrize("estimator", ["k1", "k3"])
def test_grpo_loss_by_hand(estimator):
    cfg = GRPOConfig(
        beta=0.1, kl_estimator=estimator, eps_low=0.2, eps_high=0.2, loss_aggregation="token-mean", max_new_tokens=4
    )
    logp = torch.log(torch.tensor([[0.5, 0.4], [0.2, 0.9]]))
    old = torch.log(torch.tensor([[0.5, 0.2], [0.4, 0.9]]))  # ratios [1, 2], [0.5, 1]
    ref = torch.log(torch.tensor([[0.25, 0.4], [0.2, 0.3]]))
    adv = torch.tensor([1.0, -1.0])
    mask = torch.ones(2, 2, dtype=torch.bool)
    loss, clipped, kl = grpo_loss(logp, old, ref, adv, mask, cfg)
    pg = torch.tensor([[-1.0, -1.2], [0.8, 1.0]])
    if estimator == "k1":
        kl_hand = logp - ref
    else:
        kl_hand = torch.exp(ref - logp) - (ref - logp) - 1
    assert torch.allclose(kl, kl_hand)
    assert float(loss) == pytest.approx(float((pg + 0.1 * kl_hand).mean()), rel=1e-6)
    assert clipped.tolist() == [[False, True], [True, False]]


def test_gae_by_hand():
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 2.0, 0.0]])
    values = torch.tensor([[0.5, 0.5, 0.5], [1.0, 1.0, 9.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    g, lam = 0.9, 0.8
    adv, ret = gae(rewards, values, mask, g, lam)
    # row 0: deltas d2 = 1 - .5 ; d1 = 0 + .9*.5 - .5 ; d0 = 0 + .9*.5 - .5
    d2, d1, d0 = 0.5, -0.05, -0.05
    a2 = d2
    a1 = d1 + g * lam * a2
    a0 = d0 + g * lam * a1
    assert torch.allclose(adv[0], torch.tensor([a0, a1, a2]))
    # row 1: the masked third token is past the end: its value (9.0) must not leak in
    e1 = 2.0 - 1.0
    e0 = 0.0 + g * 1.0 - 1.0
    assert torch.allclose(adv[1], torch.tensor([e0 + g * lam * e1, e1, 0.0]))
    assert torch.allclose(ret, (adv + values) * mask)


def test_ppo_token_rewards_and_value_loss_by_hand():
    kl = torch.tensor([[0.1, 0.2, 0.3], [0.5, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True], [True, False, False]])
    r = token_rewards(torch.tensor([1.0, 0.0]), kl, mask, beta=0.5)
    assert torch.allclose(r, torch.tensor([[-0.05, -0.1, 0.85], [-0.25, 0.0, 0.0]]))
    v = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    old = torch.zeros(2, 3)
    ret = torch.tensor([[0.5, 0.0, 0.0], [1.0, 0.0, 0.0]])
    # token (0,0): unclipped err .25, clipped value .2 -> err .09 ; max = .25 ; token (1,0): err 1
    assert float(value_loss(v, old, ret, mask, clip=0.2)) == pytest.approx(0.5 * (0.25 + 0 + 0 + 1.0) / 4)


def _bandit_grpo(base_logits, correct, beta, steps, seed=0, lr=0.05):
    """GRPO on a one-token bandit through the plugin's own loss; returns the correct mass per step."""
    torch.manual_seed(seed)
    theta = base_logits.clone().requires_grad_(True)
    ref = base_logits.log_softmax(-1)
    opt = torch.optim.Adam([theta], lr=lr)
    cfg = GRPOConfig(beta=beta, kl_estimator="k3", scale_std=False, loss_aggregation="token-mean")
    G, prompts = 16, 8
    history = []
    for _ in range(steps):
        logp_all = theta.log_softmax(-1)
        with torch.no_grad():
            y = torch.multinomial(logp_all.exp(), G * prompts, replacement=True)
        r = correct[y].float()
        adv, _ = group_advantages(r, G, scale_std=False)
        logp = logp_all[y][:, None]
        loss, _, _ = grpo_loss(logp, logp.detach(), ref[y][:, None], adv, torch.ones_like(logp, dtype=torch.bool), cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(theta.detach().softmax(-1)[correct].sum()))
    return history, theta


def test_bandit_grpo_moves_correct_mass_to_the_tilt_prediction():
    K = 10
    correct = torch.zeros(K, dtype=torch.bool)
    correct[:2] = True
    base = torch.zeros(K)  # uniform: base correct mass Q = 0.2
    beta = 0.5
    q0 = 0.2
    tilt = q0 * math.exp(1 / beta) / (1 - q0 + q0 * math.exp(1 / beta))  # 0.649
    history, _ = _bandit_grpo(base, correct, beta, steps=600)
    final = sum(history[-100:]) / 100
    assert abs(final - tilt) < 0.06, (final, tilt)
    # and beta matters: a weaker KL lets the mass go further, as the tilt predicts
    history_small, _ = _bandit_grpo(base, correct, 0.25, steps=600)
    assert sum(history_small[-100:]) / 100 > final + 0.1


def test_zero_support_means_zero_reward_and_zero_gradient():
    K = 6
    correct = torch.zeros(K, dtype=torch.bool)
    correct[0] = True
    base = torch.zeros(K)
    base[0] = -float("inf")  # the base never produces the correct answer
    history, theta = _bandit_grpo(base, correct, beta=0.1, steps=50)
    assert max(history) == 0.0
    assert torch.equal(theta.detach()[1:], base[1:])  # not one parameter moved
