"""Reconstruction losses: the VAE's negative ELBO and CycleGAN's cycle
consistency.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce
from jaxloss.classification import sigmoid_binary_cross_entropy
from jaxloss.divergence import gaussian_kl_divergence

Likelihood = Literal["bernoulli", "gaussian"]
LIKELIHOODS: tuple[str, ...] = get_args(Likelihood)


def _batched(**arrays: jax.Array) -> None:
  """All named arrays have rank >= 1 and one batch size (axis 0)."""
  for arg, x in arrays.items():
    checks.min_rank(arg, x, 1, "a batch axis")
  if len({x.shape[0] for x in arrays.values()}) > 1:
    listed = ", ".join(f"`{arg}` {tuple(x.shape)}" for arg, x in arrays.items())
    raise checks.fail(
      f"arguments must have one batch size (axis 0), got {listed}."
    )


def _sum_features(x: jax.Array) -> jax.Array:
  """Sums every axis but the first."""
  return jnp.sum(x, axis=tuple(range(1, x.ndim)))


def _bernoulli_targets(args: dict, arg: str) -> tuple[jax.Array, str]:
  """Value rule: Bernoulli targets lie in [0, 1]."""
  x = jnp.asarray(args[arg])
  if args.get("likelihood", "bernoulli") != "bernoulli":
    return jnp.asarray(True), ""
  return jnp.all((x >= 0) & (x <= 1)), "must lie in [0, 1]"


@loss(targets=_bernoulli_targets)
def vae_loss(
  reconstruction: ArrayLike,
  targets: ArrayLike,
  mean: ArrayLike,
  log_variance: ArrayLike,
  *,
  likelihood: Likelihood = "bernoulli",
  beta: ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Negative ELBO of a VAE: reconstruction NLL plus β times the KL to N(0, I).

  .. math::
    \ell = \sum_j \mathrm{NLL}(x_j \mid \hat x_j)
      + \beta \sum_d \tfrac12
        \big(\sigma_d^2 + \mu_d^2 - 1 - \log\sigma_d^2\big)

  with the reconstruction term, summed over every feature of an example,

  * ``"bernoulli"``: :math:`-x\log\sigma(\hat x) - (1 - x)\log\sigma(-\hat x)`,
    ``reconstruction`` being the decoder's logits;
  * ``"gaussian"``: :math:`\tfrac12 (x - \hat x)^2`, ``reconstruction`` being
    the decoder's means: the NLL of a unit-variance Gaussian without its
    constant :math:`\tfrac12\log 2\pi` per feature (so a perfect
    reconstruction costs 0).

  The KL term (closed form, summed over every latent dimension) is
  :func:`jaxloss.gaussian_kl_divergence` with the standard-normal prior.

  Args:
    reconstruction: ``[batch, ...]`` decoder logits (Bernoulli) or means
      (Gaussian).
    targets: ``[batch, ...]`` data, same shape; in [0, 1] for Bernoulli
      (float, int or bool).
    mean: ``[batch, ...]`` posterior means :math:`\mu`.
    log_variance: ``[batch, ...]`` posterior log-variances
      :math:`\log\sigma^2`, same shape as ``mean``.
    likelihood: ``"bernoulli"`` (default) or ``"gaussian"``.
    beta: weight :math:`\beta \ge 0` of the KL term (β-VAE; may be traced,
      e.g. a KL-annealing schedule).
    where, weights, reduction: see :func:`jaxloss.reduce` (a ``[batch]``
      mask drops examples); default ``"none"``.

  Returns:
    ``[batch]`` per-example negative ELBO, or a scalar for ``"sum"``/
    ``"mean"``.

  Matches the PyTorch VAE example (``binary_cross_entropy(..., reduction=
  "sum")`` plus ``-0.5 * sum(1 + logvar - mu² - exp(logvar))``), per example
  and on logits.

  >>> import jax.numpy as jnp, jaxloss
  >>> logits = jnp.array([[2.0, -1.0, 0.0]])
  >>> x = jnp.array([[1.0, 0.0, 1.0]])
  >>> mu, log_var = jnp.array([[0.5, 0.0]]), jnp.array([[0.0, -1.0]])
  >>> print(jaxloss.vae_loss(logits, x, mu, log_var))
  [1.4422...]

  References:
    Kingma and Welling, `Auto-Encoding Variational Bayes
    <https://arxiv.org/abs/1312.6114>`_, 2014.
    Higgins et al., `beta-VAE: Learning Basic Visual Concepts with a
    Constrained Variational Framework
    <https://openreview.net/forum?id=Sy2fzU9gl>`_, 2017.
  """
  checks.option("likelihood", likelihood, LIKELIHOODS)
  checks.nonnegative("beta", beta)
  reconstruction = checks.as_float("reconstruction", reconstruction)
  targets = checks.as_targets("targets", targets, reconstruction)
  checks.same_shape(reconstruction=reconstruction, targets=targets)
  mean, log_variance = checks.same_shape_floats(
    mean=mean, log_variance=log_variance
  )
  _batched(reconstruction=reconstruction, mean=mean)
  dtype = jnp.result_type(reconstruction, mean)
  reconstruction, targets = reconstruction.astype(dtype), targets.astype(dtype)
  if likelihood == "bernoulli":
    nll = sigmoid_binary_cross_entropy(reconstruction, targets)
  else:
    nll = 0.5 * jnp.square(reconstruction - targets)
  latent = (mean.shape[0], math.prod(mean.shape[1:]))
  kl = gaussian_kl_divergence(
    mean.astype(dtype).reshape(latent),
    log_variance.astype(dtype).reshape(latent),
  )
  values = _sum_features(nll) + numerics.like(beta, dtype) * kl
  return reduce(values, reduction, weights=weights, where=where)


@loss
def cycle_consistency_loss(
  real_a: ArrayLike,
  reconstructed_a: ArrayLike,
  real_b: ArrayLike,
  reconstructed_b: ArrayLike,
  *,
  lambda_a: ArrayLike = 1.0,
  lambda_b: ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""CycleGAN's cycle-consistency loss: L1 between inputs and round trips.

  .. math::
    \ell_i = \lambda_A \operatorname{mean}_j |F(G(a))_{ij} - a_{ij}|
      + \lambda_B \operatorname{mean}_j |G(F(b))_{ij} - b_{ij}|

  Each domain's term is the mean absolute error over the features of an
  example, so ``"mean"`` equals CycleGAN's
  ``lambda_A * L1Loss()(rec_A, real_A) + lambda_B * L1Loss()(rec_B, real_B)``
  (for equal batch sizes). The paper uses :math:`\lambda = 10`; the defaults
  here are 1.

  Args:
    real_a: ``[batch, ...]`` floating images (or any data) of domain A.
    reconstructed_a: ``[batch, ...]`` :math:`F(G(a))`, same shape.
    real_b: ``[batch, ...]`` data of domain B (its own feature shape).
    reconstructed_b: ``[batch, ...]`` :math:`G(F(b))`, same shape as
      ``real_b``.
    lambda_a, lambda_b: weights of the two cycles (may be traced).
    where, weights, reduction: see :func:`jaxloss.reduce` (a ``[batch]``
      mask drops pairs of examples); default ``"none"``.

  Returns:
    ``[batch]`` per-example loss, or a scalar for ``"sum"``/``"mean"``.

  The gradient of :math:`|\cdot|` at a zero error is 0 (``torch``'s
  ``sign(0)``).

  >>> import jax.numpy as jnp, jaxloss
  >>> a, b = jnp.zeros((1, 4)), jnp.ones((1, 2))
  >>> print(jaxloss.cycle_consistency_loss(a, a + 0.5, b, b - 1.0,
  ...                                      lambda_a=10.0, lambda_b=10.0))
  [15.]

  References:
    Zhu, Park, Isola and Efros, `Unpaired Image-to-Image Translation using
    Cycle-Consistent Adversarial Networks <https://arxiv.org/abs/1703.10593>`_,
    2017 (reference code: ``junyanz/pytorch-CycleGAN-and-pix2pix``).
  """
  real_a, reconstructed_a = checks.same_shape_floats(
    real_a=real_a, reconstructed_a=reconstructed_a
  )
  real_b, reconstructed_b = checks.same_shape_floats(
    real_b=real_b, reconstructed_b=reconstructed_b
  )
  _batched(real_a=real_a, real_b=real_b)
  dtype = jnp.result_type(real_a, real_b)
  error_a = numerics.safe_abs(reconstructed_a - real_a).astype(dtype)
  error_b = numerics.safe_abs(reconstructed_b - real_b).astype(dtype)
  values = numerics.like(lambda_a, dtype) * numerics.example_mean(error_a)
  values += numerics.like(lambda_b, dtype) * numerics.example_mean(error_b)
  return reduce(values, reduction, weights=weights, where=where)


__all__ = ["cycle_consistency_loss", "vae_loss"]
