"""The public modules of jaxloss: the one list that the package, the
catalogue builder and the tests read.

Each family's names are re-exported flat (``jaxloss.<name>``); the names of
the other public modules (``jaxloss.distributed``, ``jaxloss.nn``,
``jaxloss.train``) stay inside them.
"""

from typing import NamedTuple


class Module(NamedTuple):
  name: str  # jaxloss.<name>
  title: str  # its section title in docs/catalogue.md
  kind: str  # what its public names are: "loss", "module" or "helper"


FAMILIES: tuple[Module, ...] = (
  Module("classification", "Classification", "loss"),
  Module("divergence", "Divergences", "loss"),
  Module("regression", "Regression", "loss"),
  Module("ranking", "Ranking", "loss"),
  Module("metric_learning", "Metric learning", "loss"),
  Module("contrastive", "Contrastive (one device)", "loss"),
  Module("segmentation", "Segmentation", "loss"),
  Module("detection", "Detection", "loss"),
  Module("image", "Image", "loss"),
  Module("sequence", "Sequence", "loss"),
  Module("rl", "Reinforcement learning", "loss"),
  Module("preference", "Preference optimisation", "loss"),
  Module("distillation", "Knowledge distillation", "loss"),
  Module("generative", "Generative models", "loss"),
  Module("diffusion", "Diffusion and flow matching", "loss"),
  Module("regularization", "Regularisation", "loss"),
  Module("semi_supervised", "Semi-supervised learning", "loss"),
  Module("self_supervised", "Self-supervised learning", "loss"),
  Module("routing", "Mixture-of-experts routing", "loss"),
  Module("audio", "Audio", "loss"),
)
OTHER_MODULES: tuple[Module, ...] = (
  Module("distributed", "Sharded losses", "loss"),
  Module("nn", "Flax NNX modules", "module"),
  Module("train", "Training with optax", "helper"),
)
