"""Regression losses between vectors: cosine similarity and distance, and
torch's cosine and hinge embedding losses."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics, value_checks
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce
from jaxloss.regression._inputs import Axis, pair, reduced_axes

__all__ = [
  "cosine_distance",
  "cosine_embedding_loss",
  "cosine_similarity",
  "hinge_embedding_loss",
]

_TORCH_COSINE_EPS = 1e-12  # torch's cosine_embedding_loss adds it to ‖x‖².


def _cosine_sums(
  a: jax.Array, b: jax.Array, axis: Axis, where: ArrayLike | None
) -> tuple[
  jax.Array, jax.Array, jax.Array, jax.Array, jax.Array, jax.Array | None
]:
  """``(â·b̂, ‖â‖², ‖b̂‖², s_a, s_b, example mask)`` over ``axis``, masked by
  ``where``, where ``â = a / s_a`` with ``s_a`` the largest ``|a|`` of each
  vector (:func:`_unit_scale`; ``s`` has the per-example shape)."""
  axes, elements, examples = reduced_axes(a, axis, where)
  if elements is not None:
    a, b = jnp.where(elements, a, 0), jnp.where(elements, b, 0)
  scale_a, scale_b = (
    numerics.magnitude_scale(a, axes),
    numerics.magnitude_scale(b, axes),
  )
  a, b = a / scale_a, b / scale_b
  dot, norm_a, norm_b = (
    jnp.sum(x * y, axis=axes) for x, y in ((a, b), (a, a), (b, b))
  )
  squeeze = functools.partial(jnp.squeeze, axis=axes)
  return dot, norm_a, norm_b, squeeze(scale_a), squeeze(scale_b), examples


def _inverse_sqrt(x: jax.Array) -> jax.Array:
  """``1 / sqrt(x)`` for ``x > 0``; 0, with gradient 0, at ``x = 0``."""
  positive = x > 0
  return jnp.where(positive, jax.lax.rsqrt(jnp.where(positive, x, 1)), 0)


def _optax_cosine(
  predictions: ArrayLike,
  targets: ArrayLike,
  epsilon: ArrayLike,
  axis: Axis,
  where: ArrayLike | None,
) -> tuple[jax.Array, jax.Array | None]:
  """optax's cosine similarity (squared norms floored at ``epsilon``), 0 for a
  zero vector instead of NaN; and the example mask. Computed on the vectors
  divided by their largest magnitude (``max(‖a‖², ε) = s²·max(‖â‖², ε/s²)``),
  so that no squared norm overflows."""
  predictions, targets = checks.same_shape_floats(
    predictions=predictions, targets=targets
  )
  checks.nonnegative("epsilon", epsilon)
  dot, norm_p, norm_t, scale_p, scale_t, examples = _cosine_sums(
    predictions, targets, axis, where
  )
  epsilon = jnp.asarray(epsilon, dot.dtype)

  def floor(scale: jax.Array) -> jax.Array:  # ε/s², 0 for ε = 0 (s² may be 0)
    return jnp.where(epsilon > 0, epsilon / jnp.square(scale), 0)

  return dot * (
    _inverse_sqrt(jnp.maximum(norm_p, floor(scale_p)))
    * _inverse_sqrt(jnp.maximum(norm_t, floor(scale_t)))
  ), examples


@loss
def cosine_similarity(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  epsilon: ArrayLike = 0.0,
  axis: Axis = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Cosine of the angle between predictions and targets.

  .. math:: \ell = \hat y \cdot y \,\big/ \sqrt{\max(\|\hat y\|^2, \epsilon)
            \max(\|y\|^2, \epsilon)}

  Args:
    predictions: ``[..., dim]`` floating vectors.
    targets: ``[..., dim]`` floating vectors, same shape.
    epsilon: floor of each squared norm (optax's ``epsilon``), >= 0.
    axis: the vector axis: an int, a tuple of ints, or ``None`` for all axes.
    where: boolean mask of the input's shape (drops elements of ``axis``, as
      in optax) or of at most the per-example rank (drops examples).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` per-example similarities (``axis`` removed); a scalar for
    ``"sum"``/``"mean"``.

  Matches ``optax.losses.cosine_similarity``, except that a zero vector gives
  0 with gradient 0 (optax: NaN), and a mask of lower rank drops examples
  (optax broadcasts it against the input from the right).

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.cosine_similarity(jnp.array([[1.0, 0.0], [1.0, 0.0]]),
  ...                           jnp.array([[0.0, 2.0], [-3.0, 0.0]]))
  Array([ 0., -1.], dtype=float32)

  References:
    Wikipedia contributors, `Cosine similarity
    <https://en.wikipedia.org/wiki/Cosine_similarity>`_, 2024.
  """
  values, examples = _optax_cosine(predictions, targets, epsilon, axis, where)
  return reduce(values, reduction, weights=weights, where=examples)


@loss
def cosine_distance(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  epsilon: ArrayLike = 0.0,
  axis: Axis = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""One minus the cosine similarity of predictions and targets.

  .. math:: \ell = 1 - \cos(\hat y, y)

  Args:
    predictions: ``[..., dim]`` floating vectors.
    targets: ``[..., dim]`` floating vectors, same shape.
    epsilon: floor of each squared norm (optax's ``epsilon``), >= 0.
    axis: the vector axis: an int, a tuple of ints, or ``None`` for all axes.
    where: boolean mask of the input's shape (drops elements of ``axis``, as
      in optax) or of at most the per-example rank (drops examples).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` per-example distances (``axis`` removed); a scalar for
    ``"sum"``/``"mean"``.

  Matches ``optax.losses.cosine_distance``, with the differences of
  :func:`cosine_similarity`: a zero vector has distance 1 (optax: NaN), and
  an example with every element masked has value 0 (optax: 1).

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.cosine_distance(jnp.array([[1.0, 0.0], [1.0, 0.0]]),
  ...                         jnp.array([[0.0, 2.0], [-3.0, 0.0]]))
  Array([1., 2.], dtype=float32)

  References:
    Wikipedia contributors, `Cosine distance
    <https://en.wikipedia.org/wiki/Cosine_similarity#Cosine_distance>`_, 2024.
  """
  cosines, examples = _optax_cosine(predictions, targets, epsilon, axis, where)
  return reduce(1 - cosines, reduction, weights=weights, where=examples)


@loss(targets=value_checks.signs)
def cosine_embedding_loss(
  x1: ArrayLike,
  x2: ArrayLike,
  targets: ArrayLike,
  *,
  margin: ArrayLike = 0.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Cosine embedding loss: pulls pairs with target 1 together, −1 apart.

  .. math::
    \ell = \begin{cases} 1 - c & t = 1 \\ \max(0, c - m) & t = -1 \end{cases},
    \quad c = \frac{x_1 \cdot x_2}
      {\sqrt{(\|x_1\|^2 + 10^{-12})(\|x_2\|^2 + 10^{-12})}}

  The :math:`10^{-12}` is torch's: a zero vector has cosine 0 and finite
  gradients. A target other than ±1 gives 0, as in torch.

  Args:
    x1: ``[..., dim]`` floating embeddings.
    x2: ``[..., dim]`` floating embeddings, same shape.
    targets: ``[...]`` 1 (similar) or −1 (dissimilar), int or float.
    margin: :math:`m \in [-1, 1]` (may be traced).
    where: boolean mask of the embeddings' shape (drops features) or of at
      most the targets' rank (drops pairs).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` per-pair loss; a scalar for ``"sum"``/``"mean"``.

  Matches ``torch.nn.functional.cosine_embedding_loss``.

  >>> import jax.numpy as jnp, jaxloss
  >>> x1 = jnp.array([[1.0, 0.0], [1.0, 0.0]])
  >>> x2 = jnp.array([[0.0, 2.0], [3.0, 0.0]])
  >>> jaxloss.cosine_embedding_loss(x1, x2, jnp.array([1, -1]), margin=0.5)
  Array([1. , 0.5], dtype=float32)

  References:
    PyTorch contributors, `torch.nn.CosineEmbeddingLoss
    <https://pytorch.org/docs/stable/generated/torch.nn.CosineEmbeddingLoss.html>`_,
    2024.
  """
  x1, x2 = checks.same_shape_floats(x1=x1, x2=x2)
  checks.in_range("margin", margin, -1, 1)
  dot, norm1, norm2, scale1, scale2, examples = _cosine_sums(x1, x2, -1, where)
  targets = checks.as_targets("targets", targets, x1)
  checks.shape(
    "targets", targets, x1.shape[:-1], "the shape of `x1` without its last axis"
  )
  # torch's dot / sqrt((‖x1‖² + eps)(‖x2‖² + eps)) on the rescaled vectors:
  # ‖x‖² + eps = s²·(‖x̂‖² + eps/s²); no product of squared norms overflows.
  cosines = (
    dot
    * jax.lax.rsqrt(norm1 + _TORCH_COSINE_EPS / jnp.square(scale1))
    * jax.lax.rsqrt(norm2 + _TORCH_COSINE_EPS / jnp.square(scale2))
  )
  values = jnp.where(targets == 1, 1 - cosines, 0) + jnp.where(
    targets == -1, jnp.maximum(cosines - margin, 0), 0
  )
  return reduce(values, reduction, weights=weights, where=examples)


@loss(targets=value_checks.signs)
def hinge_embedding_loss(
  inputs: ArrayLike,
  targets: ArrayLike,
  *,
  margin: ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Hinge embedding loss on distances: ``x`` for target 1, hinge for −1.

  .. math::
    \ell = \begin{cases} x & t = 1 \\ \max(0, m - x) & t = -1 \end{cases}

  As in torch, a target that is neither 1 nor −1 gets both terms.

  Args:
    inputs: ``[...]`` floating inputs :math:`x` (typically distances).
    targets: ``[...]`` 1 or −1, same shape, int or float.
    margin: :math:`m \ge 0` (may be traced).
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` elementwise loss; a scalar for ``"sum"``/``"mean"``.

  Matches ``torch.nn.functional.hinge_embedding_loss``.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.hinge_embedding_loss(jnp.array([0.5, 0.25, 2.0]),
  ...                              jnp.array([1, -1, -1]))
  Array([0.5 , 0.75, 0.  ], dtype=float32)

  References:
    Hadsell, Chopra and LeCun, `Dimensionality Reduction by Learning an
    Invariant Mapping <https://doi.org/10.1109/CVPR.2006.100>`_, 2006.
  """
  checks.nonnegative("margin", margin)
  inputs, targets = pair(inputs, targets, arg="inputs")
  values = jnp.where(
    targets != 1, jnp.maximum(margin - inputs, 0), 0
  ) + jnp.where(targets != -1, inputs, 0)
  return reduce(values, reduction, weights=weights, where=where)
