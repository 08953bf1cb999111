"""Value tests for jaxloss.metric_learning against float64 NumPy references
written from the papers (and torch's / tfa's documented semantics), and
against optax."""

import functools

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

RTOL, ATOL = 1e-5, 1e-6
# The in-batch losses compute squared distances in the Gram form
# ‖x‖² + ‖y‖² − 2x·y, whose float32 rounding error is ~1e-7·‖x‖² absolute, not
# relative to the distance: float32 comparisons of those use atol 1e-5.
GRAM_ATOL = 1e-5
DISTANCES = ("euclidean", "squared_euclidean", "cosine")


def normal(rng, *shape):
  return rng.normal(size=shape).astype(np.float32)


def np_softmax_ce(logits, labels):
  logits = np.asarray(logits, np.float64)
  m = logits.max(-1, keepdims=True)
  lse = m[..., 0] + np.log(np.exp(logits - m).sum(-1))
  return lse - np.take_along_axis(logits, labels[..., None], -1)[..., 0]


def np_cos(x, y):
  nx, ny = np.linalg.norm(x), np.linalg.norm(y)
  return 0.0 if nx == 0 or ny == 0 else float(x @ y / (nx * ny))


def sigmoid(x):
  return 1 / (1 + np.exp(-x))


# --------------------------------------------------------------------------- #
# triplet_margin_loss.
# torch.nn.functional.triplet_margin_loss, written out:
#   d(x, y) = pairwise_distance(x, y, p, eps) = ‖x − y + eps‖_p
#   d_neg = min(d(a, n), d(p, n)) if swap else d(a, n)
#   loss = max(margin + d(a, p) − d_neg, 0)


def np_torch_triplet(a, p, n, norm_degree, margin, eps, swap):
  a, p, n = (np.asarray(x, np.float64) for x in (a, p, n))
  dist = lambda x, y: (
    np.sum(np.abs(x - y + eps) ** norm_degree, -1) ** (1 / norm_degree)
  )
  negative = dist(a, n)
  if swap:
    negative = np.minimum(negative, dist(p, n))
  return np.maximum(margin + dist(a, p) - negative, 0)


def np_optax_triplet_fixed(a, p, n, norm_degree, margin, eps):
  """optax's formula, (Σ|a − p|^q + eps)^(1/q), with the absolute value."""
  a, p, n = (np.asarray(x, np.float64) for x in (a, p, n))
  dist = lambda x, y: (
    (np.sum(np.abs(x - y) ** norm_degree, -1) + eps) ** (1 / norm_degree)
  )
  return np.maximum(dist(a, p) - dist(a, n) + margin, 0)


def triplets(seed, shape=(5, 4)):
  rng = np.random.default_rng(seed)
  return tuple(normal(rng, *shape) for _ in range(3))


@pytest.mark.parametrize("norm_degree", [2, 4])
@pytest.mark.parametrize("axis", [-1, 0])
def test_triplet_margin_matches_optax_for_even_degrees(norm_degree, axis):
  a, p, n = triplets(0)
  expected = optax.losses.triplet_margin_loss(a, p, n, axis, norm_degree, 0.7)
  assert_close(
    jl.triplet_margin_loss(a, p, n, axis, norm_degree, 0.7),
    expected,
    RTOL,
    ATOL,
  )


@pytest.mark.parametrize("norm_degree", [1, 3])
def test_triplet_margin_takes_absolute_values_for_odd_degrees(norm_degree):
  a, p, n = triplets(1)
  ours = jl.triplet_margin_loss(a, p, n, norm_degree=norm_degree, margin=2.0)
  assert_close(
    ours, np_optax_triplet_fixed(a, p, n, norm_degree, 2.0, 1e-6), RTOL, ATOL
  )
  # optax raises signed differences to odd powers: its values would fail the
  # check above.
  theirs = optax.losses.triplet_margin_loss(
    a, p, n, norm_degree=norm_degree, margin=2.0
  )
  assert not np.allclose(ours, theirs, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("norm_degree", [1, 2, 3])
@pytest.mark.parametrize("swap", [False, True])
def test_triplet_margin_matches_torch_with_eps_zero(norm_degree, swap):
  a, p, n = triplets(2)
  assert_close(
    jl.triplet_margin_loss(
      a, p, n, norm_degree=norm_degree, eps=0.0, swap=swap
    ),
    np_torch_triplet(a, p, n, norm_degree, 1.0, 0.0, swap),
    RTOL,
    ATOL,
  )


def test_triplet_margin_swap_close_to_torch_with_default_eps():
  # torch adds eps to the difference, jaxloss (like optax) to the sum of
  # powers: both move the distance by O(eps) = O(1e-6).
  a, p, n = triplets(3)
  assert_close(
    jl.triplet_margin_loss(a, p, n, swap=True),
    np_torch_triplet(a, p, n, 2, 1.0, 1e-6, True),
    atol=1e-5,
    rtol=RTOL,
  )


def test_triplet_margin_feature_mask_is_a_sub_vector():
  a, p, n = triplets(4)
  features = np.array([True, False, True, True])
  where = np.broadcast_to(features, a.shape)
  assert_close(
    jl.triplet_margin_loss(a, p, n, where=where, swap=True),
    jl.triplet_margin_loss(
      a[:, features], p[:, features], n[:, features], swap=True
    ),
    RTOL,
    ATOL,
  )


def test_triplet_margin_identical_embeddings_with_eps_zero():
  x = np.ones((2, 3), np.float32)
  grad = jax.grad(
    lambda x: jl.triplet_margin_loss(x, x, x, eps=0.0, reduction="sum")
  )(x)
  assert_close(jl.triplet_margin_loss(x, x, x, eps=0.0), [1.0, 1.0], RTOL, ATOL)
  assert np.all(np.isfinite(grad))


# --------------------------------------------------------------------------- #
# contrastive_loss: Hadsell et al. 2006 with label 1 = similar, no ½ factors.


def test_contrastive_matches_formula():
  rng = np.random.default_rng(5)
  x1, x2 = normal(rng, 6, 3), 0.5 * normal(rng, 6, 3)
  labels = np.array([1, 0, 0.3, 1, 0, 0], np.float32)
  d = np.linalg.norm(x1.astype(np.float64) - x2, axis=-1)
  expected = labels * d**2 + (1 - labels) * np.maximum(0, 1.5 - d) ** 2
  assert_close(
    jl.contrastive_loss(x1, x2, labels, margin=1.5), expected, RTOL, ATOL
  )
  assert_close(
    jl.contrastive_loss(x1, x2, labels, margin=1.5, reduction="mean"),
    expected.mean(),
    RTOL,
    ATOL,
  )
  # Integer and boolean labels are read as 0/1.
  hard = labels.round().astype(np.int32)
  assert_close(
    jl.contrastive_loss(x1, x2, hard.astype(bool), margin=1.5),
    jl.contrastive_loss(x1, x2, hard, margin=1.5),
    RTOL,
    ATOL,
  )


# --------------------------------------------------------------------------- #
# In-batch mining, written from the papers: Hermans et al. 2017 (batch hard,
# batch all "BA≠0" per anchor) and Schroff et al. 2015 / tfa's
# triplet_semihard_loss (hardest negative strictly farther than the positive,
# else the farthest negative).


def np_distances(x, distance):
  x = np.asarray(x, np.float64)
  diff = x[:, None] - x[None, :]
  if distance == "cosine":
    n = len(x)
    return np.array(
      [
        [1 - np_cos(x[i], x[j]) if i != j else 0.0 for j in range(n)]
        for i in range(n)
      ]
    )
  squared = np.sum(diff**2, -1)
  return squared if distance == "squared_euclidean" else np.sqrt(squared)


def np_mining(kind, x, labels, margin, distance):
  """``(per-anchor values, anchors counted in "mean")``."""
  d = np_distances(x, distance)
  n = len(labels)
  values, counted = np.zeros(n), np.zeros(n, bool)
  for a in range(n):
    pos = [p for p in range(n) if p != a and labels[p] == labels[a]]
    neg = [k for k in range(n) if labels[k] != labels[a]]
    if not pos or not neg:
      continue
    if kind == "hard":
      values[a] = max(0, max(d[a, pos]) - min(d[a, neg]) + margin)
      counted[a] = True
    elif kind == "all":
      losses = [d[a, p] - d[a, k] + margin for p in pos for k in neg]
      active = [l for l in losses if l > 0]
      if active:
        values[a], counted[a] = np.mean(active), True
    else:
      losses = []
      for p in pos:
        farther = [d[a, k] for k in neg if d[a, k] > d[a, p]]
        negative = min(farther) if farther else max(d[a, neg])
        losses.append(max(0, d[a, p] - negative + margin))
      values[a], counted[a] = np.mean(losses), True
  return values, counted


MINING = {
  "hard": jl.batch_hard_triplet_loss,
  "all": jl.batch_all_triplet_loss,
  "semi": jl.semi_hard_triplet_loss,
}


@pytest.mark.parametrize("kind", sorted(MINING))
@pytest.mark.parametrize("distance", DISTANCES)
def test_mining_matches_reference(kind, distance):
  rng = np.random.default_rng(6)
  x = normal(rng, 10, 4)
  labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3], np.int32)  # 3: no positive
  margin = 0.4 if distance == "cosine" else 1.0
  values, counted = np_mining(kind, x, labels, margin, distance)
  fn = MINING[kind]
  assert_close(
    fn(x, labels, margin=margin, distance=distance),
    values,
    atol=GRAM_ATOL,
    rtol=RTOL,
  )
  assert_close(
    fn(x, labels, margin=margin, distance=distance, reduction="mean"),
    values[counted].mean(),
    atol=GRAM_ATOL,
    rtol=RTOL,
  )
  with jax.enable_x64(True):
    assert_close(
      fn(x.astype(np.float64), labels, margin=margin, distance=distance),
      values,
      rtol=1e-10,
      atol=1e-10,
    )


@jax.jit
def _all_mining(x, labels):
  return {
    kind: (fn(x, labels), fn(x, labels, reduction="mean"))
    for kind, fn in MINING.items()
  }


@settings(max_examples=8, deadline=None, derandomize=True)
@given(n=st.integers(2, 7), classes=st.integers(1, 4), seed=st.integers(0, 99))
def test_mining_matches_reference_on_random_batches(n, classes, seed):
  rng = np.random.default_rng(seed)
  x = normal(rng, n, 3)
  labels = rng.integers(0, classes, size=n).astype(np.int32)
  for kind, (values, mean) in _all_mining(x, labels).items():
    expected, counted = np_mining(kind, x, labels, 1.0, "euclidean")
    assert_close(values, expected, atol=GRAM_ATOL, rtol=RTOL)
    assert_close(
      mean,
      expected[counted].mean() if counted.any() else 0.0,
      atol=GRAM_ATOL,
      rtol=RTOL,
    )


def test_semi_hard_mean_is_tfa_pair_mean_with_balanced_classes():
  # tfa's scalar: Σ over positive pairs of the pair loss / number of pairs.
  rng = np.random.default_rng(7)
  x = normal(rng, 8, 3)
  labels = np.array([0, 1, 2, 3] * 2, np.int32)
  d = np_distances(x, "euclidean")
  pair_losses = []
  for a in range(8):
    for p in range(8):
      if p != a and labels[p] == labels[a]:
        neg = labels != labels[a]
        farther = d[a][neg & (d[a] > d[a, p])]
        negative = farther.min() if farther.size else d[a][neg].max()
        pair_losses.append(max(0, d[a, p] - negative + 1.0))
  assert_close(
    jl.semi_hard_triplet_loss(x, labels, reduction="mean"),
    np.mean(pair_losses),
    atol=GRAM_ATOL,
    rtol=RTOL,
  )


@pytest.mark.parametrize("kind", sorted(MINING))
def test_mining_single_class_and_identical_embeddings(kind):
  fn = MINING[kind]
  one_class = np.zeros(4, np.int32)
  two_classes = np.array([0, 0, 1, 1], np.int32)

  def means(x):
    return jnp.stack(
      [
        fn(x, labels, distance=distance, reduction="mean")
        for labels in (one_class, two_classes)
        for distance in DISTANCES
      ]
    )

  x = np.ones((4, 3), np.float32)
  # One class: no anchor counts, so the mean is 0. Identical embeddings of
  # two classes: every triplet costs exactly the margin.
  assert_close(
    jax.jit(means)(x), [0.0] * 3 + [1.0] * 3, atol=GRAM_ATOL, rtol=RTOL
  )
  assert np.all(np.isfinite(jax.jit(jax.jacrev(means))(x)))


def test_cosine_distance_of_a_zero_vector():
  # A zero vector has cosine 0 (distance 1) with everything: with every
  # distance 1, an anchor with a positive and a negative costs the margin.
  x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], np.float32)
  for labels, expected in [
    ([0, 0, 1], [0.25, 0.25, 0]),
    ([1, 0, 0], [0, 0.25, 0.25]),
  ]:
    loss = lambda x: jl.batch_hard_triplet_loss(
      x, np.array(labels, np.int32), margin=0.25, distance="cosine"
    )
    assert_close(loss(x), expected, RTOL, ATOL)
    grad = jax.grad(lambda x: jnp.sum(loss(x)))(jnp.asarray(x))
    assert np.all(np.isfinite(grad))


# --------------------------------------------------------------------------- #
# npair_loss: Sohn 2016: log(1 + Σ_{j≠i} exp(f_i·f+_j − f_i·f+_i));
# tf.contrib.losses.metric_learning.npairs_loss adds
# 0.25·reg_lambda·(mean‖f‖² + mean‖f+‖²) to the mean.


def test_npair_matches_formula_and_tf_regulariser():
  rng = np.random.default_rng(8)
  f, fp = normal(rng, 5, 3), normal(rng, 5, 3)
  f64, fp64 = f.astype(np.float64), fp.astype(np.float64)
  logits = f64 @ fp64.T
  expected = np.array(
    [
      np.log1p(
        sum(np.exp(logits[i, j] - logits[i, i]) for j in range(5) if j != i)
      )
      for i in range(5)
    ]
  )
  assert_close(jl.npair_loss(f, fp), expected, RTOL, ATOL)
  tf_value = expected.mean() + 0.25 * 0.002 * (
    np.mean(np.sum(f64**2, -1)) + np.mean(np.sum(fp64**2, -1))
  )
  assert_close(
    jl.npair_loss(f, fp, l2_reg=0.002, reduction="mean"), tf_value, RTOL, ATOL
  )


# --------------------------------------------------------------------------- #
# angular_loss: Wang et al. 2017, eq. (5):
# [‖a − p‖² − 4 tan²α ‖n − (a + p)/2‖²]_+.


@pytest.mark.parametrize("alpha", [30.0, 45.0, 60.0])
def test_angular_matches_formula(alpha):
  a, p, n = (x.astype(np.float64) for x in triplets(9))
  expected = np.maximum(
    0,
    np.sum((a - p) ** 2, -1)
    - 4 * np.tan(np.radians(alpha)) ** 2 * np.sum((n - (a + p) / 2) ** 2, -1),
  )
  a, p, n = triplets(9)
  assert_close(
    jl.angular_loss(a, p, n, alpha_degrees=alpha), expected, RTOL, ATOL
  )
  traced = jax.jit(lambda alpha: jl.angular_loss(a, p, n, alpha_degrees=alpha))
  assert_close(traced(jnp.float32(alpha)), expected, RTOL, ATOL)


# --------------------------------------------------------------------------- #
# proxy_nca_loss: −log softmax_c(−‖x − p_c‖² / T)[y], the full squared
# distances (the implementation drops ‖x‖², which cancels).


@pytest.mark.parametrize("temperature", [1.0, 0.25])
def test_proxy_nca_matches_formula(temperature):
  rng = np.random.default_rng(10)
  x, proxies = normal(rng, 6, 3), normal(rng, 4, 3)
  labels = rng.integers(0, 4, size=6).astype(np.int32)
  squared = np.sum((x[:, None].astype(np.float64) - proxies[None]) ** 2, -1)
  expected = np_softmax_ce(-squared / temperature, labels)
  assert_close(
    jl.proxy_nca_loss(x, labels, proxies, temperature=temperature),
    expected,
    RTOL,
    ATOL,
  )


# --------------------------------------------------------------------------- #
# ge2e_loss: Wan et al. 2018, eqs. (6), (7), (9), written with loops; a masked
# utterance is deleted from the (ragged) batch.


def np_ge2e(e, w, b, method, keep=None):
  e = np.asarray(e, np.float64)
  speakers, utterances, _ = e.shape
  keep = np.ones((speakers, utterances), bool) if keep is None else keep
  kept = [
    [e[k, m] for m in range(utterances) if keep[k, m]] for k in range(speakers)
  ]
  values, counted = np.zeros((speakers, utterances)), np.zeros_like(keep)
  for j in range(speakers):
    others = [k for k in range(speakers) if k != j and kept[k]]
    for i in range(utterances):
      if not keep[j, i] or len(kept[j]) < 2 or not others:
        continue
      own = np.mean(
        [e[j, m] for m in range(utterances) if keep[j, m] and m != i], axis=0
      )
      s_own = w * np_cos(e[j, i], own) + b
      s_other = [
        w * np_cos(e[j, i], np.mean(kept[k], axis=0)) + b for k in others
      ]
      if method == "softmax":
        values[j, i] = -s_own + np.log(np.exp(s_own) + np.sum(np.exp(s_other)))
      else:
        values[j, i] = 1 - sigmoid(s_own) + max(sigmoid(np.array(s_other)))
      counted[j, i] = True
  return values, counted


@pytest.mark.parametrize("method", ["softmax", "contrast"])
def test_ge2e_matches_paper(method):
  rng = np.random.default_rng(11)
  e = normal(rng, 4, 3, 5)
  values, _ = np_ge2e(e, 10.0, -5.0, method)
  assert_close(jl.ge2e_loss(e, method=method), values, RTOL, ATOL)
  assert_close(
    jl.ge2e_loss(e, w=3.0, b=1.0, method=method),
    np_ge2e(e, 3.0, 1.0, method)[0],
    RTOL,
    ATOL,
  )


@pytest.mark.parametrize("method", ["softmax", "contrast"])
def test_ge2e_utterance_mask_deletes_utterances(method):
  rng = np.random.default_rng(12)
  e = normal(rng, 4, 3, 5)
  keep = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 1, 1]], bool)
  values, counted = np_ge2e(e, 10.0, -5.0, method, keep)
  assert not counted[1].any()  # speaker 1 has a single utterance left
  assert_close(jl.ge2e_loss(e, method=method, where=keep), values, RTOL, ATOL)
  assert_close(
    jl.ge2e_loss(e, method=method, where=keep, reduction="mean"),
    values[counted].mean(),
    RTOL,
    ATOL,
  )
  # A [speakers] mask drops whole speakers.
  speakers = np.array([True, False, True, True])
  assert_close(
    jl.ge2e_loss(e, method=method, where=speakers)[speakers],
    np_ge2e(e[speakers], 10.0, -5.0, method)[0],
    RTOL,
    ATOL,
  )


# --------------------------------------------------------------------------- #
# arcface_loss / cosface_loss, from the definitions:
#   ArcFace target cos(θ + m) with θ = arccos(c) when θ + m ≤ π, else
#   c − m·sin(m) (insightface); easy margin: cos(θ + m) if c > 0 else c.
#   CosFace target c − m. Then softmax cross-entropy of s·logits.


def np_margin_ce(cosines, labels, scale, target):
  c = np.asarray(cosines, np.float64).copy()
  rows = np.arange(len(labels))
  c[rows, labels] = [target(v) for v in c[rows, labels]]
  return np_softmax_ce(scale * c, labels)


def arcface_target(m, easy):
  def target(c):
    theta = np.arccos(np.clip(c, -1, 1))
    if easy:
      return np.cos(theta + m) if c > 0 else c
    return np.cos(theta + m) if theta + m <= np.pi else c - m * np.sin(m)

  return target


def cosines(seed, n=8, classes=5):
  rng = np.random.default_rng(seed)
  c = rng.uniform(-1, 1, size=(n, classes)).astype(np.float32)
  c[0, 0], c[1, 1] = 1.0, -1.0  # exact ±1 as the labels' cosines
  labels = rng.integers(0, classes, size=n).astype(np.int32)
  labels[:2] = [0, 1]
  return c, labels


@pytest.mark.parametrize("easy_margin", [False, True])
@pytest.mark.parametrize("margin", [0.3, 0.5])
def test_arcface_matches_definition(easy_margin, margin):
  c, labels = cosines(13)
  expected = np_margin_ce(c, labels, 16.0, arcface_target(margin, easy_margin))
  assert_close(
    jl.arcface_loss(
      c, labels, scale=16.0, margin=margin, easy_margin=easy_margin
    ),
    expected,
    RTOL,
    ATOL,
  )
  traced = jax.jit(
    lambda s, m: jl.arcface_loss(
      c, labels, scale=s, margin=m, easy_margin=easy_margin
    )
  )
  assert_close(
    traced(jnp.float32(16.0), jnp.float32(margin)), expected, RTOL, ATOL
  )


def test_arcface_gradient_at_exact_unit_cosines():
  c = jnp.array([[1.0, 0.2], [-1.0, 0.2], [1.0, -1.0]])
  labels = jnp.array([0, 0, 1])
  for easy in (False, True):
    loss = functools.partial(
      jl.arcface_loss, labels=labels, easy_margin=easy, reduction="sum"
    )
    assert np.all(np.isfinite(jax.grad(loss)(c)))


def test_cosface_matches_definition():
  c, labels = cosines(14)
  assert_close(
    jl.cosface_loss(c, labels, scale=30.0, margin=0.2),
    np_margin_ce(c, labels, 30.0, lambda v: v - 0.2),
    RTOL,
    ATOL,
  )


def test_class_mask_drops_classes():
  c, labels = cosines(15)
  classes = np.array([True, True, False, True, True])
  keep = labels != 2
  where = np.broadcast_to(classes, c.shape)
  sub = c[:, classes]
  sub_labels = np.searchsorted(np.flatnonzero(classes), labels)
  for fn in (jl.arcface_loss, jl.cosface_loss):
    values = fn(c, labels, scale=8.0, where=where)
    assert_close(
      np.asarray(values)[keep], fn(sub, sub_labels, scale=8.0)[keep], RTOL, ATOL
    )
    # An example whose label's class is dropped gives 0.
    assert np.all(np.asarray(values)[~keep] == 0)


# --------------------------------------------------------------------------- #
# alignment_loss / uniformity_loss: Wang & Isola 2020, reference code
#   align = (x − y).norm(p=2, dim=1).pow(alpha).mean()
#   uniform = torch.pdist(x, p=2).pow(2).mul(−t).exp().mean().log()


@pytest.mark.parametrize("alpha", [1, 2, 3])
def test_alignment_matches_paper(alpha):
  rng = np.random.default_rng(16)
  x, y = normal(rng, 6, 3), normal(rng, 6, 3)
  expected = np.linalg.norm(x.astype(np.float64) - y, axis=-1) ** alpha
  assert_close(jl.alignment_loss(x, y, alpha=alpha), expected, RTOL, ATOL)
  assert_close(
    jl.alignment_loss(x, y, alpha=alpha, reduction="mean"),
    expected.mean(),
    RTOL,
    ATOL,
  )


def np_uniformity(x, t, w=None):
  x = np.asarray(x, np.float64)
  n = len(x)
  w = np.ones(n) if w is None else np.asarray(w, np.float64)
  pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
  potential = [
    w[i] * w[j] * np.exp(-t * np.sum((x[i] - x[j]) ** 2)) for i, j in pairs
  ]
  return np.log(np.sum(potential) / sum(w[i] * w[j] for i, j in pairs))


@pytest.mark.parametrize("t", [1.0, 2.0])
def test_uniformity_matches_paper(t):
  rng = np.random.default_rng(17)
  x = normal(rng, 7, 3)
  x = x / np.linalg.norm(x, axis=-1, keepdims=True)
  assert_close(jl.uniformity_loss(x, t=t), np_uniformity(x, t), RTOL, ATOL)


def test_uniformity_mask_and_weights():
  rng = np.random.default_rng(18)
  x = normal(rng, 6, 3)
  keep = np.array([1, 0, 1, 1, 0, 1], bool)
  assert_close(
    jl.uniformity_loss(x, where=keep), np_uniformity(x[keep], 2.0), RTOL, ATOL
  )
  w = rng.uniform(0.5, 2.0, size=6)
  assert_close(
    jl.uniformity_loss(x, weights=w.astype(np.float32)),
    np_uniformity(x, 2.0, w),
    RTOL,
    ATOL,
  )
  for reduction in ("none", "sum", "mean"):
    assert_close(
      jl.uniformity_loss(x, reduction=reduction),
      np_uniformity(x, 2.0),
      RTOL,
      ATOL,
    )
  nobody = jax.value_and_grad(
    lambda x: jl.uniformity_loss(x, where=np.zeros(6, bool))
  )(x)
  assert float(nobody[0]) == 0 and np.all(np.isfinite(nobody[1]))


# --------------------------------------------------------------------------- #
# dtypes, traced hyper-parameters, errors, checked, doctests.


def test_traced_float64_hyper_parameters_keep_float32():
  a, p, n = triplets(19)
  labels = np.array([0, 0, 1, 1, 2], np.int32)

  def losses(m):
    return [
      jl.triplet_margin_loss(a, p, n, norm_degree=2 * m, margin=m, eps=m / 1e6),
      jl.contrastive_loss(a, p, np.ones(5, np.float32), margin=m),
      jl.semi_hard_triplet_loss(a, labels, margin=m),
      jl.batch_all_triplet_loss(a, labels, margin=m),
      jl.angular_loss(a, p, n, alpha_degrees=40 * m),
      jl.npair_loss(a, p, l2_reg=m),
      jl.proxy_nca_loss(a, labels, p, temperature=m),
      jl.ge2e_loss(a.reshape(5, 2, 2), w=m, b=m),
      jl.arcface_loss(np.tanh(a), labels % 4, scale=m, margin=m),
      jl.cosface_loss(np.tanh(a), labels % 4, scale=m, margin=m),
      jl.alignment_loss(a, p, alpha=m),
      jl.uniformity_loss(a, t=m),
    ]

  with jax.enable_x64(True):
    outs = jax.eval_shape(losses, jnp.asarray(1.0, jnp.float64))
  assert [o.dtype for o in outs] == [jnp.float32] * len(outs)


def test_gradients_with_respect_to_hyper_parameters():
  a, p, _ = triplets(20)
  labels = np.array([0, 0, 1, 1, 2], np.int32)

  def losses(m):
    return jnp.stack(
      [
        jl.batch_hard_triplet_loss(a, labels, margin=m, reduction="mean"),
        jl.proxy_nca_loss(a, labels, p, temperature=m, reduction="mean"),
        jl.ge2e_loss(a.reshape(5, 2, 2), w=20 * m, reduction="mean"),
        jl.arcface_loss(np.tanh(a), labels % 4, margin=m, reduction="mean"),
      ]
    )

  grads = jax.jit(jax.jacrev(losses))(0.5)
  assert np.all(np.isfinite(grads)) and np.all(grads != 0)


def _raises(error, match, fn, *args, **kwargs):
  with pytest.raises(error, match=match):
    jax.eval_shape(lambda *a: fn(*a, **kwargs), *args)


def test_errors_name_the_loss_and_the_argument():
  x = np.zeros((4, 3), np.float32)
  labels = np.zeros(4, np.int32)
  _raises(
    ValueError,
    r"batch_hard_triplet_loss: unknown distance='l1'.*"
    r"'euclidean', 'squared_euclidean', 'cosine'",
    jl.batch_hard_triplet_loss,
    x,
    labels,
    distance="l1",
  )
  _raises(
    ValueError,
    r"semi_hard_triplet_loss: argument `labels` must have "
    r"shape \(4,\)",
    jl.semi_hard_triplet_loss,
    x,
    labels[:3],
  )
  _raises(
    ValueError,
    r"batch_all_triplet_loss: `margin` must be >= 0",
    jl.batch_all_triplet_loss,
    x,
    labels,
    margin=-1.0,
  )
  _raises(
    TypeError,
    r"batch_hard_triplet_loss: argument `labels` must hold "
    r"integer",
    jl.batch_hard_triplet_loss,
    x,
    x[:, 0],
  )
  _raises(
    ValueError,
    r"batch_hard_triplet_loss: argument `where`",
    jl.batch_hard_triplet_loss,
    x,
    labels,
    where=np.ones((4, 3), bool),
  )
  _raises(
    ValueError,
    r"triplet_margin_loss: arguments must have the same "
    r"shape.*`negatives` \(4, 2\)",
    jl.triplet_margin_loss,
    x,
    x,
    x[:, :2],
  )
  _raises(
    ValueError,
    r"triplet_margin_loss: `norm_degree` must be > 0",
    jl.triplet_margin_loss,
    x,
    x,
    x,
    norm_degree=0,
  )
  _raises(
    ValueError,
    r"contrastive_loss: argument `labels` must have shape "
    r"\(4,\)",
    jl.contrastive_loss,
    x,
    x,
    np.ones(3),
  )
  _raises(
    ValueError,
    r"angular_loss: `alpha_degrees` must lie in \(0, 90\)",
    jl.angular_loss,
    x,
    x,
    x,
    alpha_degrees=90.0,
  )
  _raises(
    ValueError,
    r"npair_loss: argument `anchors` must have rank 2",
    jl.npair_loss,
    x[0],
    x[0],
  )
  _raises(
    ValueError,
    r"proxy_nca_loss: argument `proxies` must have shape "
    r"\('\*', 3\)",
    jl.proxy_nca_loss,
    x,
    labels,
    np.zeros((5, 2)),
  )
  _raises(
    ValueError,
    r"proxy_nca_loss: `temperature` must be > 0",
    jl.proxy_nca_loss,
    x,
    labels,
    x,
    temperature=0.0,
  )
  _raises(
    ValueError,
    r"ge2e_loss: unknown method='triplet'.*'softmax', "
    r"'contrast'",
    jl.ge2e_loss,
    np.zeros((2, 3, 4)),
    method="triplet",
  )
  _raises(
    ValueError,
    r"ge2e_loss: argument `embeddings` must hold at least 2 "
    r"utterances",
    jl.ge2e_loss,
    np.zeros((2, 1, 4)),
  )
  _raises(
    ValueError,
    r"arcface_loss: argument `labels` must have shape "
    r"\(4,\)",
    jl.arcface_loss,
    x,
    labels[:2],
  )
  _raises(
    ValueError,
    r"cosface_loss: `scale` must be > 0",
    jl.cosface_loss,
    x,
    labels,
    scale=-1.0,
  )
  _raises(
    TypeError,
    r"alignment_loss: argument `x` must be a floating",
    jl.alignment_loss,
    labels,
    labels,
  )
  _raises(
    ValueError,
    r"uniformity_loss: unknown reduction='batch'",
    jl.uniformity_loss,
    x,
    reduction="batch",
  )


def test_checked_catches_bad_values():
  c = np.array([[0.5, 1.5], [0.1, 0.2]], np.float32)
  checked_rejects(
    jl.arcface_loss,
    c,
    np.array([0, 1], np.int32),
    arg="cosines",
    what=r"must lie in \[-1, 1\]",
  )
  checked_rejects(
    jl.cosface_loss,
    c / 2,
    np.array([0, 2], np.int32),
    arg="labels",
    what=r"must hold class indices in \[0, 2\)",
  )
  x = np.zeros((2, 3), np.float32)
  checked_rejects(
    jl.proxy_nca_loss,
    x,
    np.array([0, 4], np.int32),
    np.zeros((4, 3), np.float32),
    arg="labels",
    what=r"must hold class indices in \[0, 4\)",
  )
  checked_rejects(
    jl.contrastive_loss,
    x,
    x,
    np.array([1.0, 2.0], np.float32),
    arg="labels",
    what="must lie in",
  )
  checked_rejects(
    jl.batch_hard_triplet_loss,
    np.full((2, 3), np.nan, np.float32),
    np.array([0, 1], np.int32),
    arg="embeddings",
    what="contains NaN",
  )
  # Valid values pass through.
  assert_close(
    jl.checked(jl.arcface_loss)(c / 2, np.array([0, 1], np.int32)),
    jl.arcface_loss(c / 2, np.array([0, 1], np.int32)),
    RTOL,
    ATOL,
  )


# --------------------------------------------------------------------------- #
# issue 19: triplet_margin_loss's `distance` (torch's
# TripletMarginWithDistanceLoss), huge magnitudes, invalid class labels.
# torch.nn.TripletMarginWithDistanceLoss.forward, written out (torch is not
# in the venv; torch/nn/functional.py, triplet_margin_with_distance_loss):
#   dist_pos = distance_function(anchor, positive)
#   dist_neg = distance_function(anchor, negative)
#   if swap: dist_neg = min(dist_neg, distance_function(positive, negative))
#   loss = clamp_min(margin + dist_pos - dist_neg, 0)
# and F.cosine_similarity(x, y, eps=1e-8) = x·y / (max(‖x‖, ε) max(‖y‖, ε)).


def np_torch_with_distance(a, p, n, distance, margin, swap):
  a, p, n = (np.asarray(x, np.float64) for x in (a, p, n))
  negative = distance(a, n)
  if swap:
    negative = np.minimum(negative, distance(p, n))
  return np.maximum(margin + distance(a, p) - negative, 0)


def np_cosine_distance(x, y, eps=1e-8):
  nx = np.maximum(np.linalg.norm(x, axis=-1), eps)
  ny = np.maximum(np.linalg.norm(y, axis=-1), eps)
  return 1 - np.sum(x * y, axis=-1) / (nx * ny)


@pytest.mark.parametrize("swap", [False, True])
def test_triplet_margin_cosine_distance_matches_torch_formula(swap):
  a, p, n = triplets(5)
  assert_close(
    jl.triplet_margin_loss(a, p, n, margin=0.3, distance="cosine", swap=swap),
    np_torch_with_distance(a, p, n, np_cosine_distance, 0.3, swap),
    RTOL,
    ATOL,
  )


@pytest.mark.parametrize("swap", [False, True])
def test_triplet_margin_callable_distance_matches_torch_formula(swap):
  a, p, n = triplets(6)
  l1 = lambda x, y: jnp.sum(jnp.abs(x - y), axis=-1)
  np_l1 = lambda x, y: np.sum(np.abs(x - y), axis=-1)
  ours = jl.triplet_margin_loss(
    a, p, n, margin=2.0, distance=l1, swap=swap, reduction="mean"
  )
  theirs = np.mean(np_torch_with_distance(a, p, n, np_l1, 2.0, swap))
  assert_close(ours, theirs, RTOL, ATOL)
  grads = jax.grad(
    lambda a: jl.triplet_margin_loss(a, p, n, distance=l1, reduction="sum")
  )(a)
  assert np.all(np.isfinite(grads))


def test_triplet_margin_distance_errors():
  a, p, n = triplets(7)
  with pytest.raises(ValueError, match="triplet_margin_loss.*distance"):
    jl.triplet_margin_loss(a, p, n, distance="manhattan")
  with pytest.raises(ValueError, match="triplet_margin_loss.*`distance`"):
    jl.triplet_margin_loss(a, p, n, distance=lambda x, y: x - y)
  with pytest.raises(ValueError, match="triplet_margin_loss.*`where`"):
    jl.triplet_margin_loss(
      a, p, n, distance="cosine", where=np.ones(a.shape, bool)
    )


@pytest.mark.parametrize("scale", [1e19, 1e30])
def test_triplet_and_angular_at_huge_magnitudes(scale):
  # Before issue 19, Σ|a − p|² overflowed float32 from ~1.8e19: NaN.
  a, p, n = (np.float32(x * scale) for x in triplets(8))
  want = np_optax_triplet_fixed(a, p, n, 2, 1.0, 1e-6)
  got = jl.triplet_margin_loss(a, p, n)
  assert_close(got, want, rtol=1e-5, atol=0)
  grads = jax.grad(lambda a: jl.triplet_margin_loss(a, p, n, reduction="sum"))(
    a
  )
  assert np.all(np.isfinite(grads))
  # Mining with Euclidean distances: the same distances, no overflow.
  x = np.float32(normal(np.random.default_rng(9), 8, 4) * scale)
  labels = np.arange(8) // 2
  assert_close(
    jl.batch_hard_triplet_loss(x, labels),
    np_mining("hard", x, labels, 1.0, "euclidean")[0],
    rtol=1e-5,
    atol=0,
  )


@pytest.mark.parametrize(
  "loss",
  [
    lambda c, y: jl.arcface_loss(c, y),
    lambda c, y: jl.cosface_loss(c, y),
    lambda c, y: jl.proxy_nca_loss(c, y, jnp.eye(3, dtype=jnp.float32)),
  ],
  ids=["arcface", "cosface", "proxy_nca"],
)
def test_out_of_range_class_labels_give_nan(loss):
  # Before issue 19, label -1 silently meant the last class (take_along_axis
  # wraps) and label C gave a finite value.
  cosines = np.float32([[0.1, 0.5, -0.2], [0.3, 0.2, 0.9], [0.0, 0.4, 0.1]])
  values = np.asarray(loss(cosines, np.int32([-1, 3, 1])))
  assert np.isnan(values[:2]).all()
  assert_close(values[2], loss(cosines[2:], np.int32([1]))[0], RTOL, ATOL)


# --------------------------------------------------------------------------- #
# Issue 22: npair_loss(negatives=) and contrastive_loss(squared=False).


@pytest.fixture(scope="module")
def pml():
  """pytorch-metric-learning 2.9 and torch, imported once for the module."""
  import torch
  from pytorch_metric_learning import distances, losses, reducers

  return torch, distances, losses, reducers


def np_npair_with_negatives(anchors, positives, negatives, in_batch):
  """Sohn 2016, eq. (3) (multi-class N-pair, the others' positives as
  negatives) with each anchor's own explicit negatives added to its sum, and
  without the in-batch terms the (N+1)-tuplet loss of eq. (2):
  ``log(1 + Σ_k exp(f·f_k − f·f⁺))``."""
  f, fp, fn = (np.float64(v) for v in (anchors, positives, negatives))
  values = []
  for i in range(len(f)):
    others = [f[i] @ fn[i, k] for k in range(fn.shape[1])]
    if in_batch:
      others += [f[i] @ fp[j] for j in range(len(f)) if j != i]
    values.append(np.log1p(np.sum(np.exp(np.array(others) - f[i] @ fp[i]))))
  return np.array(values)


def test_npair_explicit_negatives(pml):
  torch = pml[0]
  rng = np.random.default_rng(50)
  a, p = rng.normal(size=(2, 5, 3))
  n = rng.normal(size=(5, 4, 3))
  with jax.enable_x64(True):
    for in_batch in (True, False):
      got = jl.npair_loss(a, p, negatives=n, in_batch_negatives=in_batch)
      want = np_npair_with_negatives(a, p, n, in_batch)
      assert_close(got, want, rtol=1e-10, atol=1e-12)
    # info-nce-pytorch's info_nce(..., negative_mode="paired") (RElbers/
    # info-nce-pytorch, info_nce/__init__.py) on unit vectors, τ = 1, per
    # query: cross_entropy([q·k⁺, q·k⁻_1 …], 0), gradients by autograd.
    unit = [v / np.linalg.norm(v, axis=-1, keepdims=True) for v in (a, p, n)]
    q, k, neg = (torch.tensor(v, requires_grad=True) for v in unit)
    logits = torch.cat(
      [torch.sum(q * k, 1, keepdim=True), (q.unsqueeze(1) @ neg.mT).squeeze(1)],
      dim=1,
    )
    want = torch.nn.functional.cross_entropy(
      logits, torch.zeros(5, dtype=torch.long), reduction="none"
    )
    want_grads = torch.autograd.grad(want.sum(), (q, k, neg))
    value, grads = jax.value_and_grad(
      lambda *v: jnp.sum(
        jl.npair_loss(v[0], v[1], negatives=v[2], in_batch_negatives=False)
      ),
      argnums=(0, 1, 2),
    )(*unit)
    assert_close(value, want.sum().item(), rtol=1e-10)
    for g, w in zip(grads, want_grads):
      assert_close(g, w.numpy(), rtol=1e-10, atol=1e-12)
    # Without explicit negatives the values are unchanged.
    assert_close(
      jl.npair_loss(a, p), np_npair_with_negatives(a, p, n[:, :0], True)
    )
  with pytest.raises(ValueError, match="npair_loss.*in_batch_negatives"):
    jl.npair_loss(a, p, in_batch_negatives=False)
  with pytest.raises(ValueError, match="npair_loss.*negatives"):
    jl.npair_loss(a, p, negatives=n[:4])


def test_contrastive_unsquared_equals_pml(pml):
  """PML's ContrastiveLoss(pos_margin=0, neg_margin=m) on the given pairs
  (indices_tuple (i, i, j, j): anchor i of x1 against row i of x2 as the
  reference), per pair (DoNothingReducer), values and gradients."""
  torch, distances, losses, reducers = pml
  rng = np.random.default_rng(51)
  x1, x2 = rng.normal(size=(2, 8, 3))
  x2[0] = x1[0]  # distance 0: a similar pair costs 0 with a zero gradient
  labels = np.array([1, 0, 1, 0, 1, 0, 0, 1])
  margin = 2.0
  t1, t2 = (torch.tensor(v, requires_grad=True) for v in (x1, x2))
  similar = torch.tensor(np.flatnonzero(labels == 1))
  dissimilar = torch.tensor(np.flatnonzero(labels == 0))
  loss = losses.ContrastiveLoss(
    pos_margin=0.0,
    neg_margin=margin,
    distance=distances.LpDistance(normalize_embeddings=False),
    reducer=reducers.DoNothingReducer(),
  )
  ids = torch.arange(8)
  out = loss(t1, ids, (similar, similar, dissimilar, dissimilar), t2, ids)
  want = torch.zeros(8, dtype=torch.float64)
  want[similar] = out["pos_loss"]["losses"]
  want[dissimilar] = out["neg_loss"]["losses"]
  weights = torch.arange(1, 9, dtype=torch.float64)
  want_grads = torch.autograd.grad((weights * want).sum(), (t1, t2))
  with jax.enable_x64(True):
    got, grads = jax.value_and_grad(
      lambda a, b: jnp.sum(
        weights.numpy()
        * jl.contrastive_loss(a, b, labels, margin=margin, squared=False)
      ),
      argnums=(0, 1),
    )(x1, x2)
    values = jl.contrastive_loss(x1, x2, labels, margin=margin, squared=False)
    assert_close(values, want.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert_close(got, (weights * want).sum().item(), rtol=1e-10)
    for g, w in zip(grads, want_grads):
      assert_close(g, w.numpy(), rtol=1e-10, atol=1e-12)
    # Hadsell et al.'s ½ convention (their Y = 0 similar) is 0.5 × the default.
    d = np.linalg.norm(x1 - x2, axis=-1)
    y_hadsell = 1 - labels
    hadsell = (1 - y_hadsell) * 0.5 * d**2 + y_hadsell * 0.5 * np.maximum(
      0, margin - d
    ) ** 2
    assert_close(
      0.5 * jl.contrastive_loss(x1, x2, 1 - y_hadsell, margin=margin),
      hadsell,
      rtol=1e-10,
      atol=1e-12,
    )
  with pytest.raises(ValueError, match="contrastive_loss: unknown squared"):
    jl.contrastive_loss(x1, x2, labels, squared="yes")
