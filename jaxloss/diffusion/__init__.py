"""Diffusion and flow-matching objectives: pure functions of the network's
output, the sampled noise and the time, for any sampler, schedule and
network. The denoising loss with its SNR weightings (Min-SNR, sigmoid, EDM),
conversions between the epsilon, x0, v and score parametrisations,
signal-to-noise helpers, conditional flow matching and its minibatch
optimal-transport pairing.
"""

from jaxloss.diffusion.flow_matching import (
  flow_matching_loss,
  flow_matching_path,
  ot_coupling,
)
from jaxloss.diffusion.objectives import convert_prediction, diffusion_loss
from jaxloss.diffusion.schedules import alpha_sigma_from_log_snr, log_snr, snr

__all__ = [
  "alpha_sigma_from_log_snr",
  "convert_prediction",
  "diffusion_loss",
  "flow_matching_loss",
  "flow_matching_path",
  "log_snr",
  "ot_coupling",
  "snr",
]
