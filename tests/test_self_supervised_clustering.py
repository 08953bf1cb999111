"""DINO and SwAV against transcriptions of the official code.

The references are written out here from facebookresearch/dino and
facebookresearch/swav (commits 7c446df and 06b1b7c): the loss parts in torch
float64 (the official code is PyTorch; autograd gives the reference
gradients, with the targets under ``no_grad``/``detach`` as there) and
SwAV's exp-space Sinkhorn in float64 NumPy. World size 1: the sharded
losses' ``all_reduce`` is checked by tests/distributed_checks.py (groups
``cluster_*``) against the one-device losses tested here.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from jaxloss.self_supervised.clustering import (
  dino_loss,
  sinkhorn_codes,
  swav_loss,
)
from jaxloss.testing import assert_close

TIGHT = dict(rtol=1e-10, atol=1e-12)


def _t(x, grad=False):
  return torch.tensor(np.asarray(x, np.float64), requires_grad=grad)


# --------------------------------------------------------------------------- #
# DINO


def official_dino_loss(student, teacher, center, views, st, tt, m):
  """facebookresearch/dino main_dino.py, DINOLoss.forward and update_center
  (world size 1), for ``[S·B, K]`` student and ``[T·B, K]`` teacher outputs
  in view-major order; ``views = (S, T)``, and ``teacher_out.chunk(2)``
  written ``chunk(T)``. Returns the loss and the new ``[1, K]`` centre."""
  s_views, t_views = views
  student_out = (student / st).chunk(s_views)
  teacher_out = F.softmax((teacher - center) / tt, dim=-1)
  teacher_out = teacher_out.detach().chunk(t_views)
  total_loss = 0
  n_loss_terms = 0
  for iq, q in enumerate(teacher_out):
    for v in range(len(student_out)):
      if v == iq:
        continue
      loss = torch.sum(-q * F.log_softmax(student_out[v], dim=-1), dim=-1)
      total_loss += loss.mean()
      n_loss_terms += 1
  total_loss /= n_loss_terms
  with torch.no_grad():  # update_center
    batch_center = torch.sum(teacher, dim=0, keepdim=True)
    batch_center = batch_center / len(teacher)
    new_center = center * m + batch_center * (1 - m)
  return total_loss, new_center


DINO_SETTINGS = [
  # (student views, teacher views, batch, K, student τ, teacher τ, m)
  (2, 2, 5, 7, 0.1, 0.04, 0.9),
  (6, 2, 4, 9, 0.2, 0.07, 0.996),
  (3, 1, 3, 5, 0.5, 0.3, 0.0),
]


def test_dino_matches_official_value_gradients_and_centre():
  rng = np.random.default_rng(0)
  arrays, statics, wants = [], [], []
  for s_views, t_views, b, k, st, tt, m in DINO_SETTINGS:
    student = rng.normal(size=(s_views, b, k)) * 3
    teacher = rng.normal(size=(t_views, b, k)) * 2
    center = rng.normal(size=k) * 0.5
    keep = rng.random(b) < 0.7
    keep[0] = True
    for where in (None, keep):
      # The kept examples only, in the loss and in the centre's mean: the
      # official code on the sliced batch.
      rows = slice(None) if where is None else where
      s_ref = _t(student[:, rows].reshape(-1, k), grad=True)
      st_ref = _t(st, grad=True)
      loss, new_center = official_dino_loss(
        s_ref,
        _t(teacher[:, rows].reshape(-1, k)),
        _t(center[None]),
        (s_views, t_views),
        st_ref,
        tt,
        m,
      )
      loss.backward()
      grad = np.zeros_like(student)
      grad[:, rows] = s_ref.grad.numpy().reshape(s_views, -1, k)
      arrays.append((student, teacher, center, where, np.float64(st)))
      statics.append((tt, m))
      wants.append(
        (
          f"S={s_views} T={t_views} where={where is not None}",
          (loss.item(), new_center.numpy()[0]),
          (grad, st_ref.grad.item()),
        )
      )

  def ours(arrays):  # every setting in one compiled program
    out = []
    for (student, teacher, center, where, st), (tt, m) in zip(arrays, statics):

      def loss(x, tau, teacher=teacher, center=center, where=where, tt=tt, m=m):
        return dino_loss(
          x,
          teacher,
          center,
          student_temperature=tau,
          teacher_temperature=tt,
          center_momentum=m,
          where=where,
          reduction="mean",
        )

      out.append(
        jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(student, st)
      )
    return out

  with jax.enable_x64(True):
    got = jax.jit(ours)(arrays)
  for ((value, centre), grads), (what, value_centre, want_grads) in zip(
    got, wants
  ):
    assert_close(value, value_centre[0], **TIGHT, what=f"{what}: value")
    assert_close(centre, value_centre[1], **TIGHT, what=f"{what}: centre")
    assert_close(grads[0], want_grads[0], **TIGHT, what=f"{what}: d student")
    assert_close(grads[1], want_grads[1], **TIGHT, what=f"{what}: d tau")


def test_dino_centre_as_state_jit_and_bf16():
  """The new centre (the registry checks the loss alone): jit, bf16, the
  EMA over steps of a lax.scan, and unchanged when everything is masked."""
  rng = np.random.default_rng(1)
  student = rng.normal(size=(4, 3, 6)).astype(np.float32)
  teacher = rng.normal(size=(2, 3, 6)).astype(np.float32)
  center = np.zeros(6, np.float32)
  eager = dino_loss(student, teacher, center)
  jitted = jax.jit(dino_loss)(student, teacher, center)
  assert eager[0].shape == (3,) and eager[1].shape == (6,)
  for got, want in zip(jitted, eager):
    assert_close(got, want, what="jit != eager")
  # bf16 logits are computed in float32; the centre stays float32.
  half = [jnp.asarray(x, jnp.bfloat16) for x in (student, teacher)]
  loss, new_center = dino_loss(*half, center)
  assert loss.dtype == new_center.dtype == jnp.float32
  up = [np.asarray(x, np.float32) for x in half]
  want = 0.9 * center + 0.1 * up[1].mean(axis=(0, 1))
  assert_close(new_center, want, what="bf16 centre")
  # The centre as a lax.scan carry: the EMA of the steps' teacher means.
  steps = rng.normal(size=(3, 2, 3, 6)).astype(np.float32)

  def step(c, t):
    loss, c = dino_loss(student, t, c, reduction="mean", center_momentum=0.5)
    return c, loss

  final, losses = jax.lax.scan(step, center, steps)
  want = center
  for t in steps:
    want = 0.5 * want + 0.5 * t.mean(axis=(0, 1))
  assert_close(final, want, what="scan centre")
  assert np.all(np.isfinite(losses))
  # Everything masked: the centre is unchanged (not m·c).
  nothing = np.zeros(3, bool)
  assert_close(dino_loss(student, teacher, final, where=nothing)[1], final)


# --------------------------------------------------------------------------- #
# SwAV


def official_sinkhorn(out, epsilon, sinkhorn_iterations):
  """facebookresearch/swav main_swav.py, distributed_sinkhorn (world size 1),
  in float64 NumPy: exp-space, as the official code."""
  Q = np.exp(out / epsilon).T  # K-by-B
  B = Q.shape[1]
  K = Q.shape[0]
  Q /= np.sum(Q)
  for _ in range(sinkhorn_iterations):
    Q /= np.sum(Q, axis=1, keepdims=True)
    Q /= K
    Q /= np.sum(Q, axis=0, keepdims=True)
    Q /= B
  Q *= B
  return Q.T


def official_swav_loss(output, bs, temperature, epsilon, iterations):
  """main_swav.py's loss in ``train``: two crops (nmb_crops = [2]), both
  used for assignment (crops_for_assign = [0, 1]), no queue."""
  n_crops = 2
  loss = 0
  for crop_id in (0, 1):
    with torch.no_grad():
      out = output[bs * crop_id : bs * (crop_id + 1)].detach()
      q = torch.from_numpy(official_sinkhorn(out.numpy(), epsilon, iterations))
    subloss = 0
    for v in np.delete(np.arange(n_crops), crop_id):
      x = output[bs * v : bs * (v + 1)] / temperature
      subloss -= torch.mean(torch.sum(q * F.log_softmax(x, dim=1), dim=1))
    loss += subloss / (n_crops - 1)
  return loss / 2


def _cosines(rng, b, k, dim=5):
  """SwAV's scores: normalised embeddings times normalised prototypes."""
  z = rng.normal(size=(b, dim))
  c = rng.normal(size=(k, dim))
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  c /= np.linalg.norm(c, axis=1, keepdims=True)
  return z @ c.T


SWAV_SETTINGS = [  # (batch, K, temperature, epsilon, iterations)
  (6, 4, 0.1, 0.05, 3),
  (5, 9, 0.5, 0.1, 1),
  (8, 3, 0.2, 0.02, 5),
]


def test_swav_matches_official_codes_value_and_gradients():
  rng = np.random.default_rng(2)
  arrays, statics, wants = [], [], []
  for b, k, tau, eps, iters in SWAV_SETTINGS:
    a, bb = _cosines(rng, b, k), _cosines(rng, b, k)
    keep = rng.random(b) < 0.7
    keep[:2] = True
    direction = rng.normal(size=a.shape), rng.normal(size=a.shape)
    # Unmasked for the first setting only; masked for each.
    for where in (None, keep) if not arrays else (keep,):
      rows = slice(None) if where is None else where
      output = _t(np.concatenate([a[rows], bb[rows]]), grad=True)
      tau_ref = _t(tau, grad=True)
      want = official_swav_loss(output, len(a[rows]), tau_ref, eps, iters)
      want.backward()
      d_a, d_b = np.zeros_like(a), np.zeros_like(bb)
      d_a[rows], d_b[rows] = np.split(output.grad.numpy(), 2)
      arrays.append((a, bb, np.float64(tau), where, direction))
      statics.append((eps, iters))
      wants.append(
        (
          f"B={b} K={k} eps={eps} iterations={iters} where={where is not None}",
          official_sinkhorn(a, eps, iters),
          want.item(),
          (d_a, d_b, tau_ref.grad.item()),
        )
      )

  def ours(arrays):  # every setting in one compiled program
    out = []
    for (a, b, tau, where, direction), (eps, iters) in zip(arrays, statics):

      def loss(x, y, t, where=where, eps=eps, iters=iters):
        return swav_loss(
          x,
          y,
          temperature=t,
          epsilon=eps,
          sinkhorn_iterations=iters,
          where=where,
          reduction="mean",
        )

      codes = sinkhorn_codes(a, jnp.ones(a.shape[0], bool), eps, iters, None)
      value, grads = jax.value_and_grad(loss, argnums=(0, 1, 2))(a, b, tau)
      # Forward mode (the registry's finite differences cannot check it:
      # they see the codes move), against reverse mode.
      _, tangent = jax.jvp(
        lambda x, y, loss=loss, tau=tau: loss(x, y, tau), (a, b), direction
      )
      along = jnp.sum(grads[0] * direction[0]) + jnp.sum(
        grads[1] * direction[1]
      )
      out.append((codes, value, grads, tangent, along))
    return out

  with jax.enable_x64(True):
    got = jax.jit(ours)(arrays)
  for (codes, value, grads, tangent, along), want in zip(got, wants):
    what, want_codes, want_value, want_grads = want
    assert_close(codes, want_codes, **TIGHT, what=f"{what}: codes")
    assert_close(value, want_value, **TIGHT, what=f"{what}: value")
    for name, g, w in zip(("scores_a", "scores_b", "tau"), grads, want_grads):
      assert_close(g, w, **TIGHT, what=f"{what}: d {name}")
    assert_close(tangent, along, **TIGHT, what=f"{what}: jvp")


def test_swav_log_space_stays_finite_where_the_official_overflows():
  rng = np.random.default_rng(3)
  # float64: scores / epsilon up to 1,000 (exp overflows past 709.8).
  a = rng.uniform(0.9, 1.0, size=(6, 4))
  with np.errstate(all="ignore"):
    official = official_sinkhorn(a, 1e-3, 3)
  assert not np.all(np.isfinite(official))  # inf / inf
  # The same codes, computed without overflow: the official normalisation
  # by the total makes them invariant to a constant shift of the scores.
  shifted = official_sinkhorn(a - a.max(), 1e-3, 3)
  assert np.all(np.isfinite(shifted))
  with jax.enable_x64(True):
    codes = sinkhorn_codes(jnp.asarray(a), jnp.ones(6, bool), 1e-3, 3, None)
    assert_close(codes, shifted, **TIGHT, what="codes at epsilon 1e-3")
  # float32 at the default epsilon 0.05: unnormalised scores of 5 to 10
  # overflow exp(scores / epsilon) (float32 max ~ exp(88.7)); ours is
  # finite, with finite gradients, at epsilon down to 1e-6.
  scores = rng.uniform(5.0, 10.0, size=(2, 6, 4)).astype(np.float32)
  with np.errstate(all="ignore"):
    official = official_sinkhorn(scores[0], np.float32(0.05), 3)
  assert official.dtype == np.float32 and not np.all(np.isfinite(official))
  # Scores of 1e15 and 1e30 (the registry case's inputs are cosines, not
  # scaled there): finite under jit.
  step = jax.jit(
    jax.value_and_grad(
      lambda x, y, eps: swav_loss(x, y, epsilon=eps, reduction="mean"),
      argnums=(0, 1),
    )
  )
  for scale, eps in ((1, 0.05), (1, 1e-6), (1e14, 0.05), (1e29, 0.05)):
    value, grads = step(*(scores * np.float32(scale)), eps)
    what = f"scores x {scale:g}, epsilon {eps:g}"
    assert np.isfinite(value), what
    assert all(np.all(np.isfinite(g)) for g in grads), what


def test_swav_codes_are_assignments():
  # (Identical scores, one example and everything masked are the registry
  # case's edge inputs.)
  rng = np.random.default_rng(4)
  codes = sinkhorn_codes(
    jnp.asarray(_cosines(rng, 64, 8), jnp.float32),
    jnp.ones(64, bool),
    0.05,
    3,
    None,
  )
  assert np.all(codes >= 0)
  assert_close(codes.sum(1), np.ones(64), rtol=1e-6)


# --------------------------------------------------------------------------- #
# errors


def _raises(fn, error, *words):
  with pytest.raises(error) as info:
    fn()
  for word in words:
    assert word in str(info.value), str(info.value)


def test_errors_name_the_loss_and_the_argument():
  s = np.zeros((2, 3, 4), np.float32)
  c = np.zeros(4, np.float32)
  _raises(
    lambda: dino_loss(s, s[:, :2], c), ValueError, "dino_loss", "`teacher"
  )
  _raises(lambda: dino_loss(s[:1], s[:1], c), ValueError, "dino_loss", "views")
  _raises(lambda: dino_loss(s, s, c[None]), ValueError, "dino_loss", "`center`")
  _raises(lambda: dino_loss(s[0], s, c), ValueError, "dino_loss", "`student")
  _raises(
    lambda: dino_loss(s, s, c, center_momentum=1.5),
    ValueError,
    "dino_loss",
    "center_momentum",
  )
  _raises(
    lambda: dino_loss(s.astype(np.int32), s, c), TypeError, "student_logits"
  )
  x = np.zeros((3, 4), np.float32)
  for bad in (0, 2.0, True):
    _raises(
      lambda bad=bad: swav_loss(x, x, sinkhorn_iterations=bad),
      ValueError,
      "swav_loss",
      "sinkhorn_iterations",
    )
  _raises(lambda: swav_loss(x, x, epsilon=0.0), ValueError, "`epsilon`")
  _raises(lambda: swav_loss(x, x[:2]), ValueError, "swav_loss", "scores_b")
  _raises(lambda: swav_loss(s, s), ValueError, "swav_loss", "scores_a")
