"""Distances between embeddings, shared by the metric-learning losses."""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp

from jaxloss._core import numerics

Distance = Literal["euclidean", "squared_euclidean", "cosine"]
DISTANCES: tuple[Distance, ...] = ("euclidean", "squared_euclidean", "cosine")
VECTORS = "vectors along the last axis"  # what `checks.min_rank` says


def pairwise_distances(x: jax.Array, distance: str) -> jax.Array:
  """``[n, n]`` distances between the rows of ``x`` (``[n, dim]``).

  Euclidean distances use the Gram form ``‖x_i‖² + ‖x_j‖² − 2 x_i·x_j`` in full
  matmul precision, clamped at 0, with an exact 0 diagonal and a safe square
  root (finite gradients for identical rows), of ``x / m`` with ``m = max
  |x|``, then scaled back by ``m`` (``m²``): a distance never overflows where
  it is representable. Cosine distance is ``1 − cos(x_i, x_j)`` of the rows
  normalised by :func:`~jaxloss._core.numerics.l2_normalize`; a zero vector
  has cosine 0 with everything.
  """
  eye = jnp.eye(x.shape[0], dtype=bool)
  if distance == "cosine":
    unit = numerics.l2_normalize(x)
    distances = 1 - jnp.matmul(
      unit, unit.T, precision=jax.lax.Precision.HIGHEST
    )
    return jnp.where(eye, 0, jnp.maximum(distances, 0))
  peak = numerics.magnitude_scale(x, axis=None)[0, 0]
  x = x / peak
  squared_norms = jnp.sum(jnp.square(x), axis=-1)
  gram = jnp.matmul(x, x.T, precision=jax.lax.Precision.HIGHEST)
  distances = squared_norms[:, None] + squared_norms[None, :] - 2 * gram
  distances = jnp.where(eye, 0, jnp.maximum(distances, 0))
  if distance == "euclidean":
    return peak * numerics.safe_sqrt(distances)
  return jnp.square(peak * numerics.safe_sqrt(distances))


def squared_distance(
  x: jax.Array, y: jax.Array, elements: jax.Array | None
) -> jax.Array:
  """``Σ (x − y)²`` over the last axis, over the unmasked features, as
  ``‖x − y‖²`` of an overflow-safe norm (finite wherever it is
  representable)."""
  difference = x - y
  if elements is not None:
    difference = jnp.where(elements, difference, 0)
  return jnp.square(numerics.safe_norm(difference, axis=-1))
