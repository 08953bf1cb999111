"""Reference-free pairwise preference losses on per-token log-probabilities:
SimPO and ORPO, one value per preference pair (DPO is
:mod:`jaxloss.preference.dpo`, CPO :mod:`jaxloss.preference.cpo`).

:func:`simpo_loss` and :func:`orpo_loss` take per-token log-probabilities
``[batch, time]`` with boolean (or 0/1 integer) token masks, and average over
the masked tokens themselves.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics, value_checks
from jaxloss._core.loss import loss
from jaxloss._core.policy import completion_tokens as token_mask
from jaxloss._core.reduction import Reduction, reduce
from jaxloss.preference._tokens import masked_mean

__all__ = ["orpo_loss", "simpo_loss"]

_TOKEN_RULES = dict(
  chosen_logps=value_checks.bounded(high=0, mask="chosen_mask"),
  rejected_logps=value_checks.bounded(high=0, mask="rejected_mask"),
)


def _average_logps(
  chosen_logps: ArrayLike,
  rejected_logps: ArrayLike,
  chosen_mask: ArrayLike | None,
  rejected_mask: ArrayLike | None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Length-normalised log-probabilities of both completions, and the mask of
  pairs in which both have at least one token."""
  chosen_logps = checks.as_float("chosen_logps", chosen_logps)
  checks.min_rank("chosen_logps", chosen_logps, 1, "[..., time]")
  rejected_logps = checks.as_float("rejected_logps", rejected_logps)
  checks.shape(
    "rejected_logps",
    rejected_logps,
    chosen_logps.shape[:-1] + (None,),
    "the leading shape of `chosen_logps`",
  )
  rejected_logps = rejected_logps.astype(chosen_logps.dtype)
  chosen_tokens = token_mask("chosen_mask", chosen_mask, chosen_logps.shape)
  rejected_tokens = token_mask(
    "rejected_mask", rejected_mask, rejected_logps.shape
  )
  chosen, chosen_count = masked_mean(chosen_logps, chosen_tokens)
  rejected, rejected_count = masked_mean(rejected_logps, rejected_tokens)
  return chosen, rejected, (chosen_count > 0) & (rejected_count > 0)


def _and(where: ArrayLike | None, examples: jax.Array) -> jax.Array:
  if where is None:
    return examples
  return (
    checks.broadcast_mask("where", where, examples.shape, same_rank=True)
    & examples
  )


@loss(**_TOKEN_RULES)
def simpo_loss(
  chosen_logps: ArrayLike,
  rejected_logps: ArrayLike,
  chosen_mask: ArrayLike | None = None,
  rejected_mask: ArrayLike | None = None,
  *,
  beta: ArrayLike = 2.0,
  gamma: ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""SimPO: a reference-free preference loss on length-normalised
  log-probabilities, per preference pair.

  .. math::
    \ell = -\log\sigma\Big(\frac{\beta}{|y_w|} \log\pi(y_w \mid x)
           - \frac{\beta}{|y_l|} \log\pi(y_l \mid x) - \gamma\Big)

  where :math:`\log\pi(y \mid x) / |y|` is the mean of the per-token
  log-probabilities over the completion's masked tokens. A pair in which a
  completion has no token has value 0 and is left out of ``"mean"``.

  Args:
    chosen_logps: ``[..., time]`` floating per-token log-probabilities of the
      chosen completions.
    rejected_logps: ``[..., time']`` the same for the rejected completions
      (same leading shape; the padded length may differ).
    chosen_mask: ``[..., time]`` boolean (or 0/1 integer) mask of the chosen
      completions' tokens; ``None`` for all.
    rejected_mask: ``[..., time']`` the same for the rejected completions.
    beta: reward scale :math:`\beta` (the paper uses 2 to 10; may be traced).
    gamma: target reward margin :math:`\gamma` (the paper's γ, not γ/β; may
      be traced).
    where: boolean mask of the per-pair shape ``[...]``.
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` per-pair loss, or a scalar for ``"sum"``/``"mean"``.

  Matches the SimPO paper's Eq. 6 and trl's ``CPOTrainer`` with
  ``loss_type="simpo"`` (whose ``simpo_gamma`` is this ``gamma``) and no
  label smoothing.

  >>> import jax.numpy as jnp, jaxloss
  >>> chosen = jnp.array([[-1.0, -3.0, 0.0]])   # mean -2 over two tokens
  >>> rejected = jnp.array([[-3.0, -3.0, -3.0]])
  >>> loss = jaxloss.simpo_loss(chosen, rejected, jnp.array([[1, 1, 0]]),
  ...                           beta=2.0, gamma=1.0)
  >>> print(f"{float(loss[0]):.4f}")  # -log σ(2·(-2) - 2·(-3) - 1)
  0.3133

  References:
    Meng, Xia and Chen, `SimPO: Simple Preference Optimization with a
    Reference-Free Reward <https://arxiv.org/abs/2405.14734>`_, 2024.
  """
  checks.positive("beta", beta)
  chosen, rejected, examples = _average_logps(
    chosen_logps, rejected_logps, chosen_mask, rejected_mask
  )
  beta = numerics.like(beta, chosen)
  gamma = numerics.like(gamma, chosen)
  values = -jax.nn.log_sigmoid(beta * (chosen - rejected) - gamma)
  return reduce(values, reduction, weights=weights, where=_and(where, examples))


def _log_odds(average_logps: jax.Array) -> jax.Array:
  """``log(p / (1 - p))`` for ``log p`` = the average log-probability, which
  is capped at ``-eps`` of the dtype (p = 1 has infinite odds)."""
  capped = jnp.minimum(average_logps, -jnp.finfo(average_logps.dtype).eps)
  return capped - numerics.log1mexp(capped)


@loss(**_TOKEN_RULES)
def orpo_loss(
  chosen_logps: ArrayLike,
  rejected_logps: ArrayLike,
  chosen_mask: ArrayLike | None = None,
  rejected_mask: ArrayLike | None = None,
  *,
  beta: ArrayLike = 0.1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""ORPO: supervised NLL on the chosen completion plus an odds-ratio
  preference term, per preference pair.

  .. math::
    \ell = -\log P_w - \lambda \log\sigma\Big(\log\frac{P_w}{1 - P_w}
           - \log\frac{P_l}{1 - P_l}\Big), \qquad
    \log P = \frac{1}{|y|} \sum_t \log\pi(y_t \mid x, y_{<t})

  :math:`\log(1 - P)` is computed with ``log1mexp``; the average
  log-probability is capped at ``-eps`` of the dtype inside the odds (a
  probability of exactly 1 has infinite odds), which changes nothing below
  :math:`P \approx 1 - 10^{-7}` in float32. A pair in which a completion has
  no token has value 0 and is left out of ``"mean"``.

  Args:
    chosen_logps: ``[..., time]`` floating per-token log-probabilities of the
      chosen completions.
    rejected_logps: ``[..., time']`` the same for the rejected completions
      (same leading shape; the padded length may differ).
    chosen_mask: ``[..., time]`` boolean (or 0/1 integer) mask of the chosen
      completions' tokens; ``None`` for all.
    rejected_mask: ``[..., time']`` the same for the rejected completions.
    beta: the odds-ratio weight :math:`\lambda` (trl's ``beta``; may be
      traced).
    where: boolean mask of the per-pair shape ``[...]``.
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` per-pair loss, or a scalar for ``"sum"``/``"mean"``.

  Matches trl's ``ORPOTrainer`` (``policy_nll_loss - beta * log σ(log
  odds)``), except that the NLL here is each chosen completion's token mean
  (trl's is the mean over all chosen tokens of the batch; the two agree when
  the completions have equal lengths).

  >>> import jax.numpy as jnp, jaxloss
  >>> chosen = jnp.log(jnp.array([[0.5, 0.5]]))
  >>> rejected = jnp.log(jnp.array([[0.2, 0.2]]))
  >>> loss = jaxloss.orpo_loss(chosen, rejected, beta=1.0)
  >>> print(f"{float(loss[0]):.4f}")  # log 2 - log σ(log 1 - log ¼)
  0.9163

  References:
    Hong, Lee and Thorne, `ORPO: Monolithic Preference Optimization without
    Reference Model <https://arxiv.org/abs/2403.07691>`_, 2024.
  """
  checks.nonnegative("beta", beta)
  chosen, rejected, examples = _average_logps(
    chosen_logps, rejected_logps, chosen_mask, rejected_mask
  )
  beta = numerics.like(beta, chosen)
  odds_ratio = jax.nn.log_sigmoid(_log_odds(chosen) - _log_odds(rejected))
  values = -chosen - beta * odds_ratio
  return reduce(values, reduction, weights=weights, where=_and(where, examples))
