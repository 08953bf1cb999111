"""FastAP: a histogram approximation of each anchor's average precision."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, in_batch, numerics
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce
from jaxloss.metric_learning._distances import pairwise_distances


@loss
def fast_ap_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  num_bins: int = 10,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""FastAP: one minus each anchor's average precision, with the ranking
  approximated by soft histograms of distances.

  .. math::
    \ell_i = 1 - \frac{1}{N^+_i} \sum_{k=0}^{L}
             \frac{h^+_{ik} H^+_{ik}}{H_{ik}}, \qquad
    h^\pm_{ik} = \sum_{j \in P_i / N_i}
                 \big[1 - |d_{ij} - z_k| / \Delta\big]_+

  with ``d`` the squared Euclidean distance between L2-normalised
  embeddings (in [0, 4]), the bin centres ``z_k = kΔ``, ``Δ = 4 / L``,
  ``H⁺`` and ``H`` the cumulative sums over the bins of ``h⁺`` and of
  ``h⁺ + h⁻``, ``N⁺_i`` the number of positives of anchor ``i``; a bin with
  ``h⁺ H⁺ = 0`` or ``H = 0`` adds 0. Memory is ``O(batch² · num_bins)``.

  Args:
    embeddings: ``[batch, dim]`` floating embeddings (normalised here).
    labels: ``[batch]`` integer class labels.
    num_bins: the number of bins ``L`` (a positive Python int).
    where: optional ``[batch]`` mask; a masked example takes no part, neither
      as an anchor nor in another anchor's ranking (``where`` equals
      slicing).
    weights: optional per-anchor weights, broadcastable to ``[batch]``.
    reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[batch]`` per-anchor loss, or a scalar for ``"sum"``/``"mean"``. An
    anchor without positives has value 0 and is left out of ``"mean"``.

  Matches ``pytorch_metric_learning.losses.FastAPLoss`` (``num_bins=10``,
  ``LpDistance(power=2)`` of normalised embeddings, ``MeanReducer`` over the
  anchors with a positive): its value is ``reduction="mean"``.

  >>> import jax.numpy as jnp, jaxloss
  >>> x = jnp.array([[1.0, 0.0], [0.6, 0.8], [0.8, 0.6], [0.0, 1.0]])
  >>> jaxloss.fast_ap_loss(x, jnp.array([0, 0, 1, 1]))
  Array([0.50000006, 0.66666675, 0.66666675, 0.50000006], dtype=float32)

  References:
    Cakir, He, Xia, Kulis and Sclaroff, `Deep Metric Learning to Rank
    <https://openaccess.thecvf.com/content_CVPR_2019/html/Cakir_Deep_Metric_Learning_to_Rank_CVPR_2019_paper.html>`_,
    2019.
  """
  embeddings = checks.as_float("embeddings", embeddings)
  labels = checks.as_labels("labels", labels)
  checks.rank("embeddings", embeddings, 2)
  checks.shape(
    "labels", labels, embeddings.shape[:1], "one label per embedding"
  )
  checks.positive_int("num_bins", num_bins)
  n = embeddings.shape[0]
  keep = in_batch.example_mask(where, (n,))
  both = keep[:, None] & keep[None, :]
  same = in_batch.same_label(labels)
  positives = same & both & ~jnp.eye(n, dtype=bool)
  negatives = ~same & both
  d = pairwise_distances(numerics.l2_normalize(embeddings), "squared_euclidean")
  dtype = d.dtype
  delta = 4.0 / num_bins
  centres = jnp.arange(num_bins + 1, dtype=dtype) * delta
  # [anchor, other, bin] triangular pulses: each distance in [0, 4] spreads a
  # unit mass over its two nearest bins.
  pulses = jax.nn.relu(1 - jnp.abs(d[..., None] - centres[None, None]) / delta)
  positive_hist = jnp.sum(jnp.where(positives[..., None], pulses, 0), axis=1)
  negative_hist = jnp.sum(jnp.where(negatives[..., None], pulses, 0), axis=1)
  positive_total = jnp.cumsum(positive_hist, axis=-1)
  total = jnp.cumsum(positive_hist + negative_hist, axis=-1)
  product = positive_hist * positive_total
  counted = (product > 0) & (total > 0)
  precision = jnp.where(counted, product, 0) / jnp.where(counted, total, 1)
  num_positives = jnp.sum(positives, axis=-1, dtype=dtype)
  has_positive = num_positives > 0
  values = 1 - numerics.safe_divide(jnp.sum(precision, -1), num_positives)
  values = jnp.where(has_positive, values, 0)
  return reduce(values, reduction, weights=weights, where=keep & has_positive)


__all__ = ["fast_ap_loss"]
