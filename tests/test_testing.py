"""The conformance harness: it passes a correct loss, catches broken ones."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss
from jaxloss import testing


def _floats(name, predictions, targets, *, same_shape=True):
  """A user's own checks: float inputs of one shape; errors name the loss
  and the arguments."""
  predictions, targets = jnp.asarray(predictions), jnp.asarray(targets)
  for arg, x in (("predictions", predictions), ("targets", targets)):
    if not jnp.issubdtype(x.dtype, jnp.floating):
      raise TypeError(
        f"{name}: argument `{arg}` must be floating, got {x.dtype}"
      )
  if same_shape and predictions.shape != targets.shape:
    raise ValueError(
      f"{name}: `predictions` {predictions.shape} and `targets` "
      f"{targets.shape} must have one shape"
    )
  dtype = jnp.promote_types(jnp.result_type(predictions, targets), jnp.float32)
  return predictions.astype(dtype), targets.astype(dtype)


@jaxloss.loss
def good_loss(
  predictions, targets, *, where=None, weights=None, reduction="none"
):
  predictions, targets = _floats("good_loss", predictions, targets)
  values = jnp.sum(jnp.square(predictions - targets), axis=-1)
  return jaxloss.reduce(values, reduction, weights=weights, where=where)


def _inputs(rng, n):
  return (
    rng.normal(size=(n, 3)).astype(np.float32),
    rng.normal(size=(n, 3)).astype(np.float32),
  ), {}


def _edge():
  zeros = np.zeros((2, 3), np.float32)
  return [((zeros, zeros), {})]


def _case(fn, **kw):
  return testing.LossCase(
    fn, _inputs, float_args=(0, 1), edge_inputs=_edge, **kw
  )


def test_a_correct_loss_passes_every_property():
  testing.check_loss(_case(good_loss))


@jaxloss.loss
def ignores_where(
  predictions, targets, *, where=None, weights=None, reduction="none"
):
  return good_loss(predictions, targets, weights=weights, reduction=reduction)


@jaxloss.loss
def nan_gradient_at_zero(
  predictions, targets, *, where=None, weights=None, reduction="none"
):
  predictions, targets = _floats("nan_gradient_at_zero", predictions, targets)
  values = jnp.linalg.norm(predictions - targets, axis=-1)
  return jaxloss.reduce(values, reduction, weights=weights, where=where)


@jaxloss.loss
def no_upcast(
  predictions, targets, *, where=None, weights=None, reduction="none"
):
  values = jnp.sum(
    jnp.square(jnp.asarray(predictions) - jnp.asarray(targets)), -1
  )
  return jaxloss.reduce(values, reduction, weights=weights, where=where)


@jaxloss.loss
def promotes_to_float64(
  predictions, targets, *, where=None, weights=None, reduction="none"
):
  predictions, targets = _floats("promotes_to_float64", predictions, targets)
  values = jnp.sum(jnp.square(predictions - targets), -1) * np.float64(1.0)
  return jaxloss.reduce(values, reduction, weights=weights, where=where)


@jaxloss.loss
def broadcasts_silently(
  predictions, targets, *, where=None, weights=None, reduction="none"
):
  predictions, targets = _floats(
    "broadcasts_silently", predictions, targets, same_shape=False
  )
  with jax.numpy_rank_promotion("allow"):
    values = jnp.sum(jnp.square(predictions - targets[:1]), -1)
  return jaxloss.reduce(values, reduction, weights=weights, where=where)


@jaxloss.loss
def wrong_mean(
  predictions, targets, *, where=None, weights=None, reduction="none"
):
  values = good_loss(predictions, targets, where=where, weights=weights)
  if reduction == "mean":
    return jnp.sum(values) / values.shape[0]
  return jaxloss.reduce(values, reduction)


@jax.custom_jvp
def _square(x):
  return x * x


_square.defjvp(
  lambda primals, tangents: (primals[0] ** 2, 3 * primals[0] * tangents[0])
)


@jaxloss.loss
def wrong_gradient(
  predictions, targets, *, where=None, weights=None, reduction="none"
):
  predictions, targets = _floats("wrong_gradient", predictions, targets)
  values = jnp.sum(_square(predictions - targets), axis=-1)
  return jaxloss.reduce(values, reduction, weights=weights, where=where)


@jaxloss.loss
def wraps_labels(logits, labels, *, where=None, weights=None, reduction="none"):
  """Cross-entropy that reads label -1 as the last class (take_along_axis)."""
  logits = jnp.asarray(logits, jnp.float32)
  picked = jnp.take_along_axis(logits, jnp.asarray(labels)[:, None], axis=1)
  values = jax.nn.logsumexp(logits, axis=1) - picked[:, 0]
  return jaxloss.reduce(values, reduction, weights=weights, where=where)


def test_a_loss_that_wraps_labels_fails_the_label_property():
  case = testing.LossCase(
    wraps_labels,
    lambda rng, n: (
      (
        rng.normal(size=(n, 3)).astype(np.float32),
        rng.integers(0, 3, size=n).astype(np.int32),
      ),
      {},
    ),
    label_arg=1,
    num_classes=3,
  )
  with pytest.raises(AssertionError, match="not NaN"):
    testing.check_invalid_labels(case)


@pytest.mark.parametrize(
  "fn,prop",
  [
    (wrong_mean, "empty_batch"),  # 0 / 0 for a batch of none
    (nan_gradient_at_zero, "huge_magnitudes"),  # ‖x‖² overflows
    (ignores_where, "where_is_slicing"),
    (nan_gradient_at_zero, "edge_cases"),
    (no_upcast, "bfloat16"),
    (promotes_to_float64, "dtypes"),
    (broadcasts_silently, "errors"),
    (wrong_mean, "reductions"),
    (wrong_gradient, "gradients"),
  ],
)
def test_a_broken_loss_fails_its_property(fn, prop):
  with pytest.raises(AssertionError):
    testing.PROPERTIES[prop](_case(fn))
