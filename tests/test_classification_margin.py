"""Value tests for the margin, perceptron and sparsemax losses.

References: optax 0.2.8 itself for the optax names; torch's semantics written
out in float64 NumPy (torch is not a test dependency) for multi_margin_loss,
soft_margin_loss, multilabel_soft_margin_loss and multilabel_margin_loss;
the formulas for the rest.
"""

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.scipy.special import logsumexp

import jaxloss as jl
from jaxloss.testing import assert_close
from tests.assertions import checked_rejects
from tests.cases.classification_margin import signs

RTOL, ATOL = 1e-5, 1e-6
C = 5


def _scores(seed, *shape):
  return (2 * np.random.default_rng(seed).normal(size=shape)).astype(np.float32)


def _labels(seed, num_classes, *shape):
  rng = np.random.default_rng(seed + 1000)
  return rng.integers(0, num_classes, size=shape).astype(np.int32)


# --------------------------------------------------------------------------- #
# NumPy references (float64)


def np_softplus(x):
  return np.logaddexp(0.0, x)


def np_sparsemax(z):
  """Euclidean projection onto the simplex, row by row (Martins & Astudillo
  2016, algorithm 1)."""
  z = np.asarray(z, np.float64)
  out = np.empty_like(z)
  for index in np.ndindex(z.shape[:-1]):
    row = z[index]
    u = np.sort(row)[::-1]
    k = np.arange(1, row.size + 1)
    support = 1 + k * u > np.cumsum(u)
    kz = k[support][-1]
    tau = (np.cumsum(u)[kz - 1] - 1) / kz
    out[index] = np.maximum(row - tau, 0)
  return out


def np_sparsemax_loss(z, y):
  """Fenchel-Young loss of sparsemax: <p, z> - ||p||^2/2 + 1/2 - z_y."""
  z = np.asarray(z, np.float64)
  p = np_sparsemax(z)
  z_y = np.take_along_axis(z, y[..., None], -1)[..., 0]
  return (p * z).sum(-1) - 0.5 * (p * p).sum(-1) + 0.5 - z_y


def torch_multi_margin_loss(
  x, y, p=1, margin=1.0, weight=None, reduction="none"
):
  """torch.nn.functional.multi_margin_loss, as aten's CPU kernel computes it:
  for each sample, sum over d != y of w[y] * max(0, margin - x[y] + x[d])^p,
  divided by the number of classes C; "mean" divides the sum of the samples'
  values by the number of samples (not by a sum of weights)."""
  x = np.asarray(x, np.float64)
  n, num_classes = x.shape
  out = np.zeros(n)
  for i in range(n):
    for d in range(num_classes):
      if d == y[i]:
        continue
      z = margin - x[i, y[i]] + x[i, d]
      if z > 0:
        h = z if p == 1 else z * z
        if weight is not None:
          h *= weight[y[i]]
        out[i] += h
    out[i] /= num_classes
  return {"none": out, "sum": out.sum(), "mean": out.sum() / n}[reduction]


def torch_soft_margin_loss(x, y, reduction="none"):
  """torch.nn.functional.soft_margin_loss: log(1 + exp(-y x)) elementwise;
  "mean" over every element."""
  out = np.log1p(np.exp(-np.asarray(y, np.float64) * np.asarray(x, np.float64)))
  return {"none": out, "sum": out.sum(), "mean": out.mean()}[reduction]


def torch_multilabel_soft_margin_loss(x, y, weight=None, reduction="none"):
  """torch.nn.functional.multilabel_soft_margin_loss:
  loss = -(y log sigmoid(x) + (1 - y) log sigmoid(-x)), times weight[c] if
  given, summed over the class (last) axis and divided by C; "mean" over
  samples."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  loss = y * np_softplus(-x) + (1 - y) * np_softplus(x)
  if weight is not None:
    loss = loss * np.asarray(weight, np.float64)
  out = loss.sum(-1) / x.shape[-1]
  return {"none": out, "sum": out.sum(), "mean": out.mean()}[reduction]


def torch_multilabel_margin_loss(x, y, reduction="none"):
  """torch.nn.functional.multilabel_margin_loss, as aten's CPU kernel
  (multilabel_margin_loss_forward_out_frame) computes it: the targets are the
  entries of y before its first negative one; for each listed target j (a
  repeated one counts again) and each class d not among the targets,
  max(0, 1 - x[j] + x[d]); the sum divided by C; "mean" over samples."""
  x = np.asarray(x, np.float64)
  n, num_classes = x.shape
  out = np.zeros(n)
  for i in range(n):
    listed = []
    for j in range(num_classes):
      if y[i, j] < 0:
        break
      listed.append(y[i, j])
    for j in listed:
      for d in range(num_classes):
        if d not in listed:
          out[i] += max(0.0, 1 - x[i, j] + x[i, d])
    out[i] /= num_classes
  return {"none": out, "sum": out.sum(), "mean": out.mean()}[reduction]


# --------------------------------------------------------------------------- #
# optax parity: values and signatures


@pytest.mark.parametrize("name", ["hinge_loss", "perceptron_loss"])
@pytest.mark.parametrize("seed", range(3))
def test_binary_margins_match_optax(name, seed):
  scores = _scores(seed, 7, 3)
  targets = signs(np.random.default_rng(seed), 7, 3)
  assert_close(
    getattr(jl, name)(scores, targets),
    getattr(optax.losses, name)(scores, targets),
    RTOL,
    ATOL,
  )


@pytest.mark.parametrize("seed", range(3))
def test_sparsemax_loss_matches_optax(seed):
  logits = _scores(seed, 7, 3)
  labels = _labels(seed, 2, 7, 3)
  assert_close(
    jl.sparsemax_loss(logits, labels),
    optax.losses.sparsemax_loss(logits, labels),
    RTOL,
    ATOL,
  )


@pytest.mark.parametrize(
  "name",
  [
    "multiclass_hinge_loss",
    "multiclass_perceptron_loss",
    "multiclass_sparsemax_loss",
  ],
)
@pytest.mark.parametrize("seed", range(3))
def test_multiclass_margins_match_optax(name, seed):
  scores, labels = _scores(seed, 8, C), _labels(seed, C, 8)
  assert_close(
    getattr(jl, name)(scores, labels),
    getattr(optax.losses, name)(scores, labels),
    RTOL,
    ATOL,
  )


@pytest.mark.parametrize(
  "name",
  [
    "multiclass_hinge_loss",
    "multiclass_perceptron_loss",
    "multiclass_sparsemax_loss",
  ],
)
def test_multiclass_margins_take_leading_axes(name):
  scores, labels = _scores(0, 2, 3, C), _labels(0, C, 2, 3)
  flat = getattr(optax.losses, name)(scores.reshape(6, C), labels.reshape(6))
  assert_close(
    getattr(jl, name)(scores, labels),
    np.asarray(flat).reshape(2, 3),
    RTOL,
    ATOL,
  )


def test_multiclass_sparsemax_loss_matches_numpy_formula():
  scores, labels = _scores(3, 10, C), _labels(3, C, 10)
  assert_close(
    jl.multiclass_sparsemax_loss(scores, labels),
    np_sparsemax_loss(scores, labels),
    atol=1e-5,
    rtol=RTOL,
  )


def test_multiclass_sparsemax_gradient_is_sparsemax_minus_one_hot():
  scores, labels = _scores(4, 6, C), _labels(4, C, 6)
  grad = jax.grad(
    lambda s: jl.multiclass_sparsemax_loss(s, labels, reduction="sum")
  )(scores)
  assert_close(
    grad, np_sparsemax(scores) - np.eye(C)[labels], atol=1e-5, rtol=RTOL
  )


def test_multiclass_sparsemax_float32_under_x64():
  # optax's projection promotes float32 to float64 under x64 and its custom
  # JVP then fails: the loss must stay float32 and differentiable.
  scores, labels = _scores(5, 4, C), _labels(5, C, 4)
  with jax.enable_x64(True):
    value, grad = jax.value_and_grad(
      lambda s: jl.multiclass_sparsemax_loss(s, labels, reduction="sum")
    )(jnp.asarray(scores))
    assert value.dtype == jnp.float32 and grad.dtype == jnp.float32
  assert_close(
    value, np_sparsemax_loss(scores, labels).sum(), atol=1e-5, rtol=RTOL
  )
  assert_close(
    grad, np_sparsemax(scores) - np.eye(C)[labels], atol=1e-5, rtol=RTOL
  )


@pytest.mark.parametrize("seed", range(2))
def test_fenchel_young_loss_matches_optax(seed):
  scores = _scores(seed, 2, 3, C)
  targets = np.random.default_rng(seed).dirichlet(np.ones(C), (2, 3))
  targets = targets.astype(np.float32)
  ours = jl.make_fenchel_young_loss(logsumexp)
  theirs = optax.losses.make_fenchel_young_loss(logsumexp)
  assert_close(ours(scores, targets), theirs(scores, targets), RTOL, ATOL)
  # with one-hot targets, the logsumexp loss is the cross-entropy
  labels = _labels(seed, C, 2, 3)
  assert_close(
    ours(scores, np.eye(C, dtype=np.float32)[labels]),
    optax.losses.softmax_cross_entropy_with_integer_labels(scores, labels),
    RTOL,
    ATOL,
  )


def test_fenchel_young_loss_reduces_by_keyword():
  loss = jl.make_fenchel_young_loss(logsumexp)
  scores = _scores(1, 4, C)
  targets = np.eye(C, dtype=np.float32)[_labels(1, C, 4)]
  values = np.asarray(loss(scores, targets), np.float64)
  where = np.array([True, False, True, True])
  assert_close(
    loss(scores, targets, where=where, reduction="mean"),
    values[where].mean(),
    RTOL,
    ATOL,
  )
  assert_close(
    loss(scores, targets, weights=np.arange(4.0), reduction="sum"),
    (np.arange(4.0) * values).sum(),
    RTOL,
    ATOL,
  )


# --------------------------------------------------------------------------- #
# NumPy formulas and torch semantics


@pytest.mark.parametrize("seed", range(3))
def test_squared_hinge_loss_matches_formula(seed):
  scores = _scores(seed, 6, 4)
  targets = signs(np.random.default_rng(seed), 6, 4)
  expected = np.maximum(0, 1 - targets.astype(np.float64) * scores) ** 2
  assert_close(jl.squared_hinge_loss(scores, targets), expected, RTOL, ATOL)
  assert_close(
    jl.squared_hinge_loss(scores, targets, reduction="mean"),
    expected.mean(),
    RTOL,
    ATOL,
  )


@pytest.mark.parametrize(
  "p,margin,weighted",
  [
    (1, 1.0, False),
    (2, 1.0, False),
    (1, 0.3, False),
    (2, 2.5, False),
    (1, 1.0, True),
    (2, 0.7, True),
  ],
)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_multi_margin_loss_matches_torch(p, margin, weighted, reduction):
  scores, labels = _scores(7, 9, C), _labels(7, C, 9)
  weight = (
    np.random.default_rng(8).uniform(0.2, 3.0, C).astype(np.float32)
    if weighted
    else None
  )
  assert_close(
    jl.multi_margin_loss(
      scores,
      labels,
      p=p,
      margin=margin,
      class_weights=weight,
      reduction=reduction,
    ),
    torch_multi_margin_loss(scores, labels, p, margin, weight, reduction),
    RTOL,
    ATOL,
  )


@hypothesis.settings(derandomize=True, max_examples=15, deadline=None)
@hypothesis.given(
  batch=st.integers(1, 5),
  num_classes=st.integers(2, 6),
  p=st.sampled_from([1, 2]),
  margin=st.floats(0.0, 3.0),
  seed=st.integers(0, 2**16),
)
def test_multi_margin_loss_matches_torch_hypothesis(
  batch, num_classes, p, margin, seed
):
  scores, labels = (
    _scores(seed, batch, num_classes),
    _labels(seed, num_classes, batch),
  )
  assert_close(
    jl.multi_margin_loss(scores, labels, p=p, margin=margin),
    torch_multi_margin_loss(scores, labels, p, margin),
    RTOL,
    ATOL,
  )


def test_multi_margin_loss_float64():
  scores, labels = _scores(9, 6, C), _labels(9, C, 6)
  weight = np.linspace(0.5, 2.0, C)
  with jax.enable_x64(True):
    out = jl.multi_margin_loss(
      jnp.asarray(scores, jnp.float64),
      labels,
      p=2,
      class_weights=weight,
      reduction="mean",
    )
    assert out.dtype == jnp.float64
  assert_close(
    out,
    torch_multi_margin_loss(scores, labels, 2, 1.0, weight, "mean"),
    rtol=1e-12,
    atol=0,
  )


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_soft_margin_loss_matches_torch(reduction):
  scores = _scores(10, 5, 3)
  targets = signs(np.random.default_rng(10), 5, 3)
  assert_close(
    jl.soft_margin_loss(scores, targets, reduction=reduction),
    torch_soft_margin_loss(scores, targets, reduction),
    RTOL,
    ATOL,
  )


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_multilabel_soft_margin_loss_matches_torch(weighted, reduction):
  rng = np.random.default_rng(11)
  logits = _scores(11, 6, C)
  labels = (rng.random((6, C)) < 0.5).astype(np.float32)
  weight = rng.uniform(0.2, 3.0, C).astype(np.float32) if weighted else None
  assert_close(
    jl.multilabel_soft_margin_loss(
      logits, labels, class_weights=weight, reduction=reduction
    ),
    torch_multilabel_soft_margin_loss(logits, labels, weight, reduction),
    RTOL,
    ATOL,
  )


def test_multilabel_soft_margin_loss_float64():
  rng = np.random.default_rng(12)
  logits, labels = rng.normal(size=(4, C)), rng.random((4, C))
  with jax.enable_x64(True):
    out = jl.multilabel_soft_margin_loss(jnp.asarray(logits), labels)
    assert out.dtype == jnp.float64
  assert_close(
    out, torch_multilabel_soft_margin_loss(logits, labels), rtol=1e-12, atol=0
  )


# --------------------------------------------------------------------------- #
# multilabel_margin_loss: torch's MultiLabelMarginLoss


def _torch_targets(seed, n):
  """Lists of distinct classes ended by -1 (none when full), leftovers after
  the -1 (ignored), and one list with a repeated class."""
  rng = np.random.default_rng(seed)
  labels = np.argsort(rng.random((n, C)), axis=-1).astype(np.int32)
  k = rng.integers(0, C + 1, size=(n, 1))
  labels = np.where(np.arange(C) == k, -1, labels).astype(np.int32)
  labels[0] = [2, 2, 0, -1, 4]  # class 2 listed twice counts twice
  return labels


def test_multilabel_margin_loss_torch_doc_example():
  """torch's documentation: input [0.1, 0.2, 0.4, 0.8], target [3, 0, -1, 1]
  gives 0.85."""
  value = jl.multilabel_margin_loss(
    np.array([[0.1, 0.2, 0.4, 0.8]], np.float32),
    np.array([[3, 0, -1, 1]], np.int32),
    reduction="mean",
  )
  assert_close(value, 0.85, RTOL, ATOL)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_multilabel_margin_loss_matches_torch(seed, reduction):
  scores = _scores(seed, 8, C).astype(np.float64) / 2
  labels = _torch_targets(seed, 8)
  with jax.enable_x64(True):
    ours = jl.multilabel_margin_loss(scores, labels, reduction=reduction)
  assert_close(
    ours,
    torch_multilabel_margin_loss(scores, labels, reduction),
    1e-12,
    1e-12,
  )


def test_multilabel_margin_loss_multi_hot_mask():
  """A boolean mask is the set of targets (each once); it equals the torch
  list of the same classes."""
  scores = _scores(4, 6, C)
  labels = _torch_targets(4, 6)
  labels[0] = [2, 0, -1, 0, 0]  # no repeats here
  mask = np.zeros((6, C), bool)
  for i, row in enumerate(labels):
    for j in row:
      if j < 0:
        break
      mask[i, j] = True
  assert_close(
    jl.multilabel_margin_loss(scores, mask),
    jl.multilabel_margin_loss(scores, labels),
    RTOL,
    ATOL,
  )
  assert_close(
    jl.multilabel_margin_loss(scores, mask),
    torch_multilabel_margin_loss(scores, labels),
    RTOL,
    ATOL,
  )


def test_multilabel_margin_loss_class_mask_equals_dropping_the_class():
  scores = _scores(5, 4, C)
  labels = np.array(
    [[0, 3, -1, 1, 1], [4, -1, 0, 0, 0], [1, 2, 3, 0, 4], [-1, 0, 0, 0, 0]],
    np.int32,
  )
  where = np.ones((4, C), bool)
  where[:, 2] = False
  ours = jl.multilabel_margin_loss(scores, labels, where=where)
  # Class 2 dropped: scores without it, labels renumbered (2 removed).
  kept = np.delete(scores, 2, axis=-1)
  renumbered = np.array(
    [[0, 2, -1, 1], [3, -1, 0, 0], [1, 2, 0, 3], [-1, 0, 0, 0]], np.int32
  )
  assert_close(ours, torch_multilabel_margin_loss(kept, renumbered), RTOL, ATOL)


def test_multilabel_margin_loss_out_of_range_index_is_nan():
  """An index >= C before the first -1 gives NaN (torch raises); after the
  -1 it is ignored, as in torch; checked() reports it."""
  scores = _scores(6, 3, C)
  labels = np.array([[1, C, -1, 0, 0], [1, -1, C, 7, 0], [0, 1, -1, 0, 0]])
  labels = labels.astype(np.int32)
  values = np.asarray(jl.multilabel_margin_loss(scores, labels))
  assert np.isnan(values[0]) and np.all(np.isfinite(values[1:]))
  assert_close(
    values[1:], torch_multilabel_margin_loss(scores[1:], labels[1:]), RTOL, ATOL
  )
  keep = np.array([False, True, True])
  mean, grad = jax.value_and_grad(
    lambda s: jl.multilabel_margin_loss(s, labels, where=keep, reduction="mean")
  )(scores)
  assert_close(mean, values[1:].mean(), RTOL, ATOL)
  assert np.all(np.isfinite(grad))
  checked_rejects(
    jl.multilabel_margin_loss, scores, labels, arg="labels", what="must hold"
  )
  jl.checked(jl.multilabel_margin_loss)(scores, labels, where=keep)


def test_multilabel_margin_loss_errors():
  with pytest.raises(TypeError, match="multilabel_margin_loss.*`labels`"):
    jl.multilabel_margin_loss(
      np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float32)
    )
  with pytest.raises(ValueError, match="multilabel_margin_loss.*`labels`"):
    jl.multilabel_margin_loss(
      np.zeros((2, 3), np.float32), np.zeros((2,), np.int32)
    )


# --------------------------------------------------------------------------- #
# where: a mask of the scores' shape drops classes


def _class_mask():
  mask = np.ones((4, C), bool)
  mask[:, 1] = False
  return mask


@pytest.mark.parametrize(
  "name",
  [
    "multiclass_hinge_loss",
    "multiclass_perceptron_loss",
    "multiclass_sparsemax_loss",
    "multi_margin_loss",
  ],
)
def test_class_mask_equals_dropping_the_class(name):
  scores = _scores(13, 4, C)
  labels = np.array([0, 2, 3, 4], np.int32)  # class 1 is masked out
  sliced = np.delete(scores, 1, axis=-1)
  sliced_labels = labels - (labels > 1)
  fn = getattr(jl, name)
  assert_close(
    fn(scores, labels, where=_class_mask()),
    fn(sliced, sliced_labels),
    RTOL,
    ATOL,
  )


def test_multilabel_class_mask_equals_dropping_the_class():
  logits = _scores(14, 4, C)
  labels = (np.random.default_rng(14).random((4, C)) < 0.5).astype(np.float32)
  weight = np.linspace(0.5, 1.5, C).astype(np.float32)
  assert_close(
    jl.multilabel_soft_margin_loss(
      logits, labels, class_weights=weight, where=_class_mask()
    ),
    torch_multilabel_soft_margin_loss(
      np.delete(logits, 1, -1), np.delete(labels, 1, -1), np.delete(weight, 1)
    ),
    RTOL,
    ATOL,
  )


def test_fully_masked_row_is_zero_and_left_out_of_the_mean():
  scores, labels = _scores(15, 3, C), _labels(15, C, 3)
  mask = np.ones((3, C), bool)
  mask[1] = False
  for fn in (
    jl.multiclass_hinge_loss,
    jl.multiclass_sparsemax_loss,
    jl.multi_margin_loss,
  ):
    values = fn(scores, labels, where=mask)
    assert values[1] == 0
    keep = np.array([True, False, True])
    assert_close(
      fn(scores, labels, where=mask, reduction="mean"),
      np.asarray(fn(scores[keep], labels[keep])).mean(),
      RTOL,
      ATOL,
    )
    grad = jax.grad(lambda s: fn(s, labels, where=mask, reduction="mean"))(
      scores
    )
    assert np.all(np.isfinite(grad)) and np.all(grad[1] == 0)


# --------------------------------------------------------------------------- #
# edge cases


def test_extreme_scores():
  big = np.array([1e4, -1e4], np.float32)
  assert_close(
    jl.hinge_loss(big, np.array([-1, 1])), [1e4 + 1, 1e4 + 1], RTOL, ATOL
  )
  assert_close(jl.hinge_loss(big, np.array([1, -1])), [0, 0], RTOL, ATOL)
  assert_close(
    jl.squared_hinge_loss(big, np.array([-1, -1])),
    [(1e4 + 1) ** 2, 0],
    RTOL,
    ATOL,
  )
  assert_close(
    jl.soft_margin_loss(big, np.array([-1, -1])), [1e4, 0], RTOL, ATOL
  )
  assert_close(jl.sparsemax_loss(big, np.array([0, 0])), [1e4, 0], RTOL, ATOL)
  scores = np.array([[1e4, -1e4, 0.0]], np.float32)
  assert_close(
    jl.multiclass_sparsemax_loss(scores, np.array([0])), [0], RTOL, ATOL
  )
  assert_close(
    jl.multiclass_sparsemax_loss(scores, np.array([1])), [2e4], RTOL, ATOL
  )
  assert_close(
    jl.multi_margin_loss(scores, np.array([1]), p=2),
    [((2e4 + 1) ** 2 + (1e4 + 1) ** 2) / 3],
    RTOL,
    ATOL,
  )
  assert_close(
    jl.multilabel_soft_margin_loss(scores, np.array([[0, 1, 1]])),
    [(1e4 + 1e4 + np.log(2)) / 3],
    RTOL,
    ATOL,
  )


def test_perfect_predictions_give_zero():
  scores = np.array([[3.0, 0.0, -1.0]], np.float32)
  label = np.array([0], np.int32)
  for fn in (
    jl.multiclass_hinge_loss,
    jl.multiclass_perceptron_loss,
    jl.multiclass_sparsemax_loss,
    jl.multi_margin_loss,
  ):
    assert float(fn(scores, label)[0]) == 0.0


# --------------------------------------------------------------------------- #
# errors at trace time


def _raises(error, match, fn, *args, **kwargs):
  with pytest.raises(error, match=match):
    jax.eval_shape(lambda *a: fn(*a, **kwargs), *args)


def test_trace_time_errors():
  scores, labels = _scores(0, 4, C), _labels(0, C, 4)
  _raises(
    ValueError,
    r"multi_margin_loss.*`labels`.*shape.*4.*got \(3,\)",
    jl.multi_margin_loss,
    scores,
    labels[:3],
  )
  _raises(
    TypeError,
    r"multiclass_hinge_loss.*`labels`.*integer",
    jl.multiclass_hinge_loss,
    scores,
    labels.astype(np.float32),
  )
  _raises(
    TypeError,
    r"multiclass_sparsemax_loss.*`scores`.*floating",
    jl.multiclass_sparsemax_loss,
    labels[:, None],
    labels,
  )
  _raises(
    ValueError,
    r"multi_margin_loss.*p=3.*1, 2",
    jl.multi_margin_loss,
    scores,
    labels,
    p=3,
  )
  _raises(
    ValueError,
    r"multi_margin_loss.*margin.*>= 0",
    jl.multi_margin_loss,
    scores,
    labels,
    margin=-1.0,
  )
  _raises(
    ValueError,
    r"multi_margin_loss.*class_weights.*\(5,\)",
    jl.multi_margin_loss,
    scores,
    labels,
    class_weights=np.ones(3),
  )
  _raises(
    ValueError,
    r"multilabel_soft_margin_loss.*class_weights",
    jl.multilabel_soft_margin_loss,
    scores,
    scores,
    class_weights=np.ones(4),
  )
  _raises(
    ValueError,
    r"hinge_loss.*`predictor_outputs` \(4, 5\).*"
    r"`targets` \(4,\)",
    jl.hinge_loss,
    scores,
    scores[:, 0],
  )
  _raises(
    ValueError,
    r"soft_margin_loss.*unknown reduction.*'mean'",
    jl.soft_margin_loss,
    scores,
    scores,
    reduction="avg",
  )
  _raises(
    ValueError,
    r"multiclass_perceptron_loss: argument `scores` must have rank >= 1 "
    r"\(a class axis\)",
    jl.multiclass_perceptron_loss,
    np.float32(1.0),
    np.int32(0),
  )
  _raises(
    ValueError,
    r"multiclass_hinge_loss.*`where`",
    jl.multiclass_hinge_loss,
    scores,
    labels,
    where=np.ones((4, 3), bool),
  )
  _raises(
    ValueError,
    r"fenchel_young_loss.*`targets`",
    jl.make_fenchel_young_loss(logsumexp),
    scores,
    scores[:3],
  )


def test_traced_margin():
  scores, labels = _scores(16, 4, C), _labels(16, C, 4)
  jitted = jax.jit(lambda m: jl.multi_margin_loss(scores, labels, margin=m))
  assert_close(
    jitted(0.4), torch_multi_margin_loss(scores, labels, margin=0.4), RTOL, ATOL
  )


# --------------------------------------------------------------------------- #
# value checks


@pytest.mark.parametrize(
  "fn,args,arg,what",
  [
    (jl.hinge_loss, ([1.0, 2.0], [1.0, 0.5]), "targets", ""),
    (jl.soft_margin_loss, ([1.0], [0.0]), "targets", ""),
    (jl.sparsemax_loss, ([1.0], [2]), "labels", ""),
    (
      jl.multi_margin_loss,
      ([[1.0, 2.0]], [2]),
      "labels",
      r"must hold class indices in \[0, 2\)",
    ),
    (jl.multiclass_sparsemax_loss, ([[1.0, 2.0]], [-1]), "labels", ""),
    (
      jl.multilabel_soft_margin_loss,
      ([[1.0, 2.0]], [[1.5, 0.0]]),
      "labels",
      r"must lie in \[0, 1\]",
    ),
  ],
)
def test_checked_catches_bad_values(fn, args, arg, what):
  checked_rejects(fn, *(np.asarray(a) for a in args), arg=arg, what=what)
  valid = jl.checked(jl.multi_margin_loss)(
    np.ones((1, 2), np.float32), np.zeros(1, np.int32)
  )
  assert_close(valid, [0.5], RTOL, ATOL)


# --------------------------------------------------------------------------- #
# docstrings
