r"""Lovász-Softmax loss: the Lovász extension of the per-class Jaccard loss."""

from __future__ import annotations

import math
from typing import Literal

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce
from jaxloss.segmentation import _inputs, _regions
from jaxloss.segmentation._inputs import RULES, Axis, Inputs

__all__ = ["lovasz_softmax_loss"]

_CLASSES = ("present", "all")


def _lovasz_sorted(
  errors: jax.Array, foreground: jax.Array, valid: jax.Array
) -> tuple[jax.Array, jax.Array]:
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


def _lovasz_values(
  x: Inputs,
  *,
  apply_softmax: bool,
  ignore_background: bool,
  classes: str,
  per_image: bool,
) -> tuple[jax.Array, jax.Array | None]:
  """The per-image values (one batch-level value if not ``per_image``) and
  the mask to reduce them with."""
  probs = _regions.probabilities(x.predictions, apply_softmax)
  ndim = probs.ndim
  image_axes = tuple(a for a in range(ndim - 1) if a not in x.axes)
  image_shape = tuple(probs.shape[a] for a in image_axes)
  order = image_axes + x.axes + (ndim - 1,)
  num_classes = probs.shape[-1]
  images = math.prod(image_shape)
  pixels = math.prod(probs.shape[a] for a in x.axes)

  def rows(a: jax.Array) -> jax.Array:
    """``[images, classes, pixels]`` (one image if not ``per_image``). The
    sizes are spelled out (no ``-1``): an empty batch has 0 images."""
    a = jnp.transpose(a, order)
    a = a.reshape((images, pixels, a.shape[-1]))
    if not per_image:
      a = a.reshape((1, images * pixels, a.shape[-1]))
    return jnp.swapaxes(a, 1, 2)

  valid = (
    jnp.ones(probs.shape[:-1] + (1,), bool)
    if x.pixels is None
    else x.pixels[..., None]
  )
  foreground = rows(x.targets)
  per_class, present = _lovasz_sorted(
    jnp.abs(foreground - rows(probs)),
    foreground,
    jnp.broadcast_to(rows(valid), foreground.shape),
  )
  if x.class_weights is not None:
    per_class = per_class * jnp.broadcast_to(
      x.class_weights[None, :], per_class.shape
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
    return values[0], None
  mask = None if x.pixels is None else jnp.any(x.pixels, axis=x.axes)
  return values.reshape(image_shape), mask


@loss(**RULES)
def lovasz_softmax_loss(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  classes: Literal["present", "all"] = "present",
  per_image: bool = True,
  class_weights: ArrayLike | None = None,
  apply_softmax: bool = True,
  ignore_background: bool = False,
  axis: Axis = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
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
  checks.option("classes", classes, _CLASSES)
  if not isinstance(per_image, bool):
    raise checks.fail(
      f"`per_image` must be a bool, got {per_image!r}.", TypeError
    )
  x = _inputs.read(
    predictions, targets, axis=axis, where=where, class_weights=class_weights
  )
  values, mask = _lovasz_values(
    x,
    apply_softmax=bool(apply_softmax),
    ignore_background=bool(ignore_background),
    classes=classes,
    per_image=per_image,
  )
  return reduce(values, reduction, weights=weights, where=mask)
