"""Values and gradients of jaxloss.self_supervised (BYOL, SimSiam, Barlow
Twins, VICReg, KoLeo) against the official code, transcribed in float64
torch inside this file (the official code is torch, except BYOL's JAX
helper; torch's autograd gives the reference gradients). Each transcription
cites its repository, file and function.

The shared properties (jit, vmap, bf16, edge cases, errors, …) run over
tests/cases/self_supervised.py in tests/test_properties.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import jaxloss
from jaxloss.testing import assert_close

F64 = dict(rtol=1e-10, atol=1e-12)


def _normal(seed, *shape, scale=1.0):
  return scale * np.random.default_rng(seed).normal(size=shape)


def _torch(x):
  return torch.tensor(np.asarray(x, np.float64), requires_grad=True)


def _reference(fn, *arrays):
  """``fn``'s float64 value and the gradients of it with respect to each
  array, by torch autograd."""
  tensors = [_torch(x) for x in arrays]
  value = fn(*tensors)
  grads = torch.autograd.grad(value, tensors, allow_unused=True)
  return value.item(), [
    np.zeros(np.shape(x)) if g is None else g.numpy()
    for x, g in zip(arrays, grads, strict=True)
  ]


def _jax(fn, *arrays, **kwargs):
  """jaxloss's float64 value (summed) and gradients."""
  with jax.enable_x64(True):
    arrays = [jnp.asarray(x, jnp.float64) for x in arrays]

    def total(*xs):
      return jnp.sum(fn(*xs, **kwargs))

    # One compiled program per setting: cheaper than op-by-op eager here.
    step = jax.jit(jax.value_and_grad(total, argnums=tuple(range(len(arrays)))))
    value, grads = step(*arrays)
    return float(value), [np.asarray(g) for g in grads]


def _assert_same(got, want, what):
  (value, grads), (ref_value, ref_grads) = got, want
  assert_close(value, ref_value, **F64, what=f"{what}: value")
  for k, (g, r) in enumerate(zip(grads, ref_grads, strict=True)):
    assert_close(g, r, **F64, what=f"{what}: gradient {k}")


# --------------------------------------------------------------------------- #
# the official code, transcribed (float64 torch)


def byol_reference(x, y):
  """deepmind-research byol/utils/helpers.py, ``regression_loss`` with its
  ``l2_normalize`` (``x * rsqrt(max(Σx², 1e-12))``); byol_experiment.py
  passes the target projection through ``jax.lax.stop_gradient``. Summed
  over the batch."""

  def l2_normalize(v):
    return v * torch.rsqrt(torch.clamp((v * v).sum(-1, keepdim=True), 1e-12))

  return ((l2_normalize(x) - l2_normalize(y.detach())) ** 2).sum()


def simsiam_reference(p, z):
  """facebookresearch/simsiam main_simsiam.py: ``criterion =
  nn.CosineSimilarity(dim=1)``, the loss ``-criterion(p1, z2)``, with
  simsiam/builder.py's ``z.detach()``. Summed over the batch."""
  return -torch.nn.CosineSimilarity(dim=1)(p, z.detach()).sum()


def off_diagonal(x):
  """facebookresearch/barlowtwins main.py and vicreg main_vicreg.py,
  ``off_diagonal``."""
  n, m = x.shape
  assert n == m
  return x.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def barlow_twins_reference(z1, z2, lambd=0.0051, eps=1e-5):
  """facebookresearch/barlowtwins main.py, ``BarlowTwins.forward`` (one
  process: ``batch_size`` is the batch, the all_reduce the identity;
  ``self.bn = nn.BatchNorm1d(d, affine=False)`` in training mode)."""
  bn = torch.nn.BatchNorm1d(z1.shape[1], affine=False, eps=eps).double()
  bn.train()
  c = bn(z1).T @ bn(z2)
  c = c / z1.shape[0]
  on_diag = (torch.diagonal(c) - 1).pow(2).sum()
  off_diag = off_diagonal(c).pow(2).sum()
  return on_diag + lambd * off_diag


def vicreg_reference(
  x, y, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0, gamma=1.0, eps=1e-4
):
  """facebookresearch/vicreg main_vicreg.py, ``VICReg.forward`` (one
  process: FullGatherLayer the identity, ``batch_size`` the batch; its
  hinge ``relu(1 - std)`` written with ``gamma`` for the 1 and its 1e-4
  as ``eps``)."""
  num_features = x.shape[1]
  batch_size = x.shape[0]
  repr_loss = F.mse_loss(x, y)
  x = x - x.mean(dim=0)
  y = y - y.mean(dim=0)
  std_x = torch.sqrt(x.var(dim=0) + eps)
  std_y = torch.sqrt(y.var(dim=0) + eps)
  std_loss = (
    torch.mean(F.relu(gamma - std_x)) / 2
    + torch.mean(F.relu(gamma - std_y)) / 2
  )
  cov_x = (x.T @ x) / (batch_size - 1)
  cov_y = (y.T @ y) / (batch_size - 1)
  cov_loss = (
    off_diagonal(cov_x).pow(2).sum() / num_features
    + off_diagonal(cov_y).pow(2).sum() / num_features
  )
  return sim_coeff * repr_loss + std_coeff * std_loss + cov_coeff * cov_loss


def koleo_reference(x, eps=1e-8):
  """facebookresearch/dinov2 dinov2/loss/koleo_loss.py, ``KoLeoLoss``
  (``forward`` with ``pairwise_NNs_inner``; ``nn.PairwiseDistance(2,
  eps=1e-8)``)."""
  x = F.normalize(x, eps=eps, p=2, dim=-1)
  dots = torch.mm(x, x.t())
  n = x.shape[0]
  dots.view(-1)[:: (n + 1)].fill_(-1)
  _, nearest = torch.max(dots, dim=1)
  distances = torch.nn.PairwiseDistance(2, eps=1e-8)(x, x[nearest])
  return -torch.log(distances + eps).mean()


# --------------------------------------------------------------------------- #
# BYOL, SimSiam


def test_byol_and_simsiam_match_their_code():
  q, z = _normal(0, 6, 5), _normal(1, 6, 5)
  q[2] = 0.0  # a zero prediction: normalised to 0 by both
  z[4] = 1e-7  # a norm under BYOL's 1e-6 floor and over SimSiam's 1e-8
  z[5] = 3e-9  # under both floors
  for fn, ref in (
    (jaxloss.byol_loss, byol_reference),
    (jaxloss.simsiam_loss, simsiam_reference),
  ):
    _assert_same(_jax(fn, q, z), _reference(ref, q, z), fn.__name__)
    # the target's gradient is stopped
    assert np.all(_jax(fn, q, z)[1][1] == 0)


def test_byol_is_two_minus_two_cosine():
  q, z = _normal(2, 4, 3), _normal(3, 4, 3)
  cos = (
    np.sum(q * z, -1) / np.linalg.norm(q, axis=-1) / np.linalg.norm(z, axis=-1)
  )
  with jax.enable_x64(True):
    assert_close(jaxloss.byol_loss(q, z), 2 - 2 * cos, **F64)
    assert_close(jaxloss.simsiam_loss(q, z), -cos, **F64)


# --------------------------------------------------------------------------- #
# Barlow Twins, VICReg


BARLOW_SETTINGS = [
  ((8, 5), {}),
  ((3, 7), dict(lambda_=0.1, eps=1e-3)),
  ((2, 4), {}),  # the smallest batch with a non-zero variance
  ((16, 6), dict(lambda_=5e-3)),
]


def test_barlow_twins_matches_official_code():
  for k, ((n, d), kwargs) in enumerate(BARLOW_SETTINGS):
    a, b = _normal(10 + k, n, d, scale=2.0), _normal(20 + k, n, d) + 0.5
    ref_kwargs = {
      "lambd": kwargs.get("lambda_", 0.0051),
      "eps": kwargs.get("eps", 1e-5),
    }
    _assert_same(
      _jax(jaxloss.barlow_twins_loss, a, b, **kwargs),
      _reference(lambda x, y: barlow_twins_reference(x, y, **ref_kwargs), a, b),
      f"barlow twins {n}x{d} {kwargs}",
    )


VICREG_SETTINGS = [
  ((8, 5), {}, {}),
  ((2, 4), {}, {}),  # the smallest batch
  (
    (6, 3),
    dict(invariance_weight=1.0, variance_weight=2.0, covariance_weight=0.5),
    dict(sim_coeff=1.0, std_coeff=2.0, cov_coeff=0.5),
  ),
  ((5, 4), dict(gamma=2.0, eps=1e-2), dict(gamma=2.0, eps=1e-2)),
]


def test_vicreg_matches_official_code():
  for k, ((n, d), kwargs, ref_kwargs) in enumerate(VICREG_SETTINGS):
    # std about 0.7 and 1.5: some dimensions under gamma, some over
    a = _normal(30 + k, n, d) * np.linspace(0.3, 1.5, d)
    b = _normal(40 + k, n, d) * np.linspace(1.5, 0.3, d)
    _assert_same(
      _jax(jaxloss.vicreg_loss, a, b, **kwargs),
      _reference(lambda x, y: vicreg_reference(x, y, **ref_kwargs), a, b),
      f"vicreg {n}x{d} {kwargs}",
    )


def test_koleo_matches_dinov2():
  x = _normal(50, 7, 4)
  x[3] = x[1] * 2.0  # the same direction: distance 0 after normalising
  for k, (emb, kwargs) in enumerate(
    [(_normal(51, 8, 5), {}), (_normal(52, 2, 3), {}), (x, {})]
  ):
    _assert_same(
      _jax(jaxloss.koleo_loss, emb, **kwargs),
      _reference(koleo_reference, emb),
      f"koleo {k}",
    )


def test_koleo_never_picks_the_example_itself():
  # Antipodal pair: DINOv2's diagonal fill (-1) ties with the other dot
  # product (-1) and torch.max picks index 0 for row 0 (itself); jaxloss
  # takes the other example, at distance 2.
  x = np.array([[1.0, 0.0], [-1.0, 0.0]])
  eps = 1e-8
  with jax.enable_x64(True):
    got = jaxloss.koleo_loss(x)
  distances = [np.linalg.norm(x[i] - x[1 - i] + eps) for i in (0, 1)]
  assert_close(got, -np.mean(np.log(np.add(distances, eps))), **F64)
  with torch.no_grad():  # DINOv2: row 0 is its own neighbour (-log 2e-8)
    assert koleo_reference(torch.tensor(x)).item() > 8.0


@pytest.mark.parametrize(
  "fn", [jaxloss.barlow_twins_loss, jaxloss.vicreg_loss, jaxloss.koleo_loss]
)
def test_where_removes_examples_from_the_batch_statistics(fn):
  a, b = _normal(60, 7, 4), _normal(61, 7, 4)
  keep = np.array([True, False, True, True, False, True, True])
  a_nan, b_nan = a.copy(), b.copy()
  a_nan[~keep] = np.nan  # masked examples may hold anything
  b_nan[~keep] = np.inf
  args, sliced = ((a_nan, b_nan), (a[keep], b[keep]))
  if fn is jaxloss.koleo_loss:
    args, sliced = args[:1], sliced[:1]
  value, grads = _jax(fn, *args, where=keep)
  ref_value, ref_grads = _jax(fn, *sliced)
  assert_close(value, ref_value, **F64, what=fn.__name__)
  for g, r in zip(grads, ref_grads, strict=True):
    assert np.all(g[~keep] == 0)
    assert_close(g[keep], r, **F64, what=fn.__name__)


def test_few_kept_examples_and_batches_of_one():
  a, b = _normal(70, 4, 3), _normal(71, 4, 3)
  none, one = np.zeros(4, bool), np.array([False, True, False, False])
  # One kept example: VICReg keeps its invariance term only, KoLeo has no
  # neighbour (0), Barlow Twins standardises it to 0 (C = 0: the dimension).
  invariance = 25.0 * np.mean((a[1] - b[1]) ** 2)
  for fn, args, one_kept in (
    (jaxloss.barlow_twins_loss, (a, b), 3.0),
    (jaxloss.vicreg_loss, (a, b), invariance),
    (jaxloss.koleo_loss, (a,), 0.0),
  ):
    value, grads = _jax(fn, *args, where=none)
    assert value == 0.0 and all(np.all(g == 0) for g in grads), fn.__name__
    value, grads = _jax(fn, *args, where=one)
    assert_close(value, one_kept, **F64, what=fn.__name__)
    assert all(np.all(np.isfinite(g)) for g in grads), fn.__name__
  for fn, args, arg in (
    (jaxloss.vicreg_loss, (a[:1], b[:1]), "z_a"),
    (jaxloss.koleo_loss, (a[:1],), "embeddings"),
  ):
    with pytest.raises(ValueError, match=rf"^{fn.__name__}: .*`{arg}`"):
      jax.eval_shape(fn, *args)


def test_identical_embeddings_have_finite_values_and_gradients():
  same = np.ones((5, 4))
  # Barlow Twins: zero variance standardises to 0, C = 0, the value is the
  # dimension; VICReg: std = sqrt(eps) = 0.01 in every dimension, no
  # covariance, no invariance.
  for fn, args, want in (
    (jaxloss.barlow_twins_loss, (same, same), 4.0),
    (jaxloss.vicreg_loss, (same, same), 25.0 * 0.99),
  ):
    value, grads = _jax(fn, *args)
    assert_close(value, want, **F64, what=fn.__name__)
    assert all(np.all(np.isfinite(g)) for g in grads), fn.__name__
  _assert_same(
    _jax(jaxloss.koleo_loss, same), _reference(koleo_reference, same), "koleo"
  )
