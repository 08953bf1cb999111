"""Softmax cross-entropies with a multiplicative angular margin: L-Softmax
and SphereFace (A-Softmax)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics, value_checks
from jaxloss._core import labels as labels_lib
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce, split_where
from jaxloss.metric_learning._cross_entropy import masked_cross_entropy

_RULES = {
  "labels": value_checks.class_index("centers", axis_arg=None, default_axis=0)
}


def _chebyshev(c: jax.Array, m: int) -> jax.Array:
  """``cos(m θ)`` as the polynomial ``T_m(cos θ)`` (``T_0 = 1``, ``T_1 =
  c``, ``T_{k+1} = 2c T_k − T_{k−1}``): smooth in ``c``, finite at ±1."""
  previous, current = jnp.ones_like(c), c
  if m == 0:
    return previous
  for _ in range(m - 1):
    previous, current = current, 2 * c * current - previous
  return current


def _psi(c: jax.Array, m: int) -> jax.Array:
  """The monotonic extension ``ψ(θ) = (−1)^k cos(mθ) − 2k`` for ``θ ∈
  [kπ/m, (k+1)π/m]``; ``k`` carries no gradient (an arccos there would give
  an infinite one at ``c = ±1``)."""
  angle = jnp.arccos(jnp.clip(jax.lax.stop_gradient(c), -1, 1))
  k = jnp.floor(angle / (math.pi / m))
  sign = 1 - 2 * jnp.mod(k, 2)
  return sign * _chebyshev(c, m) - 2 * k


def _multiplicative_margin(
  name_of_norms: str,
  embeddings: ArrayLike,
  labels: ArrayLike,
  centers: ArrayLike,
  margin: int,
  scale: ArrayLike,
  where: ArrayLike | None,
  weights: ArrayLike | None,
  reduction: Reduction,
) -> jax.Array:
  """The shared body: cosines, ``ψ`` at the label, logits scaled by
  ``‖x‖`` (``"embedding"``) or ``‖x‖‖W_c‖`` (``"both"``)."""
  embeddings, centers = checks.floats(embeddings=embeddings, centers=centers)
  labels = checks.as_labels("labels", labels)
  checks.rank("embeddings", embeddings, 2)
  checks.shape(
    "labels", labels, embeddings.shape[:1], "one label per embedding"
  )
  checks.shape(
    "centers", centers, (None, embeddings.shape[1]), "[num_classes, dim]"
  )
  checks.positive_int("margin", margin)
  checks.positive("scale", scale)
  num_classes = centers.shape[0]
  elements, examples = split_where(
    where, (embeddings.shape[0], num_classes), -1
  )
  # The other classes' logits come straight from a matmul and the label's
  # from a gather in the cross-entropy, so no product is rounded twice: XLA
  # may recompute an elementwise product (contracted into an FMA, or not)
  # separately in the max and the exp of the log-sum-exp, which at logits
  # of 1e15 differs by 1e8 and overflows exp.
  scaled = numerics.like(scale, embeddings.dtype) * embeddings  # s x
  unit_centers = numerics.l2_normalize(centers)
  directions = centers if name_of_norms == "both" else unit_centers
  products = jnp.matmul(scaled, directions.T)  # s ‖x‖ ‖W_c‖ cos θ_c
  cosines = jnp.matmul(numerics.l2_normalize(embeddings), unit_centers.T)
  label_cosines = labels_lib.pick(cosines, labels)
  magnitudes = numerics.safe_norm(scaled)  # s ‖x‖
  if name_of_norms == "both":
    center_norms = numerics.safe_norm(centers)
    label_norms = jnp.take(
      center_norms, labels_lib.clipped(labels, num_classes)
    )
    magnitudes = magnitudes * label_norms
  targets = magnitudes * _psi(label_cosines, int(margin))
  is_label = jax.nn.one_hot(labels, num_classes, dtype=bool)
  logits = jnp.where(is_label, targets[:, None], products)
  values = masked_cross_entropy(logits, labels, elements)
  return reduce(values, reduction, weights=weights, where=examples)


@loss(**_RULES)
def large_margin_softmax_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  centers: ArrayLike,
  *,
  margin: int = 4,
  scale: ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""L-Softmax: a multiplicative angular margin on the label's logit.

  .. math::
    \ell = -\log \frac{e^{s \|x\| \|W_y\| \psi(\theta_y)}}
      {e^{s \|x\| \|W_y\| \psi(\theta_y)}
       + \sum_{c \ne y} e^{s \|x\| \|W_c\| \cos\theta_c}},
    \qquad
    \psi(\theta) = (-1)^k \cos(m\theta) - 2k,\ \
    \theta \in \Big[\frac{k\pi}{m}, \frac{(k+1)\pi}{m}\Big]

  The logits are those of a bias-free linear layer, ``W_c · x``, with the
  label's ``cos θ_y`` replaced by ``ψ(θ_y)``, a decreasing extension of
  ``cos(mθ)`` to ``[0, π]``. ``cos(mθ)`` is the Chebyshev polynomial
  ``T_m(cos θ)`` (the paper's equation 7), so the gradient is finite at
  ``cos θ = ±1``; ``k`` carries no gradient.

  Supported input range: the logits are products of the two norms, so in
  float32 inputs are supported up to magnitude 1e15.

  Args:
    embeddings: ``[batch, dim]`` floating embeddings ``x``.
    labels: ``[batch]`` integer class labels in ``[0, num_classes)``.
    centers: ``[num_classes, dim]`` the class weight vectors ``W_c`` (the
      last linear layer's rows; not batch-shaped).
    margin: the integer margin ``m ≥ 1`` (static; 1 is the plain softmax).
    scale: ``s > 0``, multiplies every logit.
    where: boolean mask ``[batch]`` (drops examples) or ``[batch,
      num_classes]`` (drops classes).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[batch]`` per-example loss, or a scalar for ``"sum"``/``"mean"``.

  Matches pytorch-metric-learning's ``LargeMarginSoftmaxLoss`` with
  ``W = centers.T`` (its default ``MeanReducer`` is ``"mean"``); PML's
  ``margin`` is the same integer. The paper's training anneals the target
  logit as ``(λ W_y·x + ‖W_y‖‖x‖ψ(θ_y)) / (1 + λ)``; neither PML nor this
  function does.

  >>> import jax.numpy as jnp, jaxloss
  >>> centers = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  >>> x = jnp.array([[1.0, 1.0]])  # 45° from both: ψ = cos 90° = 0; log(1 + e)
  >>> jaxloss.large_margin_softmax_loss(x, jnp.array([0]), centers, margin=2)
  Array([1.3132617], dtype=float32)

  References:
    Liu, Wen, Yu and Yang, `Large-Margin Softmax Loss for Convolutional
    Neural Networks <https://arxiv.org/abs/1612.02295>`_, 2016.
  """
  return _multiplicative_margin(
    "both",
    embeddings,
    labels,
    centers,
    margin,
    scale,
    where,
    weights,
    reduction,
  )


@loss(**_RULES)
def sphereface_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  centers: ArrayLike,
  *,
  margin: int = 4,
  scale: ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""SphereFace (A-Softmax): L-Softmax with normalised class weights.

  .. math::
    \ell = -\log \frac{e^{s \|x\| \psi(\theta_y)}}
      {e^{s \|x\| \psi(\theta_y)} + \sum_{c \ne y} e^{s \|x\| \cos\theta_c}},
    \qquad
    \psi(\theta) = (-1)^k \cos(m\theta) - 2k,\ \
    \theta \in \Big[\frac{k\pi}{m}, \frac{(k+1)\pi}{m}\Big]

  As :func:`large_margin_softmax_loss`, with ``‖W_c‖ = 1``: the decision
  depends on the angles only. ``cos(mθ)`` is ``T_m(cos θ)``; ``k`` carries
  no gradient.

  Supported input range: the logits are linear in ``‖x‖`` (no limit below
  float32's range; the cross-entropy is computed from logit differences).

  Args:
    embeddings: ``[batch, dim]`` floating embeddings ``x``.
    labels: ``[batch]`` integer class labels in ``[0, num_classes)``.
    centers: ``[num_classes, dim]`` class weight vectors, normalised here.
    margin: the integer margin ``m ≥ 1`` (static; the paper uses 4).
    scale: ``s > 0``, multiplies every logit.
    where: boolean mask ``[batch]`` (drops examples) or ``[batch,
      num_classes]`` (drops classes).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[batch]`` per-example loss, or a scalar for ``"sum"``/``"mean"``.

  Matches pytorch-metric-learning's ``SphereFaceLoss`` with ``W =
  centers.T``. Like PML it has no annealing ``(λ cos θ_y + ψ(θ_y)) / (1 +
  λ)`` of the paper's training.

  >>> import jax.numpy as jnp, jaxloss
  >>> centers = jnp.array([[2.0, 0.0], [0.0, 2.0]])
  >>> x = jnp.array([[2.0, 2.0]])  # ψ = 0, other logit ‖x‖ cos 45° = 2
  >>> jaxloss.sphereface_loss(x, jnp.array([0]), centers, margin=2)
  Array([2.12692...], dtype=float32)

  References:
    Liu, Wen, Yu, Li, Raj and Song, `SphereFace: Deep Hypersphere Embedding
    for Face Recognition <https://arxiv.org/abs/1704.08063>`_, 2017.
  """
  return _multiplicative_margin(
    "embedding",
    embeddings,
    labels,
    centers,
    margin,
    scale,
    where,
    weights,
    reduction,
  )


__all__ = ["large_margin_softmax_loss", "sphereface_loss"]
