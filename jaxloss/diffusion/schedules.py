"""Signal-to-noise ratios of a Gaussian forward process
``x_t = alpha * x0 + sigma * noise``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks
from jaxloss._core.loss import loss


@loss
def snr(alpha: ArrayLike, sigma: ArrayLike) -> jax.Array:
  r"""Signal-to-noise ratio :math:`\alpha^2 / \sigma^2` of a noise level.

  .. math:: \mathrm{SNR} = (\alpha / \sigma)^2

  Args:
    alpha: ``[...]`` signal scale :math:`\alpha \ge 0`.
    sigma: ``[...]`` noise scale :math:`\sigma \ge 0`, broadcastable with
      ``alpha``.

  Returns:
    The SNR, the broadcast shape: ``inf`` where ``sigma = 0`` (the clean
    end of a schedule), ``0`` where ``alpha = 0``.

  Matches ``diffusers.training_utils.compute_snr`` given
  ``alpha = sqrt(alphas_cumprod[t])`` and
  ``sigma = sqrt(1 - alphas_cumprod[t])`` (which computes in float32).

  >>> import jax.numpy as jnp, jaxloss
  >>> print(jaxloss.snr(jnp.array([0.6, 1.0]), jnp.array([0.8, 0.0])))
  [0.5625    inf]

  References:
    Kingma, Salimans, Poole and Ho, `Variational Diffusion Models
    <https://arxiv.org/abs/2107.00630>`_, 2021.
  """
  alpha, sigma = checks.floats(alpha=alpha, sigma=sigma)
  return jnp.square(alpha / sigma)


@loss
def log_snr(alpha: ArrayLike, sigma: ArrayLike) -> jax.Array:
  r"""Log signal-to-noise ratio :math:`\lambda = \log(\alpha^2/\sigma^2)`.

  .. math:: \lambda = 2\,(\log\alpha - \log\sigma)

  Computed from the two logarithms, so it does not overflow where the SNR
  itself does (``alpha / sigma`` beyond ``1e19`` in float32).

  Args:
    alpha: ``[...]`` signal scale :math:`\alpha \ge 0`.
    sigma: ``[...]`` noise scale :math:`\sigma \ge 0`, broadcastable with
      ``alpha``.

  Returns:
    :math:`\lambda`, the broadcast shape: ``+inf`` where ``sigma = 0``,
    ``-inf`` where ``alpha = 0`` (exact; :func:`jaxloss.diffusion_loss`
    clamps both scales at the dtype's smallest normal number before it takes
    the logarithm, so its weights stay finite there).

  Equals ``log(diffusers.training_utils.compute_snr(...))``.

  >>> import jax.numpy as jnp, jaxloss
  >>> print(jaxloss.log_snr(jnp.array([0.6]), jnp.array([0.8])))
  [-0.5753641]

  References:
    Kingma, Salimans, Poole and Ho, `Variational Diffusion Models
    <https://arxiv.org/abs/2107.00630>`_, 2021.
  """
  alpha, sigma = checks.floats(alpha=alpha, sigma=sigma)
  return 2 * (jnp.log(alpha) - jnp.log(sigma))


@loss
def alpha_sigma_from_log_snr(
  log_snr: ArrayLike,
) -> tuple[jax.Array, jax.Array]:
  r"""The variance-preserving scales of a log-SNR.

  .. math::
    \alpha^2 = \operatorname{sigmoid}(\lambda), \qquad
    \sigma^2 = \operatorname{sigmoid}(-\lambda)

  so that :math:`\alpha^2 + \sigma^2 = 1` and
  :math:`\log(\alpha^2/\sigma^2) = \lambda`. Computed as
  :math:`\exp(\tfrac12 \log\operatorname{sigmoid}(\pm\lambda))`: no overflow
  and exact ends (:math:`\lambda = +\infty` gives ``(1, 0)``,
  :math:`-\infty` gives ``(0, 1)``).

  Args:
    log_snr: ``[...]`` log-SNR :math:`\lambda`.

  Returns:
    ``(alpha, sigma)``, each ``log_snr``'s shape.

  Matches VDM's ``alpha = sqrt(sigmoid(-gamma))``, ``sigma =
  sqrt(sigmoid(gamma))`` with :math:`\gamma = -\lambda`.

  >>> import jax.numpy as jnp, jaxloss
  >>> alpha, sigma = jaxloss.alpha_sigma_from_log_snr(jnp.array([0.0]))
  >>> print(alpha, sigma)
  [0.70710677] [0.70710677]

  References:
    Kingma, Salimans, Poole and Ho, `Variational Diffusion Models
    <https://arxiv.org/abs/2107.00630>`_, 2021.
  """
  log_snr = checks.as_float("log_snr", log_snr)
  alpha = jnp.exp(0.5 * jax.nn.log_sigmoid(log_snr))
  sigma = jnp.exp(0.5 * jax.nn.log_sigmoid(-log_snr))
  return alpha, sigma


__all__ = ["alpha_sigma_from_log_snr", "log_snr", "snr"]
