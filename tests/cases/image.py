"""Registry entries for jaxloss.image."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss as jl
from jaxloss.testing import LossCase
from tests.cases import _inputs as I

_SSIM_SHAPE = (12, 13, 2)  # the default 11-wide window leaves 2x3 pixels.
_MS_SSIM_SHAPE = (13, 10, 1)  # > (3 - 1) * 2 ** 2 = 8: three scales of 3x3.
_MS_SSIM = {"filter_size": 3, "scale_weights": np.array([0.2, 0.5, 0.3], I.F32)}
_TV_SHAPE = (5, 4, 2)


def _noisy_pair(shape):
  """Images in [0, 1] and targets close to them, so that every SSIM factor
  stays positive (MS-SSIM clips at 0: a kink check_grads would trip on)."""

  def make(rng, n):
    images = rng.uniform(0, 1, (n,) + shape)
    targets = images + 0.1 * rng.normal(size=images.shape)
    return (images.astype(I.F32), targets.astype(I.F32)), {}

  return make


def _with(make, **kwargs):
  def inputs(rng, n):
    args, base = make(rng, n)
    return args, {**base, **kwargs}

  return inputs


def _image_edges(shape, **kwargs):
  """Identical, constant (0 against 1), anti-correlated images (negative
  contrast-structure, clipped by MS-SSIM), and 8-bit values at max_val=1."""

  def edges():
    ramp = np.linspace(0, 1, int(np.prod(shape)), dtype=I.F32).reshape(shape)
    zeros, ones = np.zeros((2,) + shape, I.F32), np.ones((2,) + shape, I.F32)
    x = np.stack([ramp, ramp**2])
    return [
      ((x, x.copy()), kwargs),
      ((zeros, ones), kwargs),
      ((zeros, zeros.copy()), kwargs),
      ((x, 1 - x), kwargs),
      ((255 * x, 255 * (1 - x)), kwargs),
    ]

  return edges


def _tv_inputs(rng, n):
  return (rng.uniform(0, 1, (n,) + _TV_SHAPE).astype(I.F32),), {}


def _tv_edges():
  flat = np.zeros((2,) + _TV_SHAPE, I.F32)
  steps = np.zeros((2,) + _TV_SHAPE, I.F32)
  steps[:, 2:] = 1e4
  return [((flat,), {}), ((steps,), {})]


# perceptual_loss takes a function: it is registered with a fixed feature
# function (tests/test_image.py tests it with a Flax NNX network).
_RNG = np.random.default_rng(0)
_W1 = _RNG.normal(size=(2, 3)).astype(I.F32)
_W2 = _RNG.normal(size=(3, 4)).astype(I.F32)


@jax.jit
def _features(x):
  """Three maps of ``[n, 5, 4, 2]`` images: the pixels, a per-pixel layer
  and a pooled layer, computed in the images' dtype."""
  h = jnp.tanh(jnp.einsum("nhwc,cd->nhwd", x, _W1.astype(x.dtype)))
  pooled = jnp.mean(h, axis=(1, 2))
  return [x, h, jnp.tanh(pooled @ _W2.astype(x.dtype))]


_perceptual = functools.update_wrapper(
  functools.partial(jl.perceptual_loss, _features), jl.perceptual_loss
)


def _perceptual_edges():
  zeros = np.zeros((2,) + _TV_SHAPE, I.F32)
  return [((zeros, zeros.copy()), {}), ((zeros, np.full_like(zeros, 1e4)), {})]


CASES = [
  LossCase(
    jl.ssim_loss,
    _noisy_pair(_SSIM_SHAPE),
    float_args=(0, 1),
    edge_inputs=_image_edges(_SSIM_SHAPE),
    magnitude_args=(),  # pixels lie in [0, max_val] (tests/test_image.py)
  ),
  LossCase(
    jl.ms_ssim_loss,
    _with(_noisy_pair(_MS_SSIM_SHAPE), **_MS_SSIM),
    name="ms_ssim_loss[filter_size=3,3 scales]",
    float_args=(0, 1),
    edge_inputs=_image_edges(_MS_SSIM_SHAPE, **_MS_SSIM),
    magnitude_args=(),  # pixels lie in [0, max_val] (tests/test_image.py)
  ),
  LossCase(jl.total_variation_loss, _tv_inputs, edge_inputs=_tv_edges),
  LossCase(
    _perceptual,
    _noisy_pair(_TV_SHAPE),
    name="perceptual_loss[fixed features]",
    float_args=(0, 1),
    edge_inputs=_perceptual_edges,
  ),
]
