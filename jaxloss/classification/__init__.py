"""Classification losses: cross-entropies, focal losses, margins, sparsemax,
the bi-tempered logistic loss.

Every loss returns per-example values and reduces through
:func:`jaxloss.reduce` (``where``, ``weights``, ``reduction``). Names shared
with ``optax.losses`` keep optax's positional signature, defaults and values.
"""

from jaxloss.classification.cross_entropy import (
  binary_cross_entropy,
  class_weights_from_counts,
  nll_loss,
  perplexity,
  pos_weight_from_counts,
  safe_softmax_cross_entropy,
  sigmoid_binary_cross_entropy,
  smooth_labels,
  softmax_cross_entropy,
  softmax_cross_entropy_with_integer_labels,
)
from jaxloss.classification.fenchel_young import (
  make_fenchel_young_loss,
  multiclass_sparsemax_loss,
  sparsemax_loss,
)
from jaxloss.classification.focal import (
  poly1_focal_loss,
  poly_loss_cross_entropy,
  sigmoid_focal_loss,
  softmax_focal_loss,
)
from jaxloss.classification.margin import (
  hinge_loss,
  multi_margin_loss,
  multiclass_hinge_loss,
  multiclass_perceptron_loss,
  multilabel_margin_loss,
  multilabel_soft_margin_loss,
  perceptron_loss,
  soft_margin_loss,
  squared_hinge_loss,
)
from jaxloss.classification.tempered import bi_tempered_logistic_loss

__all__ = [
  "bi_tempered_logistic_loss",
  "binary_cross_entropy",
  "class_weights_from_counts",
  "hinge_loss",
  "make_fenchel_young_loss",
  "multi_margin_loss",
  "multiclass_hinge_loss",
  "multiclass_perceptron_loss",
  "multiclass_sparsemax_loss",
  "multilabel_margin_loss",
  "multilabel_soft_margin_loss",
  "nll_loss",
  "perceptron_loss",
  "perplexity",
  "poly1_focal_loss",
  "poly_loss_cross_entropy",
  "pos_weight_from_counts",
  "safe_softmax_cross_entropy",
  "sigmoid_binary_cross_entropy",
  "sigmoid_focal_loss",
  "smooth_labels",
  "soft_margin_loss",
  "softmax_cross_entropy",
  "softmax_cross_entropy_with_integer_labels",
  "softmax_focal_loss",
  "sparsemax_loss",
  "squared_hinge_loss",
]
