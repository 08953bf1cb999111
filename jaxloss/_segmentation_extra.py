r"""Segmentation losses beyond the overlap ratios: combo and Lovász-Softmax.

Same layout and options as :func:`jaxloss.dice_loss` (see
:mod:`jaxloss.segmentation`); re-exported from there.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxloss import _segmentation_common as common
from jaxloss._core import checks, value_checks
from jaxloss._core import reduction as reduction_lib

_RULES = dict(
  predictions=common.predictions_rule, targets=value_checks.unit_interval
)
_CLASSES = ("present", "all")


@value_checks.value_rules(**_RULES)
def combo_loss(
  predictions,
  targets,
  *,
  ce_weight=0.5,
  ce_beta=0.5,
  class_weights=None,
  smooth=1.0,
  apply_softmax=True,
  ignore_background=False,
  axis=None,
  squared_denominator=False,
  class_reduction="mean",
  where=None,
  weights=None,
  reduction="none",
):
  r"""Combo loss: a weighted sum of a β-weighted cross-entropy and the Dice loss.

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
  name = "combo_loss"
  common.check_reduction(name, reduction)
  checks.nonnegative(name, "smooth", smooth)
  checks.in_unit_interval(name, "ce_weight", ce_weight)
  checks.in_unit_interval(name, "ce_beta", ce_beta)
  x = common.inputs(
    name, predictions, targets, axis, where, class_reduction=class_reduction
  )
  class_weights = common.class_weights_array(
    name, class_weights, x.predictions.shape[-1], x.predictions.dtype
  )
  hyper = common.hyper_parameters(
    x.predictions,
    smooth=smooth,
    alpha=0.5,
    beta=0.5,
    ce_weight=ce_weight,
    ce_beta=ce_beta,
  )
  return common.region_loss(
    x.predictions,
    x.targets,
    x.pixels,
    x.outputs,
    weights,
    class_weights,
    hyper,
    name=name,
    kind="combo",
    axes=x.axes,
    apply_softmax=bool(apply_softmax),
    squared=bool(squared_denominator),
    ignore_background=bool(ignore_background),
    class_reduction=class_reduction,
    reduction=reduction,
  )


@value_checks.value_rules(**_RULES)
def lovasz_softmax_loss(
  predictions,
  targets,
  *,
  classes="present",
  per_image=True,
  class_weights=None,
  apply_softmax=True,
  ignore_background=False,
  axis=None,
  where=None,
  weights=None,
  reduction="none",
):
  r"""Lovász-Softmax loss: the Lovász extension of the per-class Jaccard loss.

  For each class ``c``, the pixels' errors :math:`e_i = |t_{ic} - p_{ic}|`
  are sorted in decreasing order, :math:`e_{\pi_1} \ge e_{\pi_2} \ge \dots`,
  and

  .. math::
    \ell_c = \sum_k e_{\pi_k}\, \big(J_c(k) - J_c(k - 1)\big), \quad
    J_c(k) = 1 - \frac{G - \sum_{j \le k} t_{\pi_j c}}
                      {G + \sum_{j \le k} (1 - t_{\pi_j c})},\ J_c(0) = 0

  with :math:`G = \sum_i t_{ic}`; the loss averages :math:`w_c \ell_c` over
  the counted classes: those present in the targets (``classes="present"``,
  0 if none is) or all of them (``"all"``).

  Args:
    predictions: ``[batch, *spatial, num_classes]`` logits (softmax; sigmoid
      for one channel), or probabilities with ``apply_softmax=False``.
    targets: one-hot (binary) targets, same shape.
    classes: ``"present"`` (default) or ``"all"``, as in the reference code.
    per_image: ``True`` (default): one value per image. ``False``: one value
      for the whole batch (every pixel of every image in one sort, the
      reference's default); the result is then a batch-level scalar for every
      ``reduction`` and ``where`` only masks pixels or images.
    class_weights: optional ``[num_classes]`` weights ``w_c``.
    apply_softmax: ``False`` if ``predictions`` are probabilities already.
    ignore_background: leave class 0 out (when there are several classes).
    axis: the axes of one image (default: all but the first and the last).
    where: boolean mask of the pixel shape (ignored pixels, the reference's
      ``ignore`` label) or of the per-image shape (dropped images).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[batch]`` per-image losses, or a scalar.

  Matches ``lovasz_softmax`` of the authors' PyTorch code (bermanmaxim/
  LovaszSoftmax) on probabilities, except that an image with no valid pixel
  is left out of the mean (the reference counts it as 0).

  >>> import jax.numpy as jnp, numpy as np, jaxloss
  >>> logits = jnp.array([[[2.0, -1.0], [0.0, 1.0], [-1.0, 3.0]]])
  >>> targets = jnp.array([[[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]])
  >>> print(np.asarray(jaxloss.lovasz_softmax_loss(logits, targets)).round(4))
  [0.1533]

  References:
    Berman, Rannen Triki and Blaschko, `The Lovász-Softmax loss: A tractable
    surrogate for the optimization of the intersection-over-union measure in
    neural networks <https://arxiv.org/abs/1705.08790>`_, 2018.
  """
  name = "lovasz_softmax_loss"
  common.check_reduction(name, reduction)
  checks.option(name, "classes", classes, _CLASSES)
  if not isinstance(per_image, bool):
    raise TypeError(f"{name}: `per_image` must be a bool, got {per_image!r}.")
  x = common.inputs(name, predictions, targets, axis, where)
  class_weights = common.class_weights_array(
    name, class_weights, x.predictions.shape[-1], x.predictions.dtype
  )
  return _lovasz(
    x.predictions,
    x.targets,
    x.pixels,
    weights,
    class_weights,
    name=name,
    axes=x.axes,
    apply_softmax=bool(apply_softmax),
    ignore_background=bool(ignore_background),
    classes=classes,
    per_image=per_image,
    reduction=reduction,
  )


def _lovasz_sorted(errors, foreground, valid):
  """Each row's Lovász extension of the Jaccard loss: ``[..., pixels]`` in,
  ``[...]`` out, with the rows' target sums."""
  key = jnp.where(valid, errors, -1)
  order = jnp.argsort(key, axis=-1, descending=True, stable=True)
  errors = jnp.take_along_axis(jnp.where(valid, errors, 0), order, axis=-1)
  foreground = jax.lax.stop_gradient(
    jnp.take_along_axis(jnp.where(valid, foreground, 0), order, axis=-1)
  )
  total = jnp.sum(foreground, axis=-1, keepdims=True)
  intersection = total - jnp.cumsum(foreground, axis=-1)
  union = total + jnp.cumsum(1 - foreground, axis=-1)
  jaccard = 1 - intersection / union
  steps = jnp.concatenate(
    [jaccard[..., :1], jnp.diff(jaccard, axis=-1)], axis=-1
  )
  return jnp.sum(errors * steps, axis=-1), total[..., 0]


@jax.jit(
  static_argnames=(
    "name",
    "axes",
    "apply_softmax",
    "ignore_background",
    "classes",
    "per_image",
    "reduction",
  )
)
def _lovasz(
  predictions,
  targets,
  pixels,
  weights,
  class_weights,
  *,
  name,
  axes,
  apply_softmax,
  ignore_background,
  classes,
  per_image,
  reduction,
):
  probs = common.probabilities(predictions, apply_softmax)
  ndim = probs.ndim
  image_axes = tuple(a for a in range(ndim - 1) if a not in axes)
  image_shape = tuple(probs.shape[a] for a in image_axes)
  order = image_axes + axes + (ndim - 1,)
  num_classes = probs.shape[-1]

  def rows(x):
    """``[images, classes, pixels]`` (one image if not ``per_image``)."""
    x = jnp.transpose(x, order)
    x = x.reshape((math.prod(image_shape), -1, x.shape[-1]))
    if not per_image:
      x = x.reshape((1, -1, x.shape[-1]))
    return jnp.swapaxes(x, 1, 2)

  valid = (
    jnp.ones(probs.shape[:-1] + (1,), bool)
    if pixels is None
    else pixels[..., None]
  )
  foreground = rows(targets)
  per_class, present = _lovasz_sorted(
    jnp.abs(foreground - rows(probs)),
    foreground,
    jnp.broadcast_to(rows(valid), foreground.shape),
  )
  if class_weights is not None:
    per_class = per_class * jnp.broadcast_to(
      class_weights[None, :], per_class.shape
    )
  counted = (
    present > 0 if classes == "present" else jnp.ones(per_class.shape, bool)
  )
  if ignore_background and num_classes > 1:
    per_class, counted = per_class[:, 1:], counted[:, 1:]
  count = jnp.sum(counted, axis=-1, dtype=per_class.dtype)
  values = jnp.sum(jnp.where(counted, per_class, 0), axis=-1) / jnp.maximum(
    count, 1
  )
  if not per_image:
    return reduction_lib.reduce(
      values[0], reduction, weights=weights, name=name
    )
  mask = None if pixels is None else jnp.any(pixels, axis=axes)
  return reduction_lib.reduce(
    values.reshape(image_shape),
    reduction,
    weights=weights,
    where=mask,
    name=name,
  )


__all__ = ["combo_loss", "lovasz_softmax_loss"]
