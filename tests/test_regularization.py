"""Tests for jaxloss.regularization (HELPERS: they take pytrees, not batches).

References: NumPy float64 sums over the selected leaves; optax's
``tree_utils.tree_norm`` for the squared L2 norm, and ``optax.masked`` with
``add_decayed_weights`` for the mask semantics (the gradient of Σw² is twice
the decayed weights on the same mask).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxloss as jl
from jaxloss.testing import assert_close

F32, F64 = np.float32, np.float64
RTOL, ATOL = 1e-6, 1e-6
REGULARIZERS = (
  jl.l1_regularization,
  jl.l2_regularization,
  jl.elastic_net_regularization,
)


def numpy_penalty(leaves, l1=0.0, l2=0.0):
  """l1 Σ|w| + l2 Σw² over a list of arrays, in float64."""
  leaves = [np.asarray(w, F64) for w in leaves]
  return l1 * sum(np.abs(w).sum() for w in leaves) + l2 * sum(
    np.square(w).sum() for w in leaves
  )


class _Model(nnx.Module):
  def __init__(self, rngs):
    self.linear = nnx.Linear(3, 4, rngs=rngs)
    self.norm = nnx.LayerNorm(4, rngs=rngs)
    self.head = nnx.Linear(4, 2, use_bias=False, rngs=rngs)

  def __call__(self, x):
    return self.head(self.norm(self.linear(x)))


def _model():
  model = _Model(nnx.Rngs(0))
  rng = np.random.default_rng(0)
  # Non-trivial biases and scales, so that leaving them out changes the sum.
  for module in (model.linear, model.norm):
    module.bias[...] = jnp.asarray(rng.normal(size=4).astype(F32))
  model.norm.scale[...] = jnp.asarray(rng.uniform(0.5, 2, 4).astype(F32))
  return model


def _is_weight(path, _):
  """True for kernels; False for biases and normalisation scales."""
  return path[-2].key not in ("bias", "scale")


def weights_only(params):
  """A callable mask, as for optax.masked: kernels only."""
  return jax.tree_util.tree_map_with_path(_is_weight, params)


def test_flax_nnx_model_with_mask_excluding_bias_and_scale():
  model = _model()
  params = nnx.state(model, nnx.Param)
  kernels = [model.linear.kernel[...], model.head.kernel[...]]
  everything = kernels + [
    model.linear.bias[...],
    model.norm.bias[...],
    model.norm.scale[...],
  ]
  assert_close(
    jl.l1_regularization(params), numpy_penalty(everything, l1=1), RTOL, ATOL
  )
  assert_close(
    jl.l2_regularization(params), numpy_penalty(everything, l2=1), RTOL, ATOL
  )
  assert_close(
    jl.l1_regularization(params, mask=weights_only),
    numpy_penalty(kernels, l1=1),
    RTOL,
    ATOL,
  )
  assert_close(
    jl.l2_regularization(params, mask=weights_only),
    numpy_penalty(kernels, l2=1),
    RTOL,
    ATOL,
  )
  assert_close(
    jl.elastic_net_regularization(params, l1=0.3, l2=2.0, mask=weights_only),
    numpy_penalty(kernels, l1=0.3, l2=2.0),
    RTOL,
    ATOL,
  )
  # A mask pytree (not a callable) and a prefix mask give the same.
  assert_close(
    jl.l2_regularization(params, mask=weights_only(params)),
    numpy_penalty(kernels, l2=1),
    RTOL,
    ATOL,
  )
  prefix = {
    "linear": {"kernel": True, "bias": False},
    "norm": False,
    "head": True,
  }
  assert_close(
    jl.l2_regularization(nnx.to_pure_dict(params), mask=prefix),
    numpy_penalty(kernels, l2=1),
    RTOL,
    ATOL,
  )


def test_training_step_with_jit_and_grad():
  """The regulariser inside a jitted nnx training loss: its gradient is
  sign(w) + 2w on kernels and nothing on biases and scales."""
  model = _model()
  _, params = nnx.split(model, nnx.Param)

  @jax.jit
  def penalty_grad(params):
    return jax.grad(
      lambda p: jl.elastic_net_regularization(
        p, l1=1.0, l2=1.0, mask=weights_only
      )
    )(params)

  grads = penalty_grad(params)
  flat = dict(jax.tree_util.tree_flatten_with_path(grads)[0])
  for path, w in jax.tree_util.tree_flatten_with_path(params)[0]:
    expected = (
      np.sign(w) + 2 * np.asarray(w)
      if _is_weight(path, w)
      else np.zeros_like(w)
    )
    assert_close(flat[path], expected, RTOL, ATOL)


def test_l2_matches_optax():
  rng = np.random.default_rng(1)
  params = {
    "a": rng.normal(size=(3, 2)).astype(F32),
    "b": [rng.normal(size=4).astype(F32), rng.normal(size=()).astype(F32)],
  }
  assert_close(
    jl.l2_regularization(params),
    optax.tree_utils.tree_norm(params, squared=True),
    rtol=1e-6,
    atol=ATOL,
  )
  mask = {"a": True, "b": [False, True]}
  decay = optax.masked(optax.add_decayed_weights(1.0), mask)
  zeros = jax.tree.map(jnp.zeros_like, params)
  decayed, _ = decay.update(zeros, decay.init(params), params)
  grads = jax.grad(lambda p: jl.l2_regularization(p, mask=mask))(params)
  for g, d in zip(jax.tree.leaves(grads), jax.tree.leaves(decayed)):
    assert_close(g, 2 * np.asarray(d), RTOL, ATOL)


def test_gradient_of_l1_at_zero_is_zero():
  w = jnp.array([0.0, -2.0, 3.0, 0.0])
  assert_close(
    jax.grad(jl.l1_regularization)(w), [0.0, -1.0, 1.0, 0.0], RTOL, ATOL
  )
  assert_close(
    jax.grad(lambda w: jl.elastic_net_regularization(w, l1=2.0, l2=0.5))(w),
    [0.0, -4.0, 5.0, 0.0],
    RTOL,
    ATOL,
  )


def test_boolean_array_mask_masks_elements():
  w = {"table": np.array([[1.0, -2.0], [3.0, 4.0]], F32), "b": np.ones(2, F32)}
  mask = {"table": np.array([[True], [False]]), "b": False}
  assert_close(jl.l1_regularization(w, mask=mask), 3.0, RTOL, ATOL)
  out = jax.jit(
    lambda w, m: jl.l2_regularization(w, mask={"table": m, "b": False})
  )(w, np.array([False, True]))
  assert_close(out, 4.0 + 16.0, RTOL, ATOL)


def test_bfloat16_leaves_accumulate_in_float32():
  """4097 bfloat16 values of 1 + 2⁻⁷ (and float16 values): the sum, 4129.0078,
  is not a bfloat16 number; the result is float32 and exact."""
  w = jnp.full((4097,), 1 + 2**-7, jnp.bfloat16)
  params = {"w": w, "v": jnp.full((3,), -0.5, jnp.float16)}
  values = [np.asarray(w, F64), np.full(3, -0.5)]
  for fn, expected in (
    (jl.l1_regularization, numpy_penalty(values, l1=1)),
    (jl.l2_regularization, numpy_penalty(values, l2=1)),
  ):
    out = fn(params)
    assert out.dtype == jnp.float32
    assert_close(out, expected, rtol=1e-6, atol=ATOL)


def test_dtypes_and_empty_selection():
  params = {"a": np.ones(2, F32), "b": np.full(2, 2.0, F32)}
  for fn in REGULARIZERS:
    assert fn(params).dtype == jnp.float32
    empty = fn({})
    assert empty.dtype == jnp.float32 and float(empty) == 0.0
    assert_close(fn(params, mask={"a": False, "b": False}), 0.0, RTOL, ATOL)

    def masked_out(p, fn=fn):
      return fn(p, mask=lambda _: {"a": False, "b": False})

    grads = jax.grad(masked_out)(params)
    assert np.all(np.isfinite(grads["a"]))
  with jax.enable_x64(True):
    p64 = {"a": np.ones(2, F64), "b": np.full(2, 2.0, F32)}
    assert jl.l2_regularization(p64).dtype == jnp.float64
    assert jl.l2_regularization({"b": np.ones(2, F32)}).dtype == jnp.float32
    assert_close(
      jl.elastic_net_regularization(p64, l1=jnp.asarray(0.5, F64)),
      0.5 * 6 + 10,
      RTOL,
      ATOL,
    )


def test_traced_strengths():
  w = {"w": np.array([1.0, -2.0], F32)}
  grad = jax.jit(
    jax.grad(
      lambda l1, l2: jl.elastic_net_regularization(w, l1=l1, l2=l2),
      argnums=(0, 1),
    )
  )(0.1, 0.2)
  assert_close(grad, (3.0, 5.0), RTOL, ATOL)


def test_errors():
  params = {"w": np.ones(2, F32), "step": np.array(3, np.int32)}
  with pytest.raises(
    TypeError,
    match=r"l1_regularization: leaf \['step'\] "
    r"of `params` has dtype int32",
  ):
    jl.l1_regularization(params)
  # Masking the integer leaf out is fine.
  assert_close(
    jl.l1_regularization(params, mask={"w": True, "step": False}),
    2.0,
    RTOL,
    ATOL,
  )
  with pytest.raises(
    ValueError,
    match="l2_regularization: `mask` must have the structure of `params`",
  ):
    jl.l2_regularization(params, mask={"w": True})
  with pytest.raises(
    TypeError, match="l2_regularization: `mask` leaves must be booleans"
  ):
    jl.l2_regularization(params, mask={"w": 1, "step": False})
  with pytest.raises(
    ValueError,
    match=r"l1_regularization: `mask` array of "
    r"shape \(3,\)",
  ):
    jl.l1_regularization({"w": np.ones(2, F32)}, mask={"w": np.ones(3, bool)})
  with pytest.raises(
    ValueError, match="elastic_net_regularization: `l1` must be >= 0"
  ):
    jl.elastic_net_regularization(
      params, l1=-1.0, mask={"w": True, "step": False}
    )
  # A whole nnx state holds RNG counters and keys: the message says what to do.
  dropout = nnx.Dropout(0.1, rngs=nnx.Rngs(0))
  with pytest.raises(
    TypeError,
    match=r"l2_regularization: leaf .*count.* "
    r"uint32.*nnx.state\(model, nnx.Param\)",
  ):
    jl.l2_regularization(nnx.state(dropout))
