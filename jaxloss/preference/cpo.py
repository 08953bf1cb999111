"""Contrastive Preference Optimization: a reference-free pairwise loss on the
policy's log-probabilities (with SimPO's margin and AlphaPO's reward shape
as options), plus an optional NLL term on the chosen completion."""

from __future__ import annotations

from typing import Any, Literal

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics, value_checks
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce

__all__ = ["cpo_loss"]

CpoLossType = Literal["sigmoid", "hinge", "ipo", "simpo"]
CPO_LOSS_TYPES: tuple[CpoLossType, ...] = ("sigmoid", "hinge", "ipo", "simpo")
SIMPO_GAMMA = 0.5  # trl 1.16 CPOConfig.simpo_gamma


def _check_options(
  loss_type: str,
  beta: Any,
  label_smoothing: Any,
  simpo_gamma: Any,
  cpo_alpha: Any,
  chosen_nll: Any,
) -> None:
  """Each option is valid for ``loss_type``; one it ignores is an error."""
  checks.option("loss_type", loss_type, CPO_LOSS_TYPES)
  checks.positive("beta", beta)
  if loss_type in ("sigmoid", "simpo"):
    checks.in_unit_interval("label_smoothing", label_smoothing)
  elif not (checks.is_static_number(label_smoothing) and label_smoothing == 0):
    raise checks.fail(
      "`label_smoothing` applies to loss_type 'sigmoid' and 'simpo' only, "
      f"got {label_smoothing} with loss_type={loss_type!r}."
    )
  if loss_type != "simpo" and simpo_gamma is not None:
    raise checks.fail(
      f"`simpo_gamma` applies to loss_type 'simpo' only, got {simpo_gamma} "
      f"with loss_type={loss_type!r}."
    )
  if chosen_nll is None and not (
    checks.is_static_number(cpo_alpha) and cpo_alpha in (0, 1)
  ):
    raise checks.fail(
      f"`cpo_alpha` weights `chosen_nll`, which is not given (got "
      f"cpo_alpha={cpo_alpha}): pass chosen_nll, or leave cpo_alpha at 1."
    )


def _alphapo_reward(logps: jax.Array, alpha: Any) -> jax.Array:
  r"""AlphaPO's reward :math:`(1 - p^{-\alpha}) / \alpha` with
  :math:`p^{-\alpha} = e^{-\alpha \log p}` (``expm1``: accurate as
  :math:`\alpha \to 0`, where it tends to :math:`\log p`)."""
  a = numerics.like(alpha, logps)
  if checks.is_static_number(alpha):
    return -jnp.expm1(-a * logps) / a
  zero = a == 0  # a traced alpha may be 0: the log-probability itself.
  safe = jnp.where(zero, 1, a)
  return jnp.where(zero, logps, -jnp.expm1(-safe * logps) / safe)


@loss(
  chosen_logps=value_checks.log_probabilities,
  rejected_logps=value_checks.log_probabilities,
  chosen_nll=value_checks.nonnegative,
)
def cpo_loss(
  chosen_logps: ArrayLike,
  rejected_logps: ArrayLike,
  *,
  beta: ArrayLike = 0.1,
  label_smoothing: ArrayLike = 0.0,
  loss_type: CpoLossType = "sigmoid",
  simpo_gamma: ArrayLike | None = None,
  alpha: ArrayLike = 0.0,
  cpo_alpha: ArrayLike = 1.0,
  chosen_nll: ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Contrastive Preference Optimization (CPO) loss, with its SimPO,
  AlphaPO, IPO and hinge variants, per preference pair; reference-free.

  With the rewards :math:`s_w, s_l` (:math:`s = \log\pi(y \mid x)`, or
  AlphaPO's :math:`s = (1 - \pi(y \mid x)^{-\alpha}) / \alpha` for
  :math:`\alpha \ne 0`), :math:`u = s_w - s_l` (minus
  :math:`\gamma / \beta` for ``"simpo"``), :math:`\varepsilon` =
  ``label_smoothing`` and :math:`\lambda` = ``cpo_alpha``:

  .. math::
    \begin{aligned}
    \texttt{sigmoid, simpo:}\ & -(1 - \varepsilon)\log\sigma(\beta u)
        - \varepsilon \log\sigma(-\beta u) \\
    \texttt{hinge:}\ & \max(0, 1 - \beta u) \\
    \texttt{ipo:}\ & \big(u - 1 / (2\beta)\big)^2
    \end{aligned}

  plus :math:`\lambda \cdot` ``chosen_nll`` when it is given (CPO's
  behaviour-cloning term).

  AlphaPO's :math:`p^{-\alpha}` is computed as :math:`\exp(-\alpha \log p)`
  from the log-probability (trl exponentiates the probability first, which
  underflows to 0, making :math:`p^{-\alpha}` infinite, for :math:`\log p <
  -104` in float32 whatever :math:`\alpha`). It still overflows where it is
  not representable, :math:`-\alpha \log p >` 88.7 in float32 (709.8 in
  float64): the reward is then :math:`-\infty` and the loss infinite or NaN.
  Summed log-probabilities of long completions reach that with
  :math:`\alpha` of a few tenths: use length-averaged ones (trl does for
  ``"ipo"`` and ``"simpo"``) or float64. :math:`\alpha < 0` never
  overflows.

  Args:
    chosen_logps: ``[...]`` floating :math:`\log\pi(y_w \mid x)` of each
      chosen completion: summed over its tokens for ``"sigmoid"`` and
      ``"hinge"``, averaged for ``"ipo"`` and ``"simpo"`` (what trl's
      ``CPOTrainer`` passes).
    rejected_logps: ``[...]`` the same for the rejected completions.
    beta: :math:`\beta > 0` (may be traced).
    label_smoothing: :math:`\varepsilon` in [0, 1] for ``"sigmoid"`` and
      ``"simpo"``; must be 0 for ``"hinge"`` and ``"ipo"``.
    loss_type: ``"sigmoid"``, ``"hinge"``, ``"ipo"`` or ``"simpo"``
      (static).
    simpo_gamma: SimPO's margin :math:`\gamma` (``"simpo"`` only; ``None``
      means trl's default 0.5).
    alpha: AlphaPO's :math:`\alpha` (any type; 0: the log-probability; may
      be traced).
    cpo_alpha: :math:`\lambda`, the weight of ``chosen_nll`` (without
      ``chosen_nll`` it must be 1, the default, or 0).
    chosen_nll: optional negative log-likelihood of the chosen completions,
      a scalar or broadcastable to ``[...]`` with the same rank (trl's
      ``nll_loss`` is one scalar, the mean token cross-entropy over all
      chosen tokens of the batch: pass it to match trl's loss with
      ``"mean"``); differentiable.
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` per-pair loss, or a scalar for ``"sum"``/``"mean"``.

  Matches trl 1.16's ``CPOTrainer.cpo_loss`` (``trl.experimental.cpo``) for
  every loss type and ``alpha``, and its loss ``losses.mean() + cpo_alpha *
  nll_loss`` (``get_batch_loss_metrics``) with ``"mean"`` and
  ``chosen_nll=nll_loss``. trl ignores ``label_smoothing`` for ``"hinge"``
  and ``"ipo"`` with a warning; here it is an error. trl's ``CPOConfig``
  lists ``loss_type="alphapo"``, which its ``cpo_loss`` rejects: AlphaPO is
  ``alpha`` with any type.

  >>> import jax.numpy as jnp, jaxloss
  >>> loss = jaxloss.cpo_loss(jnp.array([-1.0]), jnp.array([-3.0]), beta=0.5)
  >>> print(f"{float(loss[0]):.4f}")  # -log σ(0.5 · 2)
  0.3133

  References:
    Xu et al., `Contrastive Preference Optimization: Pushing the Boundaries
    of LLM Performance in Machine Translation
    <https://arxiv.org/abs/2401.08417>`_, 2024;
    Meng, Xia and Chen, `SimPO: Simple Preference Optimization with a
    Reference-Free Reward <https://arxiv.org/abs/2405.14734>`_, 2024;
    Gupta et al., `AlphaPO: Reward Shape Matters for LLM Alignment
    <https://arxiv.org/abs/2501.03884>`_, 2025.
  """
  _check_options(
    loss_type, beta, label_smoothing, simpo_gamma, cpo_alpha, chosen_nll
  )
  chosen, rejected = checks.same_shape_floats(
    chosen_logps=chosen_logps, rejected_logps=rejected_logps
  )
  b = numerics.like(beta, chosen)
  eps = numerics.like(label_smoothing, chosen)
  if checks.is_static_number(alpha) and alpha == 0:
    u = chosen - rejected
  else:
    u = _alphapo_reward(chosen, alpha) - _alphapo_reward(rejected, alpha)
  if loss_type == "simpo":
    gamma = SIMPO_GAMMA if simpo_gamma is None else simpo_gamma
    u = u - numerics.like(gamma, chosen) / b
  if loss_type == "hinge":
    values = jax.nn.relu(1 - b * u)
  elif loss_type == "ipo":
    values = jnp.square(u - 1 / (2 * b))
  else:
    log_win, log_lose = numerics.log_sigmoid_pair(b * u)
    values = -(1 - eps) * log_win - eps * log_lose
  if chosen_nll is not None:
    nll = checks.as_float("chosen_nll", chosen_nll)
    nll = checks.broadcast_to("chosen_nll", nll, chosen.shape, same_rank=True)
    values = values + numerics.like(cpo_alpha, chosen) * nll.astype(
      chosen.dtype
    )
  return reduce(values, reduction, weights=weights, where=where)
