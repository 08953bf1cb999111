"""Losses on given triplets (anchor, positive, negative): the triplet margin
loss and the angular loss."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, cast

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
  distance: Literal["cosine"]
  | Callable[[jax.Array, jax.Array], jax.Array]
  | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Triplet margin loss with ``L_p`` distances, or any distance.

  .. math::
    \ell = \big[\, d(a, p) - d(a, n) + m \big]_+, \qquad
    d(x, y) = \Big(\sum_k |x_k - y_k|^p + \varepsilon\Big)^{1/p}

  With ``swap=True`` the negative distance is ``min(d(a, n), d(p, n))``.
  The ``L_p`` distance is computed as ``s (Σ |(x − y) / s|^p + ε / s^p)^{1/p}``
  with ``s = max(1, max_k |x_k − y_k|)``: exact, and finite wherever it is
  representable (``Σ |x − y|^p`` itself would overflow float32 from
  ``|x − y| ≈ 1.8e19`` for ``p = 2``).

  Args:
    anchors: ``[..., dim, ...]`` floating anchor embeddings.
    positives: positive embeddings, same shape.
    negatives: negative embeddings, same shape.
    axis: the feature axis (an int).
    norm_degree: the degree ``p > 0`` of the norm.
    margin: the margin ``m``.
    eps: ``ε``, added to the sum of powers (as optax does).
    swap: use the distance swap of Balntas et al.
    distance: ``None`` (the ``L_p`` distance above), ``"cosine"`` (``1 −
      cos(x, y)`` along ``axis``, torch's ``cosine_similarity`` with its
      ``eps = 1e-8``), or a callable ``(x, y) -> distances`` that takes two
      arrays of the inputs' shape and returns the per-example distances (the
      inputs' shape without ``axis``): torch's
      ``TripletMarginWithDistanceLoss(distance_function=...)``. With a
      ``distance``, ``norm_degree`` and ``eps`` are not used, and ``where``
      must be per-example (a feature mask is the ``L_p`` distance's).
    where: boolean mask of the inputs' shape (drops features from the
      distances) or of the per-example shape (drops examples).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    The inputs' shape without ``axis``, or a scalar for ``"sum"``/``"mean"``.

  Matches ``optax.losses.triplet_margin_loss`` for even ``norm_degree`` (optax
  raises ``a − p`` to odd powers without an absolute value; jaxloss uses
  ``|a − p|^p``). Matches ``torch.nn.functional.triplet_margin_loss``, ``swap``
  included, with ``eps=0``; for ``eps > 0`` torch adds ``eps`` to the
  difference, ``‖a − p + ε‖_p``, and the two differ by ``O(ε)`` (jaxloss
  keeps optax's rule: it is optax's drop-in, positional signature included).
  With ``distance``, matches ``torch.nn.TripletMarginWithDistanceLoss``
  (``distance_function``, ``margin``, ``swap``; ``"cosine"`` is
  ``distance_function=lambda x, y: 1 - F.cosine_similarity(x, y)``).

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
  example_shape = anchors.shape[:axis] + anchors.shape[axis + 1 :]

  def lp_distance(x: jax.Array, y: jax.Array) -> jax.Array:
    difference = jnp.abs(x - y)
    if elements is not None:
      difference = jnp.where(elements, difference, 0)
    scale = jnp.max(difference, axis=axis, keepdims=True, initial=0)
    scale = jax.lax.stop_gradient(
      jnp.where(jnp.isfinite(scale), jnp.maximum(scale, 1), 1)
    )
    powers = numerics.safe_pow(difference / scale, p)
    small_eps = eps * numerics.safe_pow(1 / jnp.squeeze(scale, axis), p)
    total = jnp.sum(powers, axis=axis) + small_eps
    return jnp.squeeze(scale, axis) * numerics.safe_pow(total, 1 / p)

  def cosine_distance(x: jax.Array, y: jax.Array) -> jax.Array:
    # torch's cosine_similarity: x·y / (max(‖x‖, ε) max(‖y‖, ε)), ε = 1e-8.
    unit_x = numerics.l2_normalize(x, axis=axis, eps=1e-8)
    unit_y = numerics.l2_normalize(y, axis=axis, eps=1e-8)
    return 1 - jnp.sum(unit_x * unit_y, axis=axis)

  def given_distance(x: jax.Array, y: jax.Array) -> jax.Array:
    assert callable(distance)
    d = jnp.asarray(distance(x, y))
    if d.shape != example_shape:
      raise checks.fail(
        f"`distance` must return the per-example distances of shape "
        f"{example_shape}, got shape {d.shape}."
      )
    return d

  measure: Callable[[jax.Array, jax.Array], jax.Array]
  if distance is None:
    measure = lp_distance
  else:
    if isinstance(distance, str):
      checks.option("distance", distance, ("cosine",))
      measure = cosine_distance
    elif callable(distance):
      measure = given_distance
    else:
      raise checks.fail(
        f'`distance` must be None, "cosine" or a callable, got {distance!r}.'
      )
    if where is not None and jnp.ndim(where) == anchors.ndim:
      raise checks.fail(
        "`where` must be per-example with a `distance` (a feature mask "
        f"applies to the L_p distance), got shape {jnp.shape(where)}."
      )
  negative = measure(anchors, negatives)
  if swap:
    negative = jnp.minimum(negative, measure(positives, negatives))
  values = jax.nn.relu(measure(anchors, positives) - negative + margin)
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
  The loss is a difference of squared distances: in float32 inputs are
  supported up to magnitude 1e15 (the checked range; the squares overflow
  from about 1.8e19).

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
