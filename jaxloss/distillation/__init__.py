"""Knowledge distillation: a student's logits against a teacher's.

Every loss takes the student's ``[..., vocab]`` logits and the teacher's
(dense logits, or its top-k tokens and log-probabilities for
:func:`sparse_kd_loss`), divides the logits by ``temperature``, stops the
teacher's gradient, and returns one value per token, summed over the
vocabulary, that reduces through :func:`jaxloss.reduce` (default
``"none"``; trl's "batchmean with labels" is ``reduction="mean",
where=labels != -100``). Numerics are in log space: a ``-inf`` teacher
logit (a masked vocabulary entry) gives finite values and gradients.
:func:`linear_distillation_loss` takes both models' hidden states and heads
instead of their logits, and never materialises them.
"""

from jaxloss.distillation.divergences import (
  generalized_jsd_loss,
  kd_loss,
  skew_kl_loss,
  total_variation_distance,
)
from jaxloss.distillation.linear import linear_distillation_loss
from jaxloss.distillation.sparse import sparse_kd_loss

__all__ = [
  "generalized_jsd_loss",
  "kd_loss",
  "linear_distillation_loss",
  "skew_kl_loss",
  "sparse_kd_loss",
  "total_variation_distance",
]
