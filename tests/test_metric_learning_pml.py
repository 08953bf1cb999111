"""jaxloss's ports of pytorch-metric-learning 2.9's losses against the
package itself, called in torch float64 (values and autograd gradients,
1e-10 relative), with its default distances and reducers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from pytorch_metric_learning import losses as pml

import jaxloss as jl

RTOL = 1e-10
ATOL = 1e-13  # for entries that are exactly 0 in one of the two
D = 5  # embedding dimension


N = 12  # every batch is padded to N rows, masked out by `where`: one program


def _batches(rng):
  """``(name, embeddings, labels, where)``, ``N`` rows each: a batch of the
  first rows (the others masked out by ``where``; the package gets the kept
  rows) with labels of several structures: a mix with a class of one
  example (no positive), one class (no negative), all distinct, a pair, a
  random half of the mix, identical embeddings, zero vectors."""
  mixed = rng.permutation(np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 4, 4]))
  half = rng.random(N) < 0.6
  half[:2] = True
  first = lambda m: np.arange(N) < m
  sets = [
    ("mixed", rng.normal(size=(N, D)), mixed, first(N)),
    ("one class", rng.normal(size=(N, D)), np.zeros(N, np.int64), first(6)),
    ("distinct", rng.normal(size=(N, D)), np.arange(N), first(6)),
    ("pair", rng.normal(size=(N, D)), mixed % 2, first(2)),
    ("where", rng.normal(size=(N, D)), mixed, half),
    ("identical", np.tile(np.linspace(-1, 1, D), (N, 1)), mixed % 3, first(5)),
    ("zero", np.zeros((N, D)), mixed % 3, first(5)),
  ]
  return sets


def _set_weight(module, name, tensor):
  """Replaces a parameter of a pytorch-metric-learning loss by ``tensor``
  (a plain tensor, so autograd reaches what it was computed from)."""
  module._parameters.pop(name, None)
  setattr(module, name, tensor)


def _torch_value_and_grads(loss_fn, *arrays):
  tensors = [
    torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays
  ]
  value = loss_fn(*tensors)
  grads = torch.autograd.grad(value, tensors, allow_unused=True)
  return float(value.detach()), [
    np.zeros_like(a) if g is None else g.numpy() for a, g in zip(arrays, grads)
  ]


def _assert(actual, expected, what, rtol=RTOL, atol=ATOL):
  np.testing.assert_allclose(
    np.asarray(actual, np.float64),
    np.asarray(expected, np.float64),
    rtol=rtol,
    atol=atol,
    err_msg=what,
  )


# --------------------------------------------------------------------------- #
# in-batch pair losses: jaxloss reduction="mean" is the package's value.

# torch.nn.Softplus (CircleLoss's) returns x itself above its threshold 20:
# off from log(1 + e^x) by e^-x < 2.1e-9 (values) and by as much relative
# to the gradient's terms; jaxloss computes the softplus exactly.
SOFTPLUS_THRESHOLD_ERROR = {"value": 2.1e-9, "gradient": 1e-8}

# (name, jaxloss function, [(jaxloss kwargs, pytorch-metric-learning loss)])
PAIR_LOSSES = [
  (
    "multi_similarity",
    jl.multi_similarity_loss,
    [
      ({}, pml.MultiSimilarityLoss()),
      (
        dict(alpha=3.0, beta=20.0, base=0.2),
        pml.MultiSimilarityLoss(alpha=3, beta=20, base=0.2),
      ),
    ],
  ),
  (
    "circle",
    jl.circle_loss,
    [
      ({}, pml.CircleLoss()),
      (dict(margin=0.25, gamma=16.0), pml.CircleLoss(m=0.25, gamma=16)),
    ],
  ),
  (
    "lifted_structure",
    jl.lifted_structure_loss,
    [
      ({}, pml.LiftedStructureLoss()),
      (
        dict(pos_margin=0.3, neg_margin=0.8),
        pml.LiftedStructureLoss(neg_margin=0.8, pos_margin=0.3),
      ),
    ],
  ),
  (
    "generalized_lifted_structure",
    jl.generalized_lifted_structure_loss,
    [
      ({}, pml.GeneralizedLiftedStructureLoss()),
      (
        dict(pos_margin=0.3, neg_margin=1.5),
        pml.GeneralizedLiftedStructureLoss(neg_margin=1.5, pos_margin=0.3),
      ),
    ],
  ),
  (
    "tuplet_margin",
    jl.tuplet_margin_loss,
    [
      # pytorch-metric-learning's margin is in degrees.
      (dict(margin=np.radians(5.73)), pml.TupletMarginLoss()),
      (
        dict(margin=np.radians(20.0), scale=8.0),
        pml.TupletMarginLoss(margin=20.0, scale=8),
      ),
    ],
  ),
  (
    "fast_ap",
    jl.fast_ap_loss,
    [
      ({}, pml.FastAPLoss()),
      (dict(num_bins=4), pml.FastAPLoss(num_bins=4)),
    ],
  ),
]


@pytest.mark.parametrize(
  "name, fn, settings", PAIR_LOSSES, ids=[p[0] for p in PAIR_LOSSES]
)
def test_pair_losses_equal_pytorch_metric_learning(name, fn, settings):
  """Every setting on every batch of :func:`_batches`: jaxloss's
  ``reduction="mean"`` with ``where`` equals the package's loss on the kept
  rows, and so do the gradients (0 on the masked rows). jaxloss is finite
  with finite gradients everywhere; at identical embeddings the package's
  gradients are not (its ``acos`` and ``cdist``), and are compared only
  where they are finite."""
  rng = np.random.default_rng(0)
  value_atol, grad_atol = ATOL, 1e-12
  if name == "circle":
    value_atol = SOFTPLUS_THRESHOLD_ERROR["value"]
    grad_atol = SOFTPLUS_THRESHOLD_ERROR["gradient"]
  with jax.enable_x64(True):
    # Hyper-parameters are traced (one program per static option).
    compiled = {}
    for kwargs, reference in settings:
      static = {k: v for k, v in kwargs.items() if k == "num_bins"}
      traced = {k: v for k, v in kwargs.items() if k not in static}
      key = tuple(static.items())
      if key not in compiled:
        compiled[key] = jax.jit(
          jax.value_and_grad(
            lambda x, y, w, hp, st=static: fn(
              x, y, where=w, reduction="mean", **hp, **st
            )
          )
        )
      for structure, x, labels, keep in _batches(rng):
        what = f"{name} {kwargs} {structure}"
        got, got_grad = compiled[key](x, labels, keep, traced)
        assert np.isfinite(got) and np.all(np.isfinite(got_grad)), what
        assert np.all(np.asarray(got_grad)[~keep] == 0), what
        want, (want_grad,) = _torch_value_and_grads(
          lambda t: reference(t, torch.tensor(labels[keep])), x[keep]
        )
        assert np.isfinite(want), what
        _assert(got, want, what, atol=value_atol)
        if np.all(np.isfinite(want_grad)):
          _assert(got_grad[keep], want_grad, what + " grad", atol=grad_atol)
        else:
          assert structure == "identical", what


def test_reductions_map_to_the_reducers():
  """Lifted structure and tuplet margin: "none" is each anchor's sum over
  its positive pairs, "sum" their total and "mean" the mean over the
  positive pairs of anchors that have a negative (``MeanReducer`` over
  pairs); weights weigh every pair of their anchor. Circle: "mean" averages
  the anchors with a positive and a negative (``AvgNonZeroReducer``)."""
  rng = np.random.default_rng(1)
  x = rng.normal(size=(9, D)).astype(np.float32)
  labels = np.array([0, 0, 0, 1, 1, 2, 3, 3, 3])  # anchor 5: no positive
  counts = np.array([2, 2, 2, 1, 1, 0, 2, 2, 2], np.float32)
  w = rng.uniform(0.5, 2.0, size=9).astype(np.float32)

  @jax.jit
  def everything(x, w):
    out = {}
    for fn in (jl.lifted_structure_loss, jl.tuplet_margin_loss, jl.circle_loss):
      out[fn.__name__] = dict(
        none=fn(x, labels),
        sum=fn(x, labels, reduction="sum"),
        mean=fn(x, labels, reduction="mean"),
        weighted=fn(x, labels, weights=w),
        weighted_mean=fn(x, labels, weights=w, reduction="mean"),
      )
    return out

  for name, got in everything(x, w).items():
    none = np.asarray(got["none"], np.float64)
    assert none[5] == 0 and np.all(none[counts > 0] > 0), name
    _assert(got["sum"], none.sum(), name, 1e-6)
    _assert(got["weighted"], w * none, name, 1e-6)
    if name == "circle_loss":
      _assert(got["mean"], none[counts > 0].mean(), name, 1e-6)
      continue
    _assert(got["mean"], none.sum() / counts.sum(), name, 1e-6)
    _assert(
      got["weighted_mean"], (w * none).sum() / (w * counts).sum(), name, 1e-6
    )


# --------------------------------------------------------------------------- #
# proxies and multi-centre heads.


def _unit(x):
  return x / jnp.linalg.norm(x, axis=-1, keepdims=True)


def test_proxy_anchor_equals_pytorch_metric_learning():
  """Values and gradients (embeddings and proxies) for the defaults and
  another margin/alpha, a batch where some classes have no example, and
  ``where`` (the package's loss on the kept examples) or zero weights; the
  NNX module with the same proxies."""
  rng = np.random.default_rng(3)
  num_classes = 6
  labels = np.array([0, 0, 1, 2, 2, 2, 4, 4, 1, 0])  # classes 3, 5 absent
  n = len(labels)
  x = rng.normal(size=(n, D))
  proxies = rng.normal(size=(num_classes, D))
  keep = np.ones(n, bool)
  keep[[2, 8, 5]] = False  # class 1 absent too
  everything = np.ones(n, bool)
  with jax.enable_x64(True):
    value_and_grad = jax.jit(
      jax.value_and_grad(
        lambda e, p, y, where, weights, hp: jl.proxy_anchor_loss(
          e, y, p, where=where, weights=weights, **hp
        ),
        argnums=(0, 1),
      )
    )
    for kwargs in ({}, dict(margin=0.3, alpha=8.0)):
      reference = pml.ProxyAnchorLoss(num_classes, D, **kwargs)
      hp = {"margin": 0.1, "alpha": 32.0, **kwargs}

      def torch_loss(e, p, labels=labels, reference=reference):
        _set_weight(reference, "proxies", p)
        return reference(e, torch.tensor(labels))

      for where, weights in (
        (everything, np.ones(n)),
        (keep, np.ones(n)),
        (everything, keep.astype(float)),
      ):
        what = f"proxy_anchor {kwargs} {where.sum()} {weights.sum()}"
        kept = where & (weights > 0)
        want, want_grads = _torch_value_and_grads(
          lambda e, p: torch_loss(e, p, labels=labels[kept]), x[kept], proxies
        )
        got, got_grads = value_and_grad(x, proxies, labels, where, weights, hp)
        _assert(got, want, what)
        _assert(got_grads[0][kept], want_grads[0], what, atol=1e-12)
        assert np.all(np.asarray(got_grads[0])[~kept] == 0), what
        _assert(got_grads[1], want_grads[1], what, atol=1e-12)
    hp = {"margin": 0.1, "alpha": 32.0}
    # A kept invalid label gives NaN; masked out, it is dropped.
    bad = labels.copy()
    bad[2] = num_classes
    assert np.isnan(
      value_and_grad(x, proxies, bad, everything, np.ones(n), hp)[0]
    )
    _assert(
      value_and_grad(x, proxies, bad, keep, np.ones(n), hp)[0],
      value_and_grad(x, proxies, labels, keep, np.ones(n), hp)[0],
      "masked-out invalid label",
    )
    # Fractional weights multiply each example's term inside the sums.
    w = rng.uniform(0.5, 2.0, size=n)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    cos = u @ (proxies / np.linalg.norm(proxies, axis=1, keepdims=True)).T
    onehot = np.eye(num_classes, dtype=bool)[labels]
    pos = np.log1p(
      np.sum(np.where(onehot, w[:, None] * np.exp(-32 * (cos - 0.1)), 0), 0)
    )
    neg = np.log1p(
      np.sum(np.where(~onehot, w[:, None] * np.exp(32 * (cos + 0.1)), 0), 0)
    )
    present = onehot.any(axis=0)
    _assert(
      value_and_grad(x, proxies, labels, everything, w, hp)[0],
      pos[present].sum() / present.sum() + neg.sum() / num_classes,
      "weights",
    )
    # "none", "sum" and "mean" are the same scalar.
    reductions = jax.jit(
      lambda e, p: [
        jl.proxy_anchor_loss(e, labels, p, reduction=r)
        for r in ("none", "sum", "mean")
      ]
    )
    values = reductions(x, proxies)
    assert values[0].shape == () and values[0] == values[1] == values[2]
    head = jl.nn.ProxyAnchor(
      D, num_classes, rngs=nnx.Rngs(0), param_dtype=jnp.float64
    )
    head.proxies[...] = jnp.asarray(proxies)
    reference = pml.ProxyAnchorLoss(num_classes, D)
    _set_weight(reference, "proxies", torch.tensor(proxies))
    want = float(reference(torch.tensor(x), torch.tensor(labels)).detach())
    _assert(nnx.jit(lambda h, e: h(e, labels))(head, x), want, "ProxyAnchor")
    assert head.logits(x).shape == (n, num_classes)


def _multi_center_inputs(rng, num_classes, centers, n):
  labels = rng.integers(0, num_classes, size=n)
  return (
    rng.normal(size=(n, D)),
    labels,
    rng.normal(size=(num_classes, centers, D)),
  )


def _cosines(x, centers):
  return jnp.einsum("nd,ckd->nck", _unit(x), _unit(centers))


def _pml_centers(reference, attribute, centers):
  """pytorch-metric-learning's weight ``[dim, num_classes · K]``, class-major,
  from ``[num_classes, K, dim]`` centres."""
  num_classes, k, dim = centers.shape

  def set_weight(c):
    _set_weight(reference, attribute, c.reshape(num_classes * k, dim).T)

  return set_weight


@pytest.mark.parametrize("loss", ["soft_triple", "sub_center_arcface"])
def test_multi_center_losses_equal_pytorch_metric_learning(loss):
  """SoftTriple and sub-center ArcFace on the cosines to ``[C, K, dim]``
  centres: values and gradients (embeddings and centres) for the defaults
  and other settings; ``where`` (the package on the kept examples); the NNX
  module with the same centres."""
  rng = np.random.default_rng(4)
  num_classes = 4
  if loss == "soft_triple":
    fn, attribute, module = jl.soft_triple_loss, "fc", jl.nn.SoftTriple
    settings = [
      (10, {}, {}),
      (
        3,
        dict(scale=8.0, gamma=0.5, margin=0.2),
        dict(la=8, gamma=0.5, margin=0.2),
      ),
    ]

    def make(k, kw):
      return pml.SoftTripleLoss(num_classes, D, centers_per_class=k, **kw)

    def head(k, kw):
      return module(
        D,
        num_classes,
        centers_per_class=k,
        **kw,
        rngs=nnx.Rngs(0),
        param_dtype=jnp.float64,
      )
  else:
    fn, attribute, module = (
      jl.sub_center_arcface_loss,
      "W",
      jl.nn.SubCenterArcFace,
    )
    # pytorch-metric-learning's margins are in degrees.
    settings = [
      (3, dict(margin=np.radians(28.6)), {}),
      (
        2,
        dict(margin=np.radians(10.0), scale=16.0),
        dict(margin=10.0, scale=16),
      ),
    ]

    def make(k, kw):
      return pml.SubCenterArcFaceLoss(
        num_classes=num_classes, embedding_size=D, sub_centers=k, **kw
      )

    def head(k, kw):
      return module(
        D,
        num_classes,
        sub_centers=k,
        **kw,
        rngs=nnx.Rngs(0),
        param_dtype=jnp.float64,
      )

  with jax.enable_x64(True):
    for k, kwargs, pml_kwargs in settings:
      x, labels, centers = _multi_center_inputs(rng, num_classes, k, 9)
      reference = make(k, pml_kwargs)
      set_weight = _pml_centers(reference, attribute, centers)

      def torch_loss(e, c, labels=labels):
        set_weight(c)
        return reference(e, torch.tensor(labels))

      value_and_grad = jax.jit(
        jax.value_and_grad(
          lambda e, c, y, where, hp: fn(
            _cosines(e, c), y, where=where, reduction="mean", **hp
          ),
          argnums=(0, 1),
        )
      )
      what = f"{loss} K={k} {kwargs}"
      keep = np.arange(9) % 3 != 1
      for where in (np.ones(9, bool), keep):
        want, want_grads = _torch_value_and_grads(
          lambda e, c: torch_loss(e, c, labels=labels[where]),
          x[where],
          centers,
        )
        got, got_grads = value_and_grad(x, centers, labels, where, kwargs)
        _assert(got, want, what)
        _assert(got_grads[0][where], want_grads[0], what, atol=1e-12)
        assert np.all(np.asarray(got_grads[0])[~where] == 0), what
        _assert(got_grads[1], want_grads[1], what + " centres", atol=1e-12)
      model = head(k, kwargs)
      model.centers[...] = jnp.asarray(centers)
      want = float(torch_loss(torch.tensor(x), torch.tensor(centers)).detach())
      got, logits = nnx.jit(lambda m, e: (m(e, labels), m.logits(e)))(model, x)
      _assert(got, want, what + " module")
      assert logits.shape == (9, num_classes)


def test_sub_center_arcface_is_arcface_on_the_closest_sub_center():
  rng = np.random.default_rng(5)
  cosines = rng.uniform(-0.9, 0.9, size=(7, 4, 3)).astype(np.float32)
  labels = rng.integers(0, 4, size=7)
  where = rng.random((7, 4)) < 0.8
  where[np.arange(7), labels] = True
  settings = ({}, dict(easy_margin=True, scale=8.0), dict(where=where))

  @jax.jit
  def both(cosines):
    return [
      (
        jl.sub_center_arcface_loss(cosines, labels, **kw),
        jl.arcface_loss(cosines.max(-1), labels, **kw),
      )
      for kw in settings
    ]

  for kw, (got, want) in zip(settings, both(cosines)):
    _assert(got, want, str(kw), 1e-6, 1e-6)


def test_bad_options():
  x, labels = np.ones((4, D), np.float32), np.array([0, 0, 1, 1])
  cases = [
    (jl.fast_ap_loss, dict(num_bins=0), "num_bins"),
    (jl.fast_ap_loss, dict(num_bins=2.5), "num_bins"),
    (jl.circle_loss, dict(gamma=0.0), "gamma"),
    (jl.multi_similarity_loss, dict(alpha=-1.0), "alpha"),
    (jl.tuplet_margin_loss, dict(scale=0.0), "scale"),
  ]
  for fn, kwargs, arg in cases:
    with pytest.raises(ValueError, match=f"{fn.__name__}.*{arg}"):
      fn(x, labels, **kwargs)
  with pytest.raises(ValueError, match="soft_triple_loss.*gamma"):
    jl.soft_triple_loss(np.zeros((2, 3, 2), np.float32), labels[:2], gamma=0.0)
  with pytest.raises(ValueError, match="sub_center_arcface_loss.*cosines"):
    jl.sub_center_arcface_loss(np.zeros((2, 3), np.float32), labels[:2])
  with pytest.raises(ValueError, match="proxy_anchor_loss.*proxies"):
    jl.proxy_anchor_loss(x, labels, np.zeros((3, D + 1), np.float32))
