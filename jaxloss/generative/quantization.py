"""Vector quantisation: VQ-VAE's codebook and commitment loss and the
straight-through estimator that passes the decoder's gradient to the encoder.

Layout: axis 0 is the batch; every other axis is data (``[batch, ...,
dim]`` encoder outputs and their nearest codebook vectors, already looked
up: the nearest-neighbour search and the codebook are the model's).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce


@loss
def vector_quantization_loss(
  inputs: ArrayLike,
  quantized: ArrayLike,
  *,
  commitment_cost: ArrayLike = 0.25,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""VQ-VAE's codebook loss plus β times its commitment loss, per example.

  .. math::
    \ell_i = \operatorname{mean}_j
      \big(\mathrm{sg}(z_{e,ij}) - e_{ij}\big)^2
      + \beta \operatorname{mean}_j \big(z_{e,ij} - \mathrm{sg}(e_{ij})\big)^2

  with :math:`z_e` the encoder's output (``inputs``), :math:`e` the codebook
  vectors it was quantised to (``quantized``), :math:`\mathrm{sg}` the
  stop-gradient and the means over every data axis of an example. The value
  is :math:`(1 + \beta)` times the mean squared error; the gradients are
  what make it VQ-VAE's: ``quantized`` (the codebook) receives only the
  codebook term's, :math:`2 (e - z_e) / n`, and ``inputs`` (the encoder)
  only the commitment term's, :math:`2 \beta (z_e - e) / n`. Pass the
  decoder :func:`straight_through` ``(inputs, quantized)``.

  Args:
    inputs: ``[batch, ...]`` floating encoder outputs :math:`z_e`.
    quantized: ``[batch, ...]`` their codebook vectors :math:`e` (the
      codebook lookup, not the straight-through value), same shape.
    commitment_cost: :math:`\beta \ge 0` (may be traced); 0.25 is the
      paper's value (haiku's and sonnet's modules take it without a
      default).
    where, weights, reduction: see :func:`jaxloss.reduce` (a ``[batch]``
      mask drops examples); default ``"none"``.

  Returns:
    ``[batch]`` per-example loss, or a scalar for ``"sum"``/``"mean"``.

  Matches haiku's and sonnet's ``VectorQuantizer`` loss, ``q_latent_loss +
  commitment_cost * e_latent_loss``, which is one mean over every element
  of the batch: every example has the same number of elements, so the mean
  of the per-example means (``reduction="mean"``) is that mean.
  ``VectorQuantizerEMA``'s loss is the commitment term alone (its codebook
  is an exponential moving average, not trained by gradient), so it is not
  this function.

  >>> import jax.numpy as jnp, jaxloss
  >>> z = jnp.array([[0.0, 1.0], [2.0, 2.0]])
  >>> e = jnp.array([[0.0, 0.0], [2.0, 3.0]])
  >>> print(jaxloss.vector_quantization_loss(z, e))
  [0.625 0.625]

  References:
    van den Oord, Vinyals and Kavukcuoglu, `Neural Discrete Representation
    Learning <https://arxiv.org/abs/1711.00937>`_, 2017 (equation 3).
  """
  checks.nonnegative("commitment_cost", commitment_cost)
  inputs, quantized = checks.same_shape_floats(
    inputs=inputs, quantized=quantized
  )
  checks.min_rank("inputs", inputs, 1, "a batch axis")
  dtype = jnp.result_type(inputs, quantized)
  inputs, quantized = inputs.astype(dtype), quantized.astype(dtype)
  codebook = jnp.square(jax.lax.stop_gradient(inputs) - quantized)
  commitment = jnp.square(inputs - jax.lax.stop_gradient(quantized))
  values = numerics.example_mean(codebook) + numerics.like(
    commitment_cost, dtype
  ) * numerics.example_mean(commitment)
  return reduce(values, reduction, weights=weights, where=where)


@jax.custom_jvp
def _straight_through(inputs: jax.Array, quantized: jax.Array) -> jax.Array:
  return quantized


@_straight_through.defjvp
def _straight_through_jvp(primals, tangents):
  _, quantized = primals
  d_inputs, _ = tangents
  return quantized, d_inputs


def straight_through(inputs: ArrayLike, quantized: ArrayLike) -> jax.Array:
  r"""The straight-through estimator: the value of ``quantized``, the
  gradient of ``inputs``.

  .. math:: z_e + \mathrm{sg}(e - z_e)

  The decoder reads the codebook vectors while its gradient flows to the
  encoder unchanged (identity Jacobian with respect to ``inputs``, zero with
  respect to ``quantized``). Matches haiku's and sonnet's ``inputs +
  stop_gradient(quantized - inputs)`` (the same gradients); the value is
  ``quantized`` exactly (a custom JVP), where theirs can differ from it by
  a rounding error.

  Args:
    inputs: ``[...]`` floating encoder outputs :math:`z_e`.
    quantized: ``[...]`` their codebook vectors :math:`e`, same shape.

  Returns:
    ``[...]``: ``quantized``, in the two inputs' promoted dtype (not
    upcast: this is an activation, not a loss).

  >>> import jax, jax.numpy as jnp, jaxloss
  >>> z, e = jnp.array([0.2, 0.9]), jnp.array([0.0, 1.0])
  >>> print(jaxloss.straight_through(z, e))
  [0. 1.]
  >>> print(jax.grad(lambda z: jaxloss.straight_through(z, e) @ e)(z))
  [0. 1.]

  References:
    van den Oord, Vinyals and Kavukcuoglu, `Neural Discrete Representation
    Learning <https://arxiv.org/abs/1711.00937>`_, 2017;
    Bengio, Léonard and Courville, `Estimating or Propagating Gradients
    Through Stochastic Neurons for Conditional Computation
    <https://arxiv.org/abs/1308.3432>`_, 2013.
  """
  inputs, quantized = jnp.asarray(inputs), jnp.asarray(quantized)
  for arg, x in (("inputs", inputs), ("quantized", quantized)):
    if not jnp.issubdtype(x.dtype, jnp.floating):
      raise checks.fail(
        f"straight_through: argument `{arg}` must be a floating array, "
        f"got dtype {x.dtype} with shape {x.shape}.",
        TypeError,
      )
  if inputs.shape != quantized.shape:
    raise checks.fail(
      f"straight_through: `inputs` {inputs.shape} and `quantized` "
      f"{quantized.shape} must have the same shape."
    )
  dtype = jnp.result_type(inputs, quantized)
  return _straight_through(inputs.astype(dtype), quantized.astype(dtype))


__all__ = ["straight_through", "vector_quantization_loss"]
