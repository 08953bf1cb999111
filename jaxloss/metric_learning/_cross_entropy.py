"""The masked softmax cross-entropy of N-pair, Proxy-NCA, ArcFace and
CosFace."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxloss._core import labels as labels_lib
from jaxloss._core import numerics


def masked_cross_entropy(
  logits: jax.Array, labels: jax.Array, element_mask: jax.Array | None
) -> jax.Array:
  """``−log softmax(logits)[label]`` over the unmasked entries of the last
  axis; 0, with a finite gradient, where the label's entry is masked.

  Computed as ``log(1 + Σ_{k≠y} exp(z_k − z_y))``: the label's own term is
  an exact 1, so a confident prediction (a loss far below the logits' size)
  keeps its relative precision however the compiler rounds ``z`` (``lse(z) −
  z_y`` rounds at the size of ``z``).

  A label outside ``[0, num_classes)`` gives NaN (``jaxloss._core.labels``,
  the library's one rule); masked out by the caller's ``where`` it is
  dropped by :func:`jaxloss.reduce`.
  """
  num_classes = logits.shape[-1]

  def take(x: jax.Array) -> jax.Array:
    return labels_lib.pick(x, labels)[..., None]

  others = ~jax.nn.one_hot(labels, num_classes, dtype=bool)
  if element_mask is not None:
    others = others & element_mask
  lse = numerics.masked_logsumexp(logits - take(logits), others, axis=-1)
  values = jnp.where(jnp.any(others, axis=-1), jnp.logaddexp(0, lse), 0)
  if element_mask is not None:
    values = jnp.where(take(element_mask)[..., 0], values, 0)
  return labels_lib.nan_unless_valid(values, labels, num_classes)
