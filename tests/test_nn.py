"""jaxloss.nn: each module equals the functional loss on its parameters
(cosines and normalisation recomputed in NumPy), parameters get gradients,
and the constraints (CLIP's cap, GE2E's w > 0) hold. Training runs that learn
are in tests/test_train.py."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxloss as jl
from jaxloss.testing import assert_close

F32 = dict(rtol=1e-5, atol=1e-6)


def _normal(seed, *shape):
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _value_and_grads(module, loss_fn):
  """``loss_fn(module)`` and ``{name: gradient}`` for its nnx.Param state, as
  one compiled program (eager calls dispatch dozens of small ones)."""
  value, grads = nnx.jit(nnx.value_and_grad(loss_fn))(module)
  return value, nnx.to_pure_dict(grads)


def _call(fn, *args, **options):
  """``fn(*args, **options)`` compiled, with ``options`` static."""
  return jax.jit(lambda *a: fn(*a, **options))(*args)


EMB = _normal(0, 6, 5)
LABELS = np.array([0, 1, 2, 3, 0, 1], np.int32)
WHERE = np.array([True, True, False, True, True, False])


@pytest.mark.parametrize(
  "head, loss_fn, options",
  [
    (jl.nn.ArcFace, jl.arcface_loss, dict(scale=8.0, margin=0.3)),
    (
      jl.nn.ArcFace,
      jl.arcface_loss,
      dict(scale=8.0, margin=0.3, easy_margin=True),
    ),
    (jl.nn.CosFace, jl.cosface_loss, dict(scale=8.0, margin=0.2)),
  ],
)
def test_margin_heads_equal_the_functional_loss(head, loss_fn, options):
  module = head(5, 4, rngs=nnx.Rngs(1), **options)
  cosines = _unit(EMB) @ _unit(module.centers[...]).T
  value, grads = _value_and_grads(module, lambda m: m(EMB, LABELS, where=WHERE))
  assert_close(module.logits(EMB), cosines, **F32)
  reference = jax.jit(
    lambda c, y, w: loss_fn(c, y, where=w, reduction="mean", **options)
  )
  assert_close(
    value, reference(cosines.astype(np.float32), LABELS, WHERE), **F32
  )
  assert np.all(np.isfinite(grads["centers"]))
  assert np.any(np.abs(grads["centers"]) > 0)


def test_margin_head_logits_are_clipped_cosines_for_accuracy():
  head = jl.nn.ArcFace(3, 2, rngs=nnx.Rngs(0))
  centres = np.asarray(head.centers[...])
  logits = head.logits(np.concatenate([centres, -3 * centres]))
  assert_close(np.diag(logits[:2]), [1.0, 1.0], rtol=0, atol=1e-6)
  assert_close(np.diag(logits[2:]), [-1.0, -1.0], rtol=0, atol=1e-6)
  assert float(jnp.max(jnp.abs(logits))) <= 1.0
  np.testing.assert_array_equal(np.argmax(logits[:2], axis=-1), [0, 1])


@pytest.mark.parametrize("normalize", [True, False])
def test_proxy_nca_equals_the_functional_loss(normalize):
  head = jl.nn.ProxyNCA(
    5, 4, temperature=0.5, normalize=normalize, rngs=nnx.Rngs(2)
  )
  proxies = np.asarray(head.proxies[...])
  x, p = (_unit(EMB), _unit(proxies)) if normalize else (EMB, proxies)
  expected = jl.proxy_nca_loss(
    np.float32(x),
    LABELS,
    np.float32(p),
    temperature=0.5,
    where=WHERE,
    reduction="mean",
  )
  value, grads = _value_and_grads(head, lambda m: m(EMB, LABELS, where=WHERE))
  assert_close(value, expected, **F32)
  assert np.any(np.abs(grads["proxies"]) > 0)


def test_learned_temperature_is_clip_loss_with_clipped_scale():
  x, y = _normal(3, 6, 4), _normal(4, 6, 4)
  module = jl.nn.LearnedTemperature()
  assert_close(module.scale(), 1 / 0.07, rtol=1e-6, atol=0)
  value, grads = _value_and_grads(module, lambda m: m(x, y))
  assert_close(
    value, jl.clip_loss(x, y, temperature=0.07, reduction="mean"), **F32
  )
  assert abs(float(grads["log_scale"])) > 0
  module.log_scale[...] = jnp.asarray(math.log(500.0))  # above CLIP's cap
  assert_close(module.scale(), 100.0, rtol=1e-6, atol=0)
  value, grads = _value_and_grads(module, lambda m: m(x, y))
  assert_close(
    value, jl.clip_loss(x, y, temperature=0.01, reduction="mean"), **F32
  )
  assert float(grads["log_scale"]) == 0.0


def test_learned_scale_bias_is_siglip_with_its_initialisation():
  x, y = _normal(5, 6, 4), _normal(6, 6, 4)
  module = jl.nn.LearnedScaleBias()
  assert_close(module.log_scale[...], math.log(10.0), rtol=1e-6, atol=0)
  assert_close(module.bias[...], -10.0, rtol=0, atol=0)
  assert_close(
    module(x, y),
    jl.siglip_loss(x, y, logit_scale=10.0, logit_bias=-10.0, reduction="mean"),
    **F32,
  )
  module.log_scale[...] = jnp.asarray(math.log(3.0))
  module.bias[...] = jnp.asarray(-1.5)
  value, grads = _value_and_grads(module, lambda m: m(x, y, reduction="sum"))
  assert_close(
    value,
    jl.siglip_loss(x, y, logit_scale=3.0, logit_bias=-1.5, reduction="sum"),
    **F32,
  )
  assert abs(float(grads["log_scale"])) > 0 and abs(float(grads["bias"])) > 0


def test_ge2e_equals_the_functional_loss_and_keeps_w_positive():
  e = _normal(7, 3, 4, 5)
  value, grads = _value_and_grads(jl.nn.GE2E(), lambda m: m(e))
  assert_close(
    value, _call(jl.ge2e_loss, e, w=10.0, b=-5.0, reduction="mean"), **F32
  )
  assert abs(float(grads["w"])) > 0
  # b cancels: ∂/∂b [log Σ e^(S+b) − (S+b)] = Σ softmax − 1, zero up to
  # float32 rounding of the softmax sum.
  assert abs(float(grads["b"])) < 1e-5
  module = jl.nn.GE2E(method="contrast", init_w=-2.0, init_b=0.5)
  value, grads = _value_and_grads(module, lambda m: m(e))
  assert_close(  # w is clamped at 1e-6
    value,
    _call(jl.ge2e_loss, e, w=1e-6, b=0.5, method="contrast", reduction="mean"),
    **F32,
  )
  assert float(grads["w"]) == 0.0 and abs(float(grads["b"])) > 0
  module.w[...] = jnp.asarray(3.0)
  _, grads = _value_and_grads(module, lambda m: m(e))
  assert abs(float(grads["w"])) > 0


def test_uncertainty_weighting_formula():
  weighting = jl.nn.UncertaintyWeighting(
    {"depth": "regression", "labels": "classification"}
  )
  s = np.array([0.7, -1.2])
  weighting.log_variances[...] = jnp.asarray(s, jnp.float32)
  losses = {"depth": 2.5, "labels": 0.8}
  expected = (
    0.5 * np.exp(-s[0]) * 2.5 + 0.5 * s[0] + np.exp(-s[1]) * 0.8 + 0.5 * s[1]
  )
  assert_close(
    weighting({k: jnp.asarray(v) for k, v in losses.items()}),
    expected,
    rtol=1e-6,
    atol=0,
  )
  variances = weighting.variances()
  assert_close(
    [variances["depth"], variances["labels"]], np.exp(s), rtol=1e-6, atol=0
  )
  # d/ds_i at s = log L_i (regression): the learned variance is the loss.
  at_optimum = jl.nn.UncertaintyWeighting(["a"])
  at_optimum.log_variances[...] = jnp.log(jnp.array([2.5]))
  _, grads = _value_and_grads(at_optimum, lambda m: m({"a": jnp.asarray(2.5)}))
  assert_close(grads["log_variances"], [0.0], atol=1e-7)


def test_uncertainty_weighting_errors():
  with pytest.raises(ValueError, match="kind"):
    jl.nn.UncertaintyWeighting({"a": "ranking"})
  with pytest.raises(ValueError, match="at least one"):
    jl.nn.UncertaintyWeighting([])
  weighting = jl.nn.UncertaintyWeighting(["a", "b"])
  with pytest.raises(ValueError, match=r"\['a', 'b'\]"):
    weighting({"a": jnp.asarray(1.0)})


def test_modules_run_under_nnx_jit():
  head = jl.nn.CosFace(5, 4, scale=8.0, rngs=nnx.Rngs(0))

  @nnx.jit
  def loss(module, x, y):
    return module(x, y)

  assert_close(loss(head, EMB, LABELS), head(EMB, LABELS), **F32)
