"""What the semi-supervised losses share (private to the family)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics
from jaxloss._core.reduction import reduce
from jaxloss.classification import (
  softmax_cross_entropy,
  softmax_cross_entropy_with_integer_labels,
)


def labeled_rule(args, arg):
  """Integer labels lie in ``[0, C)``, soft labels in ``[0, 1]``; labels of
  examples that ``labeled_where`` drops may hold anything."""
  labels = jnp.asarray(args[arg])
  num_classes = jnp.shape(args["labeled_logits"])[-1]
  if labels.ndim == jnp.ndim(args["labeled_logits"]):
    ok = (labels >= 0) & (labels <= 1)
    what = "must hold soft labels in [0, 1]"
  else:
    ok = (labels >= 0) & (labels < num_classes)
    what = f"must hold class indices in [0, {num_classes})"
  where = args.get("labeled_where")
  if where is not None:
    where = jnp.asarray(where)
    ok = ok | ~where.reshape(where.shape + (1,) * (ok.ndim - where.ndim))
  return jnp.all(ok), what


def example_mask(arg: str, where: ArrayLike | None, size: int):
  """A ``[size]`` boolean mask, or ``None``."""
  if where is None:
    return None
  where = checks.as_mask(arg, where)
  checks.shape(arg, where, (size,), "one entry per example")
  return where


def supervised_term(
  logits: jax.Array,
  labels: ArrayLike,
  where: jax.Array | None,
  label_smoothing: ArrayLike,
) -> jax.Array:
  """The mean cross-entropy of the labeled batch: integer ``[B]`` labels or
  soft ``[B, C]`` labels (``labeled_labels``), over the unmasked examples."""
  labels = jnp.asarray(labels)
  checks.rank("labeled_labels", labels, (1, 2))
  if labels.ndim == 1:
    labels = checks.as_labels("labeled_labels", labels)
    checks.labels_for(labels, logits, -1, "labeled_logits", "labeled_labels")
    values = softmax_cross_entropy_with_integer_labels(
      logits, labels, label_smoothing=label_smoothing
    )
  else:
    labels = checks.as_targets("labeled_labels", labels, logits)
    checks.same_shape(labeled_logits=logits, labeled_labels=labels)
    values = softmax_cross_entropy(
      logits, labels, label_smoothing=label_smoothing
    )
  return reduce(values, "mean", where=where)


def two_dimensional(**arrays: ArrayLike) -> tuple[jax.Array, ...]:
  """Floating ``[N, C]`` arrays of one dtype (named by the keywords), one
  class count."""
  converted = checks.floats(**arrays)
  first_arg, first = next(iter(arrays)), converted[0]
  for arg, x in zip(arrays, converted):
    checks.rank(arg, x, 2)
    if x.shape[-1] != first.shape[-1]:
      raise checks.fail(
        f"arguments `{first_arg}` {first.shape} and `{arg}` {x.shape} must "
        "have the same number of classes (last axis)."
      )
  return converted


def pseudo_label_terms(
  logits: jax.Array,
  target_logits: jax.Array,
  threshold: ArrayLike,
) -> jax.Array:
  """Cross-entropy of ``logits`` against ``argmax(target_logits)``, 0 where
  the target's top probability is below the threshold (kept at ``>=``, as
  FixMatch and USB's Pseudo-Label do); no gradient through the target."""
  target = jax.lax.stop_gradient(target_logits)
  top = jnp.max(jax.nn.softmax(target, axis=-1), axis=-1)
  threshold = numerics.like(threshold, top)
  confident = top >= threshold
  values = softmax_cross_entropy_with_integer_labels(
    logits, jnp.argmax(target, axis=-1)
  )
  return jnp.where(confident, values, jnp.zeros((), values.dtype))
