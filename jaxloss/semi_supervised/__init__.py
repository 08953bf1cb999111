"""Semi-supervised losses: FixMatch, MixMatch and the consistency, pseudo-label
and entropy terms that are written around them.

``fixmatch_loss`` and ``mixmatch_loss`` keep the positional signatures,
defaults and values of optax's proposed ``optax.losses`` functions (optax
pull request 1551, ``optax/losses/_semi_supervised.py``; not in the optax
0.2.8 release) and return one scalar, the training loss. The other losses
return per-example values that reduce through :func:`jaxloss.reduce`.
Targets built from a model's own predictions (pseudo-labels, sharpened or
teacher probabilities) carry no gradient, as in every reference
implementation.
"""

from jaxloss.semi_supervised.consistency import (
  entropy_minimization_loss,
  mean_teacher_consistency_loss,
  pseudo_label_loss,
  training_signal_annealing_mask,
  uda_consistency_loss,
)
from jaxloss.semi_supervised.holistic import (
  fixmatch_loss,
  guess_labels,
  mixmatch_loss,
  sharpen,
)

__all__ = [
  "entropy_minimization_loss",
  "fixmatch_loss",
  "guess_labels",
  "mean_teacher_consistency_loss",
  "mixmatch_loss",
  "pseudo_label_loss",
  "sharpen",
  "training_signal_annealing_mask",
  "uda_consistency_loss",
]
