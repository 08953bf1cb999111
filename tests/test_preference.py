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
