"""Value tests for the cross-entropy side of jaxloss.classification.

Each loss is compared with optax (float32) where optax has it, and with a
float64 NumPy transcription of its reference (torch, torchvision, the papers)
written out below. The shared properties (jit, vmap, masks, dtypes, edge
gradients) run over tests/cases/classification.py in tests/test_properties.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxloss as jl
from jaxloss.testing import assert_close
from tests.assertions import checked_rejects

F32_TOL = dict(rtol=1e-5, atol=1e-6)
F64_TOL = dict(rtol=1e-10, atol=1e-12)


def rng_for(seed):
  return np.random.default_rng(seed)


def soft_labels(rng, *shape):
  p = rng.uniform(0.05, 1.0, size=shape)
  return p / p.sum(-1, keepdims=True)


def class_mask(rng, labels, num_classes):
  """A random ``[..., num_classes]`` mask that keeps each label's class."""
  mask = rng.random(labels.shape + (num_classes,)) < 0.6
  np.put_along_axis(mask, labels[..., None], True, axis=-1)
  return mask


# --------------------------------------------------------------------------- #
# float64 NumPy references


def np_log_softmax(x, axis=-1):
  shifted = x - x.max(axis, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(axis, keepdims=True))


def np_log_sigmoid(x):
  return -np.logaddexp(0.0, -x)


def np_pick(x, labels):
  return np.take_along_axis(x, labels[..., None], axis=-1)[..., 0]


def torch_cross_entropy(
  logits,
  target,
  weight=None,
  ignore_index=-100,
  reduction="mean",
  label_smoothing=0.0,
):
  """torch.nn.functional.cross_entropy with class-index targets (class axis
  last), following aten's cross_entropy_loss_label_smoothing / nll_loss."""
  logp = np_log_softmax(logits)
  num_classes = logits.shape[-1]
  w = np.ones(num_classes) if weight is None else weight
  keep = target != ignore_index
  t = np.where(keep, target, 0)
  nll = -np_pick(logp, t) * w[t] * keep
  smooth = -(logp * w).sum(-1) * keep
  eps = label_smoothing
  if reduction == "none":
    return (1 - eps) * nll + eps / num_classes * smooth
  if reduction == "sum":
    return (1 - eps) * nll.sum() + eps / num_classes * smooth.sum()
  denominator = (w[t] * keep).sum()
  return (
    1 - eps
  ) * nll.sum() / denominator + eps / num_classes * smooth.sum() / denominator


def torch_nll_loss(
  logp, target, weight=None, ignore_index=-100, reduction="mean"
):
  """torch.nn.functional.nll_loss, class axis last."""
  keep = target != ignore_index
  t = np.where(keep, target, 0)
  w = (np.ones(logp.shape[-1]) if weight is None else weight)[t] * keep
  loss = -np_pick(logp, t) * w
  return {"none": loss, "sum": loss.sum(), "mean": loss.sum() / w.sum()}[
    reduction
  ]


def torch_binary_cross_entropy(p, y):
  """torch.nn.functional.binary_cross_entropy(reduction="none"): logs
  clamped at -100."""
  with np.errstate(divide="ignore"):
    return -(
      y * np.maximum(np.log(p), -100) + (1 - y) * np.maximum(np.log1p(-p), -100)
    )


def torch_bce_with_logits(x, y, pos_weight=None):
  """torch.nn.functional.binary_cross_entropy_with_logits(reduction="none"),
  as aten computes it."""
  pw = np.ones_like(x) if pos_weight is None else pos_weight
  log_weight = 1 + (pw - 1) * y
  return (1 - y) * x + log_weight * (
    np.log1p(np.exp(-np.abs(x))) + np.maximum(-x, 0)
  )


def torchvision_sigmoid_focal_loss(x, y, alpha=0.25, gamma=2.0):
  """torchvision.ops.sigmoid_focal_loss(reduction="none")."""
  p = 1 / (1 + np.exp(-x))
  ce = torch_bce_with_logits(x, y)
  p_t = p * y + (1 - p) * (1 - y)
  loss = ce * (1 - p_t) ** gamma
  if alpha >= 0:
    loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
  return loss


def paper_poly1_focal_loss(x, y, epsilon=1.0, gamma=2.0, alpha=-1.0):
  """Leng et al. 2022, poly1_focal_loss (their appendix code)."""
  p = 1 / (1 + np.exp(-x))
  p_t = y * p + (1 - y) * (1 - p)
  return torchvision_sigmoid_focal_loss(x, y, alpha, gamma) + epsilon * (
    1 - p_t
  ) ** (gamma + 1)


def np_softmax_focal_loss(logits, labels, alpha=None, gamma=2.0):
  """-α_y (1 - p_y)^γ log p_y."""
  log_p = np_pick(np_log_softmax(logits), labels)
  a = (
    1.0
    if alpha is None
    else np.asarray(alpha)[labels]
    if np.ndim(alpha)
    else alpha
  )
  return -a * (1 - np.exp(log_p)) ** gamma * log_p


def cui_class_weights(counts, method, beta=0.999):
  """Cui et al. 2019 reference code, on the classes with a nonzero count."""
  counts = np.asarray(counts, np.float64)
  present = counts > 0
  n = counts[present]
  raw = {
    "effective_number": (1 - beta) / (1 - np.power(beta, n)),
    "inverse": 1 / n,
    "inverse_sqrt": 1 / np.sqrt(n),
  }[method]
  weights = np.zeros_like(counts)
  weights[present] = raw / raw.sum() * len(counts)
  return weights


# --------------------------------------------------------------------------- #
# optax parity (float32)


def test_optax_sigmoid_binary_cross_entropy():
  rng = rng_for(0)
  logits = rng.normal(size=(5, 3)).astype(np.float32) * 3
  labels = rng.uniform(size=(5, 3)).astype(np.float32)
  assert_close(
    jl.sigmoid_binary_cross_entropy(logits, labels),
    optax.losses.sigmoid_binary_cross_entropy(logits, labels),
    **F32_TOL,
  )


@pytest.mark.parametrize("mask", [None, "classes", "examples"])
def test_optax_softmax_cross_entropy(mask):
  rng = rng_for(1)
  logits = rng.normal(size=(6, 5)).astype(np.float32) * 2
  labels = soft_labels(rng, 6, 5).astype(np.float32)
  where = {
    None: None,
    "examples": rng.random(6) < 0.5,
    "classes": class_mask(rng, rng.integers(0, 5, 6), 5),
  }[mask]
  assert_close(
    jl.softmax_cross_entropy(logits, labels, where=where),
    optax.losses.softmax_cross_entropy(logits, labels, where=where),
    **F32_TOL,
  )


@pytest.mark.parametrize("axis", [0, (1, 2), None])
def test_optax_softmax_cross_entropy_axis(axis):
  rng = rng_for(2)
  logits = rng.normal(size=(3, 2, 4)).astype(np.float32)
  labels = rng.uniform(size=(3, 2, 4)).astype(np.float32)
  assert_close(
    jl.softmax_cross_entropy(logits, labels, axis=axis),
    optax.losses.softmax_cross_entropy(logits, labels, axis=axis),
    **F32_TOL,
  )


@pytest.mark.parametrize("mask", [None, "classes", "examples"])
def test_optax_integer_labels(mask):
  rng = rng_for(3)
  logits = rng.normal(size=(6, 5)).astype(np.float32) * 2
  labels = rng.integers(0, 5, 6).astype(np.int32)
  where = {
    None: None,
    "examples": rng.random(6) < 0.5,
    "classes": class_mask(rng, labels, 5),
  }[mask]
  assert_close(
    jl.softmax_cross_entropy_with_integer_labels(logits, labels, where=where),
    optax.losses.softmax_cross_entropy_with_integer_labels(
      logits, labels, where=where
    ),
    **F32_TOL,
  )


@settings(derandomize=True, database=None, max_examples=8, deadline=None)
@given(
  batch=st.lists(st.integers(1, 3), min_size=0, max_size=2),
  classes=st.lists(st.integers(1, 4), min_size=1, max_size=2),
  seed=st.integers(0, 2**16),
)
def test_optax_integer_labels_any_axes(batch, classes, seed):
  rng = rng_for(seed)
  logits = rng.normal(size=tuple(batch) + tuple(classes)).astype(np.float32)
  axis = tuple(range(len(batch), logits.ndim))
  axis = axis[0] if len(axis) == 1 else axis
  labels = rng.integers(0, np.prod(classes), size=batch).astype(np.int32)
  assert_close(
    jl.softmax_cross_entropy_with_integer_labels(logits, labels, axis),
    optax.losses.softmax_cross_entropy_with_integer_labels(
      logits, labels, axis
    ),
    **F32_TOL,
  )


def test_optax_integer_labels_axis_0():
  rng = rng_for(4)
  logits = rng.normal(size=(5, 3)).astype(np.float32)
  labels = rng.integers(0, 5, 3).astype(np.int32)
  assert_close(
    jl.softmax_cross_entropy_with_integer_labels(logits, labels, axis=0),
    optax.losses.softmax_cross_entropy_with_integer_labels(
      logits, labels, axis=0
    ),
    **F32_TOL,
  )


def test_optax_safe_softmax_cross_entropy():
  rng = rng_for(5)
  logits = rng.normal(size=(6, 5)).astype(np.float32)
  labels = soft_labels(rng, 6, 5)
  ruled_out = rng.random((6, 5)) < 0.3
  ruled_out[:, 0] = False
  logits = np.where(ruled_out, -np.inf, logits).astype(np.float32)
  labels = np.where(ruled_out, 0, labels)
  labels = (labels / labels.sum(-1, keepdims=True)).astype(np.float32)
  ours = jl.safe_softmax_cross_entropy(logits, labels)
  assert_close(
    ours, optax.losses.safe_softmax_cross_entropy(logits, labels), **F32_TOL
  )
  grads = jax.grad(lambda x: jl.safe_softmax_cross_entropy(x, labels).sum())(
    logits
  )
  assert np.all(np.isfinite(grads))
  # softmax_cross_entropy also takes 0 log 0 = 0 (optax gives NaN there).
  assert_close(jl.softmax_cross_entropy(logits, labels), ours, **F32_TOL)


@pytest.mark.parametrize(
  "alpha,gamma", [(None, 2.0), (0.25, 2.0), (0.7, 0.5), (None, 0.0)]
)
def test_optax_sigmoid_focal_loss(alpha, gamma):
  rng = rng_for(6)
  logits = (rng.normal(size=(5, 4)) * 3).astype(np.float32)
  labels = np.concatenate(
    [rng.integers(0, 2, (5, 2)), rng.uniform(size=(5, 2))], axis=1
  ).astype(np.float32)
  assert_close(
    jl.sigmoid_focal_loss(logits, labels, alpha=alpha, gamma=gamma),
    optax.losses.sigmoid_focal_loss(logits, labels, alpha=alpha, gamma=gamma),
    **F32_TOL,
  )


@pytest.mark.parametrize(
  "epsilon,mask", [(2.0, False), (-1.0, False), (1.0, True)]
)
def test_optax_poly_loss_cross_entropy(epsilon, mask):
  rng = rng_for(7)
  logits = rng.normal(size=(6, 5)).astype(np.float32) * 2
  labels = soft_labels(rng, 6, 5).astype(np.float32)
  where = class_mask(rng, rng.integers(0, 5, 6), 5) if mask else None
  assert_close(
    jl.poly_loss_cross_entropy(logits, labels, epsilon=epsilon, where=where),
    optax.losses.poly_loss_cross_entropy(
      logits, labels, epsilon=epsilon, where=where
    ),
    **F32_TOL,
  )


@pytest.mark.parametrize(
  "axis,mask", [(-1, False), (-1, True), (0, False), ((0, 1), False)]
)
def test_optax_smooth_labels(axis, mask):
  rng = rng_for(8)
  labels = np.eye(5, dtype=np.float32)[rng.integers(0, 5, 4)]
  where = class_mask(rng, rng.integers(0, 5, 4), 5) if mask else None
  assert_close(
    jl.smooth_labels(labels, 0.1, axis=axis, where=where),
    optax.losses.smooth_labels(labels, 0.1, axis=axis, where=where),
    **F32_TOL,
  )


# --------------------------------------------------------------------------- #
# torch parity, written out in float64


@pytest.mark.parametrize(
  "options",
  [
    {"label_smoothing": 0.15},
    {"weight": "random"},
    {"ignore_index": -100},
    {"ignore_index": -100, "label_smoothing": 0.1},
    # torch 2.13 weighs each smoothing term by its own class and divides the
    # mean by Σ w_y (issue 19 §4: jaxloss weighed it all by w_y before).
    {"weight": "random", "label_smoothing": 0.2},
    {"weight": "random", "ignore_index": -100, "label_smoothing": 0.3},
  ],
)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_torch_cross_entropy(options, reduction):
  rng = rng_for(9)
  logits = rng.normal(size=(8, 5)) * 2
  labels = rng.integers(0, 5, 8)
  if "ignore_index" in options:
    labels[[1, 4]] = -100
  weight = rng.uniform(0.2, 3.0, 5) if "weight" in options else None
  expected = torch_cross_entropy(
    logits,
    labels,
    weight=weight,
    label_smoothing=options.get("label_smoothing", 0.0),
    reduction=reduction,
  )
  with jax.enable_x64(True):
    ours = jl.softmax_cross_entropy_with_integer_labels(
      logits,
      labels,
      label_smoothing=options.get("label_smoothing", 0.0),
      class_weights=weight,
      ignore_index=options.get("ignore_index"),
      reduction=reduction,
    )
    assert ours.dtype == jnp.float64
  assert_close(ours, expected, **F64_TOL)


def test_smoothing_with_class_mask_spreads_over_unmasked_classes():
  """ε is spread over the C' unmasked classes, as for soft labels:
  ℓ = (1-ε)(lse' - x_y) + ε(lse' - mean' x), primes over unmasked classes."""
  rng = rng_for(21)
  logits, labels = rng.normal(size=(6, 5)), rng.integers(0, 5, 6)
  where = class_mask(rng, labels, 5)
  eps = 0.3
  lse = np.log(np.where(where, np.exp(logits), 0).sum(-1))
  mean = (logits * where).sum(-1) / where.sum(-1)
  expected = (1 - eps) * (lse - np_pick(logits, labels)) + eps * (lse - mean)
  with jax.enable_x64(True):
    ours = jl.softmax_cross_entropy_with_integer_labels(
      logits, labels, where=where, label_smoothing=eps
    )
    soft = jl.softmax_cross_entropy(
      logits, np.eye(5)[labels], where=where, label_smoothing=eps
    )
  assert_close(ours, expected, **F64_TOL)
  assert_close(soft, expected, **F64_TOL)


def test_smoothing_with_class_weights_is_torchs_not_the_old_form():
  """Single examples differ from the old form w_y((1-ε) nll + ε/C Σ -log p_c)
  by tens of percent: the torch form is what jaxloss computes now; a class
  mask spreads ε over the unmasked classes (C' of them)."""
  rng = rng_for(10)
  logits, labels = rng.normal(size=(6, 4)) * 2, rng.integers(0, 4, 6)
  weight, eps = np.array([0.2, 3.0, 1.0, 0.5]), 0.4
  logp = np_log_softmax(logits)
  old = weight[labels] * (
    (1 - eps) * -np_pick(logp, labels) - eps * logp.mean(-1)
  )
  torch = torch_cross_entropy(
    logits, labels, weight, label_smoothing=eps, reduction="none"
  )
  assert np.max(np.abs(old - torch) / torch) > 0.1  # the fix is visible
  where = class_mask(rng, labels, 4)
  lse = np.log((np.exp(logits) * where).sum(-1, keepdims=True))
  logp_masked = np.where(where, logits - lse, 0)
  masked = (1 - eps) * weight[labels] * -np_pick(logp_masked, labels) + (
    eps / where.sum(-1) * -(logp_masked * weight * where).sum(-1)
  )
  u = np.arange(1.0, 7.0)  # per-example weights
  with jax.enable_x64(True):
    ours = jl.softmax_cross_entropy_with_integer_labels(
      logits, labels, label_smoothing=eps, class_weights=weight
    )
    ours_masked = jl.softmax_cross_entropy_with_integer_labels(
      logits, labels, where=where, label_smoothing=eps, class_weights=weight
    )
    mean = jl.softmax_cross_entropy_with_integer_labels(
      logits,
      labels,
      label_smoothing=eps,
      class_weights=weight,
      weights=u,
      reduction="mean",
    )
  assert_close(ours, torch, **F64_TOL)
  assert_close(ours_masked, masked, **F64_TOL)
  # Σ u ℓ / Σ u w_y, as without smoothing.
  assert_close(mean, (u * torch).sum() / (u * weight[labels]).sum(), **F64_TOL)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("weighted", [False, True])
def test_torch_nll_loss(reduction, weighted):
  rng = rng_for(11)
  logp = np_log_softmax(rng.normal(size=(7, 4)))
  labels = rng.integers(0, 4, 7)
  labels[[0, 5]] = -100
  weight = rng.uniform(0.2, 3.0, 4) if weighted else None
  with jax.enable_x64(True):
    ours = jl.nll_loss(
      logp, labels, class_weights=weight, ignore_index=-100, reduction=reduction
    )
  assert_close(
    ours, torch_nll_loss(logp, labels, weight, -100, reduction), **F64_TOL
  )


def test_torch_nll_loss_class_axis_1():
  """torch's layout: [batch, classes, d]."""
  rng = rng_for(12)
  logp = np_log_softmax(rng.normal(size=(3, 4, 5)), axis=1)
  labels = rng.integers(0, 4, (3, 5))
  expected = torch_nll_loss(np.moveaxis(logp, 1, -1), labels, reduction="none")
  with jax.enable_x64(True):
    assert_close(jl.nll_loss(logp, labels, axis=1), expected, **F64_TOL)


def test_torch_binary_cross_entropy_clamp():
  p = np.array([0.0, 1.0, 0.0, 1.0, 0.3, 1e-50, 1 - 1e-17])
  y = np.array([1.0, 0.0, 0.0, 1.0, 0.6, 1.0, 0.0])
  expected = torch_binary_cross_entropy(p, y)
  assert expected[0] == expected[1] == 100.0
  with jax.enable_x64(True):
    assert_close(jl.binary_cross_entropy(p, y), expected, **F64_TOL)
  # float32, probabilities exactly 0 and 1: finite values and gradients.
  p32, y32 = p.astype(np.float32), y.astype(np.float32)
  assert_close(
    jl.binary_cross_entropy(p32, y32),
    torch_binary_cross_entropy(p32.astype(np.float64), y32),
    **F32_TOL,
  )
  grads = jax.grad(lambda q: jl.binary_cross_entropy(q, y32).sum())(p32)
  assert np.all(np.isfinite(grads))


def test_torch_bce_with_logits_pos_weight():
  rng = rng_for(13)
  logits = rng.normal(size=(6, 3)) * 4
  labels = rng.uniform(size=(6, 3))
  pos_weight = np.array([0.5, 1.0, 3.0])
  with jax.enable_x64(True):
    ours = jl.sigmoid_binary_cross_entropy(
      logits, labels, pos_weight=pos_weight
    )
  assert_close(
    ours,
    torch_bce_with_logits(logits, labels, np.tile(pos_weight, (6, 1))),
    **F64_TOL,
  )


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_torch_bce_class_weights(reduction):
  """torch's weight=: each element's loss times w (broadcast against the last
  axis), and "mean" the plain mean over all elements (aten's
  binary_cross_entropy_with_logits and binary_cross_entropy: the loss times
  weight, then apply_loss_reduction)."""
  rng = rng_for(31)
  logits = rng.normal(size=(5, 3)) * 3
  labels = rng.uniform(size=(5, 3))
  probabilities = 1 / (1 + np.exp(-logits))
  weight = np.array([0.5, 2.0, 0.0])
  pos_weight = np.array([3.0, 1.0, 0.5])
  reduce_np = {"none": lambda v: v, "sum": np.sum, "mean": np.mean}[reduction]
  with_logits = weight * torch_bce_with_logits(
    logits, labels, np.tile(pos_weight, (5, 1))
  )
  on_probabilities = weight * torch_binary_cross_entropy(probabilities, labels)
  with jax.enable_x64(True):
    ours_logits = jl.sigmoid_binary_cross_entropy(
      logits,
      labels,
      pos_weight=pos_weight,
      class_weights=weight,
      reduction=reduction,
    )
    ours_p = jl.binary_cross_entropy(
      probabilities, labels, class_weights=weight, reduction=reduction
    )
    unweighted = jl.sigmoid_binary_cross_entropy(
      logits, labels, class_weights=weight, reduction=reduction
    )
  assert_close(ours_logits, reduce_np(with_logits), **F64_TOL)
  assert_close(ours_p, reduce_np(on_probabilities), **F64_TOL)
  plain = weight * torch_bce_with_logits(logits, labels)
  assert_close(unweighted, reduce_np(plain), **F64_TOL)


def test_bce_class_weights_is_not_a_weighted_mean():
  """`weights` gives the weighted mean Σ w ℓ / Σ w; `class_weights` (torch's
  weight=) the plain mean of w ℓ."""
  logits = np.array([[1.0, -2.0, 0.5]] * 2, np.float32)
  labels = np.array([[1.0, 0.0, 0.0]] * 2, np.float32)
  w = np.array([4.0, 1.0, 1.0], np.float32)
  per_class = np.asarray(jl.sigmoid_binary_cross_entropy(logits, labels))[0]
  assert_close(
    jl.sigmoid_binary_cross_entropy(
      logits, labels, class_weights=w, reduction="mean"
    ),
    (w * per_class).mean(),
  )
  assert_close(
    jl.sigmoid_binary_cross_entropy(
      logits, labels, weights=np.tile(w, (2, 1)), reduction="mean"
    ),
    (w * per_class).sum() / w.sum(),
  )


def test_bce_class_weights_shape_error():
  for fn in (jl.sigmoid_binary_cross_entropy, jl.binary_cross_entropy):
    with pytest.raises(ValueError, match=f"{fn.__name__}.*`class_weights`"):
      fn(
        np.full((4, 3), 0.5, np.float32),
        np.zeros((4, 3), np.float32),
        class_weights=np.ones(2, np.float32),
      )


def test_pos_weight_from_counts():
  labels = np.array(
    [[1, 0, 0, 1], [0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1], [1, 0, 0, 1]]
  )
  # negatives / positives: 3/2, no positives -> 1, 2/3, no negatives -> 0.
  expected = np.array([1.5, 1.0, 2 / 3, 0.0])
  ours = jl.pos_weight_from_counts(labels)
  assert ours.dtype == jnp.float32
  assert_close(ours, expected, **F32_TOL)
  assert_close(jl.pos_weight_from_counts(labels.astype(bool)), expected)
  assert_close(jl.pos_weight_from_counts(labels[None]), expected)  # [b, n, C]
  soft = np.array([[0.5, 1.0], [0.25, 0.0]])  # positives 0.75 and 1
  assert_close(jl.pos_weight_from_counts(soft), [1.25 / 0.75, 1.0])
  # The class with no positives keeps its loss unweighted (and finite).
  logits = np.linspace(-3, 3, 20, dtype=np.float32).reshape(5, 4)
  targets = labels.astype(np.float32)
  value = jl.sigmoid_binary_cross_entropy(logits, targets, pos_weight=ours)
  assert np.all(np.isfinite(value))
  plain = jl.sigmoid_binary_cross_entropy(logits, targets)
  assert_close(value[:, 1], plain[:, 1])
  with pytest.raises(ValueError, match="pos_weight_from_counts.*`labels`"):
    jl.pos_weight_from_counts(np.float32(1.0))
  checked_rejects(
    jl.pos_weight_from_counts, np.array([[2.0, 0.0]]), arg="labels"
  )


@pytest.mark.parametrize(
  "alpha,gamma", [(0.25, 2.0), (-1, 2.0), (0.5, 0.5), (0.25, 3.5)]
)
def test_torchvision_sigmoid_focal_loss(alpha, gamma):
  rng = rng_for(14)
  logits = rng.normal(size=(6, 3)) * 4
  labels = rng.integers(0, 2, (6, 3)).astype(np.float64)
  with jax.enable_x64(True):
    ours = jl.sigmoid_focal_loss(
      logits, labels, gamma=gamma, alpha=None if alpha < 0 else alpha
    )
  assert_close(
    ours,
    torchvision_sigmoid_focal_loss(logits, labels, alpha, gamma),
    **F64_TOL,
  )


# --------------------------------------------------------------------------- #
# the other losses, against their formulas


@pytest.mark.parametrize("alpha", [None, 0.25, np.array([0.5, 1.0, 2.0, 0.1])])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_softmax_focal_loss(alpha, gamma):
  rng = rng_for(15)
  logits = rng.normal(size=(7, 4)) * 3
  labels = rng.integers(0, 4, 7)
  with jax.enable_x64(True):
    ours = jl.softmax_focal_loss(logits, labels, alpha=alpha, gamma=gamma)
  assert_close(
    ours, np_softmax_focal_loss(logits, labels, alpha, gamma), **F64_TOL
  )


def test_softmax_focal_loss_class_mask_and_axis():
  rng = rng_for(16)
  logits = rng.normal(size=(5, 4))
  labels = rng.integers(0, 4, 5)
  where = class_mask(rng, labels, 4)
  masked = np.where(where, logits, -np.inf)
  with jax.enable_x64(True):
    ours = jl.softmax_focal_loss(logits, labels, where=where)
    moved = jl.softmax_focal_loss(logits.T, labels, axis=0)
  assert_close(ours, np_softmax_focal_loss(masked, labels), **F64_TOL)
  assert_close(moved, np_softmax_focal_loss(logits, labels), **F64_TOL)


@pytest.mark.parametrize(
  "epsilon,gamma,alpha", [(1.0, 2.0, None), (-0.5, 0.5, 0.25), (2.0, 1.0, 0.75)]
)
def test_poly1_focal_loss(epsilon, gamma, alpha):
  rng = rng_for(17)
  logits = rng.normal(size=(6, 3)) * 3
  labels = rng.integers(0, 2, (6, 3)).astype(np.float64)
  with jax.enable_x64(True):
    ours = jl.poly1_focal_loss(
      logits, labels, epsilon=epsilon, gamma=gamma, alpha=alpha
    )
  expected = paper_poly1_focal_loss(
    logits, labels, epsilon, gamma, -1.0 if alpha is None else alpha
  )
  assert_close(ours, expected, **F64_TOL)


@pytest.mark.parametrize(
  "method", ["effective_number", "inverse", "inverse_sqrt"]
)
@pytest.mark.parametrize("counts", [[10, 200, 3, 5000], [0, 7, 1, 40]])
def test_class_weights_from_counts(method, counts):
  with jax.enable_x64(True):
    ours = jl.class_weights_from_counts(
      np.array(counts, np.float64), method=method, beta=0.99
    )
  expected = cui_class_weights(counts, method, beta=0.99)
  assert_close(ours, expected, **F64_TOL)
  assert np.isclose(np.asarray(ours).sum(), len(counts))
  ours32 = jl.class_weights_from_counts(
    np.array(counts, np.int32), method=method, beta=0.99
  )
  assert ours32.dtype == jnp.float32
  assert_close(ours32, expected, **F32_TOL)


def test_class_weights_from_counts_limits():
  counts = np.array([1, 10, 100], np.int32)
  assert_close(
    jl.class_weights_from_counts(counts, beta=0.0), np.ones(3), **F32_TOL
  )
  assert_close(
    jl.class_weights_from_counts(np.zeros(3, np.int32)), np.ones(3), **F32_TOL
  )
  # β → 1 approaches the inverse frequency.
  with jax.enable_x64(True):
    assert_close(
      jl.class_weights_from_counts(counts.astype(np.float64), beta=1 - 1e-9),
      cui_class_weights(counts, "inverse"),
      rtol=1e-6,
      atol=0,
    )


def np_token_nll(logits, labels):
  return -np_pick(np_log_softmax(logits), labels)


def test_perplexity_corpus_and_per_sequence():
  rng = rng_for(18)
  logits = rng.normal(size=(3, 5, 7)) * 2
  labels = rng.integers(0, 7, (3, 5))
  lengths = np.array([5, 2, 0])
  where = np.arange(5)[None, :] < lengths[:, None]
  labels = np.where(where, labels, -1)  # padding holds an invalid label
  nll = np_token_nll(logits, np.where(where, labels, 0))
  corpus = np.exp((nll * where).sum() / where.sum())
  per_sequence = np.exp((nll * where).sum(-1) / np.maximum(lengths, 1))
  with jax.enable_x64(True):
    assert_close(jl.perplexity(logits, labels, where=where), corpus, **F64_TOL)
    ours = np.asarray(
      jl.perplexity(logits, labels, where=where, per_sequence=True)
    )
  assert_close(ours, per_sequence, **F64_TOL)
  assert ours[2] == 1.0  # an empty sequence has perplexity 1
  # Without a mask, every token counts.
  full = rng.integers(0, 7, (3, 5))
  assert_close(
    jl.perplexity(logits.astype(np.float32), full),
    np.exp(np_token_nll(logits, full).mean()),
    **F32_TOL,
  )


def test_perplexity_sequence_mask_is_slicing():
  rng = rng_for(19)
  logits = rng.normal(size=(4, 3, 6)).astype(np.float32)
  labels = rng.integers(0, 6, (4, 3)).astype(np.int32)
  keep = np.array([True, False, True, True])
  assert_close(
    jl.perplexity(logits, labels, where=keep),
    jl.perplexity(logits[keep], labels[keep]),
    **F32_TOL,
  )
  assert_close(
    jl.perplexity(logits, labels, where=keep, per_sequence=True)[keep],
    jl.perplexity(logits[keep], labels[keep], per_sequence=True),
    **F32_TOL,
  )


# --------------------------------------------------------------------------- #
# edge cases


def test_gamma_zero_is_cross_entropy():
  rng = rng_for(20)
  logits = rng.normal(size=(6, 4)).astype(np.float32) * 3
  labels = rng.integers(0, 4, 6).astype(np.int32)
  assert_close(
    jl.softmax_focal_loss(logits, labels, gamma=0.0),
    jl.softmax_cross_entropy_with_integer_labels(logits, labels),
    **F32_TOL,
  )
  binary = rng.integers(0, 2, (6, 4)).astype(np.float32)
  assert_close(
    jl.sigmoid_focal_loss(logits, binary, gamma=0.0),
    jl.sigmoid_binary_cross_entropy(logits, binary),
    **F32_TOL,
  )


@pytest.mark.parametrize("gamma", [0.0, 0.3, 2.0])
def test_focal_losses_at_extreme_logits(gamma):
  certain = np.array(
    [[1e4, -1e4, -1e4], [-1e4, 1e4, -1e4], [1e4, 1e4, -1e4]], np.float32
  )
  labels = np.array([0, 0, 2], np.int32)  # p_y = 1, p_y = 0, p_y = 0
  value, grad = jax.value_and_grad(
    lambda x: jl.softmax_focal_loss(x, labels, gamma=gamma).sum()
  )(certain)
  assert np.isfinite(value) and np.all(np.isfinite(grad))
  assert_close(
    jl.softmax_focal_loss(certain[:1], labels[:1], gamma=gamma),
    [0.0],
    **F32_TOL,
  )
  binary = np.array([[1.0, 0.0, 1.0]] * 3, np.float32)
  for fn in (jl.sigmoid_focal_loss, jl.poly1_focal_loss):
    value, grad = jax.value_and_grad(
      lambda x: fn(x, binary, gamma=gamma).sum()
    )(certain)
    assert np.isfinite(value) and np.all(np.isfinite(grad)), fn.__name__


def test_perplexity_all_masked_and_saturation():
  logits = np.stack([np.full((3, 4), -1e4, np.float32)] * 2)
  logits[..., 0] = 1e4
  labels = np.ones((2, 3), np.int32)  # nll = 2e4: perplexity overflows float32
  none = np.zeros((2, 3), bool)
  for where in (None, none):
    value, grad = jax.value_and_grad(
      lambda x: jl.perplexity(x, labels, where=where)
    )(logits)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
  assert float(jl.perplexity(logits, labels, where=none)) == 1.0
  assert float(jl.perplexity(logits, labels)) == pytest.approx(
    float(np.finfo(np.float32).max), rel=0.02
  )


def test_all_classes_masked_gives_zero():
  logits = np.zeros((2, 3), np.float32)
  where = np.array([[False] * 3, [True] * 3])
  for fn, labels in (
    (jl.softmax_cross_entropy, np.eye(3, dtype=np.float32)[:2]),
    (jl.softmax_cross_entropy_with_integer_labels, np.array([0, 1], np.int32)),
    (jl.softmax_focal_loss, np.array([0, 1], np.int32)),
  ):
    values = fn(logits, labels, where=where)
    assert values[0] == 0 and values[1] > 0, fn.__name__
    grad = jax.grad(lambda x: fn(x, labels, where=where, reduction="mean"))(
      logits
    )
    assert np.all(np.isfinite(grad))


def test_softmax_focal_loss_with_only_the_label_class_left():
  """No other class unmasked: p_y = 1, so the focal weight (1 - p_y)^γ is 0
  (log(1 - p_y) is the dtype's lowest number, not the 0 that
  masked_logsumexp gives an empty row), with finite gradients."""
  logits = np.array([[1.0, 2.0, -1.0], [0.5, 0.0, 3.0]], np.float32)
  labels = np.array([0, 2], np.int32)
  where = np.eye(3, dtype=bool)[labels]
  for gamma in (0.5, 2.0):
    value, grad = jax.value_and_grad(
      lambda x: jl.softmax_focal_loss(
        x, labels, gamma=gamma, where=where, reduction="sum"
      )
    )(logits)
    assert value == 0 and np.all(grad == 0), gamma


# --------------------------------------------------------------------------- #
# the label rule (issue 19 §1): an out-of-range label gives NaN, never
# another class's value


def _integer_label_calls():
  """(name, call(logits, labels, **kw), logits, labels, num_classes)."""
  rng = rng_for(40)
  flat = rng.normal(size=(5, 4)).astype(np.float32)
  grid = rng.normal(size=(5, 2, 3)).astype(np.float32)
  torch_layout = rng.normal(size=(5, 4, 2)).astype(np.float32)
  labels = rng.integers(0, 4, 5).astype(np.int32)
  return [
    ("ce", jl.softmax_cross_entropy_with_integer_labels, flat, labels, 4, {}),
    (
      "ce[axis=(1,2)]",
      jl.softmax_cross_entropy_with_integer_labels,
      grid,
      labels,
      6,
      {"axis": (1, 2)},
    ),
    (
      "ce[smoothing,weights]",
      jl.softmax_cross_entropy_with_integer_labels,
      flat,
      labels,
      4,
      {"label_smoothing": 0.1, "class_weights": np.arange(1.0, 5.0)},
    ),
    (
      "nll[axis=1]",
      jl.nll_loss,
      np.asarray(jax.nn.log_softmax(torch_layout, axis=1)),
      rng.integers(0, 4, (5, 2)).astype(np.int32),
      4,
      {"axis": 1, "class_weights": np.arange(1.0, 5.0)},
    ),
    ("focal", jl.softmax_focal_loss, flat, labels, 4, {"alpha": np.ones(4)}),
  ]


@pytest.mark.parametrize("index", range(5))
def test_out_of_range_labels_give_nan(index):
  name, fn, logits, labels, num_classes, kwargs = _integer_label_calls()[index]
  bad = labels.copy()
  bad.reshape(len(bad), -1)[:3, 0] = [-1, num_classes, -100]
  good = np.asarray(fn(logits, labels, **kwargs))
  values = np.asarray(fn(logits, bad, **kwargs))
  wrong = np.zeros(labels.shape, bool)
  wrong.reshape(len(bad), -1)[:3, 0] = True
  assert np.all(np.isnan(values[wrong])), name
  assert_close(values[~wrong], good[~wrong], what=name)
  assert np.isnan(fn(logits, bad, **kwargs, reduction="mean")), name
  # Masked out, they are dropped: the mean of the others, finite gradients.
  keep = ~wrong
  mean, grad = jax.value_and_grad(
    lambda x: fn(x, bad, **kwargs, where=keep, reduction="mean")
  )(logits)
  assert_close(mean, fn(logits, labels, **kwargs, where=keep, reduction="mean"))
  assert np.all(np.isfinite(grad)), name


def test_optax_reads_label_minus_one_as_the_last_class_jaxloss_gives_nan():
  """The documented difference from optax's function of the same name."""
  logits = np.array([[1.0, 2.0, 3.0, 4.0], [0.5, 0.0, -1.0, 2.0]], np.float32)
  labels = np.array([-1, 0], np.int32)
  theirs = optax.losses.softmax_cross_entropy_with_integer_labels(
    logits, labels
  )
  last = optax.losses.softmax_cross_entropy_with_integer_labels(
    logits, np.array([3, 0], np.int32)
  )
  assert_close(theirs, last)  # optax: -1 silently means class 3
  ours = jl.softmax_cross_entropy_with_integer_labels(logits, labels)
  assert np.isnan(ours[0]) and ours[1] == pytest.approx(float(theirs[1]))


def test_padding_without_ignore_index_is_loud():
  """torch's padding label -100 with a forgotten ignore_index gives NaN (the
  padding would otherwise be trained on as the class -100 wraps to)."""
  logits = np.zeros((3, 4), np.float32)
  labels = np.array([1, -100, 2], np.int32)
  assert np.isnan(
    jl.softmax_cross_entropy_with_integer_labels(
      logits, labels, reduction="mean"
    )
  )
  assert_close(
    jl.softmax_cross_entropy_with_integer_labels(
      logits, labels, ignore_index=-100, reduction="mean"
    ),
    np.log(4.0),
  )
  assert np.isnan(jl.nll_loss(logits, labels, reduction="sum"))
  assert_close(
    jl.nll_loss(logits, labels, ignore_index=-100, reduction="sum"), 0.0
  )


def test_perplexity_of_an_out_of_range_token_is_nan():
  logits = np.zeros((2, 3, 5), np.float32)
  labels = np.array([[0, 1, 5], [2, 3, 4]], np.int32)
  assert np.isnan(jl.perplexity(logits, labels))
  per_sequence = jl.perplexity(logits, labels, per_sequence=True)
  assert np.isnan(per_sequence[0]) and per_sequence[1] == pytest.approx(5.0)
  where = labels < 5  # masked: dropped
  assert_close(jl.perplexity(logits, labels, where=where), 5.0)
  checked_rejects(jl.perplexity, logits, labels, arg="labels")


# --------------------------------------------------------------------------- #
# errors and value checks


def test_trace_time_errors():
  logits = np.zeros((4, 3), np.float32)
  with pytest.raises(ValueError, match=r"nll_loss.*`labels`.*\(4,\).*\(3,\)"):
    jl.nll_loss(logits, np.zeros(3, np.int32))
  with pytest.raises(
    ValueError, match=r"sigmoid_focal_loss.*\(4, 3\).*\(4, 2\)"
  ):
    jl.sigmoid_focal_loss(logits, np.zeros((4, 2), np.float32))
  with pytest.raises(
    ValueError, match=r"softmax_focal_loss.*`alpha`.*\(3,\).*\(2,\)"
  ):
    jl.softmax_focal_loss(logits, np.zeros(4, np.int32), alpha=np.ones(2))
  with pytest.raises(ValueError, match=r"class_weights.*\(3,\)"):
    jl.softmax_cross_entropy_with_integer_labels(
      logits, np.zeros(4, np.int32), class_weights=np.ones(4)
    )
  with pytest.raises(ValueError, match=r"`labels` must have shape \(2,\)"):
    jl.softmax_cross_entropy_with_integer_labels(
      np.zeros((2, 3, 4), np.float32), np.zeros(3, np.int32), axis=(1, 2)
    )
  with pytest.raises(
    ValueError, match=r"perplexity: argument `logits` must have rank >= 2 "
  ):
    jl.perplexity(np.zeros(5, np.float32), np.zeros((), np.int32))
  with pytest.raises(TypeError, match="softmax_focal_loss.*integer"):
    jl.softmax_focal_loss(logits, np.zeros(4, np.float32))
  with pytest.raises(TypeError, match="poly1_focal_loss.*`logits`"):
    jl.poly1_focal_loss(np.zeros((4, 3), np.int32), logits)


@pytest.mark.parametrize(
  "call,match",
  [
    (
      lambda: jl.class_weights_from_counts(np.ones(3), method="log"),
      "'effective_number', 'inverse', 'inverse_sqrt'",
    ),
    (lambda: jl.class_weights_from_counts(np.ones(3), beta=1.0), r"\[0, 1\)"),
    (
      lambda: jl.sigmoid_focal_loss(np.zeros(2), np.zeros(2), gamma=-1.0),
      ">= 0",
    ),
    (
      lambda: jl.softmax_focal_loss(
        np.zeros((2, 3)), np.zeros(2, np.int32), gamma=-0.5
      ),
      ">= 0",
    ),
    (lambda: jl.smooth_labels(np.zeros(3), 1.5), r"\[0, 1\]"),
    (
      lambda: jl.nll_loss(
        np.zeros((2, 3)), np.zeros(2, np.int32), reduction="avg"
      ),
      "'none', 'sum', 'mean'",
    ),
    (
      lambda: jl.softmax_cross_entropy(
        np.zeros((2, 3)), np.zeros((2, 3)), axis=(1, 1)
      ),
      "distinct",
    ),
  ],
)
def test_bad_options(call, match):
  with pytest.raises(ValueError, match=match):
    call()


LOGITS = np.zeros((2, 3), np.float32)
OUT_OF_RANGE = np.array([0, 3], np.int32)


@pytest.mark.parametrize(
  "fn,args,arg",
  [
    (
      jl.softmax_cross_entropy_with_integer_labels,
      (LOGITS, OUT_OF_RANGE),
      "labels",
    ),
    (jl.nll_loss, (LOGITS, OUT_OF_RANGE), "labels"),
    (jl.softmax_focal_loss, (LOGITS, np.array([-1, 0], np.int32)), "labels"),
    (
      jl.perplexity,
      (np.zeros((2, 2, 3), np.float32), np.array([[0, 1], [3, 0]], np.int32)),
      "labels",
    ),
    (
      jl.binary_cross_entropy,
      (np.array([0.2, 1.5]), np.array([0.0, 1.0])),
      "probabilities",
    ),
    (
      jl.sigmoid_binary_cross_entropy,
      (np.zeros(2), np.array([0.0, 1.2])),
      "labels",
    ),
    (jl.sigmoid_focal_loss, (np.zeros(2), np.array([-0.1, 1.0])), "labels"),
    (jl.poly1_focal_loss, (np.zeros(2), np.array([0.5, 2.0])), "labels"),
    (jl.softmax_cross_entropy, (LOGITS, np.array([[1.1, 0, 0]] * 2)), "labels"),
    (
      jl.safe_softmax_cross_entropy,
      (LOGITS, np.array([[-1.0, 1, 1]] * 2)),
      "labels",
    ),
    (
      jl.poly_loss_cross_entropy,
      (LOGITS, np.array([[3.0, 0, 0]] * 2)),
      "labels",
    ),
    (jl.smooth_labels, (np.array([1.0, 2.0]), 0.1), "labels"),
    (jl.class_weights_from_counts, (np.array([3, -1]),), "counts"),
  ],
)
def test_checked_catches_bad_values(fn, args, arg):
  checked_rejects(fn, *args, arg=arg)


def test_checked_accepts_valid_values_and_ignore_index():
  labels = np.array([2, -100], np.int32)
  assert_close(
    jl.checked(jl.nll_loss)(LOGITS, labels, ignore_index=-100),
    jl.nll_loss(LOGITS, labels, ignore_index=-100),
    **F32_TOL,
  )
  assert_close(
    jl.checked(jl.softmax_focal_loss)(LOGITS, np.array([0, 2], np.int32)),
    jl.softmax_focal_loss(LOGITS, np.array([0, 2], np.int32)),
    **F32_TOL,
  )


# --------------------------------------------------------------------------- #
# the fused cross-entropies (custom_jvp): values and gradients vs float64


def np_soft_ce(logits, labels, epsilon=0.0):
  """float64 −Σ y log p + ε Σ y (1 − p), with 0 log 0 = 0, and its gradients
  (logits, labels): p Σy − y + ε p (Σ y p − y), and −log p + ε (1 − p)."""
  logits, labels = np.float64(logits), np.float64(labels)
  log_p = np_log_softmax(logits)
  p = np.exp(log_p)
  terms = labels * np.where(labels == 0, 0.0, log_p)
  value = -terms.sum(-1) + epsilon * (labels * (1 - p)).sum(-1)
  mass = labels.sum(-1, keepdims=True)
  label_p = (labels * p).sum(-1, keepdims=True)
  grad = p * mass - labels + epsilon * p * (label_p - labels)
  label_grad = -np.where((labels == 0) & np.isneginf(log_p), 0.0, log_p)
  label_grad = label_grad + epsilon * (1 - p)
  return value, grad, label_grad


def _edge_soft_inputs():
  rng = rng_for(30)
  logits = rng.normal(size=(6, 5)) * 3
  logits[0] = [1e4, -1e4, 0.0, -1e4, 1e4]  # ±1e4
  logits[1] = [-1e4, 1e4, -1e4, -1e4, -1e4]  # p_y = 1: a loss of 0
  logits[2, [1, 3]] = -np.inf  # ruled-out classes, label 0
  labels = soft_labels(rng, 6, 5)
  labels[1] = [0, 1, 0, 0, 0]
  labels[2, [1, 3]] = 0
  labels[2] /= labels[2].sum()
  return logits.astype(np.float32), labels.astype(np.float32)


@pytest.mark.parametrize("epsilon", [None, 2.0, -1.0])
def test_fused_soft_cross_entropy_value_and_gradients(epsilon):
  logits, labels = _edge_soft_inputs()
  if epsilon is None:
    fn = jl.softmax_cross_entropy
  else:

    def fn(x, y):
      return jl.poly_loss_cross_entropy(x, y, epsilon=epsilon)

  value, grad, label_grad = np_soft_ce(logits, labels, epsilon or 0.0)
  value_fn = jax.jit(lambda x, y: fn(x, y).sum())
  ours, (ours_grad, ours_label_grad) = jax.value_and_grad(value_fn, (0, 1))(
    logits, labels
  )
  assert_close(fn(logits, labels), value, rtol=1e-5, atol=1e-5)
  assert_close(ours, value.sum(), rtol=1e-5)
  assert_close(ours_grad, grad, rtol=1e-5, atol=1e-6)
  # The label gradient is -log p = lse(x) - x_c: in rows 0 and 1 (logits of
  # ±1e4) both terms are about 1e4, so float32 leaves an absolute error of
  # one spacing at 1e4 (2**-10 = 9.8e-4); the other rows are held tightly.
  assert_close(ours_label_grad[2:], label_grad[2:], rtol=1e-5, atol=1e-6)
  spacing = float(np.spacing(np.float32(1e4)))
  assert_close(ours_label_grad[:2], label_grad[:2], rtol=1e-5, atol=spacing)
  # The row whose label has p = 1: exactly 0, not a rounding residue.
  assert float(fn(logits, labels)[1]) == 0.0
  # Forward mode agrees with reverse mode (custom_jvp: jacfwd works), and so
  # does vmap over the examples.
  jac = jax.jacfwd(lambda x: fn(x, labels))(logits)
  assert_close(np.einsum("iij->ij", np.asarray(jac)), grad, atol=1e-6)
  per_row = jax.vmap(lambda x, y: fn(x[None], y[None])[0])(logits, labels)
  assert_close(per_row, value, rtol=1e-5, atol=1e-5)


def test_fused_poly_loss_epsilon_gradient():
  logits, labels = _edge_soft_inputs()
  keep = np.isfinite(logits).all(-1)
  logits, labels = logits[keep], labels[keep]
  grad = jax.grad(
    lambda e: jl.poly_loss_cross_entropy(logits, labels, epsilon=e).sum()
  )(jnp.float32(1.5))
  p = np.exp(np_log_softmax(np.float64(logits)))
  assert_close(grad, (labels * (1 - p)).sum(), rtol=1e-5)


def test_fused_soft_cross_entropy_positive_label_on_minus_inf():
  """Documented: at least y · finfo.max (not inf), gradient exactly −y."""
  logits = np.array([[0.0, -np.inf, 1.0]], np.float32)
  labels = np.array([[0.25, 0.5, 0.25]], np.float32)
  for fn in (jl.softmax_cross_entropy, jl.safe_softmax_cross_entropy):
    value = float(fn(logits, labels)[0])
    assert value >= 0.5 * float(np.finfo(np.float32).max), fn.__name__
    grad = jax.grad(lambda x: fn(x, labels).sum())(logits)
    assert grad[0, 1] == -0.5 and np.all(np.isfinite(grad)), fn.__name__


def test_fused_soft_cross_entropy_second_order():
  """The custom_jvp rule is differentiable: the Hessian of a one-hot CE is
  diag(p) − p pᵀ."""
  logits = np.array([0.5, -1.0, 2.0], np.float32)
  labels = np.array([0.0, 1.0, 0.0], np.float32)
  hess = jax.hessian(lambda x: jl.softmax_cross_entropy(x, labels))(logits)
  p = np.exp(np_log_softmax(np.float64(logits)))
  assert_close(hess, np.diag(p) - np.outer(p, p), atol=1e-6)


def test_fused_integer_labels_precision_of_small_losses():
  """log Σ exp(x − m) + (m − x_y): a loss of about 1e-8 (p_y close to 1)
  keeps its relative precision, also for logits of 1e4."""
  for offset in (0.0, 1e4):
    logits = np.array([[offset + 20.0, offset, offset - 5.0]], np.float32)
    labels = np.array([0], np.int32)
    exact = np.log1p(np.exp(-20.0) + np.exp(-25.0))  # float64
    ours = jl.softmax_cross_entropy_with_integer_labels(logits, labels)
    assert_close(ours, [exact], rtol=1e-5)
    grad = jax.grad(
      lambda x: jl.softmax_cross_entropy_with_integer_labels(x, labels).sum()
    )(logits)
    # p_y − 1 = −2e-9 is below float32's resolution at 1 (optax: 0 too).
    p = np.exp(np_log_softmax(np.float64(logits) - offset))
    assert_close(grad, p - np.eye(3)[labels], rtol=1e-5, atol=1e-8)
    assert_close(grad[0, 1:], p[0, 1:], rtol=1e-5, atol=0)


def test_fused_sigmoid_binary_cross_entropy():
  """max(x, 0)(1 − y) − min(x, 0) y + log1p(e^−|x|) and the gradient
  σ(x) − y against float64, at ±1e4, for soft labels near 1 (no
  cancellation) and for small losses; vmap, jacfwd and the label gradient."""
  logits = np.array(
    [[-1e4, -30.0, -1.0, 0.0, 1.0, 20.0, 30.0, 1e4]] * 3, np.float32
  )
  labels = np.stack(
    [
      np.ones(8),
      np.zeros(8),
      np.full(8, 1 - 2**-20),
    ]
  ).astype(np.float32)
  x, y = np.float64(logits), np.float64(labels)
  value = y * np.logaddexp(0, -x) + (1 - y) * np.logaddexp(0, x)
  # σ(x) − y, as (1 − y) − σ(−x) for x >= 0 so float64 keeps it exact too.
  sigmoid, sigmoid_neg = (
    np.exp(-np.logaddexp(0, -x)),
    np.exp(-np.logaddexp(0, x)),
  )
  grad = np.where(x >= 0, (1 - y) - sigmoid_neg, sigmoid - y)
  ours, (ours_grad, label_grad) = jax.value_and_grad(
    lambda x, y: jl.sigmoid_binary_cross_entropy(x, y).sum(), (0, 1)
  )(logits, labels)
  assert_close(
    jl.sigmoid_binary_cross_entropy(logits, labels), value, rtol=1e-5, atol=0
  )
  assert_close(ours_grad, grad, rtol=1e-5, atol=0)
  assert_close(label_grad, -x, rtol=1e-6)
  assert_close(ours, value.sum(), rtol=1e-6)
  jac = jax.jacfwd(lambda x: jl.sigmoid_binary_cross_entropy(x, labels[0]))(
    logits[0]
  )
  assert_close(np.diag(np.asarray(jac)), grad[0], rtol=1e-5, atol=0)
  per_row = jax.vmap(jl.sigmoid_binary_cross_entropy)(logits, labels)
  assert_close(per_row, value, rtol=1e-5, atol=0)
