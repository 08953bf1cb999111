"""GRPO: the group-relative policy loss and its group-normalised advantages."""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxloss._core import checks, in_batch, numerics, value_checks
from jaxloss._core.loss import loss
from jaxloss._core.policy import bounded_exp, clipped_surrogate, data
from jaxloss._core.reduction import Reduction, reduce, split_where
from jaxloss.preference._tokens import masked_mean, token_mask

__all__ = ["group_normalized_advantages", "grpo_loss"]

TokenAveraging = Literal["sequence", "token"]
TOKEN_AVERAGING: tuple[TokenAveraging, ...] = ("sequence", "token")


def _k3_kl(log_probs: jax.Array, ref_log_probs: jax.Array) -> jax.Array:
  """Schulman's k3 estimate of KL(π‖π_ref) per token:
  ``exp(ref - logp) - (ref - logp) - 1`` (>= 0)."""
  delta = ref_log_probs - log_probs
  return bounded_exp(delta) - delta - 1


@loss
def group_normalized_advantages(
  rewards: ArrayLike,
  groups: int | ArrayLike,
  *,
  eps: ArrayLike = 1e-4,
  scale: bool = True,
) -> jax.Array:
  r"""GRPO's advantages: each reward relative to the other completions of its
  prompt.

  .. math::
    A_i = \frac{r_i - \operatorname{mean}_{g(i)}(r)}
               {\operatorname{std}_{g(i)}(r) + \varepsilon}
    \quad (\text{or } r_i - \operatorname{mean}_{g(i)}(r) \text{ without
    scaling})

  The standard deviation is the unbiased one (``ddof=1``, as ``torch.std``,
  which trl uses); a group of one completion gets advantage 0.

  Args:
    rewards: ``[batch]`` rewards, one per completion.
    groups: an ``int`` group size ``G`` (the completions of each prompt are
      ``G`` consecutive entries, trl's layout; ``batch`` must be a multiple
      of ``G``), or ``[batch]`` integer group ids (any order).
    eps: :math:`\varepsilon`, added to the standard deviation (trl: 1e-4).
    scale: whether to divide by the group's standard deviation (trl's
      ``scale_rewards``; Dr. GRPO does not).

  Returns:
    ``[batch]`` advantages, in the rewards' (floating) dtype.

  Matches the advantages of trl's ``GRPOTrainer`` (``scale_rewards`` true or
  false).

  >>> import jax.numpy as jnp, numpy as np, jaxloss
  >>> rewards = jnp.array([1.0, 0.0, 0.0, 2.0, 2.0, 2.0])
  >>> print(np.round(np.asarray(
  ...     jaxloss.group_normalized_advantages(rewards, 3)), 4))
  [ 1.1545 -0.5773 -0.5773  0.      0.      0.    ]

  References:
    Shao et al., `DeepSeekMath: Pushing the Limits of Mathematical Reasoning
    in Open Language Models <https://arxiv.org/abs/2402.03300>`_, 2024.
  """
  rewards = jnp.asarray(rewards)
  if not jnp.issubdtype(rewards.dtype, jnp.floating):
    rewards = checks.as_targets("rewards", rewards, jnp.zeros((), jnp.float32))
  rewards = numerics.upcast(rewards)
  checks.rank("rewards", rewards, 1)
  checks.nonnegative("eps", eps)
  size = rewards.shape[0]
  if isinstance(groups, (int, np.integer)) and not isinstance(groups, bool):
    groups = int(groups)
    if groups < 1 or size % groups:
      raise checks.fail(
        f"group size {groups} must be >= 1 and divide the batch size {size}."
      )
    grouped = rewards.reshape(size // groups, groups)
    mean = jnp.mean(grouped, axis=1, keepdims=True)
    squares = jnp.sum(jnp.square(grouped - mean), axis=1, keepdims=True)
    count: int | jax.Array = groups
    centred = (grouped - mean).reshape(size)
    squares = jnp.broadcast_to(squares, grouped.shape).reshape(size)
  else:
    ids = checks.as_labels("groups", groups)
    checks.shape("groups", ids, (size,), "group ids, one per reward")
    same = in_batch.same_label(ids).astype(rewards.dtype)
    count = jnp.sum(same, axis=1)
    mean = (same @ rewards) / count
    centred = rewards - mean
    squares = jnp.sum(
      same * jnp.square(rewards[None, :] - mean[:, None]), axis=1
    )
  if not scale:
    return centred
  variance = squares / jnp.maximum(jnp.asarray(count, rewards.dtype) - 1, 1)
  return centred / (numerics.safe_sqrt(variance) + numerics.like(eps, rewards))


@loss(
  **{
    arg: value_checks.bounded(high=0, mask="completion_mask")
    for arg in ("log_probs", "old_log_probs", "ref_log_probs")
  }
)
def grpo_loss(
  log_probs: ArrayLike,
  old_log_probs: ArrayLike | None,
  advantages: ArrayLike,
  completion_mask: ArrayLike | None = None,
  ref_log_probs: ArrayLike | None = None,
  *,
  epsilon: ArrayLike = 0.2,
  epsilon_high: ArrayLike | None = None,
  beta: ArrayLike = 0.04,
  token_averaging: TokenAveraging = "sequence",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""GRPO's token-level clipped surrogate loss, with an optional k3 KL
  penalty, per completion.

  .. math::
    \ell_{i,t} = -\min\big(\rho_{i,t} A_i,\ \operatorname{clip}(\rho_{i,t},
      1 - \epsilon, 1 + \epsilon_\text{high}) A_i\big)
      + \beta \big(e^{\,r_{i,t} - \log\pi_{i,t}} - (r_{i,t} - \log\pi_{i,t})
      - 1\big),

  with :math:`\rho_{i,t} = \exp(\log\pi_{i,t} - \operatorname{sg}(\log
  \pi^\text{old}_{i,t}))` and :math:`r_{i,t}` the reference policy's
  log-probability (the KL term only when ``ref_log_probs`` is given).

  Per-example means per completion: the value of completion :math:`i` is
  the mean of :math:`\ell_{i,t}` over its active tokens (0, and left out of
  ``"mean"``, when it has none). ``token_averaging`` decides how ``"mean"``
  weighs the completions:

  * ``"sequence"`` (original GRPO): every completion counts once, so
    ``"mean"`` is the mean over completions of each one's token mean.
  * ``"token"`` (DAPO): completion :math:`i` is weighted by its number of
    active tokens :math:`|o_i|` (times ``weights``), so ``"mean"`` is
    :math:`\sum_{i,t} \ell_{i,t} / \sum_i |o_i|`, the mean over all active
    tokens of the batch; ``"none"`` and ``"sum"`` then give token sums.
    Dr. GRPO's loss is ``"sum"`` divided by ``batch * max_length``.

  Args:
    log_probs: ``[..., time]`` floating per-token log-probabilities of the
      sampled completions under the policy being optimised.
    old_log_probs: ``[..., time]`` the same under the sampling policy (data:
      gradient stopped), or ``None`` for ``log_probs`` itself (one update per
      generation: ratio 1, trl's ``per_token_logps.detach()``).
    advantages: ``[...]`` one advantage per completion, e.g. from
      :func:`group_normalized_advantages` (data: gradient stopped).
    completion_mask: ``[..., time]`` boolean (or 0/1 integer) mask of the
      completion tokens; ``None`` for all.
    ref_log_probs: optional ``[..., time]`` per-token log-probabilities under
      the reference policy, for the k3 KL penalty.
    epsilon: lower clip range :math:`\epsilon \ge 0` (may be traced).
    epsilon_high: upper clip range :math:`\epsilon_\text{high}` (DAPO's
      clip-higher, e.g. 0.28); ``None`` for ``epsilon``.
    beta: KL coefficient :math:`\beta` (DeepSeekMath: 0.04), used only with
      ``ref_log_probs``.
    token_averaging: ``"sequence"`` or ``"token"`` (static), see above.
    where: boolean mask of the per-completion shape ``[...]`` (drops
      completions) or of ``log_probs``' shape (drops tokens, like
      ``completion_mask``).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` per-completion loss (token means; weighted by token counts for
    ``"token"``), or a scalar for ``"sum"``/``"mean"``.

  Matches trl's ``GRPOTrainer`` loss: ``loss_type="grpo"`` is ``"mean"``
  with ``"sequence"`` and ``loss_type="bnpo"``/``"dapo"`` (on one process)
  is ``"mean"`` with ``"token"`` (trl counts a completion without tokens as
  0 in the ``"grpo"`` mean; here it is left out).

  >>> import jax.numpy as jnp, numpy as np, jaxloss
  >>> logp = jnp.log(jnp.array([[0.5, 0.5, 1.0], [0.4, 1.0, 1.0]]))
  >>> mask = jnp.array([[1, 1, 0], [1, 1, 1]])
  >>> adv = jaxloss.group_normalized_advantages(jnp.array([1.0, 0.0]), 2)
  >>> loss = jaxloss.grpo_loss(logp, None, adv, mask)  # ratio 1: -A
  >>> print(np.round(np.asarray(loss), 4))
  [-0.707  0.707]

  References:
    Shao et al., `DeepSeekMath: Pushing the Limits of Mathematical Reasoning
    in Open Language Models <https://arxiv.org/abs/2402.03300>`_, 2024;
    Yu et al., `DAPO: An Open-Source LLM Reinforcement Learning System at
    Scale <https://arxiv.org/abs/2503.14476>`_, 2025; Schulman,
    `Approximating KL Divergence <http://joschu.net/blog/kl-approx.html>`_,
    2020 (k3).
  """
  checks.option("token_averaging", token_averaging, TOKEN_AVERAGING)
  checks.nonnegative("epsilon", epsilon)
  checks.nonnegative("beta", beta)
  if epsilon_high is not None:
    checks.nonnegative("epsilon_high", epsilon_high)
  log_probs = checks.as_float("log_probs", log_probs)
  checks.min_rank("log_probs", log_probs, 1, "[..., time]")
  shape = log_probs.shape
  if old_log_probs is None:
    old_log_probs = log_probs
  else:
    old_log_probs = data("old_log_probs", old_log_probs, log_probs, shape)
  advantages = data("advantages", advantages, log_probs, shape[:-1])
  tokens = token_mask("completion_mask", completion_mask, shape)
  elements, _ = split_where(where, shape, -1)
  if elements is not None:
    tokens = tokens & elements
  epsilon_low = numerics.like(epsilon, log_probs)
  if epsilon_high is None:
    epsilon_high = epsilon_low
  else:
    epsilon_high = numerics.like(epsilon_high, log_probs)
  per_token = clipped_surrogate(
    log_probs - jax.lax.stop_gradient(old_log_probs),
    jax.lax.stop_gradient(advantages)[..., None],
    epsilon_low,
    epsilon_high,
  )
  if ref_log_probs is not None:
    ref = checks.as_float("ref_log_probs", ref_log_probs)
    checks.shape("ref_log_probs", ref, shape)
    per_token = per_token + numerics.like(beta, log_probs) * _k3_kl(
      log_probs, ref.astype(log_probs.dtype)
    )
  values, count = masked_mean(per_token, tokens)
  if token_averaging == "token":
    weights = (
      count
      if weights is None
      else count
      * checks.broadcast_weights("weights", weights, count, same_rank=True)
    )
  return reduce(values, reduction, weights=weights, where=count > 0)
