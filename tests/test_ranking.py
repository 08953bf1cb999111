"""Value tests for jaxloss.ranking against float64 NumPy formulas, rax and
optax."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import rax
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxloss as jl
from jaxloss.testing import assert_close
from tests.assertions import checked_rejects

RTOL, ATOL = 1e-5, 1e-6


def lists(seed, shape=(3, 6), levels=4, p_valid=0.75):
  """Scores, graded labels (with ties), an item mask and item weights."""
  rng = np.random.default_rng(seed)
  scores = (2 * rng.normal(size=shape)).astype(np.float32)
  labels = rng.integers(0, levels, size=shape).astype(np.float32)
  where = rng.random(shape) < p_valid
  weights = rng.uniform(0.5, 2.0, size=shape).astype(np.float32)
  return scores, labels, where, weights


def np_logsumexp(x, axis=-1):
  m = np.max(x, axis=axis, keepdims=True)
  return np.squeeze(m, axis) + np.log(np.sum(np.exp(x - m), axis=axis))


# --------------------------------------------------------------------------- #
# margin_ranking_loss: torch.nn.functional.margin_ranking_loss semantics,
# max(0, -y * (x1 - x2) + margin).


def np_margin_ranking(x1, x2, y, margin):
  x1, x2, y = (np.asarray(a, np.float64) for a in (x1, x2, y))
  return np.maximum(0.0, -y * (x1 - x2) + margin)


@pytest.mark.parametrize("margin", [0.0, 0.7])
def test_margin_ranking_matches_torch_formula(margin):
  rng = np.random.default_rng(0)
  x1, x2 = rng.normal(size=(2, 4, 5)).astype(np.float32)
  y = np.where(rng.random((4, 5)) < 0.5, -1, 1).astype(np.int32)
  expected = np_margin_ranking(x1, x2, y, margin)
  assert_close(
    jl.margin_ranking_loss(x1, x2, y, margin=margin), expected, RTOL, ATOL
  )
  assert_close(
    jl.margin_ranking_loss(x1, x2, y, margin=margin, reduction="mean"),
    expected.mean(),
    RTOL,
    ATOL,
  )
  with jax.enable_x64(True):
    out = jl.margin_ranking_loss(
      x1.astype(np.float64), x2.astype(np.float64), y, margin=margin
    )
    assert out.dtype == jnp.float64
    assert_close(out, expected, rtol=1e-12, atol=1e-12)


def test_margin_ranking_traced_margin_keeps_dtype_and_has_gradient():
  x1, x2 = jnp.array([0.0, 1.0, 3.0]), jnp.array([0.5, 0.5, 0.5])
  y = jnp.ones(3)
  with jax.enable_x64(True):
    margin = jnp.array(1.0, jnp.float64)
    out = jax.jit(lambda m: jl.margin_ranking_loss(x1, x2, y, margin=m))(margin)
    assert out.dtype == jnp.float32
  grad = jax.grad(
    lambda m: jl.margin_ranking_loss(x1, x2, y, margin=m, reduction="sum")
  )(1.0)
  # Two of the three pairs are inside the margin.
  assert_close(grad, 2.0, RTOL, ATOL)


# --------------------------------------------------------------------------- #
# Pairwise losses: rax's semantics written out. A pair (i, j) of one list
# counts when label_i > label_j and both items are valid; its loss is
# phi(margin - (s_i - s_j)) times the weight of item i; "mean" divides by the
# number of pairs.

PHIS = {
  "pairwise_hinge_loss": lambda x: np.maximum(x, 0.0),
  "pairwise_logistic_loss": lambda x: np.logaddexp(0.0, x),
  "pairwise_soft_zero_one_loss": lambda x: 1.0 / (1.0 + np.exp(-x)),
}
RAX_PAIRWISE = {
  "pairwise_hinge_loss": rax.pairwise_hinge_loss,
  "pairwise_logistic_loss": rax.pairwise_logistic_loss,
  "pairwise_soft_zero_one_loss": rax.pairwise_soft_zero_one_loss,
}
DEFAULT_MARGIN = {
  "pairwise_hinge_loss": 1.0,
  "pairwise_logistic_loss": 0.0,
  "pairwise_soft_zero_one_loss": 0.0,
}


def np_pairwise(name, scores, labels, margin, where=None, weights=None):
  s = np.asarray(scores, np.float64)
  pairs = labels[..., :, None] > labels[..., None, :]
  if where is not None:
    pairs = pairs & where[..., :, None] & where[..., None, :]
  values = PHIS[name](margin - (s[..., :, None] - s[..., None, :]))
  if weights is not None:
    values = values * weights[..., :, None]
  return np.where(pairs, values, 0.0), pairs


@pytest.mark.parametrize("name", sorted(PHIS))
@pytest.mark.parametrize("margin", [None, 0.5])
def test_pairwise_matches_numpy_formula(name, margin):
  fn = getattr(jl, name)
  scores, labels, where, weights = lists(1)
  kw = {} if margin is None else {"margin": margin}
  margin = DEFAULT_MARGIN[name] if margin is None else margin
  values, pairs = np_pairwise(name, scores, labels, margin, where, weights)
  out = fn(scores, labels, where=where, weights=weights, **kw)
  assert out.shape == scores.shape + scores.shape[-1:]
  assert_close(out, values, RTOL, ATOL)
  assert_close(
    fn(scores, labels, where=where, weights=weights, reduction="sum", **kw),
    values.sum(),
    RTOL,
    ATOL,
  )
  assert_close(
    fn(scores, labels, where=where, weights=weights, reduction="mean", **kw),
    values.sum() / pairs.sum(),
    RTOL,
    ATOL,
  )
  with jax.enable_x64(True):
    out = fn(
      scores.astype(np.float64),
      labels,
      where=where,
      weights=weights,
      reduction="mean",
      **kw,
    )
    assert out.dtype == jnp.float64
    assert_close(out, values.sum() / pairs.sum(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(PHIS))
@pytest.mark.parametrize(
  "masked,weighted",
  [(False, False), (True, False), (False, True), (True, True)],
)
def test_pairwise_matches_rax(name, masked, weighted):
  scores, labels, where, weights = lists(2, shape=(2, 3, 5))
  kw = {
    "where": where if masked else None,
    "weights": weights if weighted else None,
  }
  fn, reference = getattr(jl, name), RAX_PAIRWISE[name]
  assert_close(
    fn(scores, labels, reduction="mean", **kw),
    reference(scores, labels, reduce_fn=jnp.mean, **kw),
    RTOL,
    ATOL,
  )
  assert_close(
    fn(scores, labels, reduction="sum", **kw),
    reference(scores, labels, reduce_fn=jnp.sum, **kw),
    RTOL,
    ATOL,
  )
  assert_close(
    fn(scores, labels, **kw).reshape(2, 3, 25),
    reference(scores, labels, reduce_fn=None, **kw),
    RTOL,
    ATOL,
  )


@settings(derandomize=True, max_examples=10, deadline=None)
@given(
  batch=st.lists(st.integers(1, 3), max_size=2),
  list_size=st.integers(1, 7),
  levels=st.integers(1, 5),
  seed=st.integers(0, 2**16),
)
def test_pairwise_and_listmle_match_rax_on_any_shape(
  batch, list_size, levels, seed
):
  scores, labels, where, weights = lists(
    seed, tuple(batch) + (list_size,), levels
  )
  # Jitted: one compilation per shape instead of one per operation.
  ours = jax.jit(
    functools.partial(jl.pairwise_soft_zero_one_loss, reduction="mean")
  )
  assert_close(
    ours(scores, labels, where=where, weights=weights),
    jax.jit(rax.pairwise_soft_zero_one_loss)(
      scores, labels, where=where, weights=weights
    ),
    RTOL,
    ATOL,
  )
  listmle = jax.jit(functools.partial(jl.listmle_loss, reduction="mean"))
  assert_close(
    listmle(scores, labels, where=where),
    jax.jit(rax.listmle_loss)(scores, labels, where=where),
    RTOL,
    ATOL,
  )


def test_pairwise_where_forms_agree_and_equal_slicing_lists():
  scores, labels, _, _ = lists(3, shape=(4, 5))
  keep = np.array([True, False, True, False])
  sliced = jl.pairwise_logistic_loss(
    scores[keep], labels[keep], reduction="mean"
  )
  for where in (keep, keep[:, None], keep[:, None, None]):
    assert_close(
      jl.pairwise_logistic_loss(scores, labels, where=where, reduction="mean"),
      sliced,
      RTOL,
      ATOL,
    )


def test_pairwise_pair_weights_give_the_weighted_mean_over_pairs():
  scores, labels, where, _ = lists(4, shape=(2, 5))
  rng = np.random.default_rng(5)
  pair_weights = rng.uniform(0.5, 2.0, size=(2, 5, 5)).astype(np.float32)
  values, pairs = np_pairwise("pairwise_hinge_loss", scores, labels, 1.0, where)
  expected = (pair_weights * values).sum() / (pair_weights * pairs).sum()
  assert_close(
    jl.pairwise_hinge_loss(
      scores, labels, where=where, weights=pair_weights, reduction="mean"
    ),
    expected,
    RTOL,
    ATOL,
  )


@pytest.mark.parametrize("name", sorted(PHIS))
def test_pairwise_without_pairs_is_zero_with_finite_gradient(name):
  fn = getattr(jl, name)
  scores = jnp.array([[1e4, -1e4, 0.0]])
  for labels, where in (
    (jnp.ones((1, 3)), None),
    (jnp.array([[2.0, 1.0, 0.0]]), jnp.zeros((1, 3), bool)),
  ):
    loss = lambda s: fn(s, labels, where=where, reduction="mean")
    assert float(loss(scores)) == 0.0
    assert np.all(np.isfinite(jax.grad(loss)(scores)))


# --------------------------------------------------------------------------- #
# ranking_softmax_loss: optax.losses.ranking_softmax_loss.


@pytest.mark.parametrize("reduce_fn", [jnp.mean, jnp.sum, None])
@pytest.mark.parametrize(
  "masked,weighted", [(False, False), (True, True), (True, False)]
)
def test_ranking_softmax_matches_optax(reduce_fn, masked, weighted):
  scores, labels, where, weights = lists(6, shape=(2, 3, 5))
  where[0, 1] = False  # a list with no valid item
  kw = {}
  if masked:
    kw["where"] = where
  if weighted:
    kw["weights"] = weights
  expected = optax.losses.ranking_softmax_loss(
    scores, labels, reduce_fn=reduce_fn, **kw
  )
  assert_close(
    jl.ranking_softmax_loss(scores, labels, reduce_fn=reduce_fn, **kw),
    expected,
    RTOL,
    ATOL,
  )
  reduction = {jnp.mean: "mean", jnp.sum: "sum", None: "none"}[reduce_fn]
  assert_close(
    jl.ranking_softmax_loss(
      scores, labels, reduce_fn=jnp.sum, reduction=reduction, **kw
    ),
    expected,
    RTOL,
    ATOL,
  )


def test_ranking_softmax_default_and_scalar_weights_match_optax():
  scores, labels, _, _ = lists(7)
  assert_close(
    jl.ranking_softmax_loss(scores, labels),
    optax.losses.ranking_softmax_loss(scores, labels),
    RTOL,
    ATOL,
  )
  assert_close(
    jl.ranking_softmax_loss(scores, labels, weights=2.0),
    optax.losses.ranking_softmax_loss(scores, labels, weights=2.0),
    RTOL,
    ATOL,
  )
  assert_close(
    jl.ranking_softmax_loss(scores, labels),
    rax.softmax_loss(scores, labels),
    RTOL,
    ATOL,
  )


def test_ranking_softmax_matches_numpy_formula_with_list_weights():
  scores, labels, where, _ = lists(8, shape=(4, 5))
  list_weights = np.array([1.0, 2.0, 0.5, 3.0], np.float32)
  s = np.where(where, scores.astype(np.float64), -np.inf)
  log_probs = s - np_logsumexp(s)[:, None]
  values = -np.sum(np.where(where, labels * log_probs, 0.0), axis=-1)
  expected = (list_weights * values).sum() / list_weights.sum()
  assert_close(
    jl.ranking_softmax_loss(scores, labels, where=where, weights=list_weights),
    expected,
    RTOL,
    ATOL,
  )


# --------------------------------------------------------------------------- #
# listmle_loss: rax.listmle_loss, and the Plackett-Luce likelihood written out
# with rax's key-free tie order (valid items by decreasing label; ties keep
# their position).


def np_listmle(scores, labels, where):
  losses = []
  for s, y, w in zip(scores.astype(np.float64), labels, where):
    order = sorted(np.flatnonzero(w), key=lambda i: (-y[i], i))
    s = s[order]
    losses.append(-sum(s[k] - np_logsumexp(s[k:]) for k in range(len(s))))
  return np.array(losses)


def test_listmle_matches_numpy_formula_and_rax():
  scores, labels, where, _ = lists(9, shape=(5, 6), levels=3)
  where[2] = False
  expected = np_listmle(scores, labels, where)
  assert_close(
    jl.listmle_loss(scores, labels, where=where, reduction="none"),
    expected,
    RTOL,
    ATOL,
  )
  assert_close(
    jl.listmle_loss(scores, labels, where=where, reduction="mean"),
    expected.sum() / where.any(-1).sum(),
    RTOL,
    ATOL,
  )
  assert_close(
    jl.listmle_loss(scores, labels, where=where, reduction="mean"),
    rax.listmle_loss(scores, labels, where=where),
    RTOL,
    ATOL,
  )
  assert_close(
    jl.listmle_loss(scores, labels, reduction="sum"),
    rax.listmle_loss(scores, labels, reduce_fn=jnp.sum),
    RTOL,
    ATOL,
  )
  assert_close(
    jl.listmle_loss(scores, labels, reduction="none"),
    rax.listmle_loss(scores, labels, reduce_fn=None),
    RTOL,
    ATOL,
  )


def test_listmle_ties_keep_list_order():
  scores = jnp.array([0.0, 1.0, 2.0])
  labels = jnp.zeros(3)
  expected = np_listmle(
    np.asarray(scores)[None], np.zeros((1, 3)), np.ones((1, 3), bool)
  )
  assert_close(
    jl.listmle_loss(scores, labels, reduction="none"), expected[0], RTOL, ATOL
  )
  assert_close(
    jl.listmle_loss(scores, labels, reduction="mean"),
    rax.listmle_loss(scores, labels),
    RTOL,
    ATOL,
  )


# --------------------------------------------------------------------------- #
# multiple_negatives_ranking_loss: sentence-transformers semantics written
# out. MultipleNegativesRankingLoss: scores = cos_sim(anchors, cat([positives,
# negatives_1, ..., negatives_k])) * scale; cross_entropy(scores, arange(B)).
# cos_sim normalises with torch.nn.functional.normalize (x / max(|x|, 1e-12)).
# MultipleNegativesSymmetricRankingLoss adds cross_entropy(scores[:, :B].T,
# arange(B)) and averages the two.


def np_mnrl(
  anchors,
  positives,
  negatives=None,
  scale=20.0,
  similarity="cosine",
  symmetric=False,
):
  def normalize(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)

  a, p = anchors.astype(np.float64), positives.astype(np.float64)
  columns = [p]
  if negatives is not None:
    n = negatives.astype(np.float64)
    n = n[:, None] if n.ndim == 2 else n
    columns += [n[:, j] for j in range(n.shape[1])]
  candidates = np.concatenate(columns)
  if similarity == "cosine":
    a, candidates = normalize(a), normalize(candidates)
  scores = scale * a @ candidates.T
  batch = len(a)

  def cross_entropy(logits):  # per row, target = row index
    return np_logsumexp(logits) - logits[np.arange(batch), np.arange(batch)]

  forward = cross_entropy(scores)
  if not symmetric:
    return forward
  return (forward + cross_entropy(scores[:, :batch].T)) / 2


def embeddings(seed, batch=5, dim=4, k=None):
  rng = np.random.default_rng(seed)
  a, p = rng.normal(size=(2, batch, dim)).astype(np.float32)
  if k is None:
    return a, p, None
  shape = (batch, dim) if k == 0 else (batch, k, dim)
  return a, p, rng.normal(size=shape).astype(np.float32)


@pytest.mark.parametrize("k", [None, 0, 3])
@pytest.mark.parametrize("similarity,scale", [("cosine", 20.0), ("dot", 1.5)])
@pytest.mark.parametrize("symmetric", [False, True])
def test_mnrl_matches_sentence_transformers_formula(
  k, similarity, scale, symmetric
):
  a, p, n = embeddings(10, k=k)
  kw = dict(scale=scale, similarity=similarity, symmetric=symmetric)
  expected = np_mnrl(a, p, n, **kw)
  loss = jax.jit(
    functools.partial(jl.multiple_negatives_ranking_loss, **kw),
    static_argnames="reduction",
  )
  assert_close(loss(a, p, n), expected, rtol=2e-5, atol=ATOL)
  assert_close(
    loss(a, p, n, reduction="mean"), expected.mean(), rtol=2e-5, atol=ATOL
  )
  with jax.enable_x64(True):
    out = loss(
      a.astype(np.float64),
      p.astype(np.float64),
      None if n is None else n.astype(np.float64),
    )
    assert out.dtype == jnp.float64
    assert_close(out, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("k", [None, 0, 2])
@pytest.mark.parametrize("symmetric", [False, True])
def test_mnrl_where_removes_anchor_positive_and_negatives(k, symmetric):
  a, p, n = embeddings(11, batch=6, k=k)
  keep = np.array([True, False, True, True, False, True])
  sliced = np_mnrl(
    a[keep], p[keep], None if n is None else n[keep], symmetric=symmetric
  )
  out = jl.multiple_negatives_ranking_loss(
    a, p, n, symmetric=symmetric, where=keep
  )
  assert_close(out[keep], sliced, rtol=2e-5, atol=ATOL)
  assert np.all(np.asarray(out)[~keep] == 0)


def test_mnrl_zero_and_identical_vectors_are_finite():
  a = np.zeros((3, 4), np.float32)
  a[2] = 1.0
  p = np.ones((3, 4), np.float32)
  for symmetric in (False, True):
    loss = lambda a, p: jl.multiple_negatives_ranking_loss(
      a, p, p, symmetric=symmetric, reduction="mean"
    )
    value, grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(a, p)
    # Every similarity is 0 or 1: zero vectors are orthogonal to everything.
    assert_close(
      value, np.mean(np_mnrl(a, p, p, symmetric=symmetric)), RTOL, ATOL
    )
    assert np.all(np.isfinite(np.asarray(grads)))


def test_mnrl_traced_scale_matches_python_scale():
  a, p, n = embeddings(12, k=2)
  jitted = jax.jit(
    lambda s: jl.multiple_negatives_ranking_loss(
      a, p, n, scale=s, reduction="mean"
    )
  )
  assert_close(
    jitted(jnp.float32(7.0)),
    jl.multiple_negatives_ranking_loss(a, p, n, scale=7.0, reduction="mean"),
    RTOL,
    ATOL,
  )
  assert np.isfinite(jax.grad(jitted)(7.0))


# --------------------------------------------------------------------------- #
# Trace-time errors, value checks and the doctests.


@pytest.mark.parametrize(
  "call,error,words",
  [
    (
      lambda: jl.pairwise_hinge_loss(jnp.zeros((2, 3)), jnp.zeros((2, 4))),
      ValueError,
      ["pairwise_hinge_loss", "scores", "(2, 3)", "(2, 4)"],
    ),
    (
      lambda: jl.pairwise_hinge_loss(jnp.zeros(3, jnp.int32), jnp.zeros(3)),
      TypeError,
      ["pairwise_hinge_loss", "scores", "int32"],
    ),
    (
      lambda: jl.pairwise_logistic_loss(
        jnp.zeros(3), jnp.zeros(3), margin=-1.0
      ),
      ValueError,
      ["pairwise_logistic_loss", "margin"],
    ),
    (
      lambda: jl.pairwise_soft_zero_one_loss(
        jnp.zeros((2, 3)), jnp.zeros((2, 3)), where=jnp.ones((2, 4), bool)
      ),
      ValueError,
      ["pairwise_soft_zero_one_loss", "where", "(2, 4)"],
    ),
    (
      lambda: jl.pairwise_hinge_loss(
        jnp.zeros(3), jnp.zeros(3), where=jnp.ones(3)
      ),
      TypeError,
      ["pairwise_hinge_loss", "where", "boolean"],
    ),
    (
      lambda: jl.pairwise_hinge_loss(jnp.zeros(()), jnp.zeros(())),
      ValueError,
      ["pairwise_hinge_loss", "list axis"],
    ),
    (
      lambda: jl.pairwise_hinge_loss(
        jnp.zeros(3), jnp.zeros(3), reduction="average"
      ),
      ValueError,
      ["pairwise_hinge_loss", "'mean'"],
    ),
    (
      lambda: jl.margin_ranking_loss(jnp.zeros(3), jnp.zeros(2), jnp.ones(3)),
      ValueError,
      ["margin_ranking_loss", "scores2", "(3,)", "(2,)"],
    ),
    (
      lambda: jl.margin_ranking_loss(jnp.zeros(3), jnp.zeros(3), jnp.ones(2)),
      ValueError,
      ["margin_ranking_loss", "targets", "(2,)"],
    ),
    (
      lambda: jl.ranking_softmax_loss(
        jnp.zeros(3), jnp.zeros(3), reduce_fn=jnp.max
      ),
      ValueError,
      ["ranking_softmax_loss", "reduce_fn", "jnp.mean"],
    ),
    (
      lambda: jl.ranking_softmax_loss(jnp.zeros(3), jnp.zeros(2)),
      ValueError,
      ["ranking_softmax_loss", "labels", "(2,)"],
    ),
    (
      lambda: jl.listmle_loss(jnp.zeros((2, 3)), jnp.zeros((3, 2))),
      ValueError,
      ["listmle_loss", "scores", "(2, 3)", "(3, 2)"],
    ),
    (
      lambda: jl.multiple_negatives_ranking_loss(
        jnp.zeros((4, 3)), jnp.zeros((4, 2))
      ),
      ValueError,
      ["multiple_negatives_ranking_loss", "positives", "(4, 2)"],
    ),
    (
      lambda: jl.multiple_negatives_ranking_loss(jnp.zeros(3), jnp.zeros(3)),
      ValueError,
      ["multiple_negatives_ranking_loss", "anchors", "rank"],
    ),
    (
      lambda: jl.multiple_negatives_ranking_loss(
        jnp.zeros((4, 3)), jnp.zeros((4, 3)), jnp.zeros((3, 2, 3))
      ),
      ValueError,
      ["multiple_negatives_ranking_loss", "negatives", "(3, 2, 3)"],
    ),
    (
      lambda: jl.multiple_negatives_ranking_loss(
        jnp.zeros((4, 3)), jnp.zeros((4, 3)), where=jnp.ones((3,), bool)
      ),
      ValueError,
      ["multiple_negatives_ranking_loss", "where", "(3,)"],
    ),
    (
      lambda: jl.multiple_negatives_ranking_loss(
        jnp.zeros((4, 3)), jnp.zeros((4, 3)), similarity="l2"
      ),
      ValueError,
      ["multiple_negatives_ranking_loss", "similarity", "'cosine'", "'dot'"],
    ),
    (
      lambda: jl.multiple_negatives_ranking_loss(
        jnp.zeros((4, 3)), jnp.zeros((4, 3)), scale=0.0
      ),
      ValueError,
      ["multiple_negatives_ranking_loss", "scale"],
    ),
  ],
)
def test_errors_at_trace_time(call, error, words):
  with pytest.raises(error) as info:
    jax.eval_shape(call)
  for word in words:
    assert word in str(info.value), (word, str(info.value))


def test_checked_rejects_bad_targets_and_nan_scores():
  safe_margin = jl.checked(jl.margin_ranking_loss)
  ones = jnp.ones(3)
  assert_close(safe_margin(ones, ones, -ones), 0.0 * ones, RTOL, ATOL)
  checked_rejects(
    jl.margin_ranking_loss,
    ones,
    ones,
    jnp.array([1.0, 0.5, -1.0]),
    arg="targets",
    what=r"must hold -1 or \+1",
  )
  checked_rejects(
    jl.pairwise_hinge_loss,
    jnp.array([1.0, jnp.nan]),
    ones[:2],
    arg="scores",
    what="contains NaN",
  )
