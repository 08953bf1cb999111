"""Losses against class centres held as explicit state: the center loss and
its update rule, and the tuple-based end-to-end (TE2E) speaker loss."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics, value_checks
from jaxloss._core import labels as labels_lib
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce


def _center_inputs(
  embeddings: ArrayLike, labels: ArrayLike, centers: ArrayLike
) -> tuple[jax.Array, jax.Array, jax.Array]:
  embeddings, centers = checks.floats(embeddings=embeddings, centers=centers)
  labels = checks.as_labels("labels", labels)
  checks.rank("embeddings", embeddings, 2)
  checks.shape(
    "labels", labels, embeddings.shape[:1], "one label per embedding"
  )
  checks.shape(
    "centers", centers, (None, embeddings.shape[1]), "[num_classes, dim]"
  )
  return embeddings, labels, centers


@loss(labels=value_checks.class_index("centers", axis_arg=None, default_axis=0))
def center_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  centers: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Center loss: half the squared distance to the example's class centre.

  .. math::
    \ell_i = \tfrac12 \|x_i - c_{y_i}\|^2

  The centres are explicit state: update them after each step with
  :func:`update_centers` (the paper's rule; pass them without
  differentiating), or train them as parameters by differentiating this
  loss (its gradient in ``c_y`` is ``c_y − x``). The paper adds ``λ`` times
  the batch sum to the softmax cross-entropy: ``λ * center_loss(...,
  reduction="sum")``.

  Supported input range: squared distances, so in float32 inputs are
  supported up to magnitude 1e15.

  Args:
    embeddings: ``[batch, dim]`` floating embeddings ``x``.
    labels: ``[batch]`` integer class labels in ``[0, num_classes)``.
    centers: ``[num_classes, dim]`` class centres ``c`` (not batch-shaped).
    where, weights, reduction: see :func:`jaxloss.reduce` (``where`` is
      ``[batch]``); default ``"none"``.

  Returns:
    ``[batch]`` per-example loss, or a scalar for ``"sum"``/``"mean"``.

  Matches the paper's equation (2) (per example; its ``L_C`` is the
  ``"sum"``); pytorch-metric-learning 2.9 has no center loss.

  >>> import jax.numpy as jnp, jaxloss
  >>> centers = jnp.array([[0.0, 0.0], [1.0, 1.0]])
  >>> jaxloss.center_loss(jnp.array([[3.0, 4.0]]), jnp.array([0]), centers)
  Array([12.5], dtype=float32)

  References:
    Wen, Zhang, Li and Qiao, `A Discriminative Feature Learning Approach for
    Deep Face Recognition
    <https://doi.org/10.1007/978-3-319-46478-7_31>`_, 2016.
  """
  embeddings, labels, centers = _center_inputs(embeddings, labels, centers)
  num_classes = centers.shape[0]
  own = jnp.take(centers, labels_lib.clipped(labels, num_classes), axis=0)
  values = 0.5 * jnp.sum(jnp.square(embeddings - own), axis=-1)
  values = labels_lib.nan_unless_valid(values, labels, num_classes)
  return reduce(values, reduction, weights=weights, where=where)


@loss
def update_centers(
  centers: ArrayLike,
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  alpha: ArrayLike = 0.5,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""The center loss's update of the class centres (a pure function).

  .. math::
    \Delta c_j = \frac{\sum_i \delta(y_i = j)\,(c_j - x_i)}
                      {1 + \sum_i \delta(y_i = j)},
    \qquad c_j \leftarrow c_j - \alpha\, \Delta c_j

  A class absent from the batch keeps its centre. The embeddings are used
  as given (wrap them in ``jax.lax.stop_gradient`` inside a differentiated
  step, as the paper treats the update apart from back-propagation).

  Args:
    centers: ``[num_classes, dim]`` the current centres.
    embeddings: ``[batch, dim]`` floating embeddings.
    labels: ``[batch]`` integer labels; a label outside ``[0,
      num_classes)`` updates nothing.
    alpha: the centres' learning rate ``α`` (the paper: in ``[0, 1]``; may
      be traced).
    where: optional ``[batch]`` mask of the examples that take part.

  Returns:
    ``[num_classes, dim]`` the new centres, in the centres' dtype.

  Matches the paper's equation (4) and Algorithm 1's step 6.

  >>> import jax.numpy as jnp, jaxloss
  >>> centers = jnp.zeros((2, 2))
  >>> x = jnp.array([[2.0, 0.0], [4.0, 0.0]])
  >>> jaxloss.update_centers(centers, x, jnp.array([0, 0]))  # Δc = −6/3
  Array([[1., 0.],
         [0., 0.]], dtype=float32)

  References:
    Wen, Zhang, Li and Qiao, `A Discriminative Feature Learning Approach for
    Deep Face Recognition
    <https://doi.org/10.1007/978-3-319-46478-7_31>`_, 2016.
  """
  embeddings, labels, centers = _center_inputs(embeddings, labels, centers)
  checks.nonnegative("alpha", alpha)
  num_classes = centers.shape[0]
  members = jax.nn.one_hot(labels, num_classes, dtype=centers.dtype)
  if where is not None:
    keep = checks.broadcast_mask("where", where, labels.shape, same_rank=True)
    members = members * keep[:, None].astype(centers.dtype)
  counts = jnp.sum(members, axis=0)  # [num_classes]
  sums = jnp.matmul(members.T, embeddings)  # Σ x_i per class
  delta = (counts[:, None] * centers - sums) / (1 + counts[:, None])
  return centers - numerics.like(alpha, centers.dtype) * delta


@loss(
  labels=value_checks.unit_interval,
  w=value_checks.positive,
)
def te2e_loss(
  embeddings: ArrayLike,
  centroids: ArrayLike,
  labels: ArrayLike,
  *,
  w: ArrayLike = 10.0,
  b: ArrayLike = -5.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Tuple-based end-to-end (TE2E) speaker-verification loss.

  .. math::
    s = w \cos(e, c) + b, \qquad
    \ell = -y \log \sigma(s) - (1 - y) \log \big(1 - \sigma(s)\big)

  Each example is a tuple: an evaluation utterance's embedding ``e`` and
  the centroid ``c`` of an enrolment speaker's utterances (their mean
  embedding), labelled 1 when they are the same speaker. The logistic
  cross-entropy is computed from the logit (no ``log 0``).

  Args:
    embeddings: ``[batch, dim]`` floating evaluation embeddings ``e``.
    centroids: ``[batch, dim]`` enrolment centroids ``c``, one per tuple.
    labels: ``[batch]`` 1 for the same speaker, 0 otherwise (float, int or
      bool; soft labels in ``[0, 1]`` are accepted). Not differentiated.
    w: the similarity scale (the paper keeps it > 0; may be traced).
    b: the similarity bias (may be traced).
    where, weights, reduction: see :func:`jaxloss.reduce`; default
      ``"none"``.

  Returns:
    ``[batch]`` per-tuple loss, or a scalar for ``"sum"``/``"mean"``.

  Matches Heigold et al.'s end-to-end loss (section 2.2: the logistic
  regression on ``w·S + b``, with the cosine score of the GE2E paper's
  TE2E description); no packaged reference.

  >>> import jax.numpy as jnp, jaxloss
  >>> e, c = jnp.array([[1.0, 0.0]]), jnp.array([[2.0, 0.0]])
  >>> jaxloss.te2e_loss(e, c, jnp.array([1.0]), w=1.0, b=0.0)  # log(1+e⁻¹)
  Array([0.3132617], dtype=float32)

  References:
    Heigold, Moreno, Bengio and Shazeer, `End-to-End Text-Dependent Speaker
    Verification <https://arxiv.org/abs/1509.08062>`_, 2016.
  """
  embeddings, centroids = checks.floats(
    embeddings=embeddings, centroids=centroids
  )
  checks.rank("embeddings", embeddings, 2)
  checks.same_shape(embeddings=embeddings, centroids=centroids)
  labels = checks.as_targets("labels", labels, embeddings)
  checks.shape("labels", labels, embeddings.shape[:1], "one per tuple")
  checks.positive("w", w)
  dtype = embeddings.dtype
  cosines = jnp.sum(
    numerics.l2_normalize(embeddings) * numerics.l2_normalize(centroids),
    axis=-1,
  )
  logits = numerics.like(w, dtype) * cosines + numerics.like(b, dtype)
  values = numerics.sigmoid_cross_entropy(logits, jax.lax.stop_gradient(labels))
  return reduce(values, reduction, weights=weights, where=where)


__all__ = ["center_loss", "te2e_loss", "update_centers"]
