"""The cross-batch memory (issue 22 §3): the ring buffer against a row-by-row
NumPy transcription, the mining losses with a memory against
pytorch-metric-learning 2.9 (called: ``CrossBatchMemory``, ``BatchHardMiner``,
``TripletMarginLoss``) and a torch transcription of the semi-hard rule, and
``infonce_loss`` with a memory against MoCo's loss written out in torch.

References run in float64 (torch autograd for their gradients); tolerance
1e-10 relative.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from pytorch_metric_learning import distances as pml_distances
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import miners as pml_miners
from pytorch_metric_learning import reducers as pml_reducers
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

import jaxloss as jl
from jaxloss.testing import assert_close

F64 = dict(rtol=1e-10, atol=1e-12)
MINING = {
  "hard": jl.batch_hard_triplet_loss,
  "all": jl.batch_all_triplet_loss,
  "semi": jl.semi_hard_triplet_loss,
}


def _rng(seed):
  return np.random.default_rng(seed)


def _filled(size, dim, *batches, dtype=np.float64):
  memory = jl.cross_batch_memory(size, dim, dtype=dtype)
  for x, y in batches:
    memory = jl.update_cross_batch_memory(memory, x, y)
  return memory


# --------------------------------------------------------------------------- #
# the ring buffer


def _np_write(state, x, y, keep):
  """Row by row, as PML's ``add_to_memory`` with one row per call."""
  embeddings, labels, position, filled = (np.array(s) for s in state)
  size = len(labels)
  for i in range(len(y)):
    if keep[i]:
      embeddings[position], labels[position] = x[i], y[i]
      position, filled = (position + 1) % size, min(filled + 1, size)
  return embeddings, labels, position, filled


def test_update_is_a_ring_buffer_written_row_by_row():
  size, dim = 5, 3
  rng = _rng(0)
  update = jax.jit(jl.update_cross_batch_memory)
  memory = jl.cross_batch_memory(size, dim)
  state = tuple(np.asarray(s) for s in memory)
  # Batches smaller, larger than the memory, empty, masked; wrapping round.
  for n, masked in [(3, False), (7, False), (0, False), (4, True), (2, False)]:
    x = rng.normal(size=(n, dim)).astype(np.float32)
    y = rng.integers(0, 100, n).astype(np.int32)
    keep = rng.random(n) < 0.5 if masked else np.ones(n, bool)
    memory = update(memory, x, y, where=keep if masked else None)
    state = _np_write(state, x, y, keep)
    for got, want in zip(memory, state):
      np.testing.assert_array_equal(np.asarray(got), want)
    np.testing.assert_array_equal(memory.valid, np.arange(size) < state[3])
  assert memory.position.dtype == jnp.int32 and memory.filled == size


def test_memory_is_a_pytree_and_stores_no_gradient():
  memory = jl.cross_batch_memory(4, 2)
  assert len(jax.tree.leaves(memory)) == 4
  x = jnp.array([[1.0, 2.0], [3.0, 4.0]])
  grad = jax.grad(
    lambda x: jnp.sum(
      jl.update_cross_batch_memory(memory, x, jnp.array([0, 1])).embeddings
    )
  )(x)
  np.testing.assert_array_equal(grad, 0)


def test_memory_errors_name_the_function_and_argument():
  memory = jl.cross_batch_memory(4, 2)
  with pytest.raises(ValueError, match="cross_batch_memory: `size`"):
    jl.cross_batch_memory(0, 2)
  with pytest.raises(TypeError, match="cross_batch_memory: `dtype`"):
    jl.cross_batch_memory(4, 2, dtype=jnp.int32)
  with pytest.raises(ValueError, match="update_cross_batch_memory.*embeddings"):
    jl.update_cross_batch_memory(memory, jnp.ones((3, 5)), jnp.zeros(3, int))
  with pytest.raises(TypeError, match="update_cross_batch_memory.*labels"):
    jl.update_cross_batch_memory(memory, jnp.ones((3, 2)), jnp.zeros(3))
  with pytest.raises(ValueError, match="batch_hard_triplet_loss.*memory"):
    jl.batch_hard_triplet_loss(
      jnp.ones((3, 5)), jnp.zeros(3, int), memory=memory
    )
  with pytest.raises(TypeError, match="infonce_loss: `memory`"):
    jl.infonce_loss(jnp.ones((3, 2)), jnp.ones((3, 2)), memory=(1, 2))
  with pytest.raises(ValueError, match="infonce_loss.*in_batch_negatives"):
    jl.infonce_loss(jnp.ones((3, 2)), jnp.ones((3, 2)), in_batch_negatives=0)


# --------------------------------------------------------------------------- #
# mining losses against pytorch-metric-learning


def _pml_distance(distance):
  if distance == "cosine":
    return pml_distances.CosineSimilarity()
  power = 2 if distance == "squared_euclidean" else 1
  return pml_distances.LpDistance(normalize_embeddings=False, power=power)


def _per_anchor(out, n, rule):
  """PML's per-triplet losses (``DoNothingReducer``) per anchor: the one
  mined triplet (batch hard), or the mean of the non-zero ones (batch all,
  jaxloss's per-anchor BA≠0)."""
  losses = out["loss"]["losses"]
  anchors = out["loss"]["indices"][0]
  total = torch.zeros(n, dtype=losses.dtype).index_add(0, anchors, losses)
  if rule == "hard":
    return total
  active = torch.zeros(n, dtype=losses.dtype).index_add(
    0, anchors, (losses > 0).to(losses.dtype)
  )
  return total / active.clamp_min(1)


def _pml_direct(x, y, mem_x, mem_y, distance, rule, margin):
  """PML's loss with the batch (live) and the memory (detached) as
  references, self-comparisons removed: jaxloss's semantics, value and
  gradient by torch autograd."""
  n = len(y)
  x = torch.tensor(x, requires_grad=True)
  ref = torch.cat([x, torch.tensor(mem_x)])
  ref_y = torch.cat([torch.tensor(y), torch.tensor(mem_y)])
  y = torch.tensor(y)
  dist = _pml_distance(distance)
  if rule == "hard":
    indices = pml_miners.BatchHardMiner(distance=dist)(x, y, ref, ref_y)
  else:
    indices = lmu.get_all_pairs_indices(y, ref_y)
  indices = lmu.remove_self_comparisons(indices, torch.arange(n), len(ref_y))
  loss = pml_losses.TripletMarginLoss(
    margin=margin, distance=dist, reducer=pml_reducers.DoNothingReducer()
  )
  values = _per_anchor(loss(x, y, indices, ref, ref_y), n, rule)
  (grad,) = torch.autograd.grad(values.sum(), x)
  return values.detach().numpy(), grad.numpy()


def _values_and_grad(fn, distance, margin):
  """Jitted ``(per-anchor values, gradient of their sum)``."""

  def total(x, y, m):
    values = fn(x, y, memory=m, margin=margin, distance=distance)
    return jnp.sum(values), values

  return jax.jit(jax.grad(total, has_aux=True))


@pytest.mark.parametrize("rule", ["hard", "all"])
def test_mining_with_memory_equals_pml(rule):
  dim, margin = 4, 0.7
  rng = _rng(1)
  batches = [
    (rng.normal(size=(6, dim)), rng.integers(0, 4, 6)) for _ in range(3)
  ]
  fn = MINING[rule]
  with jax.enable_x64(True):
    for distance in ("euclidean", "squared_euclidean", "cosine"):
      dist = _pml_distance(distance)
      miner = (
        pml_miners.BatchHardMiner(distance=dist) if rule == "hard" else None
      )
      wrapper = pml_losses.CrossBatchMemory(
        pml_losses.TripletMarginLoss(
          margin=margin,
          distance=dist,
          reducer=pml_reducers.DoNothingReducer(),
        ),
        dim,
        memory_size=64,  # nothing is evicted: PML's enqueue-first agrees
        miner=miner,
      )
      memory = jl.cross_batch_memory(64, dim, dtype=np.float64)
      values_and_grad = _values_and_grad(fn, distance, margin)
      for x, y in batches:
        grad, got = values_and_grad(x, y, memory)
        # The wrapper enqueues the batch, then compares it with the queue.
        out = wrapper(torch.tensor(x), torch.tensor(y))
        want = _per_anchor(out, len(y), rule).numpy()
        assert_close(got, want, **F64, what=f"{rule} {distance} wrapper")
        # Value and gradient with the live batch among the references.
        valid = np.asarray(memory.valid)
        want, want_grad = _pml_direct(
          x,
          y,
          np.asarray(memory.embeddings)[valid],
          np.asarray(memory.labels)[valid],
          distance,
          rule,
          margin,
        )
        assert_close(got, want, **F64, what=f"{rule} {distance}")
        assert_close(grad, want_grad, **F64, what=f"{rule} {distance} grad")
        memory = jl.update_cross_batch_memory(memory, x, y)


def _torch_semi_hard(x, y, mem_x, mem_y, margin):
  """tfa's ``triplet_semihard_loss`` rule per anchor (as
  ``jaxloss.semi_hard_triplet_loss`` documents it), with the memory's rows
  as extra references: for each positive pair the nearest negative farther
  than the positive, else the farthest; the mean over the anchor's
  positives. Euclidean distances."""
  n = len(y)
  xt = torch.tensor(x, requires_grad=True)
  ref = torch.cat([xt, torch.tensor(mem_x)])
  ref_y = np.concatenate([y, mem_y])
  squared = ((xt[:, None, :] - ref[None, :, :]) ** 2).sum(-1)
  d = torch.sqrt(squared.clamp_min(1e-300))  # no NaN gradient at self
  values = []
  for a in range(n):
    positives = [j for j in range(len(ref_y)) if ref_y[j] == y[a] and j != a]
    negatives = [j for j in range(len(ref_y)) if ref_y[j] != y[a]]
    if not positives or not negatives:
      values.append(torch.zeros((), dtype=d.dtype))
      continue
    terms = []
    for p in positives:
      farther = [j for j in negatives if d[a, j] > d[a, p]]
      neg = (
        min((d[a, j] for j in farther), key=lambda t: t.item())
        if farther
        else max((d[a, j] for j in negatives), key=lambda t: t.item())
      )
      terms.append(torch.relu(margin + d[a, p] - neg))
    values.append(torch.stack(terms).mean())
  values = torch.stack(values)
  (grad,) = torch.autograd.grad(values.sum(), xt)
  return values.detach().numpy(), grad.numpy()


def test_semi_hard_with_memory_equals_torch_transcription():
  dim, margin = 3, 0.5
  rng = _rng(2)
  old = (rng.normal(size=(9, dim)), rng.integers(0, 3, 9))
  x, y = rng.normal(size=(5, dim)), rng.integers(0, 3, 5)
  with jax.enable_x64(True):
    memory = _filled(6, dim, old)  # wrapped: rows 6..8 overwrote 0..2
    grad, value = _values_and_grad(
      jl.semi_hard_triplet_loss, "euclidean", margin
    )(x, y, memory)
    want, want_grad = _torch_semi_hard(
      x, y, np.asarray(memory.embeddings), np.asarray(memory.labels), margin
    )
    assert_close(value, want, **F64)
    assert_close(grad, want_grad, **F64)


@pytest.mark.parametrize("name", [*sorted(MINING), "multi_similarity"])
def test_memory_rows_are_references_only(name):
  """With a memory, each anchor's value is its value in the concatenated
  batch (memory rows as anchors too, then sliced off); the memory gets no
  gradient; unwritten rows are never used; ``where`` drops batch rows only;
  jit gives the same."""
  fn = MINING.get(name, jl.multi_similarity_loss)
  rng = _rng(3)
  x = rng.normal(size=(6, 3)).astype(np.float32)
  y = np.array([0, 0, 1, 1, 2, 3], np.int32)
  old = (rng.normal(size=(4, 3)).astype(np.float32), np.array([3, 2, 1, 5]))
  memory = _filled(7, 3, old, dtype=np.float32)  # 4 of 7 rows written
  where = np.array([1, 1, 0, 1, 1, 1], bool)
  got = jax.jit(lambda x, m: fn(x, y, memory=m, where=where))(x, memory)
  cat = np.concatenate([x, old[0]])
  cat_where = np.concatenate([where, [True] * 4])
  want = fn(cat, np.concatenate([y, old[1]]), where=cat_where)[:6]
  assert_close(got, want, rtol=1e-5, atol=1e-5)
  grad = jax.grad(
    lambda e: jnp.sum(fn(x, y, memory=memory._replace(embeddings=e)))
  )(memory.embeddings)
  np.testing.assert_array_equal(grad, 0)


# --------------------------------------------------------------------------- #
# infonce_loss with a memory: MoCo


def _torch_moco(q, k, queue, temperature, in_batch):
  """MoCo's loss (facebookresearch/moco, ``moco/builder.py``,
  ``MoCo.forward``): ``l_pos = q·k``, ``l_neg = q @ queue``, logits
  ``[l_pos, l_neg] / T``, cross-entropy with label 0; q and k normalised
  (``nn.functional.normalize``). With ``in_batch`` the other keys of the
  batch are negatives too (labels ``arange``). Per anchor, with gradients."""
  q = torch.tensor(q, requires_grad=True)
  k = torch.tensor(k, requires_grad=True)
  qn, kn = torch.nn.functional.normalize(q), torch.nn.functional.normalize(k)
  queue = torch.nn.functional.normalize(torch.tensor(queue))
  if in_batch:
    logits = torch.cat([qn @ kn.T, qn @ queue.T], dim=1) / temperature
    labels = torch.arange(len(q))
  else:
    l_pos = torch.einsum("nc,nc->n", qn, kn)[:, None]
    logits = torch.cat([l_pos, qn @ queue.T], dim=1) / temperature
    labels = torch.zeros(len(q), dtype=torch.long)
  values = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
  weights = torch.arange(1, len(q) + 1, dtype=values.dtype)
  gq, gk = torch.autograd.grad((values * weights).sum(), (q, k))
  return values.detach().numpy(), gq.numpy(), gk.numpy()


def test_infonce_with_memory_equals_moco():
  rng = _rng(4)
  dim, temperature = 5, 0.2
  keys = rng.normal(size=(11, dim))
  weights = np.arange(1, 5, dtype=np.float64)
  # (rows written, in-batch negatives, chunk size): empty, partly filled and
  # wrapped memories, dense and chunked.
  settings = [
    (0, False, None),
    (3, False, 3),
    (3, True, None),
    (11, True, 3),
    (11, False, None),
  ]
  with jax.enable_x64(True):
    for written, in_batch, chunk_size in settings:
      memory = _filled(8, dim, (keys[:written], np.zeros(written, int)))
      queue = np.asarray(memory.embeddings)[np.asarray(memory.valid)]
      q, k = rng.normal(size=(4, dim)), rng.normal(size=(4, dim))

      def total(q, k, e, in_batch=in_batch, chunk_size=chunk_size):
        values = jl.infonce_loss(
          q,
          k,
          temperature=temperature,
          memory=memory._replace(embeddings=e),
          in_batch_negatives=in_batch,
          chunk_size=chunk_size,
        )
        return jnp.sum(weights * values), values

      grads, values = jax.grad(total, argnums=(0, 1, 2), has_aux=True)(
        q, k, memory.embeddings
      )
      want, gq, gk = _torch_moco(q, k, queue, temperature, in_batch)
      what = f"written={written} in_batch={in_batch} chunk={chunk_size}"
      assert_close(values, want, **F64, what=what)
      assert_close(grads[0], gq, **F64, what=what)
      assert_close(grads[1], gk, **F64, what=what)
      np.testing.assert_array_equal(grads[2], 0)  # no gradient into memory


def test_multi_similarity_with_memory_equals_pml():
  """``multi_similarity_loss(memory=)`` against PML's
  ``CrossBatchMemory(MultiSimilarityLoss())`` (values, per anchor with
  ``DoNothingReducer``) and against ``MultiSimilarityLoss`` called with the
  live batch plus the detached memory as references (values and autograd
  gradients)."""
  dim = 4
  rng = _rng(5)
  batches = [
    (rng.normal(size=(6, dim)), rng.integers(0, 4, 6)) for _ in range(3)
  ]
  kw = dict(alpha=2.0, beta=10.0, base=0.5)

  def pml_loss():
    return pml_losses.MultiSimilarityLoss(
      **kw, reducer=pml_reducers.DoNothingReducer()
    )

  wrapper = pml_losses.CrossBatchMemory(pml_loss(), dim, memory_size=64)

  def total(x, y, m):
    values = jl.multi_similarity_loss(x, y, memory=m, **kw)
    return jnp.sum(values), values

  values_and_grad = jax.jit(jax.grad(total, has_aux=True))
  with jax.enable_x64(True):
    memory = jl.cross_batch_memory(64, dim, dtype=np.float64)
    for x, y in batches:
      grad, got = values_and_grad(x, y, memory)
      out = wrapper(torch.tensor(x), torch.tensor(y))
      assert_close(
        got, out["loss"]["losses"].numpy().reshape(-1), **F64, what="wrapper"
      )
      valid = np.asarray(memory.valid)
      xt = torch.tensor(x, requires_grad=True)
      ref = torch.cat([xt, torch.tensor(np.asarray(memory.embeddings)[valid])])
      ref_y = torch.cat(
        [torch.tensor(y), torch.tensor(np.asarray(memory.labels)[valid])]
      )
      indices = lmu.remove_self_comparisons(
        lmu.get_all_pairs_indices(torch.tensor(y), ref_y),
        torch.arange(len(y)),
        len(ref_y),
      )
      want = pml_loss()(xt, torch.tensor(y), indices, ref, ref_y)
      want = want["loss"]["losses"].reshape(-1)
      (want_grad,) = torch.autograd.grad(want.sum(), xt)
      assert_close(got, want.detach().numpy(), **F64)
      assert_close(grad, want_grad.numpy(), **F64)
      memory = jl.update_cross_batch_memory(memory, x, y)
