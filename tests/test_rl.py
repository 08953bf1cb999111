"""Value tests for jaxloss.rl.

References: rlax itself (a test dependency), ``vmap``-ed over the batch (and
time) axes as rlax expects one example or one sequence; OpenAI baselines'
PPO2 value loss written out in float64 NumPy.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rlax

import jaxloss as jl
from jaxloss.testing import assert_close
from tests.assertions import checked_rejects

F32, F64 = np.float32, np.float64
A = 4


def _rng(seed):
  return np.random.default_rng(seed)


def _q_inputs(seed, *lead):
  rng = _rng(seed)
  return (
    rng.normal(size=lead + (A,)).astype(F32),
    rng.integers(0, A, size=lead).astype(np.int32),
    rng.normal(size=lead).astype(F32),
    rng.choice([0.0, 0.5, 0.99], size=lead).astype(F32),
    rng.normal(size=lead + (A,)).astype(F32),
    rng.normal(size=lead + (A,)).astype(F32),
  )


def _vmapped(fn, depth):
  for _ in range(depth):
    fn = jax.vmap(fn)
  return fn


def _penalty(td, loss, delta):
  return rlax.l2_loss(td) if loss == "mse" else rlax.huber_loss(td, delta)


# --------------------------------------------------------------------------- #
# Q-learning and TD


@pytest.mark.parametrize("lead", [(6,), (3, 2)], ids=["batch", "time_major"])
@pytest.mark.parametrize("loss", ["mse", "huber"])
@pytest.mark.parametrize("double", [False, True])
def test_q_learning_matches_rlax(lead, loss, double):
  q, a, r, d, next_q, selector = _q_inputs(0, *lead)
  if double:
    td = _vmapped(rlax.double_q_learning, len(lead))(
      q, a, r, d, next_q, selector
    )
    kwargs = {"next_q_selector": selector}
  else:
    td = _vmapped(rlax.q_learning, len(lead))(q, a, r, d, next_q)
    kwargs = {}
  expected = _penalty(td, loss, 0.7)
  out = jl.q_learning_loss(q, a, r, d, next_q, loss=loss, delta=0.7, **kwargs)
  assert out.shape == lead
  assert_close(out, expected)


def test_q_learning_gradient_matches_rlax_and_stops_the_target():
  q, a, r, d, next_q, _ = _q_inputs(1, 6)

  def ours(q, next_q):
    return jl.q_learning_loss(q, a, r, d, next_q, reduction="sum")

  def theirs(q, next_q):
    return jnp.sum(rlax.l2_loss(jax.vmap(rlax.q_learning)(q, a, r, d, next_q)))

  got = jax.grad(ours, argnums=(0, 1))(q, next_q)
  want = jax.grad(theirs, argnums=(0, 1))(q, next_q)
  assert_close(got[0], want[0])
  assert np.all(np.asarray(got[1]) == 0)


def test_q_learning_float64_and_where():
  q, a, r, d, next_q, _ = _q_inputs(2, 6)
  where = np.array([True, False, True, True, False, True])
  a_padded = np.where(where, a, -1).astype(np.int32)  # padding actions
  with jax.enable_x64(True):
    out = jl.q_learning_loss(q.astype(F64), a_padded, r, d, next_q, where=where)
    assert out.dtype == jnp.float64
    td = jax.vmap(rlax.q_learning)(
      q.astype(F64), a, r.astype(F64), d.astype(F64), next_q.astype(F64)
    )
    assert_close(out, np.where(where, 0.5 * np.square(td), 0), 1e-12, 1e-12)


@pytest.mark.parametrize("loss", ["mse", "huber"])
def test_td_loss_matches_rlax(loss):
  rng = _rng(3)
  v, r, d, next_v = (rng.normal(size=(3, 2)).astype(F32) for _ in range(4))
  td = _vmapped(rlax.td_learning, 2)(v, r, d, next_v)
  assert_close(
    jl.td_loss(v, r, d, next_v, loss=loss, delta=0.5), _penalty(td, loss, 0.5)
  )
  grad_next = jax.grad(lambda n: jl.td_loss(v, r, d, n, reduction="sum"))(
    next_v
  )
  assert np.all(np.asarray(grad_next) == 0)


# --------------------------------------------------------------------------- #
# policy gradient and entropy


def _pg_inputs(seed, *lead):
  rng = _rng(seed)
  return (
    2 * rng.normal(size=lead + (A,)).astype(F32),
    rng.integers(0, A, size=lead).astype(np.int32),
    rng.normal(size=lead).astype(F32),
    rng.uniform(0.0, 1.0, size=lead).astype(F32),
  )


def test_policy_gradient_loss_matches_rlax_per_sequence():
  logits, a, adv, w = _pg_inputs(4, 5)
  ones = np.ones(5, F32)
  assert_close(
    jl.policy_gradient_loss(logits, a, adv, reduction="mean"),
    rlax.policy_gradient_loss(logits, a, adv, ones),
  )
  # rlax's per-step weights divide by the number of steps: "batchmean".
  assert_close(
    jl.policy_gradient_loss(logits, a, adv, weights=w, reduction="batchmean"),
    rlax.policy_gradient_loss(logits, a, adv, w),
  )
  mask = np.array([True, True, False, True, False])
  assert_close(
    jl.policy_gradient_loss(logits, a, adv, where=mask, reduction="batchmean"),
    rlax.policy_gradient_loss(logits, a, adv, mask.astype(F32)),
  )


def test_policy_gradient_loss_time_major_and_gradients_match_rlax():
  logits, a, adv, _ = _pg_inputs(5, 4, 3)  # [time, batch, actions]
  ones = np.ones((4, 3), F32)

  def theirs(logits, adv):
    # rlax takes one [time, ...] sequence; vmap over the batch axis 1.
    per_sequence = jax.vmap(rlax.policy_gradient_loss, in_axes=1)(
      logits, a, adv, ones
    )
    return jnp.mean(per_sequence)

  def ours(logits, adv):
    return jl.policy_gradient_loss(logits, a, adv, reduction="mean")

  assert_close(ours(logits, adv), theirs(logits, adv))
  got = jax.grad(ours, argnums=(0, 1))(logits, adv)
  want = jax.grad(theirs, argnums=(0, 1))(logits, adv)
  assert_close(got[0], want[0])
  assert np.all(np.asarray(got[1]) == 0)  # advantages: gradient stopped


def _masked_log_softmax_np(logits, mask):
  x = np.where(mask, np.asarray(logits, F64), -np.inf)
  x = x - np.where(mask.any(-1), x.max(-1), 0)[..., None]
  with np.errstate(divide="ignore"):  # rows with no legal action
    lse = np.log(np.exp(x).sum(-1, keepdims=True))
  return np.where(mask, x - lse, 0)


def test_policy_gradient_and_entropy_with_an_action_mask():
  logits, a, adv, _ = _pg_inputs(6, 6)
  legal = _rng(7).random((6, A)) < 0.6
  legal[np.arange(6), a] = True  # the taken action is legal
  legal[5] = False  # a step with no legal action is dropped
  log_p = _masked_log_softmax_np(logits, legal)
  expected_pg = -log_p[np.arange(6), a] * adv
  expected_pg[5] = 0
  assert_close(
    jl.policy_gradient_loss(logits, a, adv, where=legal), expected_pg
  )
  assert_close(
    jl.policy_gradient_loss(logits, a, adv, where=legal, reduction="mean"),
    expected_pg[:5].mean(),
  )
  expected_entropy = np.sum(np.where(legal, np.exp(log_p) * log_p, 0), -1)
  assert_close(jl.entropy_loss(logits, where=legal), expected_entropy)


def test_entropy_loss_matches_rlax():
  logits, _, _, w = _pg_inputs(8, 5)
  assert_close(
    jl.entropy_loss(logits, reduction="mean"),
    rlax.entropy_loss(logits, np.ones(5, F32)),
  )
  assert_close(
    jl.entropy_loss(logits, weights=w, reduction="batchmean"),
    rlax.entropy_loss(logits, w),
  )


# --------------------------------------------------------------------------- #
# PPO


def _ppo_inputs(seed, *shape):
  rng = _rng(seed)
  log_probs = -rng.uniform(0.1, 3.0, size=shape).astype(F32)
  old = (log_probs + rng.normal(scale=0.5, size=shape)).astype(F32)
  return log_probs, old, rng.normal(size=shape).astype(F32)


@pytest.mark.parametrize("epsilon", [0.1, 0.2])
def test_ppo_clip_loss_matches_rlax(epsilon):
  log_probs, old, adv = _ppo_inputs(9, 4, 3)  # [time, batch]

  def theirs(log_probs):
    ratios = jnp.exp(log_probs - old)
    return jnp.mean(
      jax.vmap(rlax.clipped_surrogate_pg_loss, in_axes=(1, 1, None))(
        ratios, adv, epsilon
      )
    )

  def ours(log_probs):
    return jl.ppo_clip_loss(
      log_probs, old, adv, epsilon=epsilon, reduction="mean"
    )

  assert_close(ours(log_probs), theirs(log_probs))
  assert_close(jax.grad(ours)(log_probs), jax.grad(theirs)(log_probs))
  # A traced epsilon gives the same value.
  assert_close(
    jax.jit(
      lambda e: jl.ppo_clip_loss(
        log_probs, old, adv, epsilon=e, reduction="mean"
      )
    )(epsilon),
    theirs(log_probs),
  )


def test_ppo_clip_loss_on_policy_is_the_policy_gradient():
  """``old_log_probs=log_probs``: ratio 1, gradient ``-A`` per step."""
  log_probs, _, adv = _ppo_inputs(10, 6)
  grad = jax.grad(lambda lp: jl.ppo_clip_loss(lp, lp, adv, reduction="sum"))(
    log_probs
  )
  assert_close(grad, -adv)
  assert_close(jl.ppo_clip_loss(log_probs, log_probs, adv), -adv)


def test_ppo_clip_loss_overflowing_ratio_is_finite():
  out, grad = jax.value_and_grad(
    lambda lp: jl.ppo_clip_loss(
      lp, jnp.array([-1e4, -1e4]), jnp.array([1.0, -1.0]), reduction="sum"
    )
  )(jnp.array([0.0, 0.0]))
  assert np.isfinite(float(out)) and np.all(np.isfinite(np.asarray(grad)))


def baselines_value_loss(values, old_values, returns, clip):
  """OpenAI baselines ppo2/model.py: vpredclipped = old + clip(v - old, -c, c);
  0.5 * max((v - R)², (vpredclipped - R)²) per step."""
  v, old, ret = (np.asarray(x, F64) for x in (values, old_values, returns))
  unclipped = (v - ret) ** 2
  if clip is None:
    return 0.5 * unclipped
  clipped = old + np.clip(v - old, -clip, clip)
  return 0.5 * np.maximum(unclipped, (clipped - ret) ** 2)


@pytest.mark.parametrize("clip", [None, 0.2])
def test_ppo_value_loss_matches_baselines(clip):
  rng = _rng(11)
  values, old, returns = (rng.normal(size=(4, 3)).astype(F32) for _ in "vor")
  assert_close(
    jl.ppo_value_loss(values, old, returns, clip_epsilon=clip),
    baselines_value_loss(values, old, returns, clip),
  )
  if clip is None:
    assert_close(
      jl.ppo_value_loss(values, old, returns), rlax.l2_loss(values, returns)
    )
  grads = jax.grad(
    lambda o, r: jl.ppo_value_loss(
      values, o, r, clip_epsilon=clip, reduction="sum"
    ),
    argnums=(0, 1),
  )(old, returns)
  assert all(np.all(np.asarray(g) == 0) for g in grads)


# --------------------------------------------------------------------------- #
# errors


def test_errors_name_the_loss_and_argument():
  q, a, r, d, next_q, _ = _q_inputs(12, 6)
  with pytest.raises(ValueError, match=r"q_learning_loss.*`actions`.*\(6,\)"):
    jl.q_learning_loss(q, a[:5], r, d, next_q)
  with pytest.raises(ValueError, match=r"q_learning_loss.*`next_q_values`"):
    jl.q_learning_loss(q, a, r, d, next_q[:, :3])
  with pytest.raises(ValueError, match=r"q_learning_loss.*`next_q_selector`"):
    jl.q_learning_loss(q, a, r, d, next_q, next_q_selector=next_q[:3])
  with pytest.raises(TypeError, match=r"q_learning_loss.*`actions`"):
    jl.q_learning_loss(q, a.astype(F32), r, d, next_q)
  with pytest.raises(ValueError, match=r"q_learning_loss.*loss='l1'.*'mse'"):
    jl.q_learning_loss(q, a, r, d, next_q, loss="l1")
  with pytest.raises(ValueError, match=r"td_loss.*`delta`"):
    jl.td_loss(r, r, d, r, loss="huber", delta=0.0)
  with pytest.raises(ValueError, match=r"td_loss.*`discounts`"):
    jl.td_loss(r, r, d[:4], r)
  with pytest.raises(ValueError, match=r"policy_gradient_loss.*`advantages`"):
    jl.policy_gradient_loss(q, a, r[:5])
  with pytest.raises(ValueError, match=r"entropy_loss.*`logits`.*rank"):
    jl.entropy_loss(jnp.zeros(()))
  with pytest.raises(ValueError, match=r"ppo_clip_loss.*`epsilon`"):
    jl.ppo_clip_loss(r, r, r, epsilon=-0.1)
  with pytest.raises(ValueError, match=r"ppo_value_loss.*`returns`"):
    jl.ppo_value_loss(r, r, r[:4])
  with pytest.raises(ValueError, match=r"ppo_value_loss.*`clip_epsilon`"):
    jl.ppo_value_loss(r, r, r, clip_epsilon=-1.0)


def test_checked_rejects_out_of_range_actions():
  q, a, r, d, next_q, _ = _q_inputs(13, 6)
  bad = a.copy()
  bad[0] = A
  checked_rejects(
    jl.q_learning_loss,
    q,
    bad,
    r,
    d,
    next_q,
    arg="actions",
    what=r"must hold class indices in \[0, 4\)",
  )
