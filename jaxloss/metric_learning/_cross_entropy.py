"""The masked softmax cross-entropy of N-pair, Proxy-NCA, ArcFace and
CosFace."""

from __future__ import annotations

import jax
import jax.numpy as jnp

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
  """

  def take(x: jax.Array) -> jax.Array:
    return jnp.take_along_axis(x, labels[..., None], axis=-1)

  others = ~jax.nn.one_hot(labels, logits.shape[-1], dtype=bool)
  if element_mask is not None:
    others = others & element_mask
  lse = numerics.masked_logsumexp(logits - take(logits), others, axis=-1)
  values = jnp.where(jnp.any(others, axis=-1), jnp.logaddexp(0, lse), 0)
  if element_mask is None:
    return values
  return jnp.where(take(element_mask)[..., 0], values, 0)
