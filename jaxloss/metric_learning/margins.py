"""Softmax cross-entropies with an angular (ArcFace) or cosine (CosFace)
margin on the label's class."""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics, value_checks
from jaxloss._core import labels as labels_lib
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce, split_where
from jaxloss.metric_learning._cross_entropy import masked_cross_entropy
from jaxloss.metric_learning._distances import VECTORS


def _margin_inputs(
  cosines: ArrayLike,
  labels: ArrayLike,
  scale: ArrayLike,
  margin: ArrayLike,
  where: ArrayLike | None,
) -> tuple[
  jax.Array, jax.Array, float | jax.Array, jax.Array | None, jax.Array | None
]:
  """Checks the inputs of ArcFace and CosFace; returns
  ``(cosines, labels, margin, element_mask, example_mask)``."""
  cosines = checks.as_float("cosines", cosines)
  labels = checks.as_labels("labels", labels)
  checks.min_rank("cosines", cosines, 1, VECTORS)
  checks.labels_for(labels, cosines, cosines.ndim - 1, "cosines")
  checks.positive("scale", scale)
  checks.nonnegative("margin", margin)
  elements, examples = split_where(where, cosines.shape, -1)
  return (
    cosines,
    labels,
    numerics.like(margin, cosines.dtype),
    elements,
    examples,
  )


def _margin_cross_entropy(
  cosines: jax.Array,
  labels: jax.Array,
  target: Callable[[jax.Array], jax.Array],
  scale: ArrayLike,
  elements: jax.Array | None,
) -> jax.Array:
  """Cross-entropy of ``scale · cosines`` with the label's cosine replaced by
  ``target(cosine)``: the shared body of ArcFace and CosFace."""
  is_label = jax.nn.one_hot(labels, cosines.shape[-1], dtype=bool)
  label_cosines = labels_lib.pick(cosines, labels)[..., None]
  logits = jnp.where(is_label, target(label_cosines), cosines)
  logits = numerics.like(scale, cosines.dtype) * logits
  return masked_cross_entropy(logits, labels, elements)


_CLASS_RULES = {
  "cosines": value_checks.bounded(-1, 1),
  "labels": value_checks.class_index("cosines", axis_arg=None),
}


@loss(**_CLASS_RULES)
def arcface_loss(
  cosines: ArrayLike,
  labels: ArrayLike,
  *,
  scale: ArrayLike = 64.0,
  margin: ArrayLike = 0.5,
  easy_margin: bool = False,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""ArcFace: softmax cross-entropy with an additive angular margin.

  .. math::
    \ell = -\log \frac{e^{s\, \phi(\cos\theta_y)}}
                      {e^{s\, \phi(\cos\theta_y)}
                       + \sum_{c \ne y} e^{s \cos\theta_c}},
    \qquad
    \phi = \begin{cases} \cos(\theta + m) & \theta + m \le \pi \\
                         \cos\theta - m \sin m & \text{otherwise}
           \end{cases}

  ``cos(θ + m)`` is computed as ``cos θ cos m − sin θ sin m`` with
  ``sin θ = sqrt(1 − cos²θ)`` (a safe square root), so cosines of exactly ±1
  give finite gradients. The fallback keeps the target logit decreasing in
  ``θ`` where ``θ + m`` passes ``π``: insightface's ``th = cos(π − m)``,
  ``mm = sin(π − m)·m`` (like insightface's, it jumps at ``θ = π − m``:
  from ``−1`` to ``−cos m − m sin m``). With ``easy_margin`` the margin
  applies only where ``cos θ > 0`` and ``cos θ`` is used elsewhere.

  Args:
    cosines: ``[..., num_classes]`` cosines between embeddings and class
      centres, in [−1, 1].
    labels: ``[...]`` integer class labels.
    scale: the logit scale ``s > 0``.
    margin: the angular margin ``m`` in radians.
    easy_margin: the easy-margin variant.
    where: boolean mask of the cosines' shape (drops classes) or of the
      labels' shape (drops examples).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` per-example loss, or a scalar for ``"sum"``/``"mean"``.

  Matches insightface's ``ArcFace`` margin (and the common PyTorch
  ``ArcMarginProduct``) followed by ``cross_entropy``.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.arcface_loss(jnp.array([[1.0, 0.0], [-1.0, 0.0]]),
  ...                      jnp.array([0, 0]), scale=4.0)
  Array([0.02944913, 4.9658475 ], dtype=float32)

  References:
    Deng, Guo, Xue and Zafeiriou, `ArcFace: Additive Angular Margin Loss for
    Deep Face Recognition <https://arxiv.org/abs/1801.07698>`_, 2019.
  """
  cosines, labels, margin, elements, examples = _margin_inputs(
    cosines, labels, scale, margin, where
  )
  if checks.is_static_number(margin):
    cos_m: float | jax.Array = math.cos(margin)
    sin_m: float | jax.Array = math.sin(margin)
  else:
    cos_m, sin_m = jnp.cos(margin), jnp.sin(margin)

  def target(c: jax.Array) -> jax.Array:
    phi = c * cos_m - numerics.safe_sqrt(1 - jnp.square(c)) * sin_m
    if easy_margin:
      return jnp.where(c > 0, phi, c)
    # θ + m > π  ⇔  cos θ < cos(π − m) = −cos m.
    return jnp.where(c > -cos_m, phi, c - margin * sin_m)

  values = _margin_cross_entropy(cosines, labels, target, scale, elements)
  return reduce(values, reduction, weights=weights, where=examples)


@loss(**_CLASS_RULES)
def cosface_loss(
  cosines: ArrayLike,
  labels: ArrayLike,
  *,
  scale: ArrayLike = 64.0,
  margin: ArrayLike = 0.35,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""CosFace (large margin cosine loss): an additive margin on the cosine.

  .. math::
    \ell = -\log \frac{e^{s (\cos\theta_y - m)}}
                      {e^{s (\cos\theta_y - m)}
                       + \sum_{c \ne y} e^{s \cos\theta_c}}

  Args:
    cosines: ``[..., num_classes]`` cosines between embeddings and class
      centres, in [−1, 1].
    labels: ``[...]`` integer class labels.
    scale: the logit scale ``s > 0``.
    margin: the cosine margin ``m``.
    where: boolean mask of the cosines' shape (drops classes) or of the
      labels' shape (drops examples).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` per-example loss, or a scalar for ``"sum"``/``"mean"``.

  Matches insightface's ``CosFace`` margin followed by ``cross_entropy``.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.cosface_loss(jnp.array([[1.0, 0.0]]), jnp.array([0]), scale=4.0)
  Array([0.0716447], dtype=float32)

  References:
    Wang, Wang, Zhou, Ji, Gong, Zhou, Li and Liu, `CosFace: Large Margin
    Cosine Loss for Deep Face Recognition
    <https://arxiv.org/abs/1801.09414>`_, 2018.
  """
  cosines, labels, margin, elements, examples = _margin_inputs(
    cosines, labels, scale, margin, where
  )
  values = _margin_cross_entropy(
    cosines, labels, lambda c: c - margin, scale, elements
  )
  return reduce(values, reduction, weights=weights, where=examples)


# ---- issue 22: sub-center ArcFace (pytorch-metric-learning) -----------------


@loss(
  cosines=value_checks.bounded(-1, 1),
  labels=value_checks.class_index("cosines", axis_arg=None, default_axis=-2),
)
def sub_center_arcface_loss(
  cosines: ArrayLike,
  labels: ArrayLike,
  *,
  scale: ArrayLike = 64.0,
  margin: ArrayLike = 0.5,
  easy_margin: bool = False,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Sub-center ArcFace: ArcFace on each class's closest sub-centre.

  .. math::
    \cos\theta_c = \max_k \cos\theta_{ck}, \qquad
    \ell = \mathrm{arcface}(\cos\theta, y;\ s, m)

  :func:`jaxloss.arcface_loss` (its margin, fallback and ``easy_margin``) on
  the largest cosine of each class's ``K`` sub-centres. The gradient reaches
  only the chosen sub-centre of each class.

  Args:
    cosines: ``[batch, num_classes, sub_centers]`` cosines between the
      embeddings and every sub-centre (``jaxloss.nn.SubCenterArcFace``
      computes them from learned sub-centres), in [−1, 1].
    labels: ``[batch]`` integer class labels.
    scale: the logit scale ``s > 0``.
    margin: the angular margin ``m`` in radians.
    easy_margin: ArcFace's easy-margin variant.
    where: optional ``[batch]`` mask (drops examples) or ``[batch,
      num_classes]`` mask (drops classes).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[batch]`` per-example loss, or a scalar for ``"sum"``/``"mean"``.

  Matches ``pytorch_metric_learning.losses.SubCenterArcFaceLoss`` (``scale=64``,
  ``sub_centers=3``, ``MeanReducer``: its value is ``reduction="mean"``)
  with ``margin`` in radians: its default ``margin=28.6`` degrees is
  ``0.4992`` radian (``math.radians(28.6)``), where jaxloss keeps
  :func:`jaxloss.arcface_loss`'s ``0.5``. Its weight ``W`` is ``[dim,
  num_classes · sub_centers]``, class-major. Its ``get_outliers`` (dropping
  examples far from their class's dominant sub-centre) is not a loss and is
  not provided.

  >>> import jax.numpy as jnp, jaxloss
  >>> cosines = jnp.array([[[0.2, 0.9], [0.1, -0.3]]])  # 2 classes, 2 each
  >>> jaxloss.sub_center_arcface_loss(cosines, jnp.array([0]), scale=4.0)
  Array([0.13637432], dtype=float32)

  References:
    Deng, Guo, Liu, Zafeiriou and Zafeiriou, `Sub-center ArcFace: Boosting
    Face Recognition by Large-Scale Noisy Web Faces
    <https://doi.org/10.1007/978-3-030-58621-8_43>`_, 2020.
  """
  cosines = checks.as_float("cosines", cosines)
  labels = checks.as_labels("labels", labels)
  checks.rank("cosines", cosines, 3)
  checks.labels_for(labels, cosines, (1, 2), "cosines")
  return arcface_loss(
    jnp.max(cosines, axis=-1),
    labels,
    scale=scale,
    margin=margin,
    easy_margin=easy_margin,
    where=where,
    weights=weights,
    reduction=reduction,
  )


__all__ = ["arcface_loss", "cosface_loss", "sub_center_arcface_loss"]
