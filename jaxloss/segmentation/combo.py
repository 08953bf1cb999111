r"""Combo loss: a β-weighted cross-entropy mixed with the Dice loss."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce
from jaxloss.segmentation import _inputs, _regions
from jaxloss.segmentation._inputs import RULES, Axis, ClassReduction

__all__ = ["combo_loss"]


def _log_probability_pair(
  predictions: jax.Array, apply_softmax: bool
) -> tuple[jax.Array, jax.Array]:
  """``(log p, log(1 − p))`` per class, finite for any finite input.

  For a softmax, ``log(1 − p_c)`` is ``log1mexp(log p_c)`` for every class
  but the arg-max (where ``p_c ≤ 1/2``, so it is accurate) and the
  log-sum-exp of the other logits minus the full one for the arg-max. For
  probabilities the logs are clamped at −100 (torch's
  ``binary_cross_entropy``).
  """
  if not apply_softmax:
    return numerics.clamped_log(predictions), numerics.clamped_log(
      1 - predictions
    )
  if predictions.shape[-1] == 1:
    return numerics.log_sigmoid_pair(predictions)
  log_p = jax.nn.log_softmax(predictions, axis=-1)
  num_classes = predictions.shape[-1]
  top = jax.nn.one_hot(
    jnp.argmax(predictions, axis=-1), num_classes, dtype=bool
  )
  others = numerics.masked_logsumexp(predictions, ~top, axis=-1)[..., None]
  log_rest = others - jax.nn.logsumexp(predictions, axis=-1, keepdims=True)
  below_top = numerics.log1mexp(jnp.where(top, -1.0, log_p))
  return log_p, jnp.where(top, log_rest, below_top)


@loss(**RULES)
def combo_loss(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  ce_weight: ArrayLike = 0.5,
  ce_beta: ArrayLike = 0.5,
  class_weights: ArrayLike | None = None,
  smooth: ArrayLike = 1.0,
  apply_softmax: bool = True,
  ignore_background: bool = False,
  axis: Axis = None,
  squared_denominator: bool = False,
  class_reduction: ClassReduction = "mean",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Combo loss: a weighted sum of a β-weighted cross-entropy and the Dice
  loss.

  .. math::
    \ell = \operatorname*{mean}_c\, w_c \big(a\, \mathrm{CE}_c
      + (1 - a)(1 - \mathrm{DSC}_c)\big), \qquad
    \mathrm{CE}_c = -\frac{1}{N} \sum_i \big(\beta\, t_{ic} \log p_{ic}
      + (1 - \beta)(1 - t_{ic}) \log(1 - p_{ic})\big)

  with ``a = ce_weight``, ``β = ce_beta``, :math:`\mathrm{DSC}_c = (2 I_c + 2s)
  / (P_c + T_c + 2s)` (the Dice coefficient of :func:`dice_loss`) and ``N``
  the number of unmasked pixels of the image. The cross-entropy is the paper's
  binary one, applied to each class's probability (one-vs-rest; for a softmax
  :math:`\log(1 - p_{ic})` is computed stably from the logits). Convention:
  the paper subtracts :math:`(1 - a)\,\mathrm{DSC}`; this adds
  :math:`(1 - a)(1 - \mathrm{DSC})`, the same gradient, so that the loss is
  non-negative. ``β = ½`` weighs both terms of the cross-entropy by ½;
  ``β > ½`` penalises false negatives more.

  Args:
    predictions: ``[batch, *spatial, num_classes]`` logits, or probabilities
      with ``apply_softmax=False`` (their logs are clamped at −100, as in
      ``torch.nn.functional.binary_cross_entropy``).
    targets: one-hot or soft targets in [0, 1], same shape.
    ce_weight: ``a`` in [0, 1], the weight of the cross-entropy (the paper's
      α).
    ce_beta: ``β`` in [0, 1], the weight of the positive term of the
      cross-entropy (the paper's β).
    class_weights, smooth, apply_softmax, ignore_background, axis,
      squared_denominator, class_reduction, where: as in :func:`dice_loss`
      (class weights and ``ignore_background`` apply to both terms).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[batch]`` per-image losses (``[batch, classes]`` with
    ``class_reduction="none"``), or a scalar.

  No reference implementation: tested against the paper's formula (plus
  ``1 - a``, the convention above).

  >>> import jax.numpy as jnp, numpy as np, jaxloss
  >>> logits = jnp.array([[[2.0, -1.0], [0.0, 1.0], [-1.0, 3.0]]])
  >>> targets = jnp.array([[[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]])
  >>> print(np.asarray(jaxloss.combo_loss(logits, targets)).round(4))
  [0.0659]

  References:
    Taghanaki, Zheng, Zhou, Georgescu, Sharma, Xu, Comaniciu and Hamarneh,
    `Combo loss: Handling input and output imbalance in multi-organ
    segmentation <https://arxiv.org/abs/1805.02798>`_, 2019.
  """
  checks.nonnegative("smooth", smooth)
  checks.in_unit_interval("ce_weight", ce_weight)
  checks.in_unit_interval("ce_beta", ce_beta)
  x = _inputs.read(
    predictions,
    targets,
    axis=axis,
    where=where,
    class_weights=class_weights,
    class_reduction=class_reduction,
  )
  dice = _regions.tversky_loss_per_class(
    _regions.probabilities(x.predictions, bool(apply_softmax)),
    x,
    numerics.like(smooth, x.predictions),
    0.5,
    0.5,
    bool(squared_denominator),
  )
  log_p, log_not_p = _log_probability_pair(x.predictions, bool(apply_softmax))
  beta = numerics.like(ce_beta, x.predictions)
  bce = -(beta * x.targets * log_p + (1 - beta) * (1 - x.targets) * log_not_p)
  count = _regions.masked_sum(
    jnp.ones_like(x.predictions[..., :1]), x.pixels, x.axes
  )
  cross_entropy = numerics.safe_divide(
    _regions.masked_sum(bce, x.pixels, x.axes), count
  )
  a = numerics.like(ce_weight, x.predictions)
  values, mask = _regions.per_image(
    a * cross_entropy + (1 - a) * dice,
    x,
    x.class_weights,
    bool(ignore_background),
    class_reduction,
  )
  return reduce(values, reduction, weights=weights, where=mask)
