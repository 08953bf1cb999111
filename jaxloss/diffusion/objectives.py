"""The denoising objective of diffusion models and conversions between the
network's parametrisations (epsilon, x0, v, score)."""

from __future__ import annotations

from typing import Literal, get_args

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce, split_where

Prediction = Literal["epsilon", "x0", "v", "score"]
PREDICTIONS: tuple[str, ...] = get_args(Prediction)
Weighting = Literal["none", "min_snr", "sigmoid", "edm"]
WEIGHTINGS: tuple[str, ...] = get_args(Weighting)

# Kingma and Gao (2023), ImageNet 64x64: sigmoid(b - lambda) with b = -2.
SIGMOID_BIAS = -2.0


def _per_example(arg: str, x: ArrayLike, data: jax.Array) -> jax.Array:
  """A per-example scale (``alpha``/``sigma``) as ``[batch, 1, ..., 1]``.

  Accepted: a scalar, ``[batch]``, or ``[batch, 1, ..., 1]`` of ``data``'s
  rank; never a per-element array (a schedule has one noise level per
  example).
  """
  x = checks.as_float(arg, x)
  batch, rank = data.shape[0], data.ndim
  per_example = (batch,) + (1,) * (rank - 1)
  if x.ndim == 0:
    return jnp.broadcast_to(x, per_example)
  if x.ndim == 1:
    checks.shape(arg, x, (batch,), "one value per example")
  else:
    checks.shape(arg, x, per_example, "a scalar, [batch] or [batch, 1, ..., 1]")
  return x.reshape(per_example)


def _batched(**arrays: jax.Array) -> None:
  for arg, x in arrays.items():
    checks.min_rank(arg, x, 1, "a batch axis")


def _log_snr(alpha: jax.Array, sigma: jax.Array) -> jax.Array:
  """log(alpha² / sigma²) with both scales clamped at the smallest normal
  number: finite at the ends of a schedule, with a zero gradient there."""
  tiny = jnp.finfo(alpha.dtype).tiny
  return 2 * (
    jnp.log(jnp.maximum(alpha, tiny)) - jnp.log(jnp.maximum(sigma, tiny))
  )


def _weight(
  lam: jax.Array,
  prediction: str,
  weighting: str,
  snr_gamma: ArrayLike,
  sigmoid_bias: ArrayLike,
) -> jax.Array:
  """The weight on the prediction's squared error, from log-SNR ``lam``.

  Each weighting is defined on the epsilon-MSE and carried to the
  prediction's own error by the exact factor between the two at a fixed
  ``x_t``: x0-MSE = eps-MSE / SNR, v-MSE = eps-MSE (SNR + 1) / SNR (VP);
  the score's error is taken already scaled by sigma (eps-MSE itself). Each
  weight is the exponential of a log-space expression: no ratio of
  infinities at the ends of a schedule.
  """
  if weighting == "none":
    return jnp.ones_like(lam)
  dtype = lam.dtype
  if weighting == "min_snr":
    capped = jnp.minimum(lam, jnp.log(numerics.like(snr_gamma, dtype)))
    if prediction == "x0":
      log_w = capped  # min(SNR, γ)
    elif prediction == "v":
      log_w = capped - jax.nn.softplus(lam)  # min(SNR, γ) / (SNR + 1)
    else:
      log_w = capped - lam  # min(SNR, γ) / SNR
  else:  # "sigmoid"
    log_w = jax.nn.log_sigmoid(numerics.like(sigmoid_bias, dtype) - lam)
    if prediction == "x0":
      log_w = log_w + lam
    elif prediction == "v":
      log_w = log_w + jax.nn.log_sigmoid(lam)
  return jnp.exp(log_w)


def _check_static(
  prediction: str, weighting: str, snr_gamma, sigma_data
) -> None:
  checks.option("prediction", prediction, PREDICTIONS)
  checks.option("weighting", weighting, WEIGHTINGS)
  checks.positive("snr_gamma", snr_gamma)
  checks.positive("sigma_data", sigma_data)


@loss
def diffusion_loss(
  model_output: ArrayLike,
  x0: ArrayLike,
  noise: ArrayLike,
  alpha: ArrayLike,
  sigma: ArrayLike,
  *,
  prediction: Prediction = "epsilon",
  weighting: Weighting = "none",
  snr_gamma: ArrayLike = 5.0,
  sigmoid_bias: ArrayLike = SIGMOID_BIAS,
  sigma_data: ArrayLike = 0.5,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""The denoising objective of a diffusion model, with its SNR weightings.

  For the forward process :math:`x_t = \alpha x_0 + \sigma \epsilon` and
  :math:`\lambda = \log(\alpha^2/\sigma^2)`, the loss of an example is

  .. math::
    \ell = w(\lambda)\ \operatorname{mean}_j
      \big(\hat y_j - y_j\big)^2

  with the target :math:`y` of the network's parametrisation
  (``prediction``): ``"epsilon"`` :math:`y = \epsilon`; ``"x0"``
  :math:`y = x_0`; ``"v"`` :math:`y = \alpha\epsilon - \sigma x_0`
  (diffusers' ``get_velocity``); ``"score"`` :math:`y = -\epsilon/\sigma`
  (the score of :math:`q(x_t \mid x_0)`). The weightings:

  * ``"none"``: :math:`w = 1` (diffusers' plain MSE, DDPM's
    :math:`L_\text{simple}` for ``"epsilon"``).
  * ``"min_snr"``: Min-SNR-γ (Hang et al.), written as diffusers' training
    examples do: :math:`\min(\mathrm{SNR}, \gamma)/\mathrm{SNR}` for
    ``"epsilon"``, :math:`\min(\mathrm{SNR}, \gamma)/(\mathrm{SNR} + 1)` for
    ``"v"`` (not the superseded :math:`\min(\mathrm{SNR}+1,\gamma)/
    (\mathrm{SNR}+1)`), :math:`\min(\mathrm{SNR}, \gamma)` for ``"x0"``
    (the paper's form), :math:`\sigma^2\min(\mathrm{SNR},\gamma)/\mathrm{SNR}`
    for ``"score"``: one objective, the same function of the network,
    whatever the parametrisation.
  * ``"sigmoid"``: Kingma and Gao's :math:`\operatorname{sigmoid}(b -
    \lambda)` on the epsilon-MSE (:math:`b` = ``sigmoid_bias``, default
    :math:`-2`, their ImageNet 64×64 setting), carried to the other
    parametrisations by the same exact factors (x0: times SNR; v: times
    :math:`\mathrm{SNR}/(\mathrm{SNR}+1)`; score: times :math:`\sigma^2`).
    The :math:`-d\lambda/dt` factor of their objective is the sampler's
    density over :math:`\lambda`: it is not part of this per-example loss.
  * ``"edm"``: Karras et al.'s preconditioned objective. Here
    :math:`\alpha = 1` (``alpha`` is not used), :math:`x_t = x_0 +
    \sigma\epsilon`, ``model_output`` is the raw network output
    :math:`F_\theta`, the target :math:`(x_0 - c_\text{skip} x_t)/
    c_\text{out}` with :math:`c_\text{skip} = \sigma_d^2/(\sigma^2 +
    \sigma_d^2)`, :math:`c_\text{out} = \sigma\sigma_d/\sqrt{\sigma^2 +
    \sigma_d^2}`, and the weight :math:`\lambda(\sigma)\,c_\text{out}^2 = 1`
    exactly (:math:`\lambda(\sigma) = (\sigma^2 + \sigma_d^2)/(\sigma
    \sigma_d)^2`). The target is computed as :math:`(\sigma x_0/\sigma_d -
    \sigma_d\epsilon)/\sqrt{\sigma^2+\sigma_d^2}`, the same value, finite
    at :math:`\sigma = 0`. ``prediction`` is not used.

  The weights are computed from :math:`\lambda` in log space, with ``alpha``
  and ``sigma`` clamped at the dtype's smallest normal number inside
  :math:`\lambda` only (not in the targets): the ends of a schedule
  (``sigma = 0`` or ``alpha = 0``, exactly) give finite values and
  gradients with every weighting. The one exception: ``"score"`` with
  ``"none"`` at ``sigma = 0``, whose target is infinite; with a weighting,
  the score's error is computed as :math:`\sigma\hat s + \epsilon =
  \sigma(\hat s - s)`, finite there.

  The squared errors are formed elementwise: in float32, data and outputs
  up to 1e15 in magnitude (a larger error's square may overflow although
  the mean would not), as for the other losses quadratic in their inputs.

  Args:
    model_output: ``[batch, ...]`` the network's prediction (floating;
      bfloat16/float16 computed in float32).
    x0: ``[batch, ...]`` clean data, same shape.
    noise: ``[batch, ...]`` the sampled :math:`\epsilon`, same shape.
    alpha: per-example signal scale: a scalar, ``[batch]`` or ``[batch, 1,
      ..., 1]`` (the data's rank); broadcast over the data axes. For the VP
      process of diffusers, ``sqrt(alphas_cumprod[t])``.
    sigma: per-example noise scale, shaped like ``alpha``
      (``sqrt(1 - alphas_cumprod[t])``; EDM's :math:`\sigma`).
    prediction: ``"epsilon"`` (default), ``"x0"``, ``"v"`` or ``"score"``.
    weighting: ``"none"`` (default), ``"min_snr"``, ``"sigmoid"`` or
      ``"edm"``.
    snr_gamma: :math:`\gamma > 0` of Min-SNR (default 5, the paper's).
    sigmoid_bias: :math:`b` of the sigmoid weighting (default −2).
    sigma_data: :math:`\sigma_d > 0` of EDM (default 0.5, Karras et al.'s;
      k-diffusion's ``Denoiser`` defaults to 1.0: pass ``sigma_data=1.0``
      to match it).
    where: optional boolean mask: ``[batch]`` drops examples; a mask of the
      data's shape drops elements from each example's mean (an example with
      none left is dropped).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[batch]`` per-example losses, or a scalar for ``"sum"``/``"mean"``.

  Matches diffusers' ``train_text_to_image.py`` (Min-SNR, ε and v, with
  ``reduction="mean"``), k-diffusion's ``Denoiser.loss`` (``"edm"``, with
  ``sigma_data=1.0``); the sigmoid weighting follows the paper.

  >>> import jax.numpy as jnp, jaxloss
  >>> x0, noise = jnp.ones((2, 3)), jnp.zeros((2, 3))
  >>> alpha, sigma = jnp.array([0.6, 0.8]), jnp.array([0.8, 0.6])
  >>> print(jaxloss.diffusion_loss(noise + 1.0, x0, noise, alpha, sigma,
  ...                              weighting="min_snr", snr_gamma=1.0))
  [1.      0.5625]

  References:
    Ho, Jain and Abbeel, `Denoising Diffusion Probabilistic Models
    <https://arxiv.org/abs/2006.11239>`_, 2020.
    Salimans and Ho, `Progressive Distillation for Fast Sampling of
    Diffusion Models <https://arxiv.org/abs/2202.00512>`_, 2022 (v).
    Hang et al., `Efficient Diffusion Training via Min-SNR Weighting
    Strategy <https://arxiv.org/abs/2303.09556>`_, 2023.
    Kingma and Gao, `Understanding Diffusion Objectives as the ELBO with
    Simple Data Augmentation <https://arxiv.org/abs/2303.00848>`_, 2023.
    Karras, Aittala, Aila and Laine, `Elucidating the Design Space of
    Diffusion-Based Generative Models <https://arxiv.org/abs/2206.00364>`_,
    2022.
  """
  _check_static(prediction, weighting, snr_gamma, sigma_data)
  model_output, x0, noise = checks.same_shape_floats(
    model_output=model_output, x0=x0, noise=noise
  )
  _batched(model_output=model_output)
  alpha = _per_example("alpha", alpha, model_output)
  sigma = _per_example("sigma", sigma, model_output)
  dtype = jnp.result_type(model_output, alpha, sigma)
  model_output, x0, noise = (a.astype(dtype) for a in (model_output, x0, noise))
  alpha, sigma = alpha.astype(dtype), sigma.astype(dtype)
  if model_output.ndim > 1:
    data_axes = tuple(range(1, model_output.ndim))
    elements, where = split_where(where, model_output.shape, data_axes)
  else:
    elements = None
  if weighting == "edm":
    sigma_d = numerics.like(sigma_data, dtype)
    target = (sigma * x0 / sigma_d - sigma_d * noise) / jnp.sqrt(
      jnp.square(sigma) + sigma_d**2
    )
    error = model_output - target
    weight = jnp.ones((model_output.shape[0],), dtype)
  else:
    if prediction == "epsilon":
      error = model_output - noise
    elif prediction == "x0":
      error = model_output - x0
    elif prediction == "v":
      error = model_output - (alpha * noise - sigma * x0)
    elif weighting == "none":  # score, unweighted: target -noise / sigma
      error = model_output + noise / sigma
    else:  # score, weighted: sigma (s_hat - s), finite at sigma = 0
      error = sigma * model_output + noise
    lam = _log_snr(alpha, sigma).reshape(model_output.shape[0])
    weight = _weight(lam, prediction, weighting, snr_gamma, sigmoid_bias)
  values = weight * numerics.example_mean(jnp.square(error), elements)
  return reduce(values, reduction, weights=weights, where=where)


def _implied_x0(output, x_t, alpha, sigma, source: str) -> jax.Array:
  """The clean data implied by ``output`` (in ``source``) at ``x_t``."""
  if source == "x0":
    return output
  if source == "epsilon":
    return (x_t - sigma * output) / alpha
  if source == "score":
    return (x_t + jnp.square(sigma) * output) / alpha
  # v: the general inverse of (x_t, v) = [[a, s], [-s, a]] (x0, eps)
  return (alpha * x_t - sigma * output) / (
    jnp.square(alpha) + jnp.square(sigma)
  )


def _implied_epsilon(output, x_t, alpha, sigma, source: str) -> jax.Array:
  """The noise implied by ``output`` (in ``source``) at ``x_t``."""
  if source == "epsilon":
    return output
  if source == "x0":
    return (x_t - alpha * output) / sigma
  if source == "score":
    return -sigma * output
  return (sigma * x_t + alpha * output) / (
    jnp.square(alpha) + jnp.square(sigma)
  )


@loss
def convert_prediction(
  output: ArrayLike,
  x_t: ArrayLike,
  alpha: ArrayLike,
  sigma: ArrayLike,
  *,
  source: Prediction,
  target: Prediction,
) -> jax.Array:
  r"""Converts a diffusion network's prediction between parametrisations.

  For :math:`x_t = \alpha x_0 + \sigma\epsilon`, the four targets are
  :math:`\epsilon`, :math:`x_0`, :math:`v = \alpha\epsilon - \sigma x_0`
  and the score :math:`s = -\epsilon/\sigma`. Given one of them and
  :math:`x_t`, the others follow exactly:

  .. math::
    x_0 = \frac{x_t - \sigma\epsilon}{\alpha}, \quad
    \epsilon = \frac{x_t - \alpha x_0}{\sigma}, \quad
    x_0 = \frac{\alpha x_t - \sigma v}{\alpha^2 + \sigma^2}, \quad
    \epsilon = \frac{\sigma x_t + \alpha v}{\alpha^2 + \sigma^2}

  The general forms are used: no variance-preserving assumption
  (:math:`\alpha^2 + \sigma^2 = 1`) is made; under it the v conversions
  are diffusers' ``alpha * x_t - sigma * v`` and ``alpha * v + sigma *
  x_t``. Conversions that divide by :math:`\alpha` (to ``x0`` from
  ``epsilon``/``score``) or by :math:`\sigma` (to ``epsilon`` from ``x0``,
  to ``score``) are singular at that end of a schedule and give ``inf``/
  ``nan`` there, as the mathematics does: no clamp.

  Args:
    output: ``[batch, ...]`` the prediction in the ``source``
      parametrisation.
    x_t: ``[batch, ...]`` the noisy input, same shape.
    alpha: per-example signal scale: a scalar, ``[batch]`` or ``[batch, 1,
      ..., 1]``.
    sigma: per-example noise scale, shaped like ``alpha``.
    source: ``"epsilon"``, ``"x0"``, ``"v"`` or ``"score"``.
    target: one of the same.

  Returns:
    The prediction in the ``target`` parametrisation, ``output``'s shape.

  Matches diffusers' schedulers' conversions of ``model_output`` (e.g.
  ``DDPMScheduler.step``'s ``pred_original_sample``) and
  ``DDPMScheduler.get_velocity`` for ``target="v"``.

  >>> import jax.numpy as jnp, jaxloss
  >>> x0, eps = jnp.array([[1.0, -1.0]]), jnp.array([[0.5, 0.5]])
  >>> alpha, sigma = jnp.array([0.6]), jnp.array([0.8])
  >>> x_t = alpha[:, None] * x0 + sigma[:, None] * eps
  >>> print(jaxloss.convert_prediction(eps, x_t, alpha, sigma,
  ...                                  source="epsilon", target="v"))
  [[-0.5  1.1]]

  References:
    Salimans and Ho, `Progressive Distillation for Fast Sampling of
    Diffusion Models <https://arxiv.org/abs/2202.00512>`_, 2022.
  """
  checks.option("source", source, PREDICTIONS)
  checks.option("target", target, PREDICTIONS)
  output, x_t = checks.same_shape_floats(output=output, x_t=x_t)
  _batched(output=output)
  alpha = _per_example("alpha", alpha, output)
  sigma = _per_example("sigma", sigma, output)
  dtype = jnp.result_type(output, alpha, sigma)
  output, x_t = output.astype(dtype), x_t.astype(dtype)
  alpha, sigma = alpha.astype(dtype), sigma.astype(dtype)
  if source == target:
    return output
  args = (output, x_t, alpha, sigma, source)
  if target == "x0":
    return _implied_x0(*args)
  epsilon = _implied_epsilon(*args)
  if target == "epsilon":
    return epsilon
  if target == "score":
    return -epsilon / sigma
  return alpha * epsilon - sigma * _implied_x0(*args)


__all__ = ["convert_prediction", "diffusion_loss"]
