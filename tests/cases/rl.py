"""Registry entries for jaxloss.rl.

Only the differentiated input of each loss is a float argument: targets,
advantages, old log-probabilities and old values are data whose gradient the
losses stop, so finite differences in them would not match.
"""

import numpy as np

import jaxloss as jl
from jaxloss.testing import LossCase
from tests.cases import _inputs as I

A = 3  # actions
B = 2  # batch size inside a time-major [time, batch] input
# The losses that index by action: labels -1 and A give NaN (_core/labels).
ACTIONS = dict(label_arg=1, num_classes=A)


def _discounts(rng, *shape):
  return rng.choice([0.0, 0.9, 0.99], size=shape).astype(I.F32)


def _q(*lead):
  """Q-learning inputs with leading shape ``(n,) + lead``."""

  def make(rng, n, **kwargs):
    shape = (n,) + lead
    return (
      I.logits(rng, *shape, A),
      I.class_labels(rng, A, *shape),
      I.logits(rng, *shape),
      _discounts(rng, *shape),
      I.logits(rng, *shape, A),
    ), kwargs

  return make


def _double_q_learning_loss(
  q_values,
  actions,
  rewards,
  discounts,
  next_q_values,
  next_q_selector,
  *,
  loss="mse",
  delta=1.0,
  where=None,
  weights=None,
  reduction="none",
):
  """``q_learning_loss`` with the selector positional, so that the shared
  properties slice and stack it with the other per-step arrays (explicit
  keywords and the same value rules, so that ``jaxloss.checked`` works)."""
  return jl.q_learning_loss(
    q_values,
    actions,
    rewards,
    discounts,
    next_q_values,
    next_q_selector=next_q_selector,
    loss=loss,
    delta=delta,
    where=where,
    weights=weights,
    reduction=reduction,
  )


_double_q_learning_loss.__name__ = "q_learning_loss"
# The loss's attributes (its value rules among them), not its signature.
vars(_double_q_learning_loss).update(
  (k, v) for k, v in vars(jl.q_learning_loss).items() if k != "__wrapped__"
)


def _double_q(rng, n):
  args, _ = _q(B)(rng, n)
  return args + (I.logits(rng, n, B, A),), {"loss": "huber", "delta": 0.5}


def _q_edges(**kwargs):
  def edges():
    q = I.extreme_logits(4, A)
    ties = np.zeros((4, A), I.F32)
    actions = np.array([0, 1, 2, 0], np.int32)
    rewards = np.array([1e4, -1e4, 0.0, 1.0], I.F32)
    discounts = np.array([0.0, 1.0, 0.99, 1.0], I.F32)
    return [
      ((q, actions, rewards, discounts, -q), kwargs),
      ((ties, actions, rewards, discounts, ties), kwargs),
    ]

  return edges


def _td(*lead):
  def make(rng, n, **kwargs):
    shape = (n,) + lead
    return (
      I.logits(rng, *shape),
      I.logits(rng, *shape),
      _discounts(rng, *shape),
      I.logits(rng, *shape),
    ), kwargs

  return make


def _td_edges(**kwargs):
  def edges():
    v = np.array([0.0, 1e4, -1e4, 1.0], I.F32)
    r = np.array([0.0, -1e4, 1e4, 0.0], I.F32)
    d = np.array([1.0, 0.0, 0.0, 1.0], I.F32)
    return [((v, r, d, np.array([0.0, 0.0, 0.0, 1.0], I.F32)), kwargs)]

  return edges


def _pg(*lead):
  def make(rng, n):
    shape = (n,) + lead
    return (
      I.logits(rng, *shape, A),
      I.class_labels(rng, A, *shape),
      I.logits(rng, *shape),
    ), {}

  return make


def _pg_edges():
  logits = I.extreme_logits(4, A)  # actions 1 and 2 have log-prob -2e4
  return [
    (
      (
        logits,
        np.array([1, 0, 2, 1], np.int32),
        np.array([1.0, -1.0, 1e4, 0.0], I.F32),
      ),
      {},
    )
  ]


def _entropy_edges():
  return [((I.extreme_logits(4, A),), {}), ((np.zeros((4, A), I.F32),), {})]


def _scalar_logits(inputs):
  return (np.zeros((), I.F32),), inputs[1]


def _ppo(rng, n, **kwargs):
  log_probs = -rng.uniform(0.1, 3.0, n).astype(I.F32)
  old = (log_probs + rng.normal(scale=0.4, size=n)).astype(I.F32)
  return (log_probs, old, I.logits(rng, n)), kwargs


def _ppo_edges():
  """Log-ratios of ±1e4 (a ratio that overflows), zero advantages."""
  log_probs = np.array([0.0, -1e4, 0.0, -1.0], I.F32)
  old = np.array([-1e4, 0.0, -1e4, -1.0], I.F32)
  return [((log_probs, old, np.array([1.0, -1.0, -1.0, 0.0], I.F32)), {})]


def _value(rng, n, **kwargs):
  values = I.logits(rng, n)
  return (
    values,
    (values + rng.normal(scale=0.5, size=n)).astype(I.F32),
    I.logits(rng, n),
  ), kwargs


def _value_edges(**kwargs):
  def edges():
    v = np.array([0.0, 1e4, -1e4, 1.0], I.F32)
    return [
      ((v, v.copy(), v.copy()), kwargs),
      ((v, -v, v[::-1].copy()), kwargs),
    ]

  return edges


CASES = [
  LossCase(jl.q_learning_loss, _q(), edge_inputs=_q_edges(), **ACTIONS),
  # time-major [time, batch, actions], double Q-learning and Huber.
  LossCase(
    _double_q_learning_loss,
    _double_q,
    name="q_learning_loss[time_major,double,huber]",
    **ACTIONS,
  ),
  LossCase(jl.td_loss, _td(), edge_inputs=_td_edges()),
  LossCase(
    jl.td_loss,
    lambda rng, n: _td(B)(rng, n, loss="huber"),
    name="td_loss[time_major,huber]",
    edge_inputs=_td_edges(loss="huber"),
  ),
  LossCase(jl.policy_gradient_loss, _pg(), edge_inputs=_pg_edges, **ACTIONS),
  LossCase(
    jl.policy_gradient_loss,
    _pg(B),
    name="policy_gradient_loss[time_major]",
    **ACTIONS,
  ),
  LossCase(
    jl.entropy_loss,
    lambda rng, n: ((I.logits(rng, n, A),), {}),
    edge_inputs=_entropy_edges,
    wrong_shape=_scalar_logits,
  ),
  LossCase(jl.ppo_clip_loss, _ppo, edge_inputs=_ppo_edges),
  LossCase(jl.ppo_value_loss, _value, edge_inputs=_value_edges()),
  LossCase(
    jl.ppo_value_loss,
    lambda rng, n: _value(rng, n, clip_epsilon=0.2),
    name="ppo_value_loss[clip]",
    edge_inputs=_value_edges(clip_epsilon=0.2),
  ),
]
