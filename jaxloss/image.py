"""Image losses: SSIM, MS-SSIM, total variation and perceptual losses.

Images are channel-last, ``[batch, height, width, channels]`` (NHWC, JAX's
and Flax's layout). Every loss returns one value per image, ``[batch]``,
reduced by :func:`jaxloss.reduce`; ``where`` and ``weights`` act on images
(a per-pixel mask is not supported). float16/bfloat16 images are computed in
float32.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics, value_checks
from jaxloss._core import loss as loss_lib
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce

__all__ = [
  "ms_ssim_loss",
  "perceptual_loss",
  "ssim_loss",
  "total_variation_loss",
]

# pytorch-msssim's (and Wang et al.'s) MS-SSIM weights, finest scale first.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_PIXELS = value_checks.bounded(0, "max_val")


# --------------------------------------------------------------------------- #
# SSIM machinery


def _gaussian_window(
  size: int, sigma: jax.Array, dtype: jnp.dtype
) -> jax.Array:
  """pytorch-msssim's ``_fspecial_gauss_1d``: a normalised 1-D Gaussian."""
  coords = jnp.arange(size, dtype=dtype) - size // 2
  g = jnp.exp(-jnp.square(coords) / (2 * jnp.square(sigma)))
  return g / jnp.sum(g)


def _blur(x: jax.Array, window: jax.Array) -> jax.Array:
  """Separable valid Gaussian filter of each channel of ``[N, H, W, C]``.

  As pytorch-msssim, an axis shorter than the window is not filtered.
  """
  size, channels = window.shape[0], x.shape[-1]
  for axis in (1, 2):
    if x.shape[axis] < size:
      continue
    shape = [1, 1, 1, channels]
    shape[axis - 1] = size
    kernel = jnp.broadcast_to(
      window.reshape([size if a == axis - 1 else 1 for a in range(4)]), shape
    )
    x = jax.lax.conv_general_dilated(
      x,
      kernel,
      window_strides=(1, 1),
      padding="VALID",
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
      feature_group_count=channels,
      precision=jax.lax.Precision.HIGHEST,
    )
  return x


def _ssim_and_cs(
  x: jax.Array, y: jax.Array, window: jax.Array, c1: jax.Array, c2: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """Per-image, per-channel mean SSIM and contrast-structure, ``[N, C]``."""
  channels = x.shape[-1]
  blurred = _blur(jnp.concatenate([x, y, x * x, y * y, x * y], axis=-1), window)
  mu1, mu2, xx, yy, xy = (
    blurred[..., k * channels : (k + 1) * channels] for k in range(5)
  )
  mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
  sigma1_sq, sigma2_sq, sigma12 = xx - mu1_sq, yy - mu2_sq, xy - mu1_mu2
  cs_map = (2 * sigma12 + c2) / (sigma1_sq + sigma2_sq + c2)
  ssim_map = (2 * mu1_mu2 + c1) / (mu1_sq + mu2_sq + c1) * cs_map
  return jnp.mean(ssim_map, axis=(1, 2)), jnp.mean(cs_map, axis=(1, 2))


def _avg_pool(x: jax.Array) -> jax.Array:
  """pytorch-msssim's downsampling: ``avg_pool2d(kernel_size=2,
  padding=size % 2)`` with zero padding counted, i.e. one zero row (column)
  in front of an odd axis, then 2x2 means."""
  n, h, w, c = x.shape
  x = jnp.pad(x, ((0, 0), (h % 2, 0), (w % 2, 0), (0, 0)))
  return jnp.mean(
    x.reshape(n, (h + 1) // 2, 2, (w + 1) // 2, 2, c), axis=(2, 4)
  )


def _ssim_inputs(
  images: ArrayLike,
  targets: ArrayLike,
  max_val: ArrayLike,
  filter_size: int,
  filter_sigma: ArrayLike,
  k1: ArrayLike,
  k2: ArrayLike,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
  """Checks shared by the two SSIM losses; returns the images divided by
  ``max_val``, the Gaussian window and SSIM's constants for those
  (``C_1 = k_1²``, ``C_2 = k_2²``) in the images' dtype. SSIM is invariant
  under scaling the pixels and ``L`` together; dividing first keeps the
  squared pixels from overflowing for any ``L`` (e.g. ``L = 1e30``)."""
  images, targets = checks.same_shape_floats(images=images, targets=targets)
  checks.rank("images", images, 4)
  if (
    not isinstance(filter_size, numbers.Integral)
    or isinstance(filter_size, bool)
    or filter_size < 1
    or filter_size % 2 == 0
  ):
    raise checks.fail(
      f"`filter_size` must be an odd positive int, got {filter_size!r}."
    )
  hyper = {"max_val": max_val, "filter_sigma": filter_sigma, "k1": k1, "k2": k2}
  for arg, value in hyper.items():
    checks.positive(arg, value)
    hyper[arg] = checks.scalar(arg, value).astype(images.dtype)
  window = _gaussian_window(filter_size, hyper["filter_sigma"], images.dtype)
  c1, c2 = jnp.square(hyper["k1"]), jnp.square(hyper["k2"])
  unit = hyper["max_val"]
  return images / unit, targets / unit, window, c1, c2


@loss(images=_PIXELS, targets=_PIXELS)
def ssim_loss(
  images: ArrayLike,
  targets: ArrayLike,
  *,
  max_val: ArrayLike = 1.0,
  filter_size: int = 11,
  filter_sigma: ArrayLike = 1.5,
  k1: ArrayLike = 0.01,
  k2: ArrayLike = 0.03,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""SSIM loss: one minus the mean structural similarity of each image.

  .. math::
    \mathrm{SSIM} = \frac{(2\mu_x\mu_y + C_1)(2\sigma_{xy} + C_2)}
                         {(\mu_x^2 + \mu_y^2 + C_1)(\sigma_x^2 + \sigma_y^2
                          + C_2)}, \qquad
    \ell = 1 - \operatorname{mean}_{\text{pixels, channels}} \mathrm{SSIM}

  with local means, variances and covariance from a Gaussian window
  (separable, ``VALID`` padding), :math:`C_1 = (k_1 L)^2` and
  :math:`C_2 = (k_2 L)^2`, :math:`L` = ``max_val``.

  Args:
    images: ``[batch, height, width, channels]`` floating images.
    targets: ``[batch, height, width, channels]`` reference images.
    max_val: the dynamic range :math:`L` of the pixel values (1 for images
      in [0, 1], 255 for 8-bit; pytorch_msssim's default ``data_range`` is
      255); may be traced. Supported range: pixels in ``[0, L]`` (what
      :func:`jaxloss.checked` requires), for any ``L`` representable in the
      dtype (the images are divided by ``L`` first).
    filter_size: odd width of the Gaussian window (static). An axis shorter
      than the window is not filtered (pytorch-msssim skips it with a
      warning; so does this).
    filter_sigma: standard deviation of the window; may be traced.
    k1, k2: the stabilising constants; may be traced.
    where, weights, reduction: per image; see :func:`jaxloss.reduce`; default
      ``"none"``.

  Returns:
    ``[batch]``: ``1 - SSIM`` of each image (0 for identical images); a
    scalar for ``"sum"``/``"mean"``.

  Matches ``1 - pytorch_msssim.ssim(X, Y, data_range=max_val,
  size_average=False)`` on NCHW images (its default
  ``nonnegative_ssim=False``); ``dm_pix.ssim`` is the same SSIM with
  ``VALID`` 2-D filtering.

  >>> import jax, jax.numpy as jnp, jaxloss
  >>> x = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3))
  >>> y = jnp.clip(x + 0.1 * jax.random.normal(jax.random.key(1), x.shape),
  ...              0, 1)
  >>> loss = jaxloss.ssim_loss(x, y)
  >>> loss.shape, bool(jnp.all((loss > 0) & (loss < 1)))
  ((2,), True)
  >>> float(jaxloss.ssim_loss(x, x, reduction="mean"))
  0.0

  References:
    Wang, Bovik, Sheikh and Simoncelli, `Image Quality Assessment: From
    Error Visibility to Structural Similarity
    <https://doi.org/10.1109/TIP.2003.819861>`_, 2004.
  """
  images, targets, window, c1, c2 = _ssim_inputs(
    images, targets, max_val, filter_size, filter_sigma, k1, k2
  )
  short = [s for s in images.shape[1:3] if s < filter_size]
  if short:
    warnings.warn(
      f"{loss_lib.current()}: an image side {short} is shorter than "
      f"filter_size={filter_size}; that axis is not filtered "
      "(as pytorch-msssim).",
      stacklevel=4,  # the caller of the @loss wrapper
    )
  ssim, _ = _ssim_and_cs(images, targets, window, c1, c2)
  values = 1 - jnp.mean(ssim, axis=-1)
  return reduce(values, reduction, weights=weights, where=where)


@loss(images=_PIXELS, targets=_PIXELS)
def ms_ssim_loss(
  images: ArrayLike,
  targets: ArrayLike,
  *,
  max_val: ArrayLike = 1.0,
  filter_size: int = 11,
  filter_sigma: ArrayLike = 1.5,
  k1: ArrayLike = 0.01,
  k2: ArrayLike = 0.03,
  scale_weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Multi-scale SSIM loss: one minus MS-SSIM of each image.

  .. math::
    \text{MS-SSIM} = \operatorname{mean}_\text{channels}\Big[
      \mathrm{SSIM}_M^{\,w_M} \prod_{j=1}^{M-1} \mathrm{cs}_j^{\,w_j}\Big],
    \qquad \ell = 1 - \text{MS-SSIM}

  where scale :math:`j` is the image averaged-pooled :math:`j - 1` times
  (2x2, an odd side padded with one zero in front, as
  ``avg_pool2d(kernel_size=2, padding=side % 2)``), :math:`\mathrm{cs}_j` is
  the mean contrast-structure term of SSIM at that scale, and each factor
  is clipped at 0 (ReLU) before the power.

  Args:
    images: ``[batch, height, width, channels]`` floating images; the smaller
      side must exceed ``(filter_size - 1) * 2 ** (M - 1)`` (> 160 px for the
      defaults), so that the coarsest scale still fits the window.
    targets: ``[batch, height, width, channels]`` reference images.
    max_val: the dynamic range of the pixel values (pytorch_msssim's
      default ``data_range`` is 255); may be traced. Supported range: pixels
      in ``[0, max_val]`` (what :func:`jaxloss.checked` requires), for any
      ``max_val`` representable in the dtype.
    filter_size: odd width of the Gaussian window (static).
    filter_sigma: standard deviation of the window; may be traced.
    k1, k2: SSIM's stabilising constants; may be traced.
    scale_weights: ``[M]`` exponents :math:`w_j`, finest scale first; the
      default is pytorch-msssim's ``(0.0448, 0.2856, 0.3001, 0.2363,
      0.1333)`` (M = 5). Its length sets the number of scales; the values may
      be traced.
    where, weights, reduction: per image; see :func:`jaxloss.reduce`; default
      ``"none"``.

  Returns:
    ``[batch]``: ``1 - MS-SSIM`` of each image; a scalar for
    ``"sum"``/``"mean"``.

  Matches ``1 - pytorch_msssim.ms_ssim(X, Y, data_range=max_val,
  size_average=False, weights=scale_weights)`` on NCHW images.
  pytorch-msssim requires a side > ``(filter_size - 1) * 16`` whatever the
  number of scales; this requires ``(filter_size - 1) * 2 ** (M - 1)``. A
  clipped factor of 0 has gradient 0 (``0 ** w`` has an infinite one).

  >>> import jax, jax.numpy as jnp, jaxloss
  >>> x = jax.random.uniform(jax.random.key(0), (2, 40, 40, 1))
  >>> y = jnp.clip(x + 0.1 * jax.random.normal(jax.random.key(1), x.shape),
  ...              0, 1)
  >>> loss = jaxloss.ms_ssim_loss(x, y, filter_size=3)
  >>> loss.shape, bool(jnp.all((loss > 0) & (loss < 1)))
  ((2,), True)

  References:
    Wang, Simoncelli and Bovik, `Multiscale Structural Similarity for Image
    Quality Assessment <https://doi.org/10.1109/ACSSC.2003.1292216>`_, 2003.
  """
  images, targets, window, c1, c2 = _ssim_inputs(
    images, targets, max_val, filter_size, filter_sigma, k1, k2
  )
  if scale_weights is None:
    scale_weights = np.asarray(MS_SSIM_WEIGHTS)
  powers = checks.as_float("scale_weights", scale_weights)
  checks.rank("scale_weights", powers, 1)
  levels = powers.shape[0]
  if levels < 1:
    raise checks.fail("`scale_weights` must hold at least one weight.")
  smallest = (filter_size - 1) * 2 ** (levels - 1)
  if min(images.shape[1:3]) <= smallest:
    raise checks.fail(
      f"images of shape {tuple(images.shape)} are too small for {levels} "
      f"scales with filter_size={filter_size}: the smaller side must be > "
      f"(filter_size - 1) * 2 ** (scales - 1) = {smallest}. Use larger "
      "images, a smaller filter_size or fewer scale_weights."
    )
  factors = []
  for level in range(levels):
    ssim, cs = _ssim_and_cs(images, targets, window, c1, c2)
    if level < levels - 1:
      factors.append(jax.nn.relu(cs))
      images, targets = _avg_pool(images), _avg_pool(targets)
  factors.append(jax.nn.relu(ssim))
  stacked = jnp.stack(factors)  # [levels, N, C]
  powered = numerics.safe_pow(
    stacked, powers.astype(images.dtype)[:, None, None]
  )
  values = 1 - jnp.mean(jnp.prod(powered, axis=0), axis=-1)
  return reduce(values, reduction, weights=weights, where=where)


# --------------------------------------------------------------------------- #
# total variation


@loss
def total_variation_loss(
  images: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Total variation: the sum of absolute differences of neighbouring pixels.

  .. math::
    \ell = \sum_{i,j,c} |x_{i+1,j,c} - x_{i,j,c}|
         + \sum_{i,j,c} |x_{i,j+1,c} - x_{i,j,c}|

  The anisotropic (L1) form, summed (not averaged) over the pixels and
  channels of each image.

  Args:
    images: ``[..., height, width, channels]`` floating images (rank >= 3;
      a single ``[height, width, channels]`` image gives a scalar).
    where, weights, reduction: per image; see :func:`jaxloss.reduce`; default
      ``"none"``.

  Returns:
    ``[...]``: the total variation of each image; a scalar for
    ``"sum"``/``"mean"``.

  Matches ``tf.image.total_variation``. The gradient of ``|0|`` is 0.

  >>> import jax.numpy as jnp, jaxloss
  >>> x = jnp.array([[[[0.0], [1.0]], [[3.0], [1.0]]]])  # [1, 2, 2, 1]
  >>> jaxloss.total_variation_loss(x)
  Array([6.], dtype=float32)

  References:
    Rudin, Osher and Fatemi, `Nonlinear total variation based noise removal
    algorithms <https://doi.org/10.1016/0167-2789(92)90242-F>`_, 1992.
  """
  images = checks.as_float("images", images)
  checks.min_rank("images", images, 3, "[..., height, width, channels]")
  rows = numerics.safe_abs(jnp.diff(images, axis=-3))
  cols = numerics.safe_abs(jnp.diff(images, axis=-2))
  values = jnp.sum(rows, axis=(-3, -2, -1)) + jnp.sum(cols, axis=(-3, -2, -1))
  return reduce(values, reduction, weights=weights, where=where)


# --------------------------------------------------------------------------- #
# perceptual loss


def _feature_list(features: object, arg: str) -> list[jax.Array]:
  """``feature_fn``'s output as a list of float arrays."""
  if isinstance(features, (jax.Array, np.ndarray)):
    features = [features]
  if not isinstance(features, (list, tuple)):
    raise checks.fail(
      f"`feature_fn` must return a list or tuple of feature maps, got "
      f"{type(features).__name__} for `{arg}`.",
      TypeError,
    )
  return [
    checks.as_float(f"feature_fn({arg})[{k}]", f)
    for k, f in enumerate(features)
  ]


def _feature_distance(
  mine: Sequence[jax.Array],
  theirs: Sequence[jax.Array],
  layer_weights: jax.Array | None,
) -> jax.Array:
  """``Σ_k w_k mean((a_k - b_k)²)`` per example, ``[batch]``."""
  dtype = jnp.result_type(*mine)
  batch = mine[0].shape[0]
  per_map = jnp.stack(
    [
      jnp.mean(
        # math.prod, not -1: a batch of 0 examples has no -1 to infer.
        jnp.square(a.astype(dtype) - b.astype(dtype)).reshape(
          batch, math.prod(a.shape[1:])
        ),
        axis=1,
      )
      for a, b in zip(mine, theirs)
    ],
    axis=1,
  )  # [batch, maps]
  if layer_weights is None:
    return jnp.sum(per_map, axis=1)
  return jnp.sum(per_map * layer_weights.astype(dtype)[None, :], axis=1)


@loss
def perceptual_loss(
  feature_fn: Callable[..., object],
  images: ArrayLike,
  targets: ArrayLike,
  *,
  layer_weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Perceptual (feature reconstruction) loss: the weighted mean squared
  difference of feature maps.

  .. math::
    \ell = \sum_k w_k \operatorname{mean}\big(
            (\phi_k(x) - \phi_k(y))^2\big)

  with :math:`\phi_k` the ``k``-th feature map returned by ``feature_fn``,
  the mean taken over all its axes but the batch axis.

  Args:
    feature_fn: a function ``images -> [feature maps]`` (a list or tuple of
      arrays ``[batch, ...]``; a single array counts as one map), e.g. a
      pretrained network's intermediates (a Flax NNX module, or
      ``functools.partial(model.apply, params)``). It is called once on
      ``images`` and once on ``targets``; it must treat each example
      independently (no batch statistics) for ``where`` to drop examples.
    images: ``[batch, ...]`` floating inputs.
    targets: ``[batch, ...]`` reference inputs, same shape. Their features are
      not stopped: differentiate with respect to ``images`` only (or stop
      them yourself) to treat them as constants.
    layer_weights: optional ``[num_maps]`` weights :math:`w_k` (default 1
      each); may be traced.
    where, weights, reduction: per example; see :func:`jaxloss.reduce`;
      default ``"none"``.

  Returns:
    ``[batch]``: the loss of each example; a scalar for ``"sum"``/``"mean"``.

  float16/bfloat16 inputs are cast to float32 before ``feature_fn`` (a
  module with a half-precision ``dtype`` still computes in it) and the
  feature maps are compared in float32 at least.

  No reference implementation: each map's term is Johnson et al.'s feature
  reconstruction loss, the squared Euclidean distance divided by the map's
  size.

  >>> import jax.numpy as jnp, numpy as np, jaxloss
  >>> features = lambda x: [x, jnp.tanh(x).sum(-1)]  # [2, 3] and [2]
  >>> x, y = jnp.zeros((2, 3)), jnp.ones((2, 3))
  >>> print(np.round(np.asarray(jaxloss.perceptual_loss(features, x, y)), 4))
  [6.2202 6.2202]

  References:
    Johnson, Alahi and Fei-Fei, `Perceptual Losses for Real-Time Style
    Transfer and Super-Resolution <https://arxiv.org/abs/1603.08155>`_, 2016.
  """
  if not callable(feature_fn):
    raise checks.fail(
      f"`feature_fn` must be callable, got {type(feature_fn).__name__}.",
      TypeError,
    )
  images, targets = checks.same_shape_floats(images=images, targets=targets)
  checks.min_rank("images", images, 1, "a batch axis")
  batch = images.shape[0]
  mine = _feature_list(feature_fn(images), "images")
  theirs = _feature_list(feature_fn(targets), "targets")
  if len(mine) != len(theirs) or not mine:
    raise checks.fail(
      f"`feature_fn` returned {len(mine)} maps for `images` and "
      f"{len(theirs)} for `targets`; it must return the same, non-zero number."
    )
  for k, (a, b) in enumerate(zip(mine, theirs)):
    if a.ndim < 1 or a.shape[0] != batch or a.shape != b.shape:
      raise checks.fail(
        f"feature map {k} has shape {tuple(a.shape)} for `images` and "
        f"{tuple(b.shape)} for `targets`; both must be [batch, ...] with "
        f"batch = {batch}."
      )
  if layer_weights is not None:
    layer_weights = jnp.asarray(layer_weights)
    checks.shape(
      "layer_weights", layer_weights, (len(mine),), "one weight per feature map"
    )
  values = _feature_distance(mine, theirs, layer_weights)
  return reduce(values, reduction, weights=weights, where=where)
