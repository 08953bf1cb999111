"""Generative losses: GAN objectives, gradient penalties, the VAE's negative
ELBO and CycleGAN's cycle consistency.
"""

from jaxloss.generative.adversarial import (
  gan_discriminator_loss,
  gan_generator_loss,
)
from jaxloss.generative.penalties import gradient_penalty, r1_penalty
from jaxloss.generative.reconstruction import cycle_consistency_loss, vae_loss

__all__ = [
  "cycle_consistency_loss",
  "gan_discriminator_loss",
  "gan_generator_loss",
  "gradient_penalty",
  "r1_penalty",
  "vae_loss",
]
