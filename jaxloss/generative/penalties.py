"""Gradient penalties on a GAN's critic: WGAN-GP and R1.

Both take the critic as a function ``critic_fn(x) -> [batch]`` (or
``[batch, 1]``) of a batch of inputs, differentiate the sum of its outputs with
respect to the inputs, and return one penalty per example. The critic must
treat examples independently (no batch normalisation), so that this gradient
is each example's own. Close the critic's parameters into ``critic_fn``
(``lambda x: model.apply(params, x)`` or an ``nnx.Module``) and differentiate
the penalty with respect to them as usual: the penalty is a second-order
quantity and JAX differentiates through the inner gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce


def _input_gradients(
  critic_fn: Callable[..., ArrayLike], x: jax.Array
) -> jax.Array:
  """``∇_x Σ_i critic_fn(x)_i``: each example's gradient, ``x``'s shape.

  Not jitted: ``critic_fn`` is usually a new closure at every call, so a jit
  keyed on it would compile every time.
  """
  if not callable(critic_fn):
    raise checks.fail(
      f"`critic_fn` must be callable, got {type(critic_fn).__name__}.",
      TypeError,
    )
  batch = x.shape[0]

  def total(x: jax.Array) -> jax.Array:
    scores = jnp.asarray(critic_fn(x))
    if scores.ndim == 0 or scores.shape[0] != batch:
      raise checks.fail(
        f"`critic_fn` must return one score per example (axis 0 of size "
        f"{batch}), got shape {tuple(scores.shape)} for an input of shape "
        f"{tuple(x.shape)}."
      )
    if not jnp.issubdtype(scores.dtype, jnp.floating):
      raise checks.fail(
        f"`critic_fn` must return floating scores, got {scores.dtype}.",
        TypeError,
      )
    return jnp.sum(numerics.upcast(scores))

  return jax.grad(total)(x)


def _flat(x: jax.Array) -> jax.Array:
  """``[batch, ...]`` as ``[batch, features]``."""
  return x.reshape(x.shape[0], math.prod(x.shape[1:]))


def _check_key(key: ArrayLike) -> jax.Array:
  """A single PRNG key: typed (``jax.random.key``) or raw (``PRNGKey``)."""
  key = key if isinstance(key, jax.Array) else jnp.asarray(key)
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    if key.ndim != 0:
      raise checks.fail(
        f"`key` must be a single PRNG key, got shape {tuple(key.shape)}."
      )
    return key
  if key.dtype != jnp.uint32 or key.ndim != 1:
    raise checks.fail(
      f"`key` must be a PRNG key (jax.random.key or jax.random.PRNGKey), "
      f"got dtype {key.dtype} with shape {tuple(key.shape)}.",
      TypeError,
    )
  return key


@loss
def gradient_penalty(
  critic_fn: Callable[..., ArrayLike],
  real: ArrayLike,
  fake: ArrayLike,
  key: ArrayLike,
  *,
  target: ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""WGAN-GP's gradient penalty at random interpolates of real and fake data.

  .. math::
    \ell_i = \big(\lVert \nabla_{\hat x} D(\hat x_i) \rVert_2 - t\big)^2,
    \qquad \hat x_i = \epsilon_i x_i + (1 - \epsilon_i) \tilde x_i,
    \quad \epsilon_i \sim U[0, 1]

  One :math:`\epsilon_i` per example, drawn from ``key``. The norm runs over
  all of an example's features and is safe at 0 (gradient 0, not NaN).
  The penalty weight :math:`\lambda` (10 in the paper) is the caller's:
  ``critic_loss + lam * gradient_penalty(..., reduction="mean")``.

  Args:
    critic_fn: ``[batch, ...] -> [batch]`` (or ``[batch, 1]``) critic; it must
      treat examples independently.
    real: ``[batch, ...]`` floating real data :math:`x`.
    fake: ``[batch, ...]`` generated data :math:`\tilde x`, same shape.
    key: a PRNG key (``jax.random.key`` or ``jax.random.PRNGKey``) for
      :math:`\epsilon`.
    target: the target norm :math:`t \ge 0` (1 in WGAN-GP; 0 gives a
      zero-centred penalty); may be traced.
    where, weights, reduction: see :func:`jaxloss.reduce` (a ``[batch]``
      mask drops examples); default ``"none"``.

  Returns:
    ``[batch]`` per-example penalty, or a scalar for ``"sum"``/``"mean"``.

  Matches the authors' code (``igul222/improved_wgan_training``:
  ``slopes = sqrt(sum(square(gradients)))``, ``mean((slopes - 1) ** 2)``) per
  example, without the factor :math:`\lambda`, for the same :math:`\epsilon`.

  >>> import jax, jax.numpy as jnp, jaxloss
  >>> w = jnp.array([3.0, 4.0])
  >>> critic = lambda x: x @ w          # gradient w everywhere, norm 5
  >>> real, fake = jnp.ones((2, 2)), jnp.zeros((2, 2))
  >>> print(jaxloss.gradient_penalty(critic, real, fake, jax.random.key(0)))
  [16. 16.]

  References:
    Gulrajani et al., `Improved Training of Wasserstein GANs
    <https://arxiv.org/abs/1704.00028>`_, 2017.
  """
  real, fake = checks.same_shape_floats(real=real, fake=fake)
  checks.min_rank("real", real, 1, "a batch axis")
  key = _check_key(key)
  checks.nonnegative("target", target)
  epsilon_shape = (real.shape[0],) + (1,) * (real.ndim - 1)
  epsilon = jax.random.uniform(key, epsilon_shape, real.dtype)
  interpolates = epsilon * real + (1 - epsilon) * fake
  gradients = _input_gradients(critic_fn, interpolates)
  norms = numerics.safe_norm(_flat(gradients), axis=-1)
  values = jnp.square(norms - numerics.like(target, norms))
  return reduce(values, reduction, weights=weights, where=where)


@loss
def r1_penalty(
  critic_fn: Callable[..., ArrayLike],
  real: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""R1 penalty: the squared gradient norm of the discriminator on real data.

  .. math:: \ell_i = \lVert \nabla_x D(x_i) \rVert_2^2

  Mescheder et al. regularise with :math:`\frac{\gamma}{2}
  E_{x \sim p_\mathcal{D}}\lVert\nabla D(x)\rVert^2`; this function returns
  the squared norm alone, so the factor :math:`\gamma / 2` is the caller's:
  ``d_loss + gamma / 2 * r1_penalty(D, real, reduction="mean")`` (StyleGAN2's
  ``r1_penalty * (r1_gamma / 2)``). :math:`D` is the discriminator's logit.

  Args:
    critic_fn: ``[batch, ...] -> [batch]`` (or ``[batch, 1]``) discriminator
      logits; it must treat examples independently.
    real: ``[batch, ...]`` floating real data.
    where, weights, reduction: see :func:`jaxloss.reduce` (a ``[batch]``
      mask drops examples); default ``"none"``.

  Returns:
    ``[batch]`` per-example squared gradient norm, or a scalar for
    ``"sum"``/``"mean"``.

  Matches StyleGAN2-ADA's ``r1_penalty`` (``r1_grads.square().sum([1, 2,
  3])``) and ``compute_grad2`` of Mescheder et al.'s ``GAN_stability`` code.

  >>> import jax.numpy as jnp, jaxloss
  >>> critic = lambda x: jnp.sum(x ** 2, axis=-1)   # gradient 2x
  >>> print(jaxloss.r1_penalty(critic, jnp.array([[1.0, 2.0], [0.0, 0.0]])))
  [20.  0.]

  References:
    Mescheder, Geiger and Nowozin, `Which Training Methods for GANs do
    actually Converge? <https://arxiv.org/abs/1801.04406>`_, 2018.
  """
  real = checks.as_float("real", real)
  checks.min_rank("real", real, 1, "a batch axis")
  gradients = _input_gradients(critic_fn, real)
  values = jnp.sum(jnp.square(_flat(gradients)), axis=-1)
  return reduce(values, reduction, weights=weights, where=where)


__all__ = ["gradient_penalty", "r1_penalty"]
