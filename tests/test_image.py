"""Value tests for jaxloss.image.

References, written out in float64 NumPy (torch and TensorFlow are not test
dependencies): pytorch-msssim 1.0's ``ssim``/``ms_ssim`` (NCHW; separable
1-D Gaussian ``_fspecial_gauss_1d``, ``padding=0`` convolutions that skip an
axis shorter than the window, channel means, ReLU on each MS-SSIM factor,
``avg_pool2d(kernel_size=2, padding=side % 2)`` between scales), and
``tf.image.total_variation``. pytorch-msssim builds its window in float32;
the references build it in float64.
"""

import flax.nnx as nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss as jl
from jaxloss.testing import assert_close

F32, F64 = np.float32, np.float64
RTOL, ATOL = 1e-5, 1e-5
MSSSIM_WEIGHTS = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]


# --------------------------------------------------------------------------- #
# float64 NumPy references


def msssim_gauss_1d(size, sigma):
  """pytorch_msssim._fspecial_gauss_1d."""
  coords = np.arange(size, dtype=F64) - size // 2
  g = np.exp(-(coords**2) / (2 * sigma**2))
  return g / g.sum()


def msssim_gaussian_filter(x, win):
  """pytorch_msssim.gaussian_filter on NCHW: a valid 1-D correlation along H
  then W, skipping an axis shorter than the window."""
  for axis in (2, 3):
    if x.shape[axis] >= len(win):
      windows = np.lib.stride_tricks.sliding_window_view(x, len(win), axis)
      x = windows @ win
  return x


def msssim_ssim_cs(x, y, data_range, win, k=(0.01, 0.03)):
  """pytorch_msssim._ssim: (ssim_per_channel, cs), each [N, C]."""
  c1, c2 = (k[0] * data_range) ** 2, (k[1] * data_range) ** 2
  mu1, mu2 = msssim_gaussian_filter(x, win), msssim_gaussian_filter(y, win)
  sigma1_sq = msssim_gaussian_filter(x * x, win) - mu1**2
  sigma2_sq = msssim_gaussian_filter(y * y, win) - mu2**2
  sigma12 = msssim_gaussian_filter(x * y, win) - mu1 * mu2
  cs_map = (2 * sigma12 + c2) / (sigma1_sq + sigma2_sq + c2)
  ssim_map = (2 * mu1 * mu2 + c1) / (mu1**2 + mu2**2 + c1) * cs_map
  return ssim_map.mean(axis=(2, 3)), cs_map.mean(axis=(2, 3))


def torch_avg_pool2d_2x2(x, padding):
  """torch.nn.functional.avg_pool2d(x, kernel_size=2, padding=padding)
  (stride 2, floor mode, count_include_pad=True: always divided by 4)."""
  ph, pw = padding
  x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
  h, w = (x.shape[2] - 2) // 2 + 1, (x.shape[3] - 2) // 2 + 1
  return (
    x[:, :, 0 : 2 * h : 2, 0 : 2 * w : 2]
    + x[:, :, 1 : 2 * h : 2, 0 : 2 * w : 2]
    + x[:, :, 0 : 2 * h : 2, 1 : 2 * w : 2]
    + x[:, :, 1 : 2 * h : 2, 1 : 2 * w : 2]
  ) / 4


def msssim_ssim(
  x_nhwc, y_nhwc, data_range=1.0, win_size=11, win_sigma=1.5, k=(0.01, 0.03)
):
  """pytorch_msssim.ssim(X, Y, data_range, size_average=False, ...) on the
  NCHW transposes: ssim_per_channel.mean(1)."""
  x, y = (np.moveaxis(np.asarray(a, F64), -1, 1) for a in (x_nhwc, y_nhwc))
  ssim, _ = msssim_ssim_cs(
    x, y, data_range, msssim_gauss_1d(win_size, win_sigma), k
  )
  return ssim.mean(1)


def msssim_ms_ssim(
  x_nhwc,
  y_nhwc,
  data_range=1.0,
  win_size=11,
  win_sigma=1.5,
  weights=None,
  k=(0.01, 0.03),
):
  """pytorch_msssim.ms_ssim(X, Y, data_range, size_average=False, ...)."""
  x, y = (np.moveaxis(np.asarray(a, F64), -1, 1) for a in (x_nhwc, y_nhwc))
  weights = np.asarray(MSSSIM_WEIGHTS if weights is None else weights, F64)
  win = msssim_gauss_1d(win_size, win_sigma)
  mcs = []
  for i in range(len(weights)):
    ssim, cs = msssim_ssim_cs(x, y, data_range, win, k)
    if i < len(weights) - 1:
      mcs.append(np.maximum(cs, 0))
      padding = [s % 2 for s in x.shape[2:]]
      x, y = torch_avg_pool2d_2x2(x, padding), torch_avg_pool2d_2x2(y, padding)
  stacked = np.stack(mcs + [np.maximum(ssim, 0)])
  return np.prod(stacked ** weights[:, None, None], axis=0).mean(1)


def tf_total_variation(images):
  """tf.image.total_variation: sum |x[i+1, j] - x[i, j]| + sum |x[i, j+1] -
  x[i, j]| over the last three axes (height, width, channels)."""
  x = np.asarray(images, F64)
  return np.abs(np.diff(x, axis=-3)).sum(axis=(-3, -2, -1)) + np.abs(
    np.diff(x, axis=-2)
  ).sum(axis=(-3, -2, -1))


# --------------------------------------------------------------------------- #
# inputs


def image_pair(seed, shape, noise=0.2, scale=1.0):
  rng = np.random.default_rng(seed)
  x = rng.uniform(0, 1, shape)
  y = np.clip(x + noise * rng.normal(size=shape), 0, 1)
  return (scale * x).astype(F32), (scale * y).astype(F32)


# --------------------------------------------------------------------------- #
# SSIM


@pytest.mark.parametrize(
  "options",
  [
    {},
    {"filter_size": 7, "filter_sigma": 2.0, "k1": 0.02, "k2": 0.05},
  ],
)
def test_ssim_matches_pytorch_msssim(options):
  x, y = image_pair(0, (3, 16, 18, 3))
  ref = {
    "win_size": options.get("filter_size", 11),
    "win_sigma": options.get("filter_sigma", 1.5),
    "k": (options.get("k1", 0.01), options.get("k2", 0.03)),
  }
  expected = 1 - msssim_ssim(x, y, **ref)
  out = jl.ssim_loss(x, y, **options)
  assert out.dtype == jnp.float32 and out.shape == (3,)
  assert_close(out, expected, RTOL, ATOL)
  with jax.enable_x64(True):
    assert_close(
      jl.ssim_loss(x.astype(F64), y.astype(F64), **options),
      expected,
      rtol=1e-10,
      atol=1e-10,
    )


def test_ssim_8bit_range_and_traced_options():
  x, y = image_pair(1, (2, 14, 12, 1), scale=255.0)
  expected = 1 - msssim_ssim(x, y, data_range=255.0, win_sigma=1.2)
  assert_close(
    jl.ssim_loss(x, y, max_val=255.0, filter_sigma=1.2), expected, RTOL, ATOL
  )
  traced = jax.jit(lambda m, s: jl.ssim_loss(x, y, max_val=m, filter_sigma=s))
  assert_close(traced(255.0, 1.2), expected, RTOL, ATOL)


@pytest.mark.parametrize("scale", [1e15, 1e19, 1e30])
def test_ssim_at_huge_dynamic_ranges(scale):
  """Issue 19: pixels in [0, L] with L = 1e19..1e30 squared to inf (SSIM
  NaN, MS-SSIM 6); the images are divided by L first. float32 against the
  float64 NumPy transcription of pytorch_msssim (data_range=L), and the
  gradient against the float64 one."""
  x, y = image_pair(2, (2, 16, 14, 1), scale=scale)
  assert np.all(np.isfinite(x)) and np.all(np.isfinite(y))
  expected = 1 - msssim_ssim(x, y, data_range=scale)
  assert_close(jl.ssim_loss(x, y, max_val=scale), expected, RTOL, ATOL)
  weights = np.array([0.2, 0.5, 0.3], F32)
  assert_close(
    jl.ms_ssim_loss(x, y, max_val=scale, filter_size=3, scale_weights=weights),
    1 - msssim_ms_ssim(x, y, scale, win_size=3, weights=weights),
    RTOL,
    ATOL,
  )

  def grad(a, b):
    return jax.grad(
      lambda a: jl.ssim_loss(a, b, max_val=scale, reduction="sum")
    )(a)

  got = grad(x, y)
  with jax.enable_x64(True):
    want = grad(x.astype(F64), y.astype(F64))
  assert_close(got, want, 1e-4, 1e-4 * np.max(np.abs(want)))


def test_ssim_identical_images_give_zero():
  x, _ = image_pair(2, (2, 12, 12, 2))
  assert_close(jl.ssim_loss(x, x), [0, 0], rtol=RTOL, atol=1e-6)


def test_ssim_small_images_skip_filtering_like_pytorch_msssim():
  x, y = image_pair(3, (2, 8, 14, 2))  # height 8 < 11: H is not filtered.
  with pytest.warns(UserWarning, match="ssim_loss.*not filtered"):
    out = jl.ssim_loss(x, y)
  assert_close(out, 1 - msssim_ssim(x, y), RTOL, ATOL)


# --------------------------------------------------------------------------- #
# MS-SSIM


def test_ms_ssim_matches_pytorch_msssim_with_odd_sides():
  """Five scales with a 3-wide window: sides > 32; odd sides are padded."""
  x, y = image_pair(4, (2, 35, 37, 2))
  expected = 1 - msssim_ms_ssim(x, y, win_size=3)
  assert_close(jl.ms_ssim_loss(x, y, filter_size=3), expected, RTOL, ATOL)
  with jax.enable_x64(True):
    assert_close(
      jl.ms_ssim_loss(x.astype(F64), y.astype(F64), filter_size=3),
      expected,
      rtol=1e-10,
      atol=1e-10,
    )


def test_ms_ssim_full_defaults():
  x, y = image_pair(5, (1, 161, 161, 1), noise=0.1)
  assert_close(jl.ms_ssim_loss(x, y), 1 - msssim_ms_ssim(x, y), RTOL, ATOL)


def test_ms_ssim_scale_weights_and_options():
  x, y = image_pair(6, (3, 12, 11, 1), scale=2.0)
  weights = [0.3, 0.3, 0.4]
  expected = 1 - msssim_ms_ssim(
    x,
    y,
    data_range=2.0,
    win_size=3,
    win_sigma=1.0,
    weights=weights,
    k=(0.02, 0.04),
  )
  assert_close(
    jl.ms_ssim_loss(
      x,
      y,
      max_val=2.0,
      filter_size=3,
      filter_sigma=1.0,
      k1=0.02,
      k2=0.04,
      scale_weights=np.array(weights),
    ),
    expected,
    RTOL,
    ATOL,
  )
  # The scale weights may be traced, and have a finite gradient.
  grad = jax.grad(
    lambda w: jl.ms_ssim_loss(
      x, y, filter_size=3, scale_weights=w, reduction="sum"
    )
  )(jnp.array(weights))
  assert np.isfinite(grad).all()


def test_ms_ssim_clipped_factors_have_zero_gradient():
  """Anti-correlated images: negative contrast-structure, clipped to 0, gives
  MS-SSIM 0 (loss 1) with finite gradients (0 ** w has an infinite one)."""
  x, _ = image_pair(7, (2, 13, 10, 1))
  y = 1 - x
  weights = np.array([0.2, 0.5, 0.3], F32)
  expected = 1 - msssim_ms_ssim(x, y, win_size=3, weights=weights)
  out = jl.ms_ssim_loss(x, y, filter_size=3, scale_weights=weights)
  assert_close(out, expected, RTOL, ATOL)
  assert np.allclose(out, 1)
  grad = jax.grad(
    lambda a: jl.ms_ssim_loss(
      a, y, filter_size=3, scale_weights=weights, reduction="sum"
    )
  )(x)
  assert np.isfinite(grad).all()


def test_ms_ssim_too_small_images():
  x, y = image_pair(8, (1, 160, 200, 1))
  with pytest.raises(ValueError, match=r"ms_ssim_loss.*too small.*> .* = 160"):
    jl.ms_ssim_loss(x, y)
  with pytest.raises(ValueError, match=r"ms_ssim_loss.*3 scales.* = 8"):
    jl.ms_ssim_loss(
      x[:, :8, :8], y[:, :8, :8], filter_size=3, scale_weights=[0.3, 0.3, 0.4]
    )


# --------------------------------------------------------------------------- #
# total variation


def test_total_variation_matches_tf():
  rng = np.random.default_rng(9)
  x = rng.normal(size=(3, 5, 6, 2)).astype(F32)
  assert_close(jl.total_variation_loss(x), tf_total_variation(x), RTOL, ATOL)
  assert_close(
    jl.total_variation_loss(x[0]), tf_total_variation(x[0]), RTOL, ATOL
  )  # one image
  batched = x.reshape(3, 1, 5, 6, 2)
  assert_close(
    jl.total_variation_loss(batched), tf_total_variation(batched), RTOL, ATOL
  )
  with jax.enable_x64(True):
    assert_close(
      jl.total_variation_loss(x.astype(F64)),
      tf_total_variation(x),
      rtol=1e-12,
      atol=1e-12,
    )


def test_total_variation_gradient_is_sign():
  """d/dx of Σ|Δx| is Σ sign(Δx) terms, with sign(0) = 0 on flat regions."""
  x = np.array([[[[0.0], [1.0], [1.0]], [[3.0], [1.0], [1.0]]]], F32)
  grad = jax.grad(lambda a: jl.total_variation_loss(a, reduction="sum"))(x)
  sgn = np.sign
  expected = np.zeros_like(x)
  for (i, j), (k, l) in [
    (((0, 0)), (1, 0)),
    ((0, 1), (1, 1)),
    ((0, 2), (1, 2)),
    ((0, 0), (0, 1)),
    ((0, 1), (0, 2)),
    ((1, 0), (1, 1)),
    ((1, 1), (1, 2)),
  ]:
    s = sgn(x[0, k, l, 0] - x[0, i, j, 0])
    expected[0, k, l, 0] += s
    expected[0, i, j, 0] -= s
  assert_close(grad, expected, RTOL, ATOL)


# --------------------------------------------------------------------------- #
# perceptual loss with a Flax NNX network


class _TinyNet(nnx.Module):
  """Two 3x3 convolutions; returns both activations."""

  def __init__(self, rngs):
    self.conv1 = nnx.Conv(2, 4, kernel_size=(3, 3), rngs=rngs)
    self.conv2 = nnx.Conv(4, 3, kernel_size=(3, 3), strides=(2, 2), rngs=rngs)

  def __call__(self, x):
    h1 = nnx.relu(self.conv1(x))
    h2 = nnx.relu(self.conv2(h1))
    return [h1, h2]


def test_perceptual_loss_with_nnx_module():
  # Initialised under nnx.jit: eager random initialisation dispatches (and
  # compiles) op by op.
  net = nnx.jit(lambda: _TinyNet(nnx.Rngs(0)))()
  x, y = image_pair(10, (3, 8, 8, 2))
  fx, fy = net(x), net(y)
  per_layer = [
    np.mean((np.asarray(a, F64) - np.asarray(b, F64)) ** 2, axis=(1, 2, 3))
    for a, b in zip(fx, fy)
  ]
  assert_close(
    jl.perceptual_loss(net, x, y), per_layer[0] + per_layer[1], RTOL, ATOL
  )
  assert_close(
    jl.perceptual_loss(net, x, y, layer_weights=[0.5, 2.0]),
    0.5 * per_layer[0] + 2.0 * per_layer[1],
    RTOL,
    ATOL,
  )
  assert_close(
    jl.perceptual_loss(net, x, y, reduction="mean"),
    np.mean(per_layer[0] + per_layer[1]),
    RTOL,
    ATOL,
  )

  # Gradients with respect to the network's parameters and the images, in a
  # jitted NNX step.
  @nnx.jit
  def grads(model, images):
    return nnx.grad(
      lambda m, a: jl.perceptual_loss(m, a, y, reduction="mean"), argnums=(0, 1)
    )(model, images)

  param_grads, image_grads = grads(net, x)
  assert image_grads.shape == x.shape and np.isfinite(image_grads).all()
  leaves = jax.tree.leaves(nnx.state(param_grads))
  assert len(leaves) == 4  # two kernels, two biases
  assert all(np.isfinite(np.asarray(g)).all() for g in leaves)


# --------------------------------------------------------------------------- #
# errors


def test_ssim_errors_name_the_loss_and_argument():
  x, y = image_pair(0, (2, 12, 12, 1))
  for name in ("ssim_loss", "ms_ssim_loss"):
    fn = getattr(jl, name)
    with pytest.raises(ValueError, match=f"{name}.*images.*rank"):
      fn(x[0], y[0])
    with pytest.raises(ValueError, match=f"{name}.*same shape"):
      fn(x, y[:1])
    with pytest.raises(TypeError, match=f"{name}.*images"):
      fn(x.astype(np.int32), y)
    with pytest.raises(ValueError, match=f"{name}.*filter_size.*odd"):
      fn(x, y, filter_size=4)
    with pytest.raises(ValueError, match=f"{name}.*max_val.*> 0"):
      fn(x, y, max_val=0.0)
    with pytest.raises(ValueError, match=f"{name}.*reduction"):
      fn(
        x, y, filter_size=3, scale_weights=[1.0], reduction="avg"
      ) if name == "ms_ssim_loss" else fn(x, y, reduction="avg")
  with pytest.raises(ValueError, match="ms_ssim_loss.*scale_weights.*rank"):
    jl.ms_ssim_loss(x, y, filter_size=3, scale_weights=[[0.5, 0.5]])
  with pytest.raises(ValueError, match="ssim_loss.*where"):
    jl.ssim_loss(x, y, where=np.ones(x.shape, bool))  # per-pixel masks: no


def test_total_variation_errors():
  with pytest.raises(ValueError, match="total_variation_loss.*images.*rank"):
    jl.total_variation_loss(np.zeros((4, 4), F32))
  with pytest.raises(TypeError, match="total_variation_loss.*images"):
    jl.total_variation_loss(np.zeros((1, 4, 4, 1), np.int32))


def test_perceptual_errors():
  x, y = image_pair(0, (2, 4, 4, 1))
  features = lambda a: [a, a.sum(-1)]
  with pytest.raises(TypeError, match="perceptual_loss.*callable"):
    jl.perceptual_loss(x, x, y)
  with pytest.raises(TypeError, match="perceptual_loss.*list or tuple"):
    jl.perceptual_loss(lambda a: {"a": a}, x, y)
  with pytest.raises(ValueError, match="perceptual_loss.*layer_weights"):
    jl.perceptual_loss(features, x, y, layer_weights=[1.0, 2.0, 3.0])
  with pytest.raises(ValueError, match="perceptual_loss.*feature map 0"):
    jl.perceptual_loss(lambda a: [a.reshape(-1)], x, y)
  with pytest.raises(ValueError, match="perceptual_loss.*same shape"):
    jl.perceptual_loss(features, x, y[:1])
