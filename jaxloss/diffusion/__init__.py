"""Diffusion objectives: the denoising loss with its SNR weightings
(Min-SNR, sigmoid, EDM), conversions between the epsilon, x0, v and score
parametrisations, and signal-to-noise helpers.
"""

from jaxloss.diffusion.objectives import convert_prediction, diffusion_loss
from jaxloss.diffusion.schedules import alpha_sigma_from_log_snr, log_snr, snr

__all__ = [
  "alpha_sigma_from_log_snr",
  "convert_prediction",
  "diffusion_loss",
  "log_snr",
  "snr",
]
