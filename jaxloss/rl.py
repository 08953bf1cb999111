"""Reinforcement-learning losses: TD and Q-learning, policy gradient, entropy,
PPO.

Every loss returns one value per step and reduces through
:func:`jaxloss.reduce`. Inputs may be batched (``[batch]``, with
``[batch, actions]`` for action values and logits) or time-major
(``[time, batch]`` and ``[time, batch, actions]``), or have any other leading
axes: the losses are elementwise over them, and ``where`` (of the per-step
shape) masks padded steps. rlax's functions take one example (or one
sequence) and are ``vmap``-ed; these take the whole batch.

What the losses treat as data (not differentiated; the gradient is stopped):
the TD targets (as rlax does by default), advantages (rlax's
``use_stop_gradient=True``), the behaviour policy's log-probabilities
``old_log_probs`` and, in :func:`ppo_value_loss`, ``old_values`` and
``returns``. So ``old_log_probs=log_probs`` (one optimisation step per
batch) gives ratio 1 and the plain policy gradient.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics, value_checks
from jaxloss._core import labels as labels_lib
from jaxloss._core.loss import loss
from jaxloss._core.policy import clipped_surrogate, data
from jaxloss._core.reduction import Reduction, reduce, split_where

__all__ = [
  "entropy_loss",
  "policy_gradient_loss",
  "ppo_clip_loss",
  "ppo_value_loss",
  "q_learning_loss",
  "td_loss",
]

TdLoss = Literal["mse", "huber"]
LOSSES: tuple[TdLoss, ...] = ("mse", "huber")


def _td_penalty(errors: jax.Array, loss: str, delta: ArrayLike) -> jax.Array:
  """rlax's conventions: ``"mse"`` is ``rlax.l2_loss`` (½ δ²), ``"huber"`` is
  ``rlax.huber_loss`` (½ δ² up to ``delta``, linear beyond)."""
  if loss == "mse":
    return 0.5 * jnp.square(errors)
  delta = numerics.like(delta, errors)
  abs_errors = jnp.abs(errors)
  quadratic = jnp.minimum(abs_errors, delta)
  return 0.5 * jnp.square(quadratic) + delta * (abs_errors - quadratic)


def _check_penalty(loss: str, delta: ArrayLike) -> None:
  checks.option("loss", loss, LOSSES)
  checks.positive("delta", delta)


def _actions(
  actions: ArrayLike,
  values: jax.Array,
  values_arg: str,
  where: ArrayLike | None,
) -> jax.Array:
  """Integer actions of ``values``' shape without the last axis; actions of
  steps dropped by a per-step ``where`` become 0 before any gather."""
  actions = checks.as_labels("actions", actions)
  checks.labels_for(
    actions,
    values,
    values.ndim - 1,
    logits_arg=values_arg,
    labels_arg="actions",
  )
  if where is not None and jnp.ndim(where) == actions.ndim:
    where = checks.broadcast_mask("where", where, actions.shape)
    actions = jnp.where(where, actions, 0)
  return actions


def _take(values: jax.Array, actions: jax.Array) -> jax.Array:
  """``values`` at each action along the last axis (a safe gather: an
  out-of-range action is clipped here and made NaN by the caller with
  :func:`jaxloss._core.labels.nan_unless_valid`)."""
  return labels_lib.pick(values, actions, axis=-1)


@loss(
  actions=value_checks.class_index("q_values", axis_arg=None),
  discounts=value_checks.bounded(0, 1),
)
def q_learning_loss(
  q_values: ArrayLike,
  actions: ArrayLike,
  rewards: ArrayLike,
  discounts: ArrayLike,
  next_q_values: ArrayLike,
  *,
  next_q_selector: ArrayLike | None = None,
  loss: TdLoss = "mse",
  delta: ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Q-learning (or double Q-learning) loss on the TD error, per step.

  .. math::
    \delta = r + \gamma \max_{a'} Q'(s', a') - Q(s, a), \qquad
    \ell = \tfrac12 \delta^2 \ \ (\texttt{"mse"}) \quad\text{or}\quad
    \operatorname{huber}_\Delta(\delta)\ \ (\texttt{"huber"})

  With ``next_q_selector`` :math:`\tilde Q`, the target action is chosen by
  it and evaluated by ``next_q_values`` (double Q-learning):
  :math:`r + \gamma\, Q'(s', \arg\max_{a'} \tilde Q(s', a'))`. The target's
  gradient is stopped.

  Args:
    q_values: ``[..., num_actions]`` floating :math:`Q(s, \cdot)`.
    actions: ``[...]`` integer actions taken, in ``[0, num_actions)``; any
      other action that ``where`` does not mask out gives NaN for its step
      (on purpose: rlax's ``batched_index`` wraps ``-1`` round to the last
      action).
    rewards: ``[...]`` rewards :math:`r`.
    discounts: ``[...]`` discounts :math:`\gamma` (0 at episode ends).
    next_q_values: ``[..., num_actions]`` :math:`Q'(s', \cdot)`, e.g. of a
      target network.
    next_q_selector: optional ``[..., num_actions]`` values whose argmax
      selects the next action (double Q-learning; usually the online network).
    loss: ``"mse"``: ½ δ², ``rlax.l2_loss``'s convention (so the gradient in
      ``Q(s, a)`` is ``-δ``); ``"huber"``: ``rlax.huber_loss`` with ``delta``
      (½ δ² for :math:`|\delta| \le \Delta`, :math:`\Delta(|\delta| -
      \Delta/2)` beyond; DQN's clipped error).
    delta: the Huber threshold :math:`\Delta > 0` (may be traced).
    where, weights, reduction: see :func:`jaxloss.reduce` (``where`` of the
      per-step shape ``[...]``); default ``"none"``.

  Returns:
    ``[...]`` per-step loss, or a scalar for ``"sum"``/``"mean"``.

  Matches ``rlax.l2_loss(rlax.q_learning(...))`` (or ``rlax.huber_loss``),
  and with ``next_q_selector``, ``rlax.double_q_learning``, ``vmap``-ed over
  the leading axes.

  >>> import jax.numpy as jnp, jaxloss
  >>> loss = jaxloss.q_learning_loss(
  ...     jnp.array([[1.0, 2.0]]), jnp.array([0]), jnp.array([1.0]),
  ...     jnp.array([0.9]), jnp.array([[0.0, 3.0]]))
  >>> print(f"{float(loss[0]):.4f}")  # ½ (1 + 0.9·3 − 1)²
  3.6450

  References:
    Watkins and Dayan, `Q-learning
    <https://link.springer.com/article/10.1007/BF00992698>`_, 1992;
    Mnih et al., `Human-level control through deep reinforcement learning
    <https://www.nature.com/articles/nature14236>`_, 2015;
    van Hasselt, Guez and Silver, `Deep Reinforcement Learning with Double
    Q-learning <https://arxiv.org/abs/1509.06461>`_, 2016.
  """
  _check_penalty(loss, delta)
  q_values = checks.as_float("q_values", q_values)
  checks.min_rank("q_values", q_values, 1, "[..., num_actions]")
  actions = _actions(actions, q_values, "q_values", where)
  rewards = data("rewards", rewards, q_values, actions.shape)
  discounts = data("discounts", discounts, q_values, actions.shape)
  next_q_values = data("next_q_values", next_q_values, q_values, q_values.shape)
  if next_q_selector is None:
    next_value = jnp.max(next_q_values, axis=-1)
  else:
    selector = data(
      "next_q_selector", next_q_selector, q_values, q_values.shape
    )
    next_value = _take(next_q_values, jnp.argmax(selector, axis=-1))
  target = jax.lax.stop_gradient(rewards + discounts * next_value)
  values = _td_penalty(target - _take(q_values, actions), loss, delta)
  values = labels_lib.nan_unless_valid(values, actions, q_values.shape[-1])
  return reduce(values, reduction, weights=weights, where=where)


@loss(discounts=value_checks.bounded(0, 1))
def td_loss(
  values: ArrayLike,
  rewards: ArrayLike,
  discounts: ArrayLike,
  next_values: ArrayLike,
  *,
  loss: TdLoss = "mse",
  delta: ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""TD(0) loss on state values, per step.

  .. math::
    \delta = r + \gamma V(s') - V(s), \qquad
    \ell = \tfrac12 \delta^2 \ \ (\texttt{"mse"}) \quad\text{or}\quad
    \operatorname{huber}_\Delta(\delta)\ \ (\texttt{"huber"})

  The target :math:`r + \gamma V(s')` is not differentiated.

  Args:
    values: ``[...]`` floating :math:`V(s)`.
    rewards: ``[...]`` rewards :math:`r`.
    discounts: ``[...]`` discounts :math:`\gamma` (0 at episode ends).
    next_values: ``[...]`` :math:`V(s')`.
    loss: ``"mse"`` (½ δ², ``rlax.l2_loss``) or ``"huber"``
      (``rlax.huber_loss`` with ``delta``).
    delta: the Huber threshold :math:`\Delta > 0` (may be traced).
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` per-step loss, or a scalar for ``"sum"``/``"mean"``.

  Matches ``rlax.l2_loss(rlax.td_learning(...))`` (or ``rlax.huber_loss``).

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.td_loss(jnp.array([1.0, 0.0]), jnp.array([1.0, 0.0]),
  ...                 jnp.array([0.5, 0.0]), jnp.array([2.0, 5.0]))
  Array([0.5, 0. ], dtype=float32)

  References:
    Sutton, `Learning to Predict by the Methods of Temporal Differences
    <https://link.springer.com/article/10.1007/BF00115009>`_, 1988.
  """
  _check_penalty(loss, delta)
  values = checks.as_float("values", values)
  rewards = data("rewards", rewards, values, values.shape)
  discounts = data("discounts", discounts, values, values.shape)
  next_values = data("next_values", next_values, values, values.shape)
  target = jax.lax.stop_gradient(rewards + discounts * next_values)
  losses = _td_penalty(target - values, loss, delta)
  return reduce(losses, reduction, weights=weights, where=where)


def _policy(
  logits: ArrayLike, where: ArrayLike | None
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array | None]:
  """``(logits, log π over the unmasked actions, π, example mask)``."""
  logits = checks.as_float("logits", logits)
  checks.min_rank("logits", logits, 1, "[..., num_actions]")
  elements, examples = split_where(where, logits.shape, -1)
  log_probs = numerics.masked_log_softmax(logits, -1, elements)
  probs = jnp.exp(log_probs)
  if elements is not None:
    probs = jnp.where(elements, probs, 0)
  return logits, log_probs, probs, examples


@loss(actions=value_checks.class_index("logits", axis_arg=None))
def policy_gradient_loss(
  logits: ArrayLike,
  actions: ArrayLike,
  advantages: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""REINFORCE / actor-critic policy-gradient loss, per step.

  .. math:: \ell = -\log \pi(a \mid s)\, \operatorname{sg}(A),
            \qquad \pi = \operatorname{softmax}(\text{logits})

  Its gradient is the policy gradient :math:`-A \nabla \log \pi(a \mid s)`;
  the advantage's gradient is stopped.

  Args:
    logits: ``[..., num_actions]`` floating action preferences.
    actions: ``[...]`` integer actions taken, in ``[0, num_actions)``; any
      other action that ``where`` does not mask out gives NaN for its step
      (on purpose: rlax's ``batched_index`` wraps ``-1`` round to the last
      action).
    advantages: ``[...]`` advantage (or return) estimates :math:`A`.
    where: boolean mask of the per-step shape ``[...]`` (drops steps, e.g.
      padding) or of the logits' shape (drops actions from the softmax, e.g.
      illegal moves; the taken action must stay unmasked).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` per-step loss, or a scalar for ``"sum"``/``"mean"``.

  Matches ``rlax.policy_gradient_loss``, which returns the mean over the time
  steps of ``loss * w_t``: that is ``"mean"`` here with all-one weights, and
  ``reduction="batchmean"`` with ``weights=w_t`` (or ``where=mask``) on a
  ``[time]`` input (rlax divides by the number of steps, masked or not).

  >>> import jax.numpy as jnp, jaxloss
  >>> loss = jaxloss.policy_gradient_loss(jnp.array([[0.0, 0.0]]),
  ...                                     jnp.array([1]), jnp.array([2.0]))
  >>> print(f"{float(loss[0]):.4f}")  # 2 log 2
  1.3863

  References:
    Williams, `Simple Statistical Gradient-Following Algorithms for
    Connectionist Reinforcement Learning
    <https://link.springer.com/article/10.1007/BF00992696>`_, 1992.
  """
  logits, log_probs, _, examples = _policy(logits, where)
  actions = _actions(actions, logits, "logits", examples)
  advantages = data("advantages", advantages, logits, actions.shape)
  values = -_take(log_probs, actions) * jax.lax.stop_gradient(advantages)
  values = labels_lib.nan_unless_valid(values, actions, logits.shape[-1])
  return reduce(values, reduction, weights=weights, where=examples)


@loss
def entropy_loss(
  logits: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Negative entropy of a softmax policy, per step (an entropy bonus).

  .. math:: \ell = -H(\pi) = \sum_a \pi_a \log \pi_a,
            \qquad \pi = \operatorname{softmax}(\text{logits})

  Add it with a positive coefficient to a policy loss to encourage
  exploration.

  Args:
    logits: ``[..., num_actions]`` floating action preferences.
    where: boolean mask of the per-step shape ``[...]`` (drops steps) or of
      the logits' shape (drops actions: the entropy of the policy over the
      remaining ones).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` per-step loss (≤ 0), or a scalar for ``"sum"``/``"mean"``.

  Matches ``rlax.entropy_loss`` (the mean over steps of ``-H * w_t``: here
  ``"mean"``, or ``"batchmean"`` with ``weights=w_t``).

  >>> import jax.numpy as jnp, numpy as np, jaxloss
  >>> loss = jaxloss.entropy_loss(jnp.array([[0.0, 0.0], [0.0, 1e4]]))
  >>> print(np.round(np.asarray(loss), 4))
  [-0.6931  0.    ]

  References:
    Williams and Peng, `Function Optimization using Connectionist
    Reinforcement Learning Algorithms
    <https://www.tandfonline.com/doi/abs/10.1080/09540099108946587>`_, 1991;
    Mnih et al., `Asynchronous Methods for Deep Reinforcement Learning
    <https://arxiv.org/abs/1602.01783>`_, 2016.
  """
  _, log_probs, probs, examples = _policy(logits, where)
  values = jnp.sum(probs * log_probs, axis=-1)
  return reduce(values, reduction, weights=weights, where=examples)


@loss
def ppo_clip_loss(
  log_probs: ArrayLike,
  old_log_probs: ArrayLike,
  advantages: ArrayLike,
  *,
  epsilon: ArrayLike = 0.2,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""PPO's clipped surrogate policy loss, per step.

  .. math::
    \ell = -\min\big(\rho A,\ \operatorname{clip}(\rho, 1 - \epsilon,
           1 + \epsilon) A\big), \qquad
    \rho = \exp(\log \pi - \operatorname{sg}(\log \pi_\text{old}))

  The advantages and ``old_log_probs`` are data (gradients stopped), so
  ``old_log_probs=log_probs`` gives the plain policy gradient. The log-ratio
  is capped at half the log of the dtype's largest number (a ratio of about
  1.8e19 in float32), so the value stays finite.

  Args:
    log_probs: ``[...]`` floating :math:`\log \pi(a \mid s)` of the actions
      taken, under the policy being optimised.
    old_log_probs: ``[...]`` :math:`\log \pi_\text{old}(a \mid s)` under the
      policy that collected the data.
    advantages: ``[...]`` advantage estimates :math:`A`.
    epsilon: the clip range :math:`\epsilon \ge 0` (may be traced).
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` per-step loss, or a scalar for ``"sum"``/``"mean"``.

  Matches ``rlax.clipped_surrogate_pg_loss(exp(log_probs - old_log_probs),
  advantages, epsilon)``, which is ``"mean"`` here.

  >>> import jax.numpy as jnp, numpy as np, jaxloss
  >>> loss = jaxloss.ppo_clip_loss(jnp.log(jnp.array([1.5, 0.5])),
  ...                              jnp.zeros(2), jnp.array([1.0, -1.0]))
  >>> print(np.round(np.asarray(loss), 4))  # clipped at 1.2 and at 0.8
  [-1.2  0.8]

  References:
    Schulman et al., `Proximal Policy Optimization Algorithms
    <https://arxiv.org/abs/1707.06347>`_, 2017.
  """
  checks.nonnegative("epsilon", epsilon)
  log_probs = checks.as_float("log_probs", log_probs)
  old_log_probs = data(
    "old_log_probs", old_log_probs, log_probs, log_probs.shape
  )
  advantages = data("advantages", advantages, log_probs, log_probs.shape)
  epsilon = numerics.like(epsilon, log_probs)
  values = clipped_surrogate(
    log_probs - jax.lax.stop_gradient(old_log_probs),
    jax.lax.stop_gradient(advantages),
    epsilon,
    epsilon,
  )
  return reduce(values, reduction, weights=weights, where=where)


@loss
def ppo_value_loss(
  values: ArrayLike,
  old_values: ArrayLike,
  returns: ArrayLike,
  *,
  clip_epsilon: ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""PPO's value loss, optionally clipped around the old values, per step.

  .. math::
    \ell = \tfrac12 (V - R)^2, \quad\text{or with clipping}\quad
    \ell = \tfrac12 \max\big((V - R)^2,\ (V_\text{old} +
           \operatorname{clip}(V - V_\text{old}, -\epsilon, \epsilon) - R)^2
           \big)

  The clipped form is OpenAI baselines' PPO2 convention (the larger of the
  clipped and unclipped squared errors, with the ½ factor). ``old_values``
  and ``returns`` are data (gradients stopped).

  Args:
    values: ``[...]`` floating value predictions :math:`V(s)`.
    old_values: ``[...]`` the predictions :math:`V_\text{old}(s)` made when
      the data were collected.
    returns: ``[...]`` return targets :math:`R`.
    clip_epsilon: ``None`` (no clipping) or the clip range
      :math:`\epsilon \ge 0` (may be traced).
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` per-step loss, or a scalar for ``"sum"``/``"mean"``.

  Matches ``0.5 * max(vf_losses1, vf_losses2)`` of OpenAI baselines'
  ``ppo2/model.py`` (whose mean is ``"mean"`` here); without clipping,
  ``rlax.l2_loss(values, returns)``.

  >>> import jax.numpy as jnp, jaxloss
  >>> v, old, r = jnp.array([2.0]), jnp.array([0.0]), jnp.array([3.0])
  >>> clipped = jaxloss.ppo_value_loss(v, old, r, clip_epsilon=0.2)
  >>> print(f"{float(jaxloss.ppo_value_loss(v, old, r)[0]):.4f}",
  ...       f"{float(clipped[0]):.4f}")
  0.5000 3.9200

  References:
    Schulman et al., `Proximal Policy Optimization Algorithms
    <https://arxiv.org/abs/1707.06347>`_, 2017; Dhariwal et al., `OpenAI
    Baselines <https://github.com/openai/baselines>`_, 2017; Engstrom et al.,
    `Implementation Matters in Deep Policy Gradients
    <https://arxiv.org/abs/2005.12729>`_, 2020.
  """
  if clip_epsilon is not None:
    checks.nonnegative("clip_epsilon", clip_epsilon)
  values = checks.as_float("values", values)
  old_values = jax.lax.stop_gradient(
    data("old_values", old_values, values, values.shape)
  )
  returns = jax.lax.stop_gradient(
    data("returns", returns, values, values.shape)
  )
  squared = jnp.square(values - returns)
  if clip_epsilon is not None:
    epsilon = numerics.like(clip_epsilon, values)
    clipped = old_values + jnp.clip(values - old_values, -epsilon, epsilon)
    squared = jnp.maximum(squared, jnp.square(clipped - returns))
  return reduce(0.5 * squared, reduction, weights=weights, where=where)
