"""Pairwise preference losses: DPO and its variants (cDPO, IPO, rDPO, SLiC
hinge), SimPO and ORPO, one value per preference pair.

:func:`dpo_loss` takes one summed log-probability per completion (trl's
``*_logps``), ``[batch]``; :func:`simpo_loss` and :func:`orpo_loss` take
per-token log-probabilities ``[batch, time]`` with boolean (or 0/1 integer)
token masks, and average over the masked tokens themselves.
"""

from __future__ import annotations

from typing import Any, Literal

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics, value_checks
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce
from jaxloss.preference._tokens import masked_mean, token_mask

__all__ = ["dpo_implicit_rewards", "dpo_loss", "orpo_loss", "simpo_loss"]

DpoLossType = Literal["sigmoid", "hinge", "ipo", "robust"]
DPO_LOSS_TYPES: tuple[DpoLossType, ...] = ("sigmoid", "hinge", "ipo", "robust")


_TOKEN_RULES = dict(
  chosen_logps=value_checks.bounded(high=0, mask="chosen_mask"),
  rejected_logps=value_checks.bounded(high=0, mask="rejected_mask"),
)


def _check_dpo_options(
  loss_type: str, beta: ArrayLike, label_smoothing: Any
) -> None:
  checks.option("loss_type", loss_type, DPO_LOSS_TYPES)
  checks.positive("beta", beta)
  static = checks.is_static_number(label_smoothing)
  if loss_type == "sigmoid":
    checks.in_unit_interval("label_smoothing", label_smoothing)
  elif loss_type == "robust":
    if static and not 0 <= label_smoothing < 0.5:
      raise checks.fail(
        f"`label_smoothing` must lie in [0, 0.5) for loss_type='robust', "
        f"got {label_smoothing}."
      )
  elif static and label_smoothing != 0:
    raise checks.fail(
      f"`label_smoothing` applies to loss_type 'sigmoid' and 'robust' only, "
      f"got {label_smoothing} with loss_type={loss_type!r}."
    )


def _dpo_inputs(
  policy_chosen_logps: ArrayLike,
  policy_rejected_logps: ArrayLike,
  reference_chosen_logps: ArrayLike,
  reference_rejected_logps: ArrayLike,
) -> tuple[jax.Array, ...]:
  return checks.same_shape_floats(
    policy_chosen_logps=policy_chosen_logps,
    policy_rejected_logps=policy_rejected_logps,
    reference_chosen_logps=reference_chosen_logps,
    reference_rejected_logps=reference_rejected_logps,
  )


_DPO_RULES = dict(
  policy_chosen_logps=value_checks.log_probabilities,
  policy_rejected_logps=value_checks.log_probabilities,
  reference_chosen_logps=value_checks.log_probabilities,
  reference_rejected_logps=value_checks.log_probabilities,
)


@loss(**_DPO_RULES)
def dpo_loss(
  policy_chosen_logps: ArrayLike,
  policy_rejected_logps: ArrayLike,
  reference_chosen_logps: ArrayLike,
  reference_rejected_logps: ArrayLike,
  *,
  beta: ArrayLike = 0.1,
  label_smoothing: ArrayLike = 0.0,
  loss_type: DpoLossType = "sigmoid",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Direct Preference Optimization loss and its cDPO, IPO, rDPO and hinge
  variants, per preference pair.

  With :math:`z = (\log\pi_w - \log\pi_l) - (\log\pi^\text{ref}_w -
  \log\pi^\text{ref}_l)` and :math:`\varepsilon` = ``label_smoothing``:

  .. math::
    \begin{aligned}
    \texttt{sigmoid:}\ & -(1 - \varepsilon) \log\sigma(\beta z)
        - \varepsilon \log\sigma(-\beta z)
        \quad (\text{DPO}; \varepsilon > 0: \text{cDPO}) \\
    \texttt{robust:}\ & \big(-(1 - \varepsilon) \log\sigma(\beta z)
        + \varepsilon \log\sigma(-\beta z)\big) / (1 - 2\varepsilon)
        \quad (\text{rDPO}) \\
    \texttt{hinge:}\ & \max(0, 1 - \beta z) \quad (\text{SLiC}) \\
    \texttt{ipo:}\ & \big(z - 1 / (2\beta)\big)^2 \quad (\text{IPO})
    \end{aligned}

  Args:
    policy_chosen_logps: ``[...]`` floating :math:`\log\pi(y_w \mid x)`, the
      policy's summed log-probability of each chosen completion.
    policy_rejected_logps: ``[...]`` :math:`\log\pi(y_l \mid x)`.
    reference_chosen_logps: ``[...]`` the same under the reference model.
    reference_rejected_logps: ``[...]`` the same under the reference model.
    beta: :math:`\beta > 0` (may be traced); IPO's :math:`\tau`.
    label_smoothing: :math:`\varepsilon`, the assumed probability that a
      preference label is flipped: in [0, 1] for ``"sigmoid"``, [0, 0.5) for
      ``"robust"``; must be 0 for ``"hinge"`` and ``"ipo"``.
    loss_type: ``"sigmoid"``, ``"hinge"``, ``"ipo"`` or ``"robust"``
      (static).
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` per-pair loss, or a scalar for ``"sum"``/``"mean"``.

  Matches trl's ``DPOTrainer.dpo_loss`` for these four ``loss_type`` values
  (whose mean is ``"mean"`` here). For IPO, trl averages the log-probabilities
  over tokens before calling it; pass averaged log-probabilities to do the
  same. No gradient is stopped: the reference log-probabilities come from a
  frozen model.

  >>> import jax.numpy as jnp, jaxloss
  >>> loss = jaxloss.dpo_loss(jnp.array([-10.0]), jnp.array([-12.0]),
  ...                         jnp.array([-11.0]), jnp.array([-11.0]), beta=0.5)
  >>> print(f"{float(loss[0]):.4f}")  # -log σ(0.5 · 2)
  0.3133

  References:
    Rafailov et al., `Direct Preference Optimization: Your Language Model is
    Secretly a Reward Model <https://arxiv.org/abs/2305.18290>`_, 2023;
    Mitchell, `A Note on DPO with Noisy Preferences & Relationship to IPO
    <https://ericmitchell.ai/cdpo.pdf>`_, 2023;
    Azar et al., `A General Theoretical Paradigm to Understand Learning from
    Human Preferences <https://arxiv.org/abs/2310.12036>`_, 2023;
    Chowdhury, Kini and Natarajan, `Provably Robust DPO: Aligning Language
    Models with Noisy Feedback <https://arxiv.org/abs/2403.00409>`_, 2024;
    Zhao et al., `SLiC-HF: Sequence Likelihood Calibration with Human
    Feedback <https://arxiv.org/abs/2305.10425>`_, 2023.
  """
  _check_dpo_options(loss_type, beta, label_smoothing)
  chosen, rejected, ref_chosen, ref_rejected = _dpo_inputs(
    policy_chosen_logps,
    policy_rejected_logps,
    reference_chosen_logps,
    reference_rejected_logps,
  )
  b = numerics.like(beta, chosen)
  smoothing = numerics.like(label_smoothing, chosen)
  z = (chosen - rejected) - (ref_chosen - ref_rejected)
  if loss_type == "ipo":
    values = jnp.square(z - 1 / (2 * b))
  elif loss_type == "hinge":
    values = jax.nn.relu(1 - b * z)
  else:
    log_win, log_lose = numerics.log_sigmoid_pair(b * z)
    if loss_type == "sigmoid":
      values = -(1 - smoothing) * log_win - smoothing * log_lose
    else:
      values = (-(1 - smoothing) * log_win + smoothing * log_lose) / (
        1 - 2 * smoothing
      )
  return reduce(values, reduction, weights=weights, where=where)


@loss(**_DPO_RULES)
def dpo_implicit_rewards(
  policy_chosen_logps: ArrayLike,
  policy_rejected_logps: ArrayLike,
  reference_chosen_logps: ArrayLike,
  reference_rejected_logps: ArrayLike,
  *,
  beta: ArrayLike = 0.1,
) -> tuple[jax.Array, jax.Array]:
  r"""DPO's implicit rewards of the chosen and rejected completions, for
  logging.

  .. math:: r_w = \beta (\log\pi_w - \log\pi^\text{ref}_w), \qquad
            r_l = \beta (\log\pi_l - \log\pi^\text{ref}_l)

  Trainers log their means, the margin :math:`r_w - r_l` and the accuracy
  :math:`r_w > r_l`. Gradients are stopped (these are metrics).

  Args:
    policy_chosen_logps, policy_rejected_logps, reference_chosen_logps,
      reference_rejected_logps: ``[...]`` as in :func:`dpo_loss`.
    beta: :math:`\beta` (may be traced).

  Returns:
    ``(chosen_rewards, rejected_rewards)``, each ``[...]``.

  Matches ``chosen_rewards``/``rejected_rewards`` of trl's
  ``DPOTrainer.dpo_loss``.

  >>> import jax.numpy as jnp, jaxloss
  >>> chosen, rejected = jaxloss.dpo_implicit_rewards(
  ...     jnp.array([-10.0]), jnp.array([-12.0]), jnp.array([-11.0]),
  ...     jnp.array([-11.0]), beta=0.5)
  >>> print(float(chosen[0]), float(rejected[0]))
  0.5 -0.5

  References:
    Rafailov et al., `Direct Preference Optimization: Your Language Model is
    Secretly a Reward Model <https://arxiv.org/abs/2305.18290>`_, 2023.
  """
  chosen, rejected, ref_chosen, ref_rejected = _dpo_inputs(
    policy_chosen_logps,
    policy_rejected_logps,
    reference_chosen_logps,
    reference_rejected_logps,
  )
  b = numerics.like(beta, chosen)
  return (
    jax.lax.stop_gradient(b * (chosen - ref_chosen)),
    jax.lax.stop_gradient(b * (rejected - ref_rejected)),
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
