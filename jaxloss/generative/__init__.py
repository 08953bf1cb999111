"""Generative losses: GAN objectives, gradient penalties, the VAE's negative
ELBO, CycleGAN's cycle consistency and VQ-VAE's vector quantisation.
"""

from jaxloss.generative.adversarial import (
  gan_discriminator_loss,
  gan_generator_loss,
)
from jaxloss.generative.penalties import gradient_penalty, r1_penalty
from jaxloss.generative.quantization import (
  straight_through,
  vector_quantization_loss,
)
from jaxloss.generative.reconstruction import cycle_consistency_loss, vae_loss

__all__ = [
  "cycle_consistency_loss",
  "gan_discriminator_loss",
  "gan_generator_loss",
  "gradient_penalty",
  "r1_penalty",
  "straight_through",
  "vae_loss",
  "vector_quantization_loss",
]
