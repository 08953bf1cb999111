"""Self-distillation losses between a prediction and a target view: BYOL's
normalised squared error and SimSiam's negative cosine, each with the
target's gradient stopped."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce

__all__ = ["byol_loss", "simsiam_loss"]

# BYOL's l2_normalize floors the squared norm at 1e-12: the norm at 1e-6.
_BYOL_EPS = 1e-6
# torch.nn.CosineSimilarity's default eps (SimSiam's criterion).
_SIMSIAM_EPS = 1e-8


def _pair(
  first: str, x: ArrayLike, second: str, y: ArrayLike
) -> tuple[jax.Array, jax.Array]:
  x, y = checks.same_shape_floats(**{first: x, second: y})
  checks.min_rank(second, y, 1, "[..., dim]")
  return x, jax.lax.stop_gradient(y)


@loss
def byol_loss(
  online_predictions: ArrayLike,
  target_projections: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""BYOL's regression loss: the squared distance between the L2-normalised
  online prediction and target projection, ``2 − 2·cos``.

  .. math::
    \ell = \Big\| \frac{q}{\|q\|} - \frac{z'}{\|z'\|} \Big\|_2^2
      = 2 - 2 \cos(q, z')

  The target projection (the momentum encoder's output) carries no
  gradient. BYOL symmetrises the loss by swapping the views: call it twice,
  ``byol_loss(q1, z2') + byol_loss(q2, z1')``.

  Args:
    online_predictions: ``[..., dim]`` the online network's predictions
      ``q``.
    target_projections: ``[..., dim]`` the target network's projections
      ``z'`` of the other view (no gradient).
    where, weights, reduction: see :func:`jaxloss.reduce`; default
      ``"none"``.

  Returns:
    ``[...]``, or a scalar for ``"sum"``, ``"mean"`` and ``"batchmean"``.

  Matches BYOL's code (``byol/utils/helpers.py``, ``regression_loss``, whose
  ``l2_normalize`` divides by ``sqrt(max(‖x‖², 1e-12))``, the norm floored
  at ``1e-6``, as here): a zero vector is normalised to 0, so its value is 1
  against a non-zero vector (``2 − 2·cos`` would say 2). BYOL's training
  loss averages it over the batch (``reduction="mean"``).

  >>> import jax.numpy as jnp, jaxloss
  >>> q = jnp.array([[1.0, 0.0], [1.0, 1.0]])
  >>> z = jnp.array([[2.0, 0.0], [0.0, 3.0]])
  >>> jaxloss.byol_loss(q, z)
  Array([0.        , 0.5857...], dtype=float32)

  References:
    Grill et al., `Bootstrap Your Own Latent: A New Approach to
    Self-Supervised Learning <https://arxiv.org/abs/2006.07733>`_, 2020.
  """
  q, z = _pair(
    "online_predictions",
    online_predictions,
    "target_projections",
    target_projections,
  )
  difference = numerics.l2_normalize(q, eps=_BYOL_EPS) - numerics.l2_normalize(
    z, eps=_BYOL_EPS
  )
  values = jnp.sum(jnp.square(difference), axis=-1)
  return reduce(values, reduction, weights=weights, where=where)


@loss
def simsiam_loss(
  predictions: ArrayLike,
  projections: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""SimSiam's loss: the negative cosine similarity between one view's
  prediction and the other view's projection, the projection's gradient
  stopped.

  .. math::
    \mathcal{D}(p, z) = -\frac{p}{\max(\|p\|, \epsilon)} \cdot
      \frac{\operatorname{stopgrad}(z)}{\max(\|z\|, \epsilon)},
    \qquad \epsilon = 10^{-8}

  SimSiam's symmetrised loss is two calls:
  ``0.5 * (simsiam_loss(p1, z2) + simsiam_loss(p2, z1))`` (with
  ``reduction="mean"``, its ``-(D(p1, z2).mean() + D(p2, z1).mean()) / 2``).

  Args:
    predictions: ``[..., dim]`` the predictor's outputs ``p``.
    projections: ``[..., dim]`` the encoder's projections ``z`` of the other
      view (no gradient).
    where, weights, reduction: see :func:`jaxloss.reduce`; default
      ``"none"``.

  Returns:
    ``[...]`` values in ``[-1, 1]``, or a scalar for ``"sum"``, ``"mean"``
    and ``"batchmean"``.

  Matches SimSiam's code (``main_simsiam.py``: ``nn.CosineSimilarity(dim=1)``
  on ``p`` and ``z.detach()``, negated), and ``torch.nn.functional.
  cosine_similarity``'s ``eps = 1e-8`` (each norm floored); lightly's
  ``NegativeCosineSimilarity`` is the same ``−cos`` without the stopped
  gradient (SimSiam's model detaches ``z`` before it).

  >>> import jax.numpy as jnp, jaxloss
  >>> p = jnp.array([[1.0, 0.0], [1.0, 1.0]])
  >>> z = jnp.array([[2.0, 0.0], [0.0, 3.0]])
  >>> jaxloss.simsiam_loss(p, z)
  Array([-1.        , -0.7071...], dtype=float32)

  References:
    Chen and He, `Exploring Simple Siamese Representation Learning
    <https://arxiv.org/abs/2011.10566>`_, 2021.
  """
  p, z = _pair("predictions", predictions, "projections", projections)
  cosines = jnp.sum(
    numerics.l2_normalize(p, eps=_SIMSIAM_EPS)
    * numerics.l2_normalize(z, eps=_SIMSIAM_EPS),
    axis=-1,
  )
  return reduce(-cosines, reduction, weights=weights, where=where)
