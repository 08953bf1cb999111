"""Regression losses: pointwise errors, robust losses, cosines, embeddings.

Every loss returns per-example values and reduces through
:func:`jaxloss.reduce`. Names shared with ``optax.losses`` keep optax's
positional signature, defaults and values. Predictions and targets must have
the same shape (never broadcast); targets may be float, int or bool and are
cast to the predictions' dtype. The parts: pointwise errors
(:mod:`~jaxloss.regression.errors`), losses between vectors
(:mod:`~jaxloss.regression.embedding`), metrics such as RMSE and percentage
errors (:mod:`~jaxloss.regression.metrics`) and probabilistic losses
(:mod:`~jaxloss.regression.probabilistic`).
"""

from jaxloss.regression.embedding import (
  cosine_distance,
  cosine_embedding_loss,
  cosine_similarity,
  hinge_embedding_loss,
)
from jaxloss.regression.errors import (
  absolute_error,
  asymmetric_huber_loss,
  huber_loss,
  l2_loss,
  log_cosh,
  lp_loss,
  smooth_l1_loss,
  squared_error,
)
from jaxloss.regression.metrics import (
  absolute_percentage_error,
  normalized_mean_absolute_error,
  root_mean_squared_error,
  squared_log_error,
)
from jaxloss.regression.probabilistic import (
  gaussian_nll_loss,
  poisson_nll_loss,
  quantile_loss,
)

__all__ = [
  "absolute_error",
  "absolute_percentage_error",
  "asymmetric_huber_loss",
  "cosine_distance",
  "cosine_embedding_loss",
  "cosine_similarity",
  "gaussian_nll_loss",
  "hinge_embedding_loss",
  "huber_loss",
  "l2_loss",
  "log_cosh",
  "lp_loss",
  "normalized_mean_absolute_error",
  "poisson_nll_loss",
  "quantile_loss",
  "root_mean_squared_error",
  "smooth_l1_loss",
  "squared_error",
  "squared_log_error",
]
