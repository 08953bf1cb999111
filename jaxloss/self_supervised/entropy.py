"""Entropy regularisers of a batch of embeddings: KoLeo, the
Kozachenko–Leonenko nearest-neighbour estimate of differential entropy used
by DINOv2."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics
from jaxloss._core.loss import loss
from jaxloss.self_supervised.redundancy import check_batch

__all__ = ["koleo_loss"]


@loss
def koleo_loss(
  embeddings: ArrayLike,
  *,
  eps: ArrayLike = 1e-8,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""KoLeo: minus the mean log distance of each L2-normalised embedding to
  its nearest neighbour in the batch, which spreads the embeddings out.

  .. math::
    \hat x_n = \frac{x_n}{\max(\|x_n\|, \epsilon)}, \qquad
    \rho_n = \min_{m \ne n} \|\hat x_n - \hat x_m\|, \qquad
    \mathcal{L} = -\frac{1}{N} \sum_n \log(\rho_n + \epsilon)

  The nearest neighbour is the largest dot product of the normalised
  vectors (no gradient flows through the choice); the distance to it is
  differentiated.

  The value is a batch statistic (each example's neighbour is in the
  batch): one scalar, no ``reduction``. ``where`` removes examples from the
  batch: they are nobody's neighbour and not averaged. A kept example with no
  kept neighbour is not averaged either (nothing kept: the value is 0); a
  static batch of one is a ``ValueError``. Identical embeddings (distance
  0) give the finite :math:`-\log \epsilon` and finite gradients.

  Args:
    embeddings: ``[batch, dim]`` embeddings (the student's backbone outputs
      in DINOv2), normalised here.
    eps: :math:`\epsilon > 0`: the normalisation's floor, the log's offset
      and the pairwise distance's (DINOv2's 1e-8).
    where: optional ``[batch]`` mask of the examples that take part.

  Returns:
    A scalar.

  Matches facebookresearch/dinov2 ``dinov2/loss/koleo_loss.py``
  (``KoLeoLoss.forward``: ``F.normalize(x, eps=eps)``, the neighbour by
  ``pairwise_NNs_inner``, ``nn.PairwiseDistance(2, eps=1e-8)``, which is
  ``‖x̂ − ŷ + ε‖``, and ``-log(d + eps).mean()``), except where every other
  example is antipodal: DINOv2 fills the diagonal of the dot products with
  −1, which then ties with them and picks the example itself; here an
  example is never its own neighbour (as in lightly's ``KoLeoLoss``, which
  fills it with −2).

  >>> import jax.numpy as jnp, jaxloss
  >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
  >>> print(f"{jaxloss.koleo_loss(x):.4f}")
  0.2674

  References:
    Sablayrolles et al., `Spreading vectors for similarity search
    <https://arxiv.org/abs/1806.03198>`_, 2019; Oquab et al., `DINOv2:
    Learning Robust Visual Features without Supervision
    <https://arxiv.org/abs/2304.07193>`_, 2024.
  """
  checks.positive("eps", eps)
  x = checks.as_float("embeddings", embeddings)
  checks.rank("embeddings", x, 2)
  check_batch("embeddings", x, "each example needs a neighbour")
  n = x.shape[0]
  if n == 0:
    return jnp.sum(x) * 0  # an empty batch: nothing kept
  keep = (
    jnp.ones((n,), bool)
    if where is None
    else checks.broadcast_mask("where", where, (n,), same_rank=True)
  )
  eps = jnp.asarray(numerics.like(eps, x))
  x = numerics.l2_normalize(jnp.where(keep[:, None], x, 0), eps=eps)
  dots = jax.lax.stop_gradient(x @ x.T)
  candidate = keep[None, :] & ~jnp.eye(n, dtype=bool)
  neighbour = jnp.argmax(jnp.where(candidate, dots, -jnp.inf), axis=1)
  has_neighbour = keep & jnp.any(candidate, axis=1)
  distance = numerics.safe_norm(x - x[neighbour] + eps)
  values = -jnp.log(distance + eps)
  return numerics.masked_mean(values, has_neighbour, axis=0)
