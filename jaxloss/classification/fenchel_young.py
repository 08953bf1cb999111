"""Fenchel-Young losses: the binary and multiclass sparsemax losses and
:func:`make_fenchel_young_loss`, which builds the loss of any regularised max.

Names shared with ``optax.losses`` keep optax's positional signature,
defaults and values; the jaxloss extras are keyword-only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike
from optax import projections

from jaxloss._core import checks, numerics
from jaxloss._core import labels as labels_lib
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce
from jaxloss.classification import _inputs


def _zeros_and_ones(args: dict, arg: str) -> tuple[jax.Array, str]:
  """Value rule: binary labels are 0 or 1."""
  x = jnp.asarray(args[arg])
  return jnp.all((x == 0) | (x == 1)), "must hold 0 or 1"


@loss(labels=_zeros_and_ones)
def sparsemax_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Binary sparsemax loss, elementwise.

  Zero if and only if ``jax.nn.sparse_sigmoid(logits) == labels``.

  .. math::
    \ell = \operatorname{sparseplus}(-x) \text{ if } y = 1, \quad
    \operatorname{sparseplus}(x) \text{ if } y = 0

  Args:
    logits: ``[...]`` floating scores ``x``.
    labels: ``[...]`` labels in {0, 1}, same shape.
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` elementwise loss, or a scalar for ``"sum"``/``"mean"``.

  Matches ``optax.losses.sparsemax_loss``.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.sparsemax_loss(jnp.array([2.0, 0.0, 0.5]), jnp.array([1, 1, 0]))
  Array([0.    , 0.25  , 0.5625], dtype=float32)

  References:
    Blondel, Martins and Niculae, `Learning with Fenchel-Young losses
    <https://arxiv.org/abs/1901.02324>`_, 2020 (section 4.4).
  """
  logits, labels = _inputs.scores_and_targets(logits, labels)
  values = jax.nn.sparse_plus(jnp.where(labels != 0, -logits, logits))
  return reduce(values, reduction, weights=weights, where=where)


# Jitted: optax's projection has a custom JVP, re-traced at every eager call.
@jax.jit
def _sparsemax(scores: jax.Array) -> jax.Array:
  """``optax.projections.projection_simplex`` along the last axis.

  Under ``jax_enable_x64`` optax's projection promotes float32 to float64 (and
  its custom JVP then fails on float32 tangents), so it runs in the dtype optax
  promotes to and the result is cast back.
  """
  promoted = jax.eval_shape(
    projections.projection_simplex,
    jax.ShapeDtypeStruct(scores.shape[-1:], scores.dtype),
  ).dtype
  project = jnp.vectorize(projections.projection_simplex, signature="(n)->(n)")
  return project(scores.astype(promoted)).astype(scores.dtype)


@loss(labels=_inputs.SCORES_CLASS_INDEX)
def multiclass_sparsemax_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Multiclass sparsemax loss: the Fenchel-Young loss of sparsemax.

  .. math::
    \ell = \langle p, s - s_y \rangle + \tfrac12 \big(1 - \|p\|^2\big),
    \qquad p = \operatorname{sparsemax}(s)

  Zero if and only if ``sparsemax(scores)`` is the one-hot label. The
  projection onto the simplex is ``optax.projections.projection_simplex``.

  A label outside ``[0, C)`` that is not masked out by ``where`` gives
  **NaN** for its example, on purpose (:mod:`jaxloss._core.labels`): optax's
  function of the same name gives a finite value there, silently.

  Args:
    scores: ``[..., num_classes]`` floating scores.
    labels: ``[...]`` integer class indices.
    where: boolean mask of the scores' shape (drops classes: they get
      probability 0; the label's class must stay) or of the labels' shape
      (drops examples).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``labels``' shape, or a scalar for ``"sum"``/``"mean"``.

  Matches ``optax.losses.multiclass_sparsemax_loss``, which takes only
  ``[batch, num_classes]`` scores.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.multiclass_sparsemax_loss(jnp.array([[1.0, 0.5, -1.0]]),
  ...                                   jnp.array([1]))
  Array([0.5625], dtype=float32)

  References:
    Martins and Astudillo, `From softmax to sparsemax: a sparse model of
    attention and multi-label classification
    <https://arxiv.org/abs/1602.02068>`_, 2016.
  """
  scores, labels, one_hot, elements, examples = _inputs.multiclass(
    scores, labels, where
  )
  if elements is not None:
    # Sparsemax gives 0 to any score at or below max - 1: masked classes drop.
    top = numerics.masked_max(scores, elements)
    low = jax.lax.stop_gradient(top)[..., None] - 2
    scores = jnp.where(elements, scores, low)
  probabilities = _sparsemax(scores)
  label_scores = jnp.sum(scores * one_hot, axis=-1, keepdims=True)
  values = jnp.sum(probabilities * (scores - label_scores), axis=-1) + 0.5 * (
    1 - jnp.sum(jnp.square(probabilities), axis=-1)
  )
  values = labels_lib.nan_unless_valid(values, labels, scores.shape[-1])
  return reduce(values, reduction, weights=weights, where=examples)


def make_fenchel_young_loss(
  max_fun: Callable[..., jax.Array],
) -> Callable[..., jax.Array]:
  r"""Builds the Fenchel-Young loss of a max function (a regularised max).

  .. math:: \ell(s, y) = \Omega^*(s) - \langle y, s \rangle

  Args:
    max_fun: ``(scores, *args, **kwargs) -> scalar``, the regularised max
      :math:`\Omega^*` over a vector of scores (e.g.
      ``jax.scipy.special.logsumexp``, whose loss is the cross-entropy up to a
      constant).

  Returns:
    ``loss(scores, targets, *args, where=None, weights=None,
    reduction="none", **kwargs)``: ``scores`` and ``targets`` are
    ``[..., num_classes]``, the loss works over the last axis and returns
    ``[...]`` per-example values (``where`` and ``weights`` have that shape),
    or a scalar for ``"sum"``/``"mean"``; ``*args`` and ``**kwargs`` go to
    ``max_fun``.

  Matches ``optax.losses.make_fenchel_young_loss``.

  >>> import jax.numpy as jnp, jaxloss
  >>> from jax.scipy.special import logsumexp
  >>> loss = jaxloss.make_fenchel_young_loss(logsumexp)
  >>> loss(jnp.array([[0.0, 0.0]]), jnp.array([[1.0, 0.0]]))
  Array([0.6931472], dtype=float32)

  References:
    Blondel, Martins and Niculae, `Learning with Fenchel-Young losses
    <https://arxiv.org/abs/1901.02324>`_, 2020.
  """
  max_last_axis = jnp.vectorize(max_fun, signature="(n)->()")

  @loss
  def fenchel_young_loss(
    scores: ArrayLike,
    targets: ArrayLike,
    *args: Any,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "none",
    **kwargs: Any,
  ) -> jax.Array:
    scores, targets = _inputs.scores_and_targets(
      scores, targets, "scores", "targets"
    )
    checks.min_rank("scores", scores, 1, "a class axis")
    values = max_last_axis(scores, *args, **kwargs) - jnp.sum(
      targets * scores, axis=-1
    )
    return reduce(values, reduction, weights=weights, where=where)

  return fenchel_young_loss


__all__ = [
  "make_fenchel_young_loss",
  "multiclass_sparsemax_loss",
  "sparsemax_loss",
]
