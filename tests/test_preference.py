"""Value tests for jaxloss.preference.

References, each a float64 NumPy formula written here from the named source:

* ``dpo_loss``: trl's ``DPOTrainer.dpo_loss`` for ``loss_type`` "sigmoid"
  (Rafailov et al.; with ``label_smoothing``, Mitchell's conservative DPO),
  "robust" (Chowdhury et al.), "hinge" (SLiC) and "ipo" (Azar et al.), with
  the derivatives of each written by hand; ``dpo_implicit_rewards``: trl's
  ``chosen_rewards``/``rejected_rewards``.
* ``grpo_loss``: trl's ``GRPOTrainer`` per-token loss (clipped surrogate with
  ``epsilon_low``/``epsilon_high``, k3 KL ``exp(ref − logp) − (ref − logp) −
  1``) and its "grpo" (sequence mean, then batch mean) and "bnpo"/"dapo"
  (mean over all active tokens) reductions; ``group_normalized_advantages``:
  trl's ``(r − mean_group) / (std_group + 1e-4)`` with the unbiased std.
* ``simpo_loss``: SimPO Eq. 6; ``orpo_loss``: ORPO Eq. 6–7 (``odds = p / (1 −
  p)``, ``p = exp(mean log-probability)``); gradients by central differences.

The shared properties (jit, vmap, where ≡ slicing, dtypes, edge cases, …) run
over tests/cases/preference.py in tests/test_properties.py.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss as jl
from jaxloss.testing import assert_close

F64_TOL = dict(rtol=1e-12, atol=1e-12)
F32_TOL = dict(rtol=1e-5, atol=1e-6)


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


def _rng(seed):
  return np.random.default_rng(seed)


def log_sigmoid(x):
  return -np.logaddexp(0.0, -x)


def sigmoid(x):
  return np.exp(log_sigmoid(x))


def numerical_grad(f, x, step=1e-6):
  """Central differences of a float64 NumPy function of one array."""
  grad = np.zeros_like(x)
  for index in np.ndindex(*x.shape):
    up, down = x.copy(), x.copy()
    up[index] += step
    down[index] -= step
    grad[index] = (f(up) - f(down)) / (2 * step)
  return grad


# --------------------------------------------------------------------------- #
# DPO


def numpy_dpo(pc, pr, rc, rr, beta, eps, loss_type):
  """trl ``DPOTrainer.dpo_loss``: values and d loss / d z (z the logits)."""
  z = (pc - pr) - (rc - rr)
  u = beta * z
  if loss_type == "sigmoid":
    value = -(1 - eps) * log_sigmoid(u) - eps * log_sigmoid(-u)
    dz = beta * (-(1 - eps) * sigmoid(-u) + eps * sigmoid(u))
  elif loss_type == "robust":
    value = (-(1 - eps) * log_sigmoid(u) + eps * log_sigmoid(-u)) / (
      1 - 2 * eps
    )
    dz = beta * (-(1 - eps) * sigmoid(-u) - eps * sigmoid(u)) / (1 - 2 * eps)
  elif loss_type == "hinge":
    value = np.maximum(0.0, 1 - u)
    dz = np.where(1 - u > 0, -beta, 0.0)
  else:  # ipo
    value = (z - 1 / (2 * beta)) ** 2
    dz = 2 * (z - 1 / (2 * beta))
  return value, dz


def _dpo_inputs(seed, n=12, dtype=np.float64):
  rng = _rng(seed)
  logps = [-rng.uniform(5.0, 40.0, size=n) for _ in range(4)]
  return [x.astype(dtype) for x in logps]


DPO_CASES = [
  ("sigmoid", 0.1, 0.0),
  ("sigmoid", 0.1, 0.15),
  ("robust", 0.2, 0.2),
  ("hinge", 0.3, 0.0),
  ("ipo", 0.5, 0.0),
]


@pytest.mark.parametrize(
  "loss_type,beta,eps", DPO_CASES, ids=[f"{t}-{e}" for t, _, e in DPO_CASES]
)
def test_dpo_matches_trl_formulas(x64, loss_type, beta, eps):
  inputs = _dpo_inputs(0)
  value, dz = numpy_dpo(*inputs, beta, eps, loss_type)
  if loss_type == "hinge":
    assert (
      0
      < np.mean(
        1 - beta * ((inputs[0] - inputs[1]) - (inputs[2] - inputs[3])) > 0
      )
      < 1
    )
  kwargs = dict(beta=beta, label_smoothing=eps, loss_type=loss_type)

  def mean(*logps):
    return jl.dpo_loss(*logps, reduction="mean", **kwargs)

  got = jl.dpo_loss(*inputs, **kwargs)
  assert got.shape == (12,) and got.dtype == jnp.float64
  assert_close(got, value, **F64_TOL)
  # "mean" is trl's losses.mean(); z = (pc - pr) - (rc - rr).
  got_mean, grads = jax.value_and_grad(mean, argnums=(0, 1, 2, 3))(*inputs)
  assert_close(got_mean, value.mean(), **F64_TOL)
  for sign, grad in zip((1, -1, -1, 1), grads):
    assert_close(grad, sign * dz / 12, **F64_TOL)
  # float32
  got32 = jl.dpo_loss(*[np.float32(x) for x in inputs], **kwargs)
  assert got32.dtype == jnp.float32
  assert_close(got32, value, rtol=1e-5, atol=1e-4)


def test_dpo_sigmoid_without_smoothing_is_minus_log_sigmoid_and_cdpo_mixes(x64):
  """DPO's own form, and cDPO as the ε-mixture of the two label
  directions (Mitchell 2023)."""
  pc, pr, rc, rr = _dpo_inputs(1)
  beta, eps = 0.25, 0.3
  u = beta * ((pc - rc) - (pr - rr))
  plain = jl.dpo_loss(pc, pr, rc, rr, beta=beta)
  assert_close(plain, -log_sigmoid(u), **F64_TOL)
  flipped = jl.dpo_loss(pr, pc, rr, rc, beta=beta)
  cdpo = jl.dpo_loss(pc, pr, rc, rr, beta=beta, label_smoothing=eps)
  assert_close(cdpo, (1 - eps) * plain + eps * flipped, **F64_TOL)
  # rDPO with ε = 0 is DPO.
  assert_close(
    jl.dpo_loss(pc, pr, rc, rr, beta=beta, loss_type="robust"), plain, **F64_TOL
  )


def test_dpo_where_weights_and_traced_beta(x64):
  inputs = _dpo_inputs(2, n=6)
  where = np.array([True, False, True, True, False, True])
  weights = _rng(3).uniform(0.5, 2.0, 6)
  value, _ = numpy_dpo(*inputs, 0.2, 0.0, "sigmoid")

  @jax.jit
  def run(beta):
    return (
      jl.dpo_loss(*inputs, beta=beta, where=where, weights=weights),
      jl.dpo_loss(
        *inputs, beta=beta, where=where, weights=weights, reduction="mean"
      ),
    )

  none, mean = run(0.2)
  assert_close(none, np.where(where, weights * value, 0), **F64_TOL)
  assert_close(
    mean, np.sum((weights * value)[where]) / np.sum(weights[where]), **F64_TOL
  )


def test_dpo_option_errors():
  inputs = _dpo_inputs(4, dtype=np.float32)
  with pytest.raises(ValueError, match=r"dpo_loss: unknown loss_type"):
    jl.dpo_loss(*inputs, loss_type="kto")
  with pytest.raises(ValueError, match=r"dpo_loss: `label_smoothing` applies"):
    jl.dpo_loss(*inputs, loss_type="hinge", label_smoothing=0.1)
  with pytest.raises(ValueError, match=r"dpo_loss: `label_smoothing`.*0\.5"):
    jl.dpo_loss(*inputs, loss_type="robust", label_smoothing=0.5)
  with pytest.raises(ValueError, match=r"dpo_loss: `label_smoothing`"):
    jl.dpo_loss(*inputs, label_smoothing=1.5)
  with pytest.raises(ValueError, match=r"dpo_loss: `beta` must be > 0"):
    jl.dpo_loss(*inputs, beta=0.0)
  with pytest.raises(ValueError, match=r"dpo_loss: .*same shape"):
    jl.dpo_loss(inputs[0][:-1], *inputs[1:])


def test_dpo_implicit_rewards(x64):
  pc, pr, rc, rr = _dpo_inputs(5)
  chosen, rejected = jl.dpo_implicit_rewards(pc, pr, rc, rr, beta=0.3)
  assert_close(chosen, 0.3 * (pc - rc), **F64_TOL)
  assert_close(rejected, 0.3 * (pr - rr), **F64_TOL)
  # The DPO loss is -log σ of the reward margin.
  assert_close(
    jl.dpo_loss(pc, pr, rc, rr, beta=0.3),
    -log_sigmoid(np.asarray(chosen - rejected)),
    **F64_TOL,
  )
  grads = jax.grad(
    lambda *a: sum(jnp.sum(r) for r in jl.dpo_implicit_rewards(*a, beta=0.3)),
    argnums=(0, 1, 2, 3),
  )(pc, pr, rc, rr)
  assert not any(np.any(g) for g in grads)  # metrics: gradients stopped


# --------------------------------------------------------------------------- #
# GRPO


def numpy_grpo_per_token(logp, old, adv, ref, eps_low, eps_high, beta):
  """trl GRPOTrainer: ``-min(r A, clip(r, 1 − ε_low, 1 + ε_high) A) + β k3``,
  and its derivative with respect to ``logp``."""
  ratio = np.exp(logp - old)
  a = adv[:, None]
  clipped = np.clip(ratio, 1 - eps_low, 1 + eps_high)
  loss = -np.minimum(ratio * a, clipped * a)
  # The unclipped term is the minimum (or they tie): d/dlogp = -r A.
  grad = np.where(ratio * a <= clipped * a, -ratio * a, 0.0)
  if ref is not None:
    delta = ref - logp
    loss = loss + beta * (np.exp(delta) - delta - 1)
    grad = grad + beta * (1 - np.exp(delta))
  return loss, grad


def _grpo_inputs(seed, n=6, t=5, dtype=np.float64):
  rng = _rng(seed)
  logp = -rng.uniform(0.05, 3.0, size=(n, t))
  old = logp + rng.normal(scale=0.4, size=(n, t))
  ref = logp + rng.normal(scale=0.5, size=(n, t))
  adv = rng.normal(size=n)
  lengths = np.array([5, 3, 1, 4, 2, 5])[:n]
  mask = np.arange(t)[None, :] < lengths[:, None]
  # Padded tokens hold garbage that must never reach the result.
  garbage = np.where(mask, 0.0, 7.0)
  return [(x + garbage).astype(dtype) for x in (logp, old, ref)] + [
    adv.astype(dtype),
    mask,
  ]


GRPO_CASES = [
  ("sequence", 0.2, None, False),
  ("token", 0.2, None, False),
  ("sequence", 0.2, 0.28, True),
  ("token", 0.1, 0.28, True),
]


@pytest.mark.parametrize("averaging,eps,eps_high,kl", GRPO_CASES)
def test_grpo_matches_trl(x64, averaging, eps, eps_high, kl):
  logp, old, ref, adv, mask = _grpo_inputs(6)
  beta = 0.05
  per_token, d_token = numpy_grpo_per_token(
    logp,
    old,
    adv,
    ref if kl else None,
    eps,
    eps if eps_high is None else eps_high,
    beta,
  )
  ratio = np.exp(logp - old)[mask]
  # The inputs clip on both sides, with advantages of both signs.
  assert np.any(ratio < 1 - eps) and np.any(ratio > 1 + (eps_high or eps))
  per_token, d_token = np.where(mask, per_token, 0), np.where(mask, d_token, 0)
  counts = mask.sum(1)
  if averaging == "sequence":  # trl loss_type="grpo"
    none = per_token.sum(1) / counts
    mean = none.mean()
    d_mean = d_token / counts[:, None] / len(counts)
  else:  # trl loss_type="bnpo" (and "dapo" on one process)
    none = per_token.sum(1)
    mean = per_token.sum() / mask.sum()
    d_mean = d_token / mask.sum()
  kwargs = dict(
    epsilon=eps, epsilon_high=eps_high, beta=beta, token_averaging=averaging
  )
  refs = (ref,) if kl else ()

  @jax.jit
  def run(logp):
    loss = lambda logp, reduction: jl.grpo_loss(
      logp, old, adv, mask, *refs, reduction=reduction, **kwargs
    )
    value, grad = jax.value_and_grad(loss)(logp, "mean")
    return loss(logp, "none"), loss(logp, "sum"), value, grad

  got_none, got_sum, got_mean, grad = run(logp)
  assert_close(got_none, none, **F64_TOL)
  assert_close(got_sum, none.sum(), **F64_TOL)
  assert_close(got_mean, mean, **F64_TOL)
  assert_close(grad, d_mean, **F64_TOL)
  assert not np.any(grad[~mask])  # padded tokens get no gradient


def test_grpo_float32_integer_mask_and_where():
  logp, old, ref, adv, mask = _grpo_inputs(7, dtype=np.float32)
  per_token, _ = numpy_grpo_per_token(
    *(np.float64(x) for x in (logp, old, adv, ref)), 0.2, 0.2, 0.04
  )
  expected = np.where(mask, per_token, 0).sum(1) / mask.sum(1)
  where = np.array([True, True, False, True, True, False])
  got = jl.grpo_loss(logp, old, adv, mask.astype(np.int32), ref, where=where)
  assert got.dtype == jnp.float32
  assert_close(got, np.where(where, expected, 0), **F32_TOL)
  mean = jl.grpo_loss(logp, old, adv, mask, ref, where=where, reduction="mean")
  assert_close(mean, expected[where].mean(), **F32_TOL)
  # A token-shaped where is a completion mask.
  assert_close(
    jl.grpo_loss(logp, old, adv, None, ref, where=mask), expected, **F32_TOL
  )


def test_grpo_one_update_per_generation_and_empty_completion(x64):
  """old_log_probs=None: ratio 1, so the loss is -A per completion and its
  gradient is trl's (exp(logp - logp.detach()) A); a completion without
  tokens is 0 and left out of "mean" (trl's "grpo" averages it in as 0)."""
  logp, _, _, adv, mask = _grpo_inputs(8)
  mask[2] = False
  keep = mask.any(1)
  none = jl.grpo_loss(logp, None, adv, mask)
  assert_close(none, np.where(keep, -adv, 0), **F64_TOL)
  mean, grad = jax.value_and_grad(
    lambda x: jl.grpo_loss(x, None, adv, mask, reduction="mean")
  )(logp)
  assert_close(mean, -adv[keep].mean(), **F64_TOL)
  counts = np.maximum(mask.sum(1), 1)[:, None]
  assert_close(
    grad, np.where(mask, -adv[:, None] / counts / keep.sum(), 0), **F64_TOL
  )


def test_grpo_errors():
  logp, old, ref, adv, mask = _grpo_inputs(9, dtype=np.float32)
  with pytest.raises(ValueError, match=r"grpo_loss: unknown token_averaging"):
    jl.grpo_loss(logp, old, adv, mask, token_averaging="batch")
  with pytest.raises(ValueError, match=r"grpo_loss: argument `advantages`"):
    jl.grpo_loss(logp, old, adv[:-1], mask)
  with pytest.raises(
    ValueError, match=r"grpo_loss: argument `completion_mask`"
  ):
    jl.grpo_loss(logp, old, adv, mask[:, :-1])
  with pytest.raises(ValueError, match=r"grpo_loss: argument `ref_log_probs`"):
    jl.grpo_loss(logp, old, adv, mask, ref[:, :-1])
  with pytest.raises(ValueError, match=r"grpo_loss: `epsilon` must be >= 0"):
    jl.grpo_loss(logp, old, adv, mask, epsilon=-0.1)


def numpy_group_advantages(rewards, ids, eps, scale):
  out = np.zeros_like(rewards)
  for g in np.unique(ids):
    members = ids == g
    r = rewards[members]
    centred = r - r.mean()
    std = r.std(ddof=1) if r.size > 1 else 0.0
    out[members] = centred / (std + eps) if scale else centred
  return out


@pytest.mark.parametrize("scale", [True, False])
def test_group_normalized_advantages(x64, scale):
  rng = _rng(10)
  rewards = rng.normal(size=12)
  # A group size: consecutive completions of each prompt (trl's layout).
  consecutive = np.repeat(np.arange(3), 4)
  # Group ids in any order, groups of different sizes (one of one).
  ids = rng.permutation(np.array([0] * 5 + [1] * 3 + [2] * 3 + [7]))
  by_size, by_ids = jax.jit(
    lambda r, ids: (
      jl.group_normalized_advantages(r, 4, scale=scale),
      jl.group_normalized_advantages(r, ids, eps=0.01, scale=scale),
    )
  )(rewards, ids)
  assert_close(
    by_size,
    numpy_group_advantages(rewards, consecutive, 1e-4, scale),
    **F64_TOL,
  )
  assert_close(
    by_ids, numpy_group_advantages(rewards, ids, 0.01, scale), **F64_TOL
  )
  # float32 rewards stay float32; integer rewards become float32.
  got = jl.group_normalized_advantages(np.float32(rewards), 4, scale=scale)
  assert got.dtype == jnp.float32
  assert jl.group_normalized_advantages(np.arange(4), 2).dtype == jnp.float32
  with pytest.raises(
    ValueError,
    match=r"group_normalized_advantages: group "
    "size 5",
  ):
    jl.group_normalized_advantages(rewards, 5)


# --------------------------------------------------------------------------- #
# SimPO and ORPO


def _masked_mean(x, mask):
  return np.sum(np.where(mask, x, 0), axis=-1) / mask.sum(-1)


def numpy_simpo(chosen, rejected, chosen_mask, rejected_mask, beta, gamma):
  """SimPO Eq. 6: −log σ(β/|y_w| log π(y_w) − β/|y_l| log π(y_l) − γ)."""
  margin = (
    beta * _masked_mean(chosen, chosen_mask)
    - beta * _masked_mean(rejected, rejected_mask)
    - gamma
  )
  return -log_sigmoid(margin)


def numpy_orpo(chosen, rejected, chosen_mask, rejected_mask, lam):
  """ORPO: −log P_w − λ log σ(log odds_w − log odds_l), odds = P / (1 − P),
  log P = mean token log-probability."""
  log_pw = _masked_mean(chosen, chosen_mask)
  log_pl = _masked_mean(rejected, rejected_mask)
  # log(1 - P) as log(-expm1(log P)): log1p(-exp(log P)) loses all digits
  # as P -> 1 (exp rounds to 1).
  log_odds = lambda lp: lp - np.log(-np.expm1(lp))
  return -log_pw - lam * log_sigmoid(log_odds(log_pw) - log_odds(log_pl))


def _pair_inputs(seed, n=4, t=5, t2=3):
  rng = _rng(seed)
  chosen = -rng.uniform(0.05, 2.0, size=(n, t))
  rejected = -rng.uniform(0.05, 2.0, size=(n, t2))
  chosen_mask = np.arange(t)[None, :] < rng.integers(1, t + 1, n)[:, None]
  rejected_mask = np.arange(t2)[None, :] < rng.integers(1, t2 + 1, n)[:, None]
  # Garbage in the padding, which must not count.
  chosen = np.where(chosen_mask, chosen, -50.0)
  rejected = np.where(rejected_mask, rejected, 3.0)
  return chosen, rejected, chosen_mask, rejected_mask


PAIR_LOSSES = {
  "simpo": (
    lambda *a: jl.simpo_loss(*a, beta=2.5, gamma=0.7),
    lambda *a: numpy_simpo(*a, 2.5, 0.7),
  ),
  "orpo": (
    lambda *a: jl.orpo_loss(*a, beta=0.3),
    lambda *a: numpy_orpo(*a, 0.3),
  ),
}


@pytest.mark.parametrize("name", list(PAIR_LOSSES))
def test_pair_losses_match_papers(x64, name):
  ours, reference = PAIR_LOSSES[name]
  chosen, rejected, chosen_mask, rejected_mask = _pair_inputs(11)
  expected = reference(chosen, rejected, chosen_mask, rejected_mask)
  got = ours(chosen, rejected, chosen_mask, rejected_mask.astype(np.int32))
  assert got.shape == (4,) and got.dtype == jnp.float64
  assert_close(got, expected, **F64_TOL)
  # Gradients: central differences of the reference; padding gets none.
  grads = jax.grad(
    lambda c, r: jnp.sum(ours(c, r, chosen_mask, rejected_mask)), argnums=(0, 1)
  )(chosen, rejected)
  for grad, x, mask, i in (
    (grads[0], chosen, chosen_mask, 0),
    (grads[1], rejected, rejected_mask, 1),
  ):

    def total(y, i=i):
      args = [chosen, rejected, chosen_mask, rejected_mask]
      args[i] = y
      return reference(*args).sum()

    assert_close(grad, numerical_grad(total, x), rtol=1e-6, atol=1e-8)
    assert not np.any(grad[~mask])
  # float32
  got32 = ours(
    np.float32(chosen), np.float32(rejected), chosen_mask, rejected_mask
  )
  assert got32.dtype == jnp.float32
  assert_close(got32, expected, **F32_TOL)


@pytest.mark.parametrize("name", list(PAIR_LOSSES))
def test_pair_losses_masks_and_reductions(x64, name):
  ours, reference = PAIR_LOSSES[name]
  chosen, rejected, chosen_mask, rejected_mask = _pair_inputs(12)
  expected = reference(chosen, rejected, chosen_mask, rejected_mask)
  # No masks: every token counts.
  unpadded = np.where(rejected_mask, rejected, -0.5)
  assert_close(
    ours(chosen[:, :3], unpadded),
    reference(
      chosen[:, :3], unpadded, np.ones((4, 3), bool), np.ones((4, 3), bool)
    ),
    **F64_TOL,
  )
  # A pair with an empty completion is 0 and left out of "mean"; where drops
  # pairs too.
  empty = rejected_mask.copy()
  empty[1] = False
  where = np.array([True, True, True, False])
  fn = {"simpo": jl.simpo_loss, "orpo": jl.orpo_loss}[name]
  kwargs = dict(beta=2.5, gamma=0.7) if name == "simpo" else dict(beta=0.3)
  none = fn(chosen, rejected, chosen_mask, empty, where=where, **kwargs)
  keep = np.array([True, False, True, False])
  assert_close(none, np.where(keep, expected, 0), **F64_TOL)
  mean = fn(
    chosen,
    rejected,
    chosen_mask,
    empty,
    where=where,
    reduction="mean",
    **kwargs,
  )
  assert_close(mean, expected[keep].mean(), **F64_TOL)


def test_orpo_log_odds_near_probability_one(x64):
  """Average log-probabilities of -1e-9 (P ≈ 1): the odds stay finite and
  accurate (log1mexp), and match the float64 formula."""
  chosen = np.array([[-1e-9, -1e-9], [-2.0, -1e-3]])
  rejected = np.array([[-0.5, -0.7], [-1e-6, -3e-6]])
  assert_close(
    jl.orpo_loss(chosen, rejected, beta=1.0),
    numpy_orpo(
      chosen, rejected, np.ones((2, 2), bool), np.ones((2, 2), bool), 1.0
    ),
    rtol=1e-9,
    atol=0,
  )


def test_pair_loss_errors():
  chosen, rejected, chosen_mask, rejected_mask = _pair_inputs(13)
  with pytest.raises(
    ValueError, match=r"simpo_loss: argument `rejected_logps`"
  ):
    jl.simpo_loss(chosen, rejected[:-1])
  with pytest.raises(ValueError, match=r"orpo_loss: argument `chosen_mask`"):
    jl.orpo_loss(chosen, rejected, chosen_mask[:, :-1])
  with pytest.raises(TypeError, match=r"simpo_loss: argument `chosen_mask`"):
    jl.simpo_loss(chosen, rejected, np.float32(chosen_mask))
  with pytest.raises(ValueError, match=r"simpo_loss: `beta` must be > 0"):
    jl.simpo_loss(chosen, rejected, beta=0.0)
  with pytest.raises(ValueError, match=r"orpo_loss: `beta` must be >= 0"):
    jl.orpo_loss(chosen, rejected, beta=-1.0)


# --------------------------------------------------------------------------- #
# Issue 21: dpo_loss's other trl 1.16 loss types, kto_loss, cpo_loss.
#
# References (float64 torch, gradients by torch autograd):
# * dpo_loss: the branches of trl 1.16 trainer/dpo_trainer.py
#   DPOTrainer._compute_loss (f_divergence_type="reverse_kl", so the scores
#   are the log-ratios), copied line for line into `trl_dpo_per_sequence`
#   (the method needs a model; the loss lines do not).
# * kto_loss: trl 1.16 trainer/kto_trainer.py KTOTrainer._compute_loss, from
#   `kl = ...` to `losses.nanmean()`, copied into `trl_kto_losses` (one
#   process: gather_for_metrics is the identity).
# * cpo_loss: trl's own CPOTrainer.cpo_loss (trl.experimental.cpo), called
#   with a minimal `self`, and get_batch_loss_metrics's
#   `losses.mean() + cpo_alpha * nll_loss`.

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


@pytest.fixture(scope="module")
def torch_f():
  """torch and torch.nn.functional (imported once for this module)."""
  import torch
  import torch.nn.functional as F

  return torch, F


def trl_dpo_per_sequence(
  torch,
  F,
  loss_type,
  chosen_logps,
  rejected_logps,
  ref_chosen_logps,
  ref_rejected_logps,
  chosen_lengths=None,
  rejected_lengths=None,
  beta=0.1,
  label_smoothing=0.0,
  discopop_tau=0.05,
):
  """trl 1.16 trainer/dpo_trainer.py DPOTrainer._compute_loss, the branch
  ``loss_type``; ``chosen_mask.sum(dim=1)`` is ``chosen_lengths``."""
  chosen_logratios = chosen_logps - ref_chosen_logps
  rejected_logratios = rejected_logps - ref_rejected_logps
  chosen_scores = chosen_logratios
  rejected_scores = rejected_logratios
  delta_score = chosen_scores - rejected_scores
  device = "cpu"
  if loss_type == "sigmoid":
    per_sequence_loss = -F.logsigmoid(beta * delta_score)
  elif loss_type == "hinge":
    per_sequence_loss = torch.relu(1 - beta * delta_score)
  elif loss_type == "ipo":
    chosen_avg_score = chosen_scores / chosen_lengths.clamp(min=1.0)
    rejected_avg_score = rejected_scores / rejected_lengths.clamp(min=1.0)
    ipo_delta = chosen_avg_score - rejected_avg_score
    per_sequence_loss = (ipo_delta - 1 / (2 * beta)) ** 2
  elif loss_type == "exo_pair":
    epsilon = torch.tensor(label_smoothing, device=device, dtype=torch.float64)
    qw = torch.sigmoid(beta * delta_score)
    log_qw = F.logsigmoid(beta * delta_score)
    log_pw = torch.log1p(-epsilon)
    ql = torch.sigmoid(-beta * delta_score)
    log_ql = F.logsigmoid(-beta * delta_score)
    log_pl = torch.log(epsilon)
    per_sequence_loss = qw * (log_qw - log_pw) + ql * (log_ql - log_pl)
  elif loss_type == "nca_pair":
    chosen_rewards = beta * chosen_logratios
    rejected_rewards = beta * rejected_logratios
    per_sequence_loss = (
      -F.logsigmoid(chosen_rewards)
      - 0.5 * F.logsigmoid(-chosen_rewards)
      - 0.5 * F.logsigmoid(-rejected_rewards)
    )
  elif loss_type == "robust":
    clean_loss_term = -(1 - label_smoothing) * F.logsigmoid(beta * delta_score)
    flipped_loss_term = -label_smoothing * F.logsigmoid(-beta * delta_score)
    per_sequence_loss = (clean_loss_term - flipped_loss_term) / (
      1 - 2 * label_smoothing
    )
  elif loss_type == "bco_pair":
    chosen_rewards = beta * chosen_logratios
    rejected_rewards = beta * rejected_logratios
    per_sequence_loss = -F.logsigmoid(chosen_rewards) - F.logsigmoid(
      -rejected_rewards
    )
  elif loss_type == "sppo_hard":
    winner_margin_error = (chosen_logratios - 0.5 / beta) ** 2
    loser_margin_error = (rejected_logratios + 0.5 / beta) ** 2
    per_sequence_loss = winner_margin_error + loser_margin_error
  elif loss_type == "aot":
    logratios = chosen_logps - rejected_logps
    ref_logratios = ref_chosen_logps - ref_rejected_logps
    logratios_sorted, _ = torch.sort(logratios, dim=0)
    ref_logratios_sorted, _ = torch.sort(ref_logratios, dim=0)
    delta = logratios_sorted - ref_logratios_sorted
    per_sequence_loss = (
      -F.logsigmoid(beta * delta) * (1 - label_smoothing)
      - F.logsigmoid(-beta * delta) * label_smoothing
    )
  elif loss_type == "aot_unpaired":
    chosen_logratios_sorted, _ = torch.sort(chosen_logratios, dim=0)
    rejected_logratios_sorted, _ = torch.sort(rejected_logratios, dim=0)
    delta = chosen_logratios_sorted - rejected_logratios_sorted
    per_sequence_loss = (
      -F.logsigmoid(beta * delta) * (1 - label_smoothing)
      - F.logsigmoid(-beta * delta) * label_smoothing
    )
  elif loss_type == "apo_zero":
    losses_chosen = 1 - torch.sigmoid(beta * chosen_logratios)
    losses_rejected = torch.sigmoid(beta * rejected_logratios)
    per_sequence_loss = losses_chosen + losses_rejected
  elif loss_type == "apo_down":
    losses_chosen = torch.sigmoid(beta * chosen_logratios)
    losses_rejected = 1 - torch.sigmoid(
      beta * (chosen_logratios - rejected_logratios)
    )
    per_sequence_loss = losses_chosen + losses_rejected
  elif loss_type == "discopop":
    logits = delta_score * beta
    log_ratio_modulation = torch.sigmoid(logits / discopop_tau)
    logistic_component = -F.logsigmoid(logits)
    exp_component = torch.exp(-logits)
    per_sequence_loss = (
      logistic_component * (1 - log_ratio_modulation)
      + exp_component * log_ratio_modulation
    )
  elif loss_type == "sigmoid_norm":
    chosen_avg_score = chosen_scores / chosen_lengths.clamp(min=1.0)
    rejected_avg_score = rejected_scores / rejected_lengths.clamp(min=1.0)
    delta = chosen_avg_score - rejected_avg_score
    per_sequence_loss = -F.logsigmoid(beta * delta)
  else:
    raise ValueError(loss_type)
  return per_sequence_loss


def _torch_value_and_grads(torch, fn, arrays, reduce_fn):
  """``fn`` of float64 torch leaves made from ``arrays``: the per-element
  result, and the gradients of ``reduce_fn(result)``."""
  leaves = [
    torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in arrays
  ]
  out = fn(*leaves)
  reduce_fn(out).backward()
  return out.detach().numpy(), [leaf.grad.numpy() for leaf in leaves]


# (loss_type, beta, jaxloss options; trl options are the same numbers)
TRL_DPO_TYPES = [
  ("sigmoid", 0.1, {}),  # trl 1.16's sigmoid has no label smoothing
  ("hinge", 0.3, {}),
  ("ipo", 0.5, dict(lengths=True)),
  ("robust", 0.2, dict(label_smoothing=0.2)),
  ("exo_pair", 0.1, dict(label_smoothing=1e-3)),
  ("nca_pair", 0.1, {}),
  ("bco_pair", 0.2, {}),
  ("sppo_hard", 0.5, {}),
  ("aot", 0.1, dict(label_smoothing=0.15)),
  ("aot_unpaired", 0.1, dict(label_smoothing=0.15)),
  ("apo_zero", 0.1, {}),
  ("apo_down", 0.1, {}),
  ("discopop", 0.1, dict(discopop_tau=0.3)),
  ("sigmoid_norm", 2.0, dict(lengths=True)),
]


def _dpo_issue21_inputs(seed, n=12):
  """Log-ratios of both signs and sizes (the sigmoids and the hinge are
  neither all saturated nor all linear), token counts with a 0 (clamped)."""
  rng = _rng(seed)
  ref_chosen = -rng.uniform(20.0, 60.0, n)
  ref_rejected = -rng.uniform(20.0, 60.0, n)
  chosen = ref_chosen + rng.normal(scale=6.0, size=n)
  rejected = ref_rejected + rng.normal(scale=6.0, size=n)
  chosen_lengths = rng.integers(0, 30, n)
  rejected_lengths = rng.integers(1, 30, n)
  chosen_lengths[3] = 0
  return (chosen, rejected, ref_chosen, ref_rejected), (
    chosen_lengths,
    rejected_lengths,
  )


def test_dpo_loss_types_match_trl(x64, torch_f):
  """Every loss type: per-pair values, "mean" (trl's
  ``per_sequence_loss.mean()``) and its gradients with respect to the four
  log-probabilities, against trl's lines (torch autograd)."""
  torch, F = torch_f
  logps, (chosen_lengths, rejected_lengths) = _dpo_issue21_inputs(30)
  hinge_args = 1 - 0.3 * ((logps[0] - logps[2]) - (logps[1] - logps[3]))
  assert 0 < np.mean(hinge_args > 0) < 1
  for loss_type, beta, options in TRL_DPO_TYPES:
    options = dict(options)
    lengths = options.pop("lengths", False)
    trl_options = dict(beta=beta, **options)
    ours_options = dict(beta=beta, loss_type=loss_type, **options)
    if lengths:
      ours_options.update(
        chosen_lengths=chosen_lengths, rejected_lengths=rejected_lengths
      )
      trl_options.update(
        chosen_lengths=torch.tensor(chosen_lengths, dtype=torch.float64),
        rejected_lengths=torch.tensor(rejected_lengths, dtype=torch.float64),
      )
    want, want_grads = _torch_value_and_grads(
      torch,
      lambda *a, t=loss_type, o=trl_options: trl_dpo_per_sequence(
        torch, F, t, *a, **o
      ),
      logps,
      lambda out: out.mean(),
    )
    assert np.all(np.isfinite(want)), loss_type
    got = jl.dpo_loss(*logps, **ours_options)
    mean, grads = jax.value_and_grad(
      lambda *a, o=ours_options: jl.dpo_loss(*a, reduction="mean", **o),
      argnums=(0, 1, 2, 3),
    )(*logps)
    what = f"dpo_loss[{loss_type}]"
    assert got.dtype == jnp.float64, what
    # aot's values are per rank, in trl's (sorted) order too.
    assert_close(got, want, rtol=1e-10, atol=1e-12, what=what)
    assert_close(mean, want.mean(), rtol=1e-10, atol=1e-12, what=what)
    for grad, want_grad in zip(grads, want_grads):
      assert_close(grad, want_grad, rtol=1e-10, atol=1e-12, what=what)


def test_dpo_sorted_types_honour_where_before_sorting(x64):
  """aot/aot_unpaired: a masked pair is left out of both sorts (what slicing
  it out gives), gets 0, and "mean" divides by the kept count; all masked
  and an empty batch give 0 with finite gradients. Run through the shared
  properties, which their registry cases skip (per_example=False, as they
  refuse weights)."""
  from jaxloss import testing
  from tests.cases.preference import AOT_CASES

  logps, _ = _dpo_issue21_inputs(31, n=7)
  where = np.array([True, False, True, True, False, True, True])
  for loss_type in ("aot", "aot_unpaired"):
    kwargs = dict(loss_type=loss_type, label_smoothing=0.1, beta=0.2)
    got = jl.dpo_loss(*logps, where=where, **kwargs)
    sliced = jl.dpo_loss(*(x[where] for x in logps), **kwargs)
    assert_close(got[where], sliced, **F64_TOL)
    assert np.all(np.asarray(got)[~where] == 0)
    assert_close(
      jl.dpo_loss(*logps, where=where, reduction="mean", **kwargs),
      np.mean(sliced),
      **F64_TOL,
    )
    # Masked pairs hold garbage that must not move the sorted quantiles.
    garbage = [np.where(where, x, -1e30) for x in logps]
    assert_close(jl.dpo_loss(*garbage, where=where, **kwargs), got, **F64_TOL)
    grads = jax.grad(
      lambda *a, kw=kwargs: jl.dpo_loss(*a, where=where, reduction="sum", **kw),
      argnums=(0, 1, 2, 3),
    )(*garbage)
    for grad in grads:
      assert np.all(np.isfinite(grad)) and not np.any(grad[~where])
  for case in AOT_CASES:
    testing.check_where_is_slicing(case)
    testing.check_all_masked(case)
  testing.check_empty_batch(AOT_CASES[0])  # one compiled program


def test_dpo_discopop_is_finite_where_trl_overflows(x64, torch_f):
  """trl's exp(−βz)·σ(βz/τ) is inf·0 = NaN for βz ≪ 0; here it is
  exp(−βz + log σ(βz/τ)), finite, and the value tends to −βz."""
  torch, F = torch_f
  z = np.array([-2e4, -800.0, 800.0, 2e4])
  zeros = np.zeros_like(z)
  trl = trl_dpo_per_sequence(
    torch,
    F,
    "discopop",
    *(torch.tensor(x) for x in (z, zeros, zeros, zeros)),
    beta=1.0,
  ).numpy()
  assert np.isnan(trl[0]) and np.isnan(trl[1])
  got, grad = jax.value_and_grad(
    lambda x: jnp.sum(
      jl.dpo_loss(x, zeros, zeros, zeros, beta=1.0, loss_type="discopop")
    )
  )(z)
  assert_close(
    jl.dpo_loss(z, zeros, zeros, zeros, beta=1.0, loss_type="discopop"),
    [2e4, 800.0, 0.0, 0.0],
    rtol=1e-12,
    atol=1e-300,
  )
  assert np.isfinite(got) and np.all(np.isfinite(grad))
  assert_close(grad, [-1.0, -1.0, 0.0, 0.0], rtol=1e-12, atol=1e-300)


DPO_OPTION_ERRORS = [
  (dict(loss_type="kto"), r"unknown loss_type"),
  (dict(loss_type="nca_pair", label_smoothing=0.1), r"`label_smoothing`"),
  (
    dict(
      loss_type="sigmoid_norm",
      label_smoothing=0.1,
      chosen_lengths=3,
      rejected_lengths=3,
    ),
    r"`label_smoothing`",
  ),
  (dict(loss_type="exo_pair"), r"`label_smoothing`.*exo_pair"),
  (dict(loss_type="exo_pair", label_smoothing=1.0), r"`label_smoothing`"),
  (dict(loss_type="aot", label_smoothing=1.5), r"`label_smoothing`"),
  (dict(loss_type="sigmoid", discopop_tau=0.05), r"`discopop_tau`"),
  (dict(loss_type="discopop", discopop_tau=0.0), r"`discopop_tau` must be"),
  (dict(loss_type="sigmoid_norm"), r"`chosen_lengths`"),
  (dict(loss_type="ipo", chosen_lengths=3), r"`chosen_lengths`"),
  (
    dict(loss_type="hinge", chosen_lengths=3, rejected_lengths=3),
    r"`chosen_lengths`",
  ),
  (dict(loss_type="aot", weights=np.ones(12)), r"`weights`"),
  (
    dict(
      loss_type="sigmoid_norm", chosen_lengths=np.ones(5), rejected_lengths=3
    ),
    r"`chosen_lengths`",
  ),
]


@pytest.mark.parametrize(
  "options,message",
  DPO_OPTION_ERRORS,
  ids=[str(o) for o, _ in DPO_OPTION_ERRORS],
)
def test_dpo_bad_options_name_the_loss_and_the_argument(options, message):
  logps, _ = _dpo_issue21_inputs(32)
  with pytest.raises(ValueError, match=r"^dpo_loss: .*" + message):
    jl.dpo_loss(*logps, **options)


def test_dpo_traced_option_a_type_ignores_is_an_error():
  logps, _ = _dpo_issue21_inputs(33)
  with pytest.raises(ValueError, match=r"^dpo_loss: `label_smoothing`"):
    jax.jit(
      lambda e: jl.dpo_loss(*logps, loss_type="apo_zero", label_smoothing=e)
    )(0.1)
  # A traced value a type reads is fine.
  jax.jit(lambda e: jl.dpo_loss(*logps, loss_type="aot", label_smoothing=e))(
    0.1
  )


def test_dpo_sorted_types_need_a_batch_vector():
  logps = [np.zeros((3, 4), np.float32)] * 4
  with pytest.raises(ValueError, match=r"dpo_loss: argument `policy_chosen"):
    jl.dpo_loss(*logps, loss_type="aot")
  # vmap over the other axes.
  out = jax.vmap(lambda *a: jl.dpo_loss(*a, loss_type="aot"))(*logps)
  assert out.shape == (3, 4)


# KTO


def trl_kto_losses(
  torch,
  F,
  loss_type,
  logps,
  ref_logps,
  kl_logps,
  ref_kl_logps,
  labels,
  beta,
  desirable_weight,
  undesirable_weight,
):
  """trl 1.16 trainer/kto_trainer.py KTOTrainer._compute_loss, from the
  chosen/rejected split to ``losses.nanmean()`` (one process)."""
  bool_labels = torch.as_tensor(labels, dtype=torch.bool)
  chosen_idx = torch.nonzero(bool_labels, as_tuple=False).view(-1)
  rejected_idx = torch.nonzero(~bool_labels, as_tuple=False).view(-1)
  chosen_logps = logps.index_select(0, chosen_idx)
  rejected_logps = logps.index_select(0, rejected_idx)
  ref_chosen_logps = ref_logps.index_select(0, chosen_idx)
  ref_rejected_logps = ref_logps.index_select(0, rejected_idx)
  if loss_type == "kto":
    kl = (kl_logps - ref_kl_logps).mean().detach()
    kl = kl.mean().clamp(min=0)
  else:
    kl = torch.zeros(1)
  chosen_logratios = chosen_logps - ref_chosen_logps
  if loss_type == "kto":
    chosen_losses = 1 - F.sigmoid(beta * (chosen_logratios - kl))
  else:
    chosen_losses = 1 - F.sigmoid(beta * chosen_logratios)
  rejected_logratios = rejected_logps - ref_rejected_logps
  if loss_type == "kto":
    rejected_losses = 1 - F.sigmoid(beta * (kl - rejected_logratios))
  else:
    rejected_losses = F.sigmoid(beta * rejected_logratios)
  losses = torch.cat(
    (desirable_weight * chosen_losses, undesirable_weight * rejected_losses),
    0,
  )
  return losses, chosen_idx, rejected_idx


def _kto_inputs(seed, n=10):
  rng = _rng(seed)
  ref = -rng.uniform(20.0, 60.0, n)
  policy = ref + rng.normal(scale=8.0, size=n)
  ref_kl = -rng.uniform(20.0, 60.0, n)
  policy_kl = ref_kl + rng.normal(loc=1.0, scale=3.0, size=n)
  desirable = rng.random(n) < 0.5
  desirable[:2] = True, False
  return (policy, ref, policy_kl, ref_kl), desirable


@pytest.mark.parametrize("loss_type", ["kto", "apo_zero_unpaired"])
def test_kto_matches_trl(x64, torch_f, loss_type):
  """Per-completion values (trl's concatenated chosen/rejected losses put
  back in batch order), "mean" (trl's ``losses.nanmean()``) and gradients."""
  torch, F = torch_f
  logps, desirable = _kto_inputs(40)
  hyper = dict(beta=0.2, desirable_weight=1.3, undesirable_weight=0.7)
  kl_positive = np.mean(logps[2] - logps[3]) > 0
  assert kl_positive  # the reference point is not clamped to 0
  leaves = [torch.tensor(x, requires_grad=True) for x in logps]
  losses, chosen_idx, rejected_idx = trl_kto_losses(
    torch, F, loss_type, *leaves, desirable, **hyper
  )
  losses.nanmean().backward()
  want = np.zeros(len(desirable))
  order = torch.cat((chosen_idx, rejected_idx)).numpy()
  want[order] = losses.detach().numpy()
  kl = logps[2:] if loss_type == "kto" else (None, None)
  args = (logps[0], logps[1], *kl, desirable)
  got = jl.kto_loss(*args, loss_type=loss_type, **hyper)
  assert_close(got, want, **F64_TOL)

  def mean(policy, ref, *kl):
    return jl.kto_loss(
      policy,
      ref,
      *(kl or (None, None)),
      desirable,
      loss_type=loss_type,
      reduction="mean",
      **hyper,
    )

  diff = logps if loss_type == "kto" else logps[:2]
  value, grads = jax.value_and_grad(mean, argnums=tuple(range(len(diff))))(
    *diff
  )
  assert_close(value, losses.detach().numpy().mean(), **F64_TOL)
  for grad, leaf in zip(grads, leaves):
    # trl detaches the KL: its KL leaves get no gradient at all.
    want_grad = np.zeros(len(desirable)) if leaf.grad is None else leaf.grad
    assert_close(grad, want_grad, **F64_TOL)


def test_kto_reference_point_where_and_weights(x64):
  """The reference point is the mean over the kept completions, clamped at
  0; where ≡ slicing, including the reference point; weights scale the
  values only; all masked gives 0 with finite gradients."""
  (policy, ref, policy_kl, ref_kl), desirable = _kto_inputs(41)
  beta = 0.5
  point = max(0.0, np.mean(policy_kl - ref_kl))
  ratio = policy - ref
  expected = np.where(
    desirable,
    1 - sigmoid(beta * (ratio - point)),
    1 - sigmoid(beta * (point - ratio)),
  )
  args = (policy, ref, policy_kl, ref_kl, desirable)
  assert_close(jl.kto_loss(*args, beta=beta), expected, **F64_TOL)
  # A negative mean KL is clamped to 0: the reference point is 0.
  assert_close(
    jl.kto_loss(policy, ref, ref_kl, policy_kl + 5, desirable, beta=beta),
    jl.kto_loss(
      policy,
      ref,
      None,
      None,
      desirable,
      beta=beta,
      loss_type="apo_zero_unpaired",
    ),
    **F64_TOL,
  )
  where = np.ones(10, bool)
  where[[2, 5, 6]] = False
  sliced = jl.kto_loss(*(x[where] for x in args), beta=beta)
  got = jl.kto_loss(*args, beta=beta, where=where)
  assert_close(got[where], sliced, **F64_TOL)
  assert np.all(np.asarray(got)[~where] == 0)
  weights = _rng(42).uniform(0.5, 2.0, 10)
  assert_close(
    jl.kto_loss(*args, beta=beta, weights=weights),
    weights * expected,
    **F64_TOL,
  )
  nothing = np.zeros(10, bool)
  value, grads = jax.value_and_grad(
    lambda *a: jl.kto_loss(*a, desirable, where=nothing, reduction="mean"),
    argnums=(0, 1, 2, 3),
  )(policy, ref, policy_kl, ref_kl)
  assert value == 0 and all(np.all(np.isfinite(g)) for g in grads)


def test_kto_desirable_must_be_a_mask():
  logps, desirable = _kto_inputs(44)
  with pytest.raises(TypeError, match=r"kto_loss: argument `desirable`"):
    jl.kto_loss(*logps, np.float64(desirable))
  # 0/1 integers are a mask.
  assert_close(
    jl.kto_loss(*logps, desirable.astype(np.int32)),
    jl.kto_loss(*logps, desirable),
  )


KTO_OPTION_ERRORS = [
  (dict(loss_type="kl"), r"unknown loss_type"),
  (dict(kl=False), r"`policy_kl_logps` and `reference_kl_logps` are required"),
  (dict(loss_type="apo_zero_unpaired"), r"`policy_kl_logps`.*must be None"),
  (dict(beta=0.0), r"`beta` must be > 0"),
  (dict(desirable_weight=-1.0), r"`desirable_weight` must be >= 0"),
  (dict(desirable="short"), r"argument `desirable`"),
]


@pytest.mark.parametrize(
  "options,message",
  KTO_OPTION_ERRORS,
  ids=[str(o) for o, _ in KTO_OPTION_ERRORS],
)
def test_kto_bad_options_name_the_loss_and_the_argument(options, message):
  (policy, ref, policy_kl, ref_kl), desirable = _kto_inputs(43)
  options = dict(options)
  if not options.pop("kl", True):
    policy_kl = None
  if options.pop("desirable", None) == "short":
    desirable = desirable[:-1]
  with pytest.raises(ValueError, match=r"^kto_loss: .*" + message):
    jl.kto_loss(policy, ref, policy_kl, ref_kl, desirable, **options)


# CPO


@pytest.fixture(scope="module")
def trl_cpo_loss(torch_f):
  """trl 1.16's own ``CPOTrainer.cpo_loss`` on a minimal ``self``."""
  import types

  from trl.experimental.cpo.cpo_trainer import CPOTrainer

  def call(chosen, rejected, **options):
    trainer = types.SimpleNamespace(
      accelerator=types.SimpleNamespace(device="cpu"), **options
    )
    return CPOTrainer.cpo_loss(trainer, chosen, rejected)

  return call


# (loss_type, trl options: beta, label_smoothing, simpo_gamma, alpha)
TRL_CPO_CASES = [
  ("sigmoid", 0.1, 0.0, 0.5, 0.0),
  ("sigmoid", 0.2, 0.15, 0.5, 0.0),
  ("hinge", 0.3, 0.0, 0.5, 0.0),
  ("ipo", 0.5, 0.0, 0.5, 0.0),
  ("simpo", 2.0, 0.1, 0.8, 0.0),
  ("sigmoid", 0.1, 0.0, 0.5, 0.25),  # AlphaPO
  ("simpo", 2.0, 0.0, 0.5, -0.7),
  ("hinge", 0.3, 0.0, 0.5, 0.1),
  ("ipo", 0.5, 0.0, 0.5, 0.3),
]


def test_cpo_matches_trl(x64, torch_f, trl_cpo_loss):
  """Per-pair values, ``losses.mean() + cpo_alpha · nll`` (trl's
  get_batch_loss_metrics, with the NLL a scalar) and gradients, by calling
  trl's cpo_loss with float64 tensors."""
  torch, _ = torch_f
  rng = _rng(50)
  summed = [-rng.uniform(5.0, 40.0, 12) for _ in range(2)]
  averaged = [-rng.uniform(0.2, 3.0, 12) for _ in range(2)]
  nll, cpo_alpha = 1.7, 0.6
  for loss_type, beta, eps, gamma, alpha in TRL_CPO_CASES:
    logps = averaged if loss_type in ("ipo", "simpo") else summed
    leaves = [torch.tensor(x, requires_grad=True) for x in logps]
    nll_leaf = torch.tensor(nll, dtype=torch.float64, requires_grad=True)
    losses, _, _ = trl_cpo_loss(
      *leaves,
      loss_type=loss_type,
      beta=beta,
      label_smoothing=eps,
      simpo_gamma=gamma,
      alpha=alpha,
    )
    (losses.mean() + cpo_alpha * nll_leaf).backward()
    options = dict(loss_type=loss_type, beta=beta, alpha=alpha)
    if loss_type in ("sigmoid", "simpo"):
      options["label_smoothing"] = eps
    if loss_type == "simpo":
      options["simpo_gamma"] = gamma
    what = f"cpo_loss[{loss_type}, alpha={alpha}]"
    assert_close(
      jl.cpo_loss(*logps, **options),
      losses.detach().numpy(),
      rtol=1e-10,
      atol=1e-12,
      what=what,
    )
    value, grads = jax.value_and_grad(
      lambda c, r, n, o=options: jl.cpo_loss(
        c, r, chosen_nll=n, cpo_alpha=cpo_alpha, reduction="mean", **o
      ),
      argnums=(0, 1, 2),
    )(*logps, nll)
    want = losses.detach().numpy().mean() + cpo_alpha * nll
    assert_close(value, want, rtol=1e-10, atol=1e-12, what=what)
    for grad, leaf in zip(grads, leaves + [nll_leaf]):
      assert_close(grad, leaf.grad.numpy(), rtol=1e-10, atol=1e-12, what=what)


def test_cpo_per_pair_nll_where_and_traced_alpha(x64):
  rng = _rng(51)
  chosen, rejected = (-rng.uniform(0.2, 3.0, 6) for _ in range(2))
  nll = rng.uniform(0.5, 2.0, 6)
  where = np.array([True, False, True, True, False, True])
  plain = jl.cpo_loss(chosen, rejected, beta=0.4)
  got = jl.cpo_loss(
    chosen, rejected, beta=0.4, chosen_nll=nll, cpo_alpha=0.5, where=where
  )
  assert_close(got, np.where(where, plain + 0.5 * nll, 0), **F64_TOL)
  # A traced alpha: 0 is the log-probability, others AlphaPO's reward.
  run = jax.jit(lambda a: jl.cpo_loss(chosen, rejected, beta=0.4, alpha=a))
  assert_close(run(0.0), plain, **F64_TOL)
  assert_close(
    run(0.3), jl.cpo_loss(chosen, rejected, beta=0.4, alpha=0.3), **F64_TOL
  )
  # AlphaPO's reward tends to the log-probability as alpha -> 0 (expm1).
  assert_close(
    jl.cpo_loss(chosen, rejected, beta=0.4, alpha=1e-12), plain, rtol=1e-9
  )


def test_cpo_alphapo_log_space_edge(torch_f, trl_cpo_loss):
  """float32 log-probabilities of -300: p = exp(-300) underflows to 0 in
  trl's form (p^-alpha = inf, its loss inf or NaN); exp(-alpha log p) is
  exp(75) here, and the loss equals the float64 one. Past
  -alpha log p = 88.7 the reward itself overflows (documented)."""
  torch, _ = torch_f
  chosen = np.array([-300.0, -280.0, -1.0], np.float32)
  rejected = np.array([-310.0, -300.0, -2.0], np.float32)
  options = dict(beta=0.1, label_smoothing=0.0, loss_type="sigmoid")
  trl32, _, _ = trl_cpo_loss(
    torch.tensor(chosen),
    torch.tensor(rejected),
    alpha=0.25,
    simpo_gamma=0.5,
    **options,
  )
  assert not np.all(np.isfinite(trl32.numpy()))
  trl64, _, _ = trl_cpo_loss(
    torch.tensor(chosen, dtype=torch.float64),
    torch.tensor(rejected, dtype=torch.float64),
    alpha=0.25,
    simpo_gamma=0.5,
    **options,
  )
  got, grads = jax.value_and_grad(
    lambda c, r: jnp.sum(jl.cpo_loss(c, r, alpha=0.25, **options)),
    argnums=(0, 1),
  )(chosen, rejected)
  values = jl.cpo_loss(chosen, rejected, alpha=0.25, **options)
  assert values.dtype == jnp.float32
  assert_close(values, trl64.numpy(), rtol=1e-5, atol=1e-6)
  assert np.isfinite(got) and all(np.all(np.isfinite(g)) for g in grads)
  far = jl.cpo_loss(
    np.float32([-400.0]), np.float32([-1.0]), alpha=0.25, **options
  )
  assert np.isinf(far[0])  # reward exp(100) overflows float32: inf loss


CPO_OPTION_ERRORS = [
  (dict(loss_type="alphapo"), r"unknown loss_type"),
  (dict(loss_type="hinge", label_smoothing=0.1), r"`label_smoothing`"),
  (dict(loss_type="sigmoid", simpo_gamma=0.5), r"`simpo_gamma`"),
  (dict(cpo_alpha=0.5), r"`cpo_alpha`"),
  (dict(beta=-1.0), r"`beta` must be > 0"),
  (dict(chosen_nll=np.ones(3)), r"`chosen_nll`"),
]


@pytest.mark.parametrize(
  "options,message",
  CPO_OPTION_ERRORS,
  ids=[str(o) for o, _ in CPO_OPTION_ERRORS],
)
def test_cpo_bad_options_name_the_loss_and_the_argument(options, message):
  logps = [-_rng(52).uniform(1.0, 5.0, 6) for _ in range(2)]
  with pytest.raises(ValueError, match=r"^cpo_loss: .*" + message):
    jl.cpo_loss(*logps, **options)
