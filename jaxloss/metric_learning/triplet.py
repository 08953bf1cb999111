"""Losses on given triplets (anchor, positive, negative): the triplet margin
loss and the angular loss."""

from __future__ import annotations

import math
from typing import cast

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce, split_where
from jaxloss.metric_learning._distances import VECTORS, squared_distance


@loss
def triplet_margin_loss(
  anchors: ArrayLike,
  positives: ArrayLike,
  negatives: ArrayLike,
  axis: int = -1,
  norm_degree: ArrayLike = 2,
  margin: ArrayLike = 1.0,
  eps: ArrayLike = 1e-6,
  *,
  swap: bool = False,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Triplet margin loss with ``L_p`` distances.

  .. math::
    \ell = \big[\, d(a, p) - d(a, n) + m \big]_+, \qquad
    d(x, y) = \Big(\sum_k |x_k - y_k|^p + \varepsilon\Big)^{1/p}

  With ``swap=True`` the negative distance is ``min(d(a, n), d(p, n))``.

  Args:
    anchors: ``[..., dim, ...]`` floating anchor embeddings.
    positives: positive embeddings, same shape.
    negatives: negative embeddings, same shape.
    axis: the feature axis (an int).
    norm_degree: the degree ``p > 0`` of the norm.
    margin: the margin ``m``.
    eps: ``ε``, added to the sum of powers (as optax does).
    swap: use the distance swap of Balntas et al.
    where: boolean mask of the inputs' shape (drops features from the
      distances) or of the per-example shape (drops examples).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    The inputs' shape without ``axis``, or a scalar for ``"sum"``/``"mean"``.

  Matches ``optax.losses.triplet_margin_loss`` for even ``norm_degree`` (optax
  raises ``a − p`` to odd powers without an absolute value; jaxloss uses
  ``|a − p|^p``). Matches ``torch.nn.functional.triplet_margin_loss``, ``swap``
  included, with ``eps=0``; for ``eps > 0`` torch adds ``eps`` to the
  difference, ``‖a − p + ε‖_p``, and the two differ by ``O(ε)``.

  >>> import jax.numpy as jnp, jaxloss
  >>> anchors = jnp.array([[0.0, 0.0], [1.0, 1.0]])
  >>> positives = jnp.array([[0.1, 0.1], [1.1, 1.1]])
  >>> negatives = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  >>> jaxloss.triplet_margin_loss(anchors, positives, negatives)
  Array([0.14142442, 0.14142442], dtype=float32)

  References:
    Balntas, Riba, Ponsa and Mikolajczyk, `Learning local feature descriptors
    with triplets and shallow convolutional neural networks
    <https://bmva-archive.org.uk/bmvc/2016/papers/paper119/>`_, 2016.
  """
  anchors, positives, negatives = checks.same_shape_floats(
    anchors=anchors, positives=positives, negatives=negatives
  )
  axis = checks.canonical_axis(axis, anchors.ndim)
  checks.positive("norm_degree", norm_degree)
  checks.nonnegative("margin", margin)
  checks.nonnegative("eps", eps)
  elements, examples = split_where(where, anchors.shape, axis)
  p, margin, eps = (
    numerics.like(v, anchors.dtype) for v in (norm_degree, margin, eps)
  )

  def distance(x: jax.Array, y: jax.Array) -> jax.Array:
    powers = numerics.safe_pow(jnp.abs(x - y), p)
    if elements is not None:
      powers = jnp.where(elements, powers, 0)
    return numerics.safe_pow(jnp.sum(powers, axis=axis) + eps, 1 / p)

  negative = distance(anchors, negatives)
  if swap:
    negative = jnp.minimum(negative, distance(positives, negatives))
  values = jax.nn.relu(distance(anchors, positives) - negative + margin)
  return reduce(values, reduction, weights=weights, where=examples)


@loss
def angular_loss(
  anchors: ArrayLike,
  positives: ArrayLike,
  negatives: ArrayLike,
  *,
  alpha_degrees: ArrayLike = 45.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Angular loss on triplets: bounds the angle at the negative.

  .. math::
    \ell = \big[\, \|x_a - x_p\|^2 - 4 \tan^2\alpha\, \|x_n - x_c\|^2 \big]_+,
    \qquad x_c = (x_a + x_p) / 2

  Args:
    anchors: ``[..., dim]`` floating anchor embeddings.
    positives: positive embeddings, same shape.
    negatives: negative embeddings, same shape.
    alpha_degrees: the angle bound ``α`` in degrees, in (0, 90).
    where: boolean mask of the inputs' shape (drops features) or of the
      per-example shape (drops triplets).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` per-triplet loss, or a scalar for ``"sum"``/``"mean"``.

  Matches the triplet (hinge) form of Wang et al.; their N-pair form, which
  ``pytorch_metric_learning.losses.AngularLoss`` implements, is not this one.

  >>> import jax.numpy as jnp, jaxloss
  >>> a = jnp.array([[1.0, 0.0]]); p = jnp.array([[-1.0, 0.0]])
  >>> jaxloss.angular_loss(a, p, jnp.array([[0.0, 0.5]]))
  Array([3.], dtype=float32)

  References:
    Wang, Zhou, Wen, Liu and Lin, `Deep Metric Learning with Angular Loss
    <https://arxiv.org/abs/1708.01682>`_, 2017.
  """
  anchors, positives, negatives = checks.same_shape_floats(
    anchors=anchors, positives=positives, negatives=negatives
  )
  checks.min_rank("anchors", anchors, 1, VECTORS)
  tan_squared: float | jax.Array
  if checks.is_static_number(alpha_degrees):
    alpha = cast(float, alpha_degrees)  # a Python (or NumPy) real number
    if not 0 < alpha < 90:
      raise checks.fail(f"`alpha_degrees` must lie in (0, 90), got {alpha}.")
    tan_squared = math.tan(math.radians(alpha)) ** 2
  else:
    radians = jnp.deg2rad(numerics.like(alpha_degrees, anchors.dtype))
    tan_squared = jnp.square(jnp.tan(radians))
  elements, examples = split_where(where, anchors.shape, -1)
  center = (anchors + positives) / 2
  values = jax.nn.relu(
    squared_distance(anchors, positives, elements)
    - 4 * tan_squared * squared_distance(negatives, center, elements)
  )
  return reduce(values, reduction, weights=weights, where=examples)


__all__ = ["angular_loss", "triplet_margin_loss"]
