"""The online log-sum-exp machinery (jaxloss._core.online_softmax) and the
masked log-sum-exp it finishes with (jaxloss._core.numerics): against float64
NumPy, and the chunked statistics against the dense ones."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss._core import numerics, online_softmax
from jaxloss.testing import assert_close

F32 = dict(rtol=1e-5, atol=1e-6)


def _rng(seed):
  return np.random.default_rng(seed)


def _normal(seed, *shape):
  return _rng(seed).normal(size=shape).astype(np.float32)


def _lse(x, axis):
  peak = np.max(x, axis=axis, keepdims=True)
  return np.squeeze(peak, axis) + np.log(np.sum(np.exp(x - peak), axis=axis))


def test_online_logsumexp_matches_numpy_over_any_split():
  x = _normal(40, 3, 10) * 30
  mask = _rng(41).random((3, 10)) < 0.7
  mask[2] = False  # an empty row: 0
  expected = np.array(
    [_lse(np.float64(r[m]), 0) if m.any() else 0.0 for r, m in zip(x, mask)]
  )
  state = online_softmax.init((3,), jnp.float32)
  for cut in ((0, 4), (4, 5), (5, 10)):
    part = slice(*cut)
    state = online_softmax.update(state, x[:, part], mask[:, part], axis=1)
  assert_close(online_softmax.finish(state), expected, **F32)
  left = online_softmax.update(
    online_softmax.init((3,), jnp.float32), x[:, :6], mask[:, :6], axis=1
  )
  right = online_softmax.update(
    online_softmax.init((3,), jnp.float32), x[:, 6:], mask[:, 6:], axis=1
  )
  assert_close(
    online_softmax.finish(online_softmax.merge(left, right)), expected, **F32
  )
  assert_close(numerics.masked_logsumexp(x, mask, axis=1), expected, **F32)


def test_masked_logsumexp_gradient_is_finite_and_masked():
  x = jnp.asarray(_normal(42, 2, 4))
  mask = jnp.array([[True, False, True, False], [False] * 4])
  grad = jax.grad(lambda v: jnp.sum(numerics.masked_logsumexp(v, mask, 1)))(x)
  assert np.all(np.isfinite(grad))
  assert np.all(np.asarray(grad)[~np.asarray(mask)] == 0)
  assert_close(np.asarray(grad)[0, [0, 2]].sum(), 1.0, rtol=1e-6, atol=0)


def test_chunked_stats_with_terms_and_column_lse_equal_dense():
  """A generic chunk function: row and column log-sum-exps plus two row sums
  (selected logits and a softplus term), with a learned scale."""

  def chunk_fn(rows, columns):
    logits = rows["x"] @ columns["x"].T * rows["scale"]
    mask = columns["keep"][None, :] & (
      rows["id"][:, None] != columns["id"][None, :]
    )
    selected = (rows["id"][:, None] % 3) == (columns["id"][None, :] % 3)
    return online_softmax.Chunk(
      logits,
      mask,
      {
        "selected": jnp.where(mask & selected, logits, 0),
        "soft": jnp.where(mask, jax.nn.softplus(logits), 0),
      },
    )

  with jax.enable_x64(True):
    x, y = np.float64(_normal(43, 6, 3)), np.float64(_normal(44, 7, 3))
    keep = np.array([True, True, False, True, True, True, False])

    def total(x, y, scale, chunk_size):
      stats = online_softmax.stats(
        chunk_fn,
        {"x": x, "scale": scale, "id": jnp.arange(6)},
        {"x": y, "keep": keep, "id": jnp.arange(7)},
        chunk_size=chunk_size,
        col_lse=True,
      )
      w = jnp.arange(1.0, 7.0)
      return (
        jnp.sum(w * stats.row_lse)
        + jnp.sum(stats.col_lse * jnp.arange(7.0))
        + jnp.sum(w * stats.row_sums["selected"])
        + jnp.sum(w**2 * stats.row_sums["soft"])
      )

    reference = jax.value_and_grad(total, argnums=(0, 1, 2))(x, y, 1.5, None)
    for chunk_size in (2, 9):  # padded last chunk; one chunk wider than all
      got = jax.value_and_grad(total, argnums=(0, 1, 2))(x, y, 1.5, chunk_size)
      for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(reference)):
        assert_close(a, b, rtol=1e-10, atol=1e-12)
