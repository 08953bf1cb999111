"""Issue 22 §5: SphereFace and L-Softmax against pytorch-metric-learning 2.9
(called), center loss, its update rule, TE2E and the L_p loss against
float64 NumPy transcriptions of their papers' formulas, and the NNX modules.

PML 2.9 has no center loss (no ``CenterLoss`` in ``pytorch_metric_learning.
losses``). Tolerance: 1e-10 relative in float64.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning.reducers import DoNothingReducer

import jaxloss as jl
from jaxloss.testing import assert_close

TOL = dict(rtol=1e-10, atol=1e-12)
B, D, C = 7, 4, 5


def _data(seed):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(B, D))
  centers = rng.normal(size=(C, D))
  labels = rng.integers(0, C, size=B)
  return x, centers, labels


def _pml(cls, x, centers, labels, margin, scale):
  """Per-example losses, then the mean and its gradients, from PML's loss
  with ``W = centers.T``."""
  per_example = cls(
    num_classes=C,
    embedding_size=D,
    margin=margin,
    scale=scale,
    reducer=DoNothingReducer(),
  )
  per_example.W.data = torch.tensor(centers.T)
  values = per_example(torch.tensor(x), torch.tensor(labels))["loss"]["losses"]
  mean = cls(num_classes=C, embedding_size=D, margin=margin, scale=scale)
  mean.W.data = torch.tensor(centers.T)
  tx = torch.tensor(x, requires_grad=True)
  value = mean(tx, torch.tensor(labels))
  value.backward()
  return (
    values.detach().numpy(),
    value.item(),
    tx.grad.numpy(),
    mean.W.grad.numpy().T,
  )


@pytest.mark.parametrize(
  "cls,fn",
  [
    (pml_losses.SphereFaceLoss, jl.sphereface_loss),
    (pml_losses.LargeMarginSoftmaxLoss, jl.large_margin_softmax_loss),
  ],
  ids=["sphereface", "large_margin_softmax"],
)
def test_multiplicative_margin_equals_pml(cls, fn):
  def mean(x, centers, labels, **kw):
    return fn(x, labels, centers, reduction="mean", **kw)

  grad = jax.jit(
    jax.value_and_grad(mean, argnums=(0, 1)), static_argnames="margin"
  )
  for seed, (margin, scale) in enumerate(
    [(1, 1.0), (2, 1.0), (3, 2.5), (4, 1.0), (4, 0.5)]
  ):
    x, centers, labels = _data(seed)
    # An embedding on its class vector (θ = 0) and one opposite (θ = π).
    x[0] = 2 * centers[labels[0]]
    x[1] = -0.5 * centers[labels[1]]
    values, value, grad_x, grad_centers = _pml(
      cls, x, centers, labels, margin, scale
    )
    what = f"{fn.__name__} m={margin} s={scale}"
    with jax.enable_x64(True):
      ours = fn(x, labels, centers, margin=margin, scale=scale)
      assert ours.dtype == jnp.float64
      assert_close(ours, values, **TOL, what=what)
      ours_value, (ours_x, ours_centers) = grad(
        x, centers, labels, margin=margin, scale=scale
      )
    assert_close(ours_value, value, **TOL, what=what)
    assert_close(ours_x, grad_x, **TOL, what=f"{what}: d/dx")
    assert_close(ours_centers, grad_centers, **TOL, what=f"{what}: d/dW")
  # `where` drops examples as slicing does; a bad margin is an error.
  keep = np.array([True, False, True, True, True, False, True])
  with jax.enable_x64(True):
    full = fn(x, labels, centers, where=keep)
    sliced = fn(x[keep], labels[keep], centers)
  assert_close(np.asarray(full)[keep], sliced, **TOL)
  assert np.all(np.asarray(full)[~keep] == 0)
  # A [batch, classes] mask drops classes: as removing their vectors.
  low = labels % 3
  classes = np.broadcast_to(np.arange(C) < 3, (B, C))
  with jax.enable_x64(True):
    assert_close(
      fn(x, low, centers, where=classes), fn(x, low, centers[:3]), **TOL
    )
  with pytest.raises(ValueError, match=f"{fn.__name__}: `margin`"):
    fn(x, labels, centers, margin=1.5)


def test_psi_is_monotonic_and_continuous():
  # ψ(θ) = (−1)^k cos(mθ) − 2k decreases from 1 to 1 − 2m over [0, π]: the
  # loss of a two-class problem whose other logit is fixed increases with θ.
  theta = np.linspace(0, np.pi, 721)
  x = np.stack([np.cos(theta), np.sin(theta)], axis=-1)
  centers = np.array([[1.0, 0.0], [0.0, 0.0]])  # other logit: 0
  labels = np.zeros(len(theta), np.int32)
  for m in (2, 3, 4):
    with jax.enable_x64(True):
      values = np.asarray(jl.sphereface_loss(x, labels, centers, margin=m))
    psi = np.log(np.expm1(values))  # ℓ = log(1 + e^{−ψ})  ⇒  ψ = −log(e^ℓ − 1)
    psi = -psi
    assert np.all(np.diff(psi) < 0)
    assert_close(psi[[0, -1]], [1.0, 1.0 - 2 * m], rtol=1e-9, atol=1e-9)


# --------------------------------------------------------------------------- #
# Center loss: Wen et al. 2016, equations (2) and (4), Algorithm 1 step 6.


def np_center_loss(x, labels, centers):
  return 0.5 * np.sum((x - centers[labels]) ** 2, axis=-1)


def np_update_centers(centers, x, labels, alpha):
  new = centers.copy()
  for j in range(len(centers)):
    members = labels == j
    delta = np.sum(centers[j] - x[members], axis=0) / (1 + members.sum())
    new[j] = centers[j] - alpha * delta
  return new


def test_center_loss_and_update_equal_the_paper():
  x, centers, labels = _data(10)
  labels[:3] = 1  # a class seen three times; some classes absent
  with jax.enable_x64(True):
    assert_close(
      jl.center_loss(x, labels, centers),
      np_center_loss(x, labels, centers),
      **TOL,
    )
    grad = jax.grad(
      lambda x, c: jl.center_loss(x, labels, c, reduction="sum"), (0, 1)
    )(x, centers)
    assert_close(grad[0], x - centers[labels], **TOL)
    expected_c = np.zeros_like(centers)
    np.add.at(expected_c, labels, centers[labels] - x)
    assert_close(grad[1], expected_c, **TOL)
    for alpha in (0.5, 0.1):
      assert_close(
        jl.update_centers(centers, x, labels, alpha=alpha),
        np_update_centers(centers, x, labels, alpha),
        **TOL,
      )
    keep = np.arange(B) % 3 != 0
    assert_close(
      jl.update_centers(centers, x, labels, where=keep),
      np_update_centers(centers, x[keep], labels[keep], 0.5),
      **TOL,
    )
  # An out-of-range label: NaN in the loss (the library's rule), no update.
  bad = labels.copy()
  bad[0] = C
  assert np.isnan(np.asarray(jl.center_loss(x, bad, centers))[0])
  assert_close(
    jl.update_centers(centers, x[:1], bad[:1]), centers.astype(np.float32)
  )


def test_center_loss_module_updates_its_state_in_a_step():
  x, _, labels = _data(11)
  x = x.astype(np.float32)
  module = jl.nn.CenterLoss(D, C, alpha=0.3)
  before = np.asarray(module.centers[...])

  @nnx.jit
  def step(module, x):
    def loss(module, x):
      return module(x, labels, reduction="sum")

    # The module is not differentiated; its state update leaves the step.
    return nnx.value_and_grad(loss, argnums=1)(module, x)

  value, grad = step(module, x)
  assert_close(value, np_center_loss(x, labels, before).sum(), rtol=1e-6)
  assert_close(grad, x - before[labels], rtol=1e-6)
  assert_close(
    module.centers[...],
    np_update_centers(before, x, labels, 0.3),
    rtol=1e-6,
    atol=1e-7,
  )
  # update=False evaluates without touching the state.
  after = np.asarray(module.centers[...])
  module(x, labels, update=False)
  assert np.array_equal(np.asarray(module.centers[...]), after)
  assert not jax.tree.leaves(nnx.state(module, nnx.Param))  # state only


def test_margin_heads_call_their_losses():
  rng = np.random.default_rng(12)
  x = rng.normal(size=(3, D)).astype(np.float32)
  labels = np.array([0, 4, 2])
  for head, fn in [
    (jl.nn.SphereFace(D, C, margin=3, rngs=nnx.Rngs(0)), jl.sphereface_loss),
    (
      jl.nn.LargeMarginSoftmax(D, C, margin=2, scale=2.0, rngs=nnx.Rngs(1)),
      jl.large_margin_softmax_loss,
    ),
  ]:
    w = np.asarray(head.centers[...])
    expected = fn(
      x, labels, w, margin=head.margin, scale=head.scale, reduction="mean"
    )
    assert_close(head(x, labels), expected, rtol=1e-6)
    # The logits without margin: s‖x‖cos θ (SphereFace), s·Wx (L-Softmax).
    if fn is jl.sphereface_loss:
      w = w / np.linalg.norm(w, axis=1, keepdims=True)
    assert_close(head.logits(x), head.scale * x @ w.T, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- #
# TE2E: Heigold et al. 2016, the logistic loss of s = w·cos(e, c) + b.


def test_te2e_equals_the_logistic_loss():
  rng = np.random.default_rng(13)
  e, c = rng.normal(size=(2, 6, D))
  labels = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 0.0])
  for w, b in [(10.0, -5.0), (2.0, 0.5)]:
    cos = (
      np.sum(e * c, -1)
      / np.linalg.norm(e, axis=-1)
      / np.linalg.norm(c, axis=-1)
    )
    s = w * cos + b
    p = 1 / (1 + np.exp(-s))
    expected = -(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    with jax.enable_x64(True):
      assert_close(jl.te2e_loss(e, c, labels, w=w, b=b), expected, **TOL)
      # d/ds = σ(s) − y
      grad_b = jax.grad(
        lambda b: jl.te2e_loss(e, c, labels, w=w, b=b, reduction="sum")
      )(b)
    assert_close(grad_b, np.sum(p - labels), **TOL)
  # Booleans as labels, and a clear error for the wrong shape.
  assert_close(
    jl.te2e_loss(e, c, labels.astype(bool)), jl.te2e_loss(e, c, labels)
  )
  with pytest.raises(ValueError, match="te2e_loss.*labels"):
    jl.te2e_loss(e, c, labels[:3])


# --------------------------------------------------------------------------- #
# L_p: |ŷ − y|^p.


def test_lp_loss_powers_and_special_cases():
  rng = np.random.default_rng(14)
  pred, target = rng.normal(size=(2, 3, 4))
  pred[0, 0] = target[0, 0]  # a zero error
  for p in (0.5, 1.0, 1.5, 2.0, 3.0):
    with jax.enable_x64(True):
      assert_close(
        jl.lp_loss(pred, target, p=p), np.abs(pred - target) ** p, **TOL
      )
      grad = jax.grad(lambda x: jl.lp_loss(x, target, p=p, reduction="sum"))(
        pred
      )
    err = pred - target
    nonzero = np.where(err == 0, 1.0, err)
    expected = np.where(
      err == 0, 0, p * np.abs(nonzero) ** (p - 1) * np.sign(err)
    )
    assert_close(grad, expected, **TOL)  # 0 at zero error, also for p ≤ 1
  x, y = pred.astype(np.float32), target.astype(np.float32)
  for p, same in [(1, jl.absolute_error), (2, jl.squared_error)]:
    assert_close(jl.lp_loss(x, y, p=p), same(x, y), rtol=1e-6)
    assert_close(
      jax.grad(lambda x: jl.lp_loss(x, y, p=p, reduction="mean"))(x),
      jax.grad(lambda x: same(x, y, reduction="mean"))(x),
      rtol=1e-6,
    )
  traced = jax.jit(lambda p: jl.lp_loss(x, y, p=p, reduction="mean"))
  assert_close(traced(3.0), np.mean(np.abs(x - y) ** 3), rtol=1e-5)
  with pytest.raises(ValueError, match="lp_loss: `p` must be > 0"):
    jl.lp_loss(x, y, p=0)
