"""Diffusion and flow-matching objectives: pure functions of the network's
output, the sampled noise and the time, for any sampler, schedule and
network.
"""

from jaxloss.diffusion.flow_matching import (
  flow_matching_loss,
  flow_matching_path,
  ot_coupling,
)

__all__ = [
  "flow_matching_loss",
  "flow_matching_path",
  "ot_coupling",
]
