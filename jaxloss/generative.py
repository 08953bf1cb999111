"""Generative losses: GAN objectives, gradient penalties, the VAE's negative
ELBO and CycleGAN's cycle consistency.

GAN losses take the discriminator's (or critic's) raw outputs, called logits,
and work in log space (``softplus``), so logits of ±1e4 give finite values and
gradients. The discriminator loss pairs real and fake outputs of one shape:
the per-example value is the real term of example ``i`` plus the fake term of
example ``i``, so ``"mean"`` is :math:`E[\\text{real term}] + E[\\text{fake
term}]`. Re-exported here: :func:`gradient_penalty` and :func:`r1_penalty`
from :mod:`jaxloss._generative_penalties`.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from jaxloss._core import checks, numerics, value_checks
from jaxloss._core import reduction as reduction_lib
from jaxloss._generative_penalties import gradient_penalty, r1_penalty
from jaxloss.classification import sigmoid_binary_cross_entropy
from jaxloss.divergence import gaussian_kl_divergence

GAN_KINDS = (
  "minimax",
  "non_saturating",
  "least_squares",
  "wasserstein",
  "hinge",
)
LIKELIHOODS = ("bernoulli", "gaussian")


# Jitted cores (static options): eager calls would dispatch op by op.
@functools.partial(jax.jit, static_argnums=0)
def _discriminator_terms(
  kind: str, real: jax.Array, fake: jax.Array
) -> jax.Array:
  if kind in ("minimax", "non_saturating"):
    # -log σ(r) - log(1 - σ(f)) = softplus(-r) + softplus(f).
    return jax.nn.softplus(-real) + jax.nn.softplus(fake)
  if kind == "least_squares":
    return 0.5 * jnp.square(real - 1) + 0.5 * jnp.square(fake)
  if kind == "wasserstein":
    return fake - real
  return jax.nn.relu(1 - real) + jax.nn.relu(1 + fake)  # hinge


@functools.partial(jax.jit, static_argnums=0)
def _generator_terms(kind: str, fake: jax.Array) -> jax.Array:
  if kind == "minimax":
    return -jax.nn.softplus(fake)  # log(1 - σ(f)), minimised by G
  if kind == "non_saturating":
    return jax.nn.softplus(-fake)  # -log σ(f)
  if kind == "least_squares":
    return 0.5 * jnp.square(fake - 1)
  return -fake  # wasserstein and hinge


def gan_discriminator_loss(
  real_logits, fake_logits, *, kind, where=None, weights=None, reduction="none"
):
  r"""The discriminator's (or critic's) loss of a GAN, from its raw outputs.

  With :math:`r = D(x)` on real data and :math:`f = D(G(z))` on generated
  data (logits, before any sigmoid):

  .. math::
    \begin{array}{ll}
    \text{minimax, non\_saturating} & -\log\sigma(r) - \log(1 - \sigma(f))
      = \operatorname{softplus}(-r) + \operatorname{softplus}(f) \\
    \text{least\_squares} & \tfrac12 (r - 1)^2 + \tfrac12 f^2 \\
    \text{wasserstein} & f - r \\
    \text{hinge} & \max(0, 1 - r) + \max(0, 1 + f)
    \end{array}

  The minimax and non-saturating GANs share this loss (they differ in the
  generator's). Least squares is LSGAN with targets ``a = 0``, ``b = c = 1``
  on the raw output; wasserstein is the WGAN critic (add
  :func:`gradient_penalty` or clip the weights).

  Args:
    real_logits: ``[...]`` floating discriminator outputs on real data.
    fake_logits: ``[...]`` outputs on generated data, same shape: entry ``i``
      is paired with ``real_logits[i]``. A batch of reals and a batch of fakes
      of different sizes is an error; use equal batches.
    kind: one of ``"minimax"``, ``"non_saturating"``, ``"least_squares"``,
      ``"wasserstein"``, ``"hinge"``; required (no default).
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` elementwise loss (real term plus fake term), or a scalar for
    ``"sum"``/``"mean"``; ``"mean"`` is :math:`E[\cdot]_{real} +
    E[\cdot]_{fake}`.

  Matches TF-GAN's ``modified_discriminator_loss`` (``minimax_discriminator_
  loss`` with ``label_smoothing=0``), ``least_squares_discriminator_loss``,
  ``wasserstein_discriminator_loss`` and ``wasserstein_hinge_discriminator_
  loss``, each with ``reduction=NONE`` summed over its two terms.

  >>> import jax.numpy as jnp, jaxloss
  >>> real, fake = jnp.array([2.0, -1.0]), jnp.array([-3.0, 0.5])
  >>> print(jaxloss.gan_discriminator_loss(real, fake, kind="non_saturating"))
  [0.1755... 2.2873...]
  >>> print(jaxloss.gan_discriminator_loss(real, fake, kind="hinge"))
  [0.  3.5]

  References:
    Goodfellow et al., `Generative Adversarial Nets
    <https://arxiv.org/abs/1406.2661>`_, 2014.
    Mao et al., `Least Squares Generative Adversarial Networks
    <https://arxiv.org/abs/1611.04076>`_, 2017.
    Arjovsky, Chintala and Bottou, `Wasserstein GAN
    <https://arxiv.org/abs/1701.07875>`_, 2017.
    Lim and Ye, `Geometric GAN <https://arxiv.org/abs/1705.02894>`_, 2017.
  """
  name = "gan_discriminator_loss"
  checks.option(name, "kind", kind, GAN_KINDS)
  real, fake = checks.same_shape_floats(
    name, real_logits=real_logits, fake_logits=fake_logits
  )
  values = _discriminator_terms(kind, real, fake)
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=where, name=name
  )


def gan_generator_loss(
  fake_logits, *, kind, where=None, weights=None, reduction="none"
):
  r"""The generator's loss of a GAN, from the discriminator's raw outputs.

  With :math:`f = D(G(z))` the discriminator's logit on generated data:

  .. math::
    \begin{array}{ll}
    \text{minimax} & \log(1 - \sigma(f)) = -\operatorname{softplus}(f) \\
    \text{non\_saturating} & -\log\sigma(f) = \operatorname{softplus}(-f) \\
    \text{least\_squares} & \tfrac12 (f - 1)^2 \\
    \text{wasserstein, hinge} & -f
    \end{array}

  ``"minimax"`` is the original game's generator objective (to be
  minimised; it is negative and saturates when the discriminator wins);
  ``"non_saturating"`` is the heuristic Goodfellow et al. recommend.

  Args:
    fake_logits: ``[...]`` floating discriminator outputs on generated data.
    kind: one of ``"minimax"``, ``"non_saturating"``, ``"least_squares"``,
      ``"wasserstein"``, ``"hinge"``; required (no default).
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` elementwise loss, or a scalar for ``"sum"``/``"mean"``.

  Matches TF-GAN's ``minimax_generator_loss``, ``modified_generator_loss``,
  ``least_squares_generator_loss`` and ``wasserstein_generator_loss`` with
  ``reduction=NONE`` (and TorchGAN's generator losses).

  >>> import jax.numpy as jnp, jaxloss
  >>> fake = jnp.array([-3.0, 0.5])
  >>> print(jaxloss.gan_generator_loss(fake, kind="non_saturating"))
  [3.0485...  0.4740...]
  >>> print(jaxloss.gan_generator_loss(fake, kind="least_squares"))
  [8.    0.125]

  References:
    Goodfellow et al., `Generative Adversarial Nets
    <https://arxiv.org/abs/1406.2661>`_, 2014.
    Mao et al., `Least Squares Generative Adversarial Networks
    <https://arxiv.org/abs/1611.04076>`_, 2017.
    Miyato et al., `Spectral Normalization for Generative Adversarial
    Networks <https://arxiv.org/abs/1802.05957>`_, 2018 (hinge loss).
  """
  name = "gan_generator_loss"
  checks.option(name, "kind", kind, GAN_KINDS)
  fake = checks.as_float(name, "fake_logits", fake_logits)
  values = _generator_terms(kind, fake)
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=where, name=name
  )


def _batched(name: str, **arrays) -> int:
  """All named arrays have rank >= 1 and one batch size (axis 0)."""
  for arg, x in arrays.items():
    if x.ndim == 0:
      raise ValueError(
        f"{name}: argument `{arg}` must have a batch axis "
        f"(rank >= 1), got a scalar."
      )
  sizes = {arg: x.shape[0] for arg, x in arrays.items()}
  if len(set(sizes.values())) > 1:
    listed = ", ".join(f"`{arg}` {tuple(x.shape)}" for arg, x in arrays.items())
    raise ValueError(
      f"{name}: arguments must have one batch size (axis 0), got {listed}."
    )
  return next(iter(sizes.values()))


def _sum_features(x: jax.Array) -> jax.Array:
  """Sums every axis but the first."""
  return jnp.sum(x, axis=tuple(range(1, x.ndim)))


def _bernoulli_targets(args, arg):
  """Value rule: Bernoulli targets lie in [0, 1]."""
  x = jnp.asarray(args[arg])
  if args.get("likelihood", "bernoulli") != "bernoulli":
    return jnp.asarray(True), ""
  return jnp.all((x >= 0) & (x <= 1)), "must lie in [0, 1]"


@functools.partial(jax.jit, static_argnums=0)
def _vae_values(likelihood, reconstruction, targets, mean, log_variance, beta):
  batch = reconstruction.shape[0]
  if likelihood == "bernoulli":
    nll = sigmoid_binary_cross_entropy(reconstruction, targets)
  else:
    nll = 0.5 * jnp.square(reconstruction - targets)
  latent = (batch, math.prod(mean.shape[1:]))
  kl = gaussian_kl_divergence(
    mean.reshape(latent), log_variance.reshape(latent)
  )
  return _sum_features(nll) + beta * kl


@value_checks.value_rules(targets=_bernoulli_targets)
def vae_loss(
  reconstruction,
  targets,
  mean,
  log_variance,
  *,
  likelihood="bernoulli",
  beta=1.0,
  where=None,
  weights=None,
  reduction="none",
):
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
  name = "vae_loss"
  checks.option(name, "likelihood", likelihood, LIKELIHOODS)
  checks.nonnegative(name, "beta", beta)
  reconstruction = checks.as_float(name, "reconstruction", reconstruction)
  targets = checks.as_targets(name, "targets", targets, reconstruction)
  checks.same_shape(name, reconstruction=reconstruction, targets=targets)
  mean, log_variance = checks.same_shape_floats(
    name, mean=mean, log_variance=log_variance
  )
  _batched(name, reconstruction=reconstruction, mean=mean)
  dtype = jnp.result_type(reconstruction, mean)
  values = _vae_values(
    likelihood,
    reconstruction.astype(dtype),
    targets.astype(dtype),
    mean.astype(dtype),
    log_variance.astype(dtype),
    numerics.like(beta, dtype),
  )
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=where, name=name
  )


def _mean_features(x: jax.Array) -> jax.Array:
  """Means every axis but the first."""
  return jnp.mean(x, axis=tuple(range(1, x.ndim)))


@jax.jit
def _cycle_values(
  real_a, reconstructed_a, real_b, reconstructed_b, lambda_a, lambda_b
):
  dtype = jnp.result_type(real_a, real_b)
  cycle_a = _mean_features(
    numerics.safe_abs(reconstructed_a - real_a).astype(dtype)
  )
  cycle_b = _mean_features(
    numerics.safe_abs(reconstructed_b - real_b).astype(dtype)
  )
  return lambda_a * cycle_a + lambda_b * cycle_b


def cycle_consistency_loss(
  real_a,
  reconstructed_a,
  real_b,
  reconstructed_b,
  *,
  lambda_a=1.0,
  lambda_b=1.0,
  where=None,
  weights=None,
  reduction="none",
):
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
  name = "cycle_consistency_loss"
  real_a, reconstructed_a = checks.same_shape_floats(
    name, real_a=real_a, reconstructed_a=reconstructed_a
  )
  real_b, reconstructed_b = checks.same_shape_floats(
    name, real_b=real_b, reconstructed_b=reconstructed_b
  )
  _batched(name, real_a=real_a, real_b=real_b)
  dtype = jnp.result_type(real_a, real_b)
  values = _cycle_values(
    real_a,
    reconstructed_a,
    real_b,
    reconstructed_b,
    numerics.like(lambda_a, dtype),
    numerics.like(lambda_b, dtype),
  )
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=where, name=name
  )


__all__ = [
  "cycle_consistency_loss",
  "gan_discriminator_loss",
  "gan_generator_loss",
  "gradient_penalty",
  "r1_penalty",
  "vae_loss",
]
