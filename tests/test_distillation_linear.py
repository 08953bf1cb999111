"""Value tests of ``linear_distillation_loss`` (issue 21 §1).

References:

* trl 1.16's ``trl.trainer.distillation_trainer._chunked_divergence_loss``
  (the chunked generalized JSD of two ``lm_head`` projections, weights
  ``[vocab, dim]``), called with torch float64 tensors, its gradients by
  torch autograd. Its kernel computes in float32 whatever the inputs'
  dtype (``ChunkedDivergenceFunction``: float32 tiles and statistics, the
  loss returned in float32), so it is matched at float32's precision;
* the materialised loss in float64: ``z = h W / T`` formed whole, and
  trl 1.16's ``GKDTrainer.generalized_jsd_loss`` (``trl.experimental.gkd``,
  a static method: called, ``reduction="none"`` summed over the vocabulary)
  for the per-token values, its gradients (hidden, weight, temperature) by
  torch autograd; and the same formula transcribed to NumPy below. Matched
  at 1e-10 with chunks of 4 tokens over 14 (a tail of 2), a teacher of
  another width, and once a student weight read in slices (``dim_s =
  4,096``: slices of 256 columns and a tail of 88 over 600 classes).

The reductions, ``where`` and ``weights`` follow :func:`jaxloss.reduce`
(transcribed in torch below): trl's "sum over the completion mask divided by
its count" is ``"mean"`` with ``where``.
"""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jaxloss
from jaxloss.distillation.linear import linear_distillation_loss
from jaxloss.testing import assert_close

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

F64_TOL = dict(rtol=1e-10, atol=1e-13)
# trl's chunked kernel is float32 inside: its values and gradients carry
# float32 rounding (measured: relative errors up to 5e-7).
TRL_TOL = dict(rtol=1e-5, atol=2e-8)
B, K = 2, 7  # 14 tokens: chunks of 4 and a tail of 2
DIM_S, DIM_T, V = 4096, 48, 600  # the wide problem
SLICE = 256  # linear_softmax.slice_size(4096, 600)
CHUNK = 4
TEMPERATURE = 2.0


@pytest.fixture(scope="module")
def trl():
  """trl's two references (imported once: importing trl takes ~6 s)."""
  from trl.experimental.gkd.gkd_trainer import GKDTrainer
  from trl.trainer.distillation_trainer import _chunked_divergence_loss

  return GKDTrainer.generalized_jsd_loss, _chunked_divergence_loss


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


def _inputs(seed=0, dim_s=DIM_S, dim_t=DIM_T, vocab=V, shape=(B, K)):
  rng = np.random.default_rng(seed)
  hs = rng.normal(size=shape + (dim_s,))
  ws = rng.normal(size=(dim_s, vocab)) * 2 / np.sqrt(dim_s)
  ht = rng.normal(size=shape + (dim_t,))
  wt = rng.normal(size=(dim_t, vocab)) * 2 / np.sqrt(dim_t)
  return hs, ws, ht, wt


def _padding(seed=1):
  """A completion mask with right padding (and one token kept after it)."""
  keep = np.ones((B, K), bool)
  keep[0, 5:] = False
  keep[1, 3:] = False
  keep[1, 6] = True
  return keep


def test_the_problem_has_several_slices_and_chunks():
  # The weight's slice at dim 4,096 is 256 columns (linear_softmax.slice_size,
  # asserted in tests/test_core_linear_softmax.py).
  assert divmod(V, SLICE) == (2, 88)
  assert divmod(B * K, CHUNK) == (3, 2)


# --------------------------------------------------------------------------- #
# references


def numpy_jsd(zs, zt, beta):
  """trl 1.16 experimental/gkd/gkd_trainer.py
  ``GKDTrainer.generalized_jsd_loss`` transcribed to float64 NumPy, per
  token (``F.kl_div(input, target, log_target=True)`` is
  ``exp(target)·(target − input)``), summed over the vocabulary; ``zs``,
  ``zt`` the logits already divided by the temperature."""

  def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))

  def kl_div(inp, target):
    return np.exp(target) * (target - inp)

  log_s, log_t = log_softmax(zs), log_softmax(zt)
  if beta == 0:
    jsd = kl_div(log_s, log_t)
  elif beta == 1:
    jsd = kl_div(log_t, log_s)
  else:
    a, b = log_s + np.log1p(-beta), log_t + np.log(beta)
    top = np.maximum(a, b)
    mixture = top + np.log(np.exp(a - top) + np.exp(b - top))
    jsd = beta * kl_div(mixture, log_t) + (1 - beta) * kl_div(mixture, log_s)
  return jsd.sum(-1)


def torch_reduce(values, reduction, weights, where):
  """:func:`jaxloss.reduce` in torch (the library's contract)."""
  values = values * weights
  values = torch.where(where, values, torch.zeros_like(values))
  if reduction == "none":
    return values
  if reduction == "sum":
    return values.sum()
  if reduction == "batchmean":
    return values.sum() / values.shape[0]
  denominator = torch.where(where, weights, torch.zeros_like(weights)).sum()
  return values.sum() / (denominator if denominator != 0 else 1)


def torch_reference(gkd, inputs, beta, temperature, reduction, where, weights):
  """Value and gradients (student hidden, student weight, temperature) of
  the materialised loss, trl's GKD formula, by torch autograd (float64);
  for ``"none"`` the gradients of ``Σ cotangent · values``."""
  hs, ws, ht, wt = (torch.tensor(a) for a in inputs)
  hs.requires_grad_(True)
  ws.requires_grad_(True)
  t = torch.tensor(temperature, dtype=torch.float64, requires_grad=True)
  per_vocab = gkd(hs @ ws, ht @ wt, beta=beta, temperature=t, reduction="none")
  values = torch_reduce(
    per_vocab.sum(-1), reduction, torch.tensor(weights), torch.tensor(where)
  )
  cotangent = torch.tensor(_cotangent(values.shape))
  (cotangent * values).sum().backward()
  return values.detach().numpy(), (hs.grad, ws.grad, t.grad)


def _cotangent(shape):
  return np.random.default_rng(5).uniform(0.5, 1.5, size=shape)


# --------------------------------------------------------------------------- #
# values and gradients


# (reduction, chunk_size, dim_s) per beta: every reduction once, chunks of 4
# tokens (the "mean"/"sum" path takes the gradients in the forward pass, the
# others recompute in the backward pass), one dense block, and once a wide
# student read in weight slices.
RUNS = {
  0.0: [("mean", CHUNK, 6)],
  0.3: [
    ("none", CHUNK, 6),
    ("sum", CHUNK, 6),
    ("mean", CHUNK, 6),
    ("batchmean", CHUNK, 6),
    ("mean", None, 6),
    ("mean", CHUNK, DIM_S),
  ],
  1.0: [("mean", CHUNK, 6)],
}


@functools.cache
def _step(beta, reduction, chunk_size):
  """jit(value_and_grad) of ``Σ cotangent · loss`` with respect to both
  models' hidden states and weights and the temperature (compiled once per
  option set and shapes: the edge checks below reuse the programs)."""

  def loss(h, w, h_t, w_t, t, where, weights):
    values = linear_distillation_loss(
      h,
      w,
      h_t,
      w_t,
      beta=beta,
      temperature=t,
      chunk_size=chunk_size,
      where=where,
      weights=weights,
      reduction=reduction,
    )
    return jnp.sum(_cotangent(values.shape) * values), values

  return jax.jit(jax.value_and_grad(loss, range(5), has_aux=True))


def _run(beta, reduction, chunk_size, inputs, where, weights):
  (_, values), grads = _step(beta, reduction, chunk_size)(
    *inputs, jnp.float64(TEMPERATURE), where, weights
  )
  return values, grads


@pytest.mark.parametrize("beta", sorted(RUNS))
def test_values_and_gradients_equal_the_materialised_loss(x64, trl, beta):
  """Value and gradients with respect to the student's hidden states and
  weight and a traced temperature equal trl's GKD loss on the materialised
  logits (float64, 1e-10), with ``where`` and ``weights``; the per-token
  values equal the NumPy transcription; the teacher's gradients are 0.
  With the same programs: logits of ±1e4 (finite, equal to the NumPy
  transcription), and every token masked (0, gradients 0)."""
  gkd = trl[0]
  where = _padding()
  weights = np.random.default_rng(2).uniform(0.2, 2.0, size=(B, K))
  for reduction, chunk_size, dim_s in RUNS[beta]:
    what = f"beta={beta} {reduction} chunk_size={chunk_size} dim_s={dim_s}"
    inputs = _inputs(dim_s=dim_s, dim_t=9, vocab=V if dim_s == DIM_S else 37)
    hs, ws, ht, wt = inputs
    expected, grads = torch_reference(
      gkd, inputs, beta, TEMPERATURE, reduction, where, weights
    )
    values, got = _run(beta, reduction, chunk_size, inputs, where, weights)
    assert_close(values, expected, **F64_TOL, what=what)
    for g, e, name in zip(
      got[:2] + got[4:], grads, ("hidden", "weight", "temperature")
    ):
      assert_close(g, e.numpy(), **F64_TOL, what=f"{what}: d{name}")
    # The teacher is data: its gradient is stopped.
    assert np.all(np.asarray(got[2]) == 0) and np.all(np.asarray(got[3]) == 0)
    if reduction == "none":
      per_token = numpy_jsd(hs @ ws / TEMPERATURE, ht @ wt / TEMPERATURE, beta)
      assert_close(
        values, weights * np.where(where, per_token, 0), **F64_TOL, what=what
      )

  # Logits of ±1e4: the first token's student and teacher logits each
  # dominated by one entry (opposite signs).
  hs, ws, ht, wt = _inputs(7, dim_s=6, dim_t=9, vocab=37)
  hs[0, 0] *= 1e4 / np.abs(hs[0, 0] @ ws).max()
  ht[0, 0] *= -1e4 / np.abs(ht[0, 0] @ wt).max()
  every, ones = np.ones((B, K), bool), np.ones((B, K))
  values, grads = _run(beta, "mean", CHUNK, (hs, ws, ht, wt), every, ones)
  per_token = numpy_jsd(hs @ ws / TEMPERATURE, ht @ wt / TEMPERATURE, beta)
  assert_close(values, per_token.mean(), **F64_TOL, what=f"beta={beta} 1e4")
  assert all(np.all(np.isfinite(g)) for g in grads)

  if beta == 0.3:
    masked = np.zeros((B, K), bool)
    for reduction in ("mean", "none"):
      values, grads = _run(beta, reduction, CHUNK, inputs, masked, weights)
      assert np.all(np.asarray(values) == 0), reduction
      assert all(np.all(np.asarray(g) == 0) for g in grads), reduction


def test_matches_trl_chunked_divergence_loss(x64, trl):
  """trl 1.16's ``_chunked_divergence_loss`` (the student's and teacher's
  ``lm_head`` weights ``[vocab, dim]``: our weights transposed) with a
  padded completion mask, temperature 2, ``beta`` 0, 0.5 and 1: its value
  (``Σ over the mask / count`` = our ``"mean"`` with ``where``) and the
  gradients of the student's hidden states and weight, at float32's
  precision (its kernel computes in float32)."""
  chunked_divergence = trl[1]
  hs, ws, ht, wt = _inputs(3, dim_s=64, dim_t=96, vocab=300)
  where = _padding()
  for beta in (0.0, 0.5, 1.0):
    t_hs = torch.tensor(hs, requires_grad=True)
    t_ws = torch.tensor(ws.T.copy(), requires_grad=True)
    expected, _, count = chunked_divergence(
      t_hs,
      torch.tensor(ht),
      t_ws,
      torch.tensor(wt.T.copy()),
      torch.tensor(where),
      beta,
      temperature=TEMPERATURE,
    )
    expected.backward()
    assert int(count) == where.sum()

    def loss(h, w):
      return linear_distillation_loss(
        h,
        w,
        ht,
        wt,
        beta=beta,
        temperature=TEMPERATURE,
        chunk_size=CHUNK,
        where=where,
      )

    value, (dh, dw) = jax.value_and_grad(loss, (0, 1))(hs, ws)
    what = f"beta={beta}"
    assert_close(value, expected.detach().numpy(), **TRL_TOL, what=what)
    assert_close(dh, t_hs.grad.numpy(), **TRL_TOL, what=f"{what}: dhidden")
    assert_close(dw, t_ws.grad.numpy().T, **TRL_TOL, what=f"{what}: dweight")


def test_bfloat16_student_weight():
  """A bfloat16 student weight (read in slices and upcast one at a time):
  a finite float32 result equal to the dense loss of the weight upcast
  beforehand, the weight's gradient in bfloat16 close to its float32 one."""
  hs, ws, ht, wt = (np.asarray(a, np.float32) for a in _inputs(4))
  w16 = jnp.asarray(ws, jnp.bfloat16)

  def loss(w, chunk_size=CHUNK):
    return linear_distillation_loss(hs, w, ht, wt, chunk_size=chunk_size)

  value, grad = jax.value_and_grad(loss)(w16)
  expected, grad32 = jax.value_and_grad(loss)(w16.astype(jnp.float32), None)
  assert value.dtype == jnp.float32 and grad.dtype == jnp.bfloat16
  assert np.isfinite(value)
  assert_close(value, expected, rtol=1e-6, atol=1e-7)
  # bfloat16 keeps 8 bits: the gradient rounded to it.
  assert_close(grad, grad32, rtol=2**-7, atol=1e-7)


def test_inside_a_users_shard_map():
  """Called inside ``shard_map`` with the tokens over ``"data"`` (a one-device
  mesh, ``check_vma``: the custom VJPs' inputs and loop carries are cast to
  device-varying, the replicated weight's gradient summed over the shards):
  the value and gradients of the one-device call."""
  hs, ws, ht, wt = (np.asarray(a, np.float32) for a in _inputs(8, dim_s=8))
  mesh = jax.sharding.Mesh(
    np.array(jax.devices()[:1]),
    ("data",),
    axis_types=(jax.sharding.AxisType.Auto,),
  )
  spec = jax.P("data")

  def local(h, w, h_t, w_t):
    loss = linear_distillation_loss(h, w, h_t, w_t, chunk_size=CHUNK)
    return jax.lax.psum(loss, "data")

  sharded = jax.shard_map(
    local,
    mesh=mesh,
    in_specs=(spec, jax.P(), spec, jax.P()),
    out_specs=jax.P(),
    check_vma=True,
  )
  got = jax.jit(jax.value_and_grad(sharded, (0, 1)))(hs, ws, ht, wt)
  want = jax.value_and_grad(
    lambda h, w: linear_distillation_loss(h, w, ht, wt, chunk_size=CHUNK),
    (0, 1),
  )(hs, ws)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert_close(g, w, rtol=1e-6, atol=1e-7)


# --------------------------------------------------------------------------- #
# memory


def _temp_bytes(fn, tokens, dim_s, dim_t, vocab):
  """Compiled temporary bytes of ``jit(value_and_grad(fn))`` with respect to
  the student's hidden states and weight, float32 (compiled on shapes, not
  run)."""
  f32 = jnp.float32
  args = (
    jax.ShapeDtypeStruct((tokens, dim_s), f32),
    jax.ShapeDtypeStruct((dim_s, vocab), f32),
    jax.ShapeDtypeStruct((tokens, dim_t), f32),
    jax.ShapeDtypeStruct((dim_t, vocab), f32),
  )
  step = jax.jit(jax.value_and_grad(fn, argnums=(0, 1)))
  return step.lower(*args).compile().memory_analysis().temp_size_in_bytes


def test_temporary_memory():
  """The issue's bar at N=4,096, D=512, V=32,768 (compiled, not run): the
  default (``"auto"``: chunks of 128 tokens, ``"mean"``) takes at most 1/16
  of the temporary memory of value_and_grad of the materialised
  ``generalized_jsd_loss`` (measured 112.5 MiB vs 5,632 MiB), and so does
  ``"none"`` (the recomputing path)."""
  tokens, dim, vocab = 4096, 512, 32768

  def materialised(hs, ws, ht, wt):
    return jaxloss.generalized_jsd_loss(hs @ ws, ht @ wt, reduction="mean")

  def none(hs, ws, ht, wt):
    return jnp.mean(linear_distillation_loss(hs, ws, ht, wt, reduction="none"))

  naive = _temp_bytes(materialised, tokens, dim, dim, vocab)
  assert naive >= 4 * 4 * tokens * vocab
  for fn in (linear_distillation_loss, none):
    ours = _temp_bytes(fn, tokens, dim, dim, vocab)
    assert ours * 16 <= naive, (ours, naive)


# --------------------------------------------------------------------------- #
# options


@pytest.mark.parametrize(
  "change, error, pattern",
  [
    (dict(beta=1.5), ValueError, r"`beta`"),
    (dict(beta=-0.1), ValueError, r"`beta`"),
    (dict(beta=jnp.float32(0.5)), TypeError, r"`beta`"),
    (dict(temperature=0.0), ValueError, r"temperature"),
    (dict(chunk_size=0), ValueError, r"`chunk_size`"),
    (dict(reduction="avg"), ValueError, r"reduction"),
    (dict(teacher_weight=np.ones((5, V - 1))), ValueError, r"teacher_weight"),
    (dict(student_weight=np.ones((7, V))), ValueError, r"student_weight"),
    (dict(teacher_hidden=np.ones((B, K - 1, 5))), ValueError, "teacher_hidden"),
    (dict(student_weight=np.ones((6, V), np.int32)), TypeError, "weight"),
    (dict(where=np.ones((B, K + 1), bool)), ValueError, r"where"),
  ],
)
def test_bad_arguments(change, error, pattern):
  args = dict(
    student_hidden=np.ones((B, K, 6), np.float32),
    student_weight=np.ones((6, V), np.float32),
    teacher_hidden=np.ones((B, K, 5), np.float32),
    teacher_weight=np.ones((5, V), np.float32),
  )
  kwargs = {k: v for k, v in change.items() if k not in args}
  args.update({k: v for k, v in change.items() if k in args})
  with pytest.raises(error, match="linear_distillation_loss.*" + pattern):
    linear_distillation_loss(*args.values(), **kwargs)
