"""Overlap losses: Dice, Jaccard, Tversky and focal Tversky, one value per
image, each ``1 − TI_c`` per class (the Tversky index of
:mod:`jaxloss.segmentation`) combined over the classes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce
from jaxloss.segmentation import _inputs, _regions
from jaxloss.segmentation._inputs import (
  CLASS_REDUCTIONS,
  DICE_RULES,
  RULES,
  Axis,
  ClassReduction,
  Inputs,
)

__all__ = [
  "binary_dice_loss",
  "dice_loss",
  "focal_tversky_loss",
  "jaccard_loss",
  "multiclass_generalized_dice_loss",
  "tversky_loss",
]

_GENERALIZED_EPS = 1e-7  # optax's multiclass_generalized_dice_loss epsilon.


def _generalized_class_weights(x: Inputs) -> jax.Array:
  """optax's weights ``1 / (f_c² + 1e-7)``, normalised to sum to ``C``, with
  ``f_c`` the class's target sum over every unmasked pixel of the batch."""
  axes = tuple(range(x.targets.ndim - 1))
  frequencies = _regions.masked_sum(x.targets, x.pixels, axes)
  weights = 1.0 / (jnp.square(frequencies) + _GENERALIZED_EPS)
  return weights / jnp.sum(weights) * weights.shape[0]


def _overlap(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  smooth: ArrayLike,
  alpha: ArrayLike,
  beta: ArrayLike,
  gamma: ArrayLike | None = None,
  generalized: bool = False,
  class_weights: ArrayLike | None = None,
  apply_softmax: bool = True,
  ignore_background: bool = False,
  axis: Axis = None,
  squared_denominator: bool = False,
  class_reduction: str = "mean",
  where: ArrayLike | None = None,
  expand: bool = True,
  check_sums: bool = False,
) -> tuple[jax.Array, jax.Array | None]:
  """Checks, then the per-image values of an overlap loss and the mask to
  reduce them with: ``1 − TI`` per class (raised to ``gamma`` if given), with
  optax's batch class weights if ``generalized``, combined over the
  classes. ``check_sums``: optax's check that probabilities given without a
  softmax sum to 1 (``_inputs.check_distributions``)."""
  for arg, value in (("smooth", smooth), ("alpha", alpha), ("beta", beta)):
    checks.nonnegative(arg, value)
  if gamma is not None:
    checks.positive("gamma", gamma)
  x = _inputs.read(
    predictions,
    targets,
    axis=axis,
    where=where,
    class_weights=class_weights,
    class_reduction=class_reduction,
    expand=expand,
  )
  if check_sums:
    _inputs.check_distributions(
      x, bool(apply_softmax), jnp.asarray(predictions).dtype
    )
  like = x.predictions
  per_class = _regions.tversky_loss_per_class(
    _regions.probabilities(x.predictions, bool(apply_softmax)),
    x,
    numerics.like(smooth, like),
    numerics.like(alpha, like),
    numerics.like(beta, like),
    bool(squared_denominator),
  )
  if gamma is not None:
    per_class = numerics.safe_pow(per_class, numerics.like(gamma, like))
  return _regions.per_image(
    per_class,
    x,
    _generalized_class_weights(x) if generalized else x.class_weights,
    bool(ignore_background),
    class_reduction,
  )


@loss(**DICE_RULES)
def dice_loss(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  class_weights: ArrayLike | None = None,
  smooth: ArrayLike = 1.0,
  alpha: ArrayLike = 0.5,
  beta: ArrayLike = 0.5,
  apply_softmax: bool = True,
  reduction: ClassReduction = "mean",
  ignore_background: bool = False,
  axis: Axis = None,
  squared_denominator: bool = False,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  batch_reduction: Reduction = "none",
) -> jax.Array:
  r"""Soft Dice loss (Tversky-weighted), one value per image; optax's form.

  .. math::
    \ell = \operatorname*{mean}_c\, w_c \Big(1 - \frac{I_c + s}{I_c
      + \alpha (P_c - I_c) + \beta (T_c - I_c) + s}\Big)

  with :math:`I_c = \sum_i p_{ic} t_{ic}`, :math:`P_c = \sum_i p_{ic}`,
  :math:`T_c = \sum_i t_{ic}` summed over the pixels ``i`` of one image.
  α = β = ½ is the Dice loss :math:`1 - (2 I_c + 2s) / (P_c + T_c + 2s)`.

  Args:
    predictions: ``[batch, *spatial, num_classes]`` logits (softmax over the
      classes; sigmoid for one channel), or probabilities with
      ``apply_softmax=False``. An array one rank short of ``targets`` gets a
      class axis of 1 (optax's rule).
    targets: one-hot or soft targets in [0, 1], same shape (an integer label
      map ``[batch, *spatial]`` is rejected, naming the shapes passed: one-hot
      encode it first, ``jax.nn.one_hot(targets, num_classes)``).
    class_weights: optional ``[num_classes]`` weights ``w_c`` multiplying each
      class's loss (before ``ignore_background``).
    smooth: ``s >= 0``, added to numerator and denominator.
    alpha: weight ``α >= 0`` of the false positives :math:`P_c - I_c`.
    beta: weight ``β >= 0`` of the false negatives :math:`T_c - I_c`.
    apply_softmax: ``False`` if ``predictions`` are probabilities already;
      with several classes they must then sum to 1 over the class axis
      (see below).
    reduction: optax's: how the classes of one image combine, ``"mean"``
      (default), ``"sum"`` or ``"none"`` (per-class values ``[batch,
      classes]``). The other segmentation losses call this
      ``class_reduction``.
    ignore_background: leave class 0 out (when there are several classes).
    axis: the axes summed over (int or tuple); default: all but the first and
      the last. The class axis cannot be one of them.
    squared_denominator: use :math:`\sum p^2` and :math:`\sum t^2` for
      :math:`P_c`, :math:`T_c` (V-Net's form).
    where: boolean mask of the pixel shape ``[batch, *spatial]`` (ignored
      pixels) or of the per-image shape (dropped images).
    weights: per-image weights, see :func:`jaxloss.reduce`.
    batch_reduction: the jaxloss ``reduction`` over the images (see
      :func:`jaxloss.reduce`); default ``"none"``, optax's per-image output.

  Returns:
    ``[batch]`` by default (``[batch, classes]`` with ``reduction="none"``),
    or a scalar with ``batch_reduction="mean"``/``"sum"``.

  With ``apply_softmax=False`` and several classes, probabilities whose
  sum over the class axis is not 1 (within optax's ``rtol=1e-5``, or the
  input's machine epsilon for 16-bit floats; pixels masked by ``where``
  exempt) raise optax's ``ValueError`` ("... must be valid probability
  distributions that sum to 1 along the class axis ...") when the values
  are concrete, i.e. in an eager call. Under ``jit``, ``vmap`` or ``grad``
  the values are traced and not checked (optax fails to trace there):
  :func:`jaxloss.checked` reports them, with the range of the sums. A single
  channel is not checked (optax 0.2.8 also checks that its probability is
  1).

  Matches ``optax.losses.dice_loss`` with the same arguments, except that a
  class with an empty denominator (``smooth=0``, nothing predicted, nothing
  there) has loss 0, not NaN.

  >>> import jax.numpy as jnp, numpy as np, jaxloss
  >>> logits = jnp.array([[[2.0, -1.0], [0.0, 1.0], [-1.0, 3.0]]])  # [1, 3, 2]
  >>> targets = jnp.array([[[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]])
  >>> print(np.asarray(jaxloss.dice_loss(logits, targets)).round(4))
  [0.0685]
  >>> print(np.asarray(jaxloss.dice_loss(logits, targets, reduction="none")
  ...                  ).round(4))
  [[0.0789 0.058 ]]
  >>> jaxloss.dice_loss(jnp.full((1, 3, 2), 0.6), targets, apply_softmax=False)
  Traceback (most recent call last):
  ...
  ValueError: dice_loss: argument `predictions`: when apply_softmax=False,
  predictions must be valid probability distributions that sum to 1 ...

  References:
    Milletari, Navab and Ahmadi, `V-Net: Fully Convolutional Neural Networks
    for Volumetric Medical Image Segmentation
    <https://arxiv.org/abs/1606.04797>`_, 2016.
  """
  checks.option("reduction", reduction, CLASS_REDUCTIONS)
  values, mask = _overlap(
    predictions,
    targets,
    smooth=smooth,
    alpha=alpha,
    beta=beta,
    class_weights=class_weights,
    apply_softmax=apply_softmax,
    ignore_background=ignore_background,
    axis=axis,
    squared_denominator=squared_denominator,
    class_reduction=reduction,
    where=where,
    check_sums=True,
  )
  return reduce(values, batch_reduction, weights=weights, where=mask)


@loss(**RULES)
def binary_dice_loss(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  smooth: ArrayLike = 1.0,
  apply_sigmoid: bool = True,
  squared_denominator: bool = False,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Dice loss of a binary (one-channel) segmentation, one value per image.

  .. math::
    \ell = 1 - \frac{2 I + 2s}{P + T + 2s}, \quad I = \sum_i p_i t_i,\
      P = \sum_i p_i,\ T = \sum_i t_i,\ p_i = \sigma(x_i)

  Args:
    predictions: ``[batch, *spatial]`` or ``[batch, *spatial, 1]`` logits, or
      probabilities with ``apply_sigmoid=False``.
    targets: binary or soft targets in [0, 1], ``[batch, *spatial]`` or
      ``[batch, *spatial, 1]``.
    smooth: ``s >= 0``.
    apply_sigmoid: ``False`` if ``predictions`` are probabilities already.
    squared_denominator: use :math:`\sum p^2 + \sum t^2` (V-Net's form).
    where: boolean mask of the pixel shape ``[batch, *spatial]`` or of the
      per-image shape ``[batch]``.
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[batch]`` per-image losses (optax's output), or a scalar.

  Matches ``optax.losses.binary_dice_loss`` (optax raises with
  ``apply_sigmoid=False`` unless every probability is 1: it checks that the
  single channel sums to 1; this does not).

  >>> import jax.numpy as jnp, numpy as np, jaxloss
  >>> logits = jnp.array([[3.0, -2.0, 1.0, -4.0]])
  >>> print(np.asarray(jaxloss.binary_dice_loss(
  ...     logits, jnp.array([[1.0, 0.0, 1.0, 0.0]]))).round(4))
  [0.0779]

  References:
    Milletari, Navab and Ahmadi, `V-Net: Fully Convolutional Neural Networks
    for Volumetric Medical Image Segmentation
    <https://arxiv.org/abs/1606.04797>`_, 2016.
  """
  p = checks.as_float("predictions", predictions)
  t = checks.as_targets("targets", targets, p)
  if p.ndim == t.ndim and p.ndim and p.shape[-1] != 1:  # optax's rule
    p, t = p[..., None], t[..., None]
  values, mask = _overlap(
    p,
    t,
    smooth=smooth,
    alpha=0.5,
    beta=0.5,
    apply_softmax=apply_sigmoid,
    squared_denominator=squared_denominator,
    where=where,
  )
  return reduce(values, reduction, weights=weights, where=mask)


@loss(**DICE_RULES)
def multiclass_generalized_dice_loss(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  smooth: ArrayLike = 1.0,
  apply_softmax: bool = True,
  ignore_background: bool = False,
  squared_denominator: bool = False,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "mean",
) -> jax.Array:
  r"""Dice loss with class weights from the batch's class frequencies;
  optax's form.

  .. math::
    \ell = \operatorname*{mean}_c\, w_c \Big(1 - \frac{2 I_c + 2s}{P_c + T_c
      + 2s}\Big), \quad w_c \propto \frac{1}{f_c^2 + 10^{-7}},\
      \sum_c w_c = C

  with :math:`f_c` the sum of class ``c``'s targets over every (unmasked)
  pixel of the batch. This is optax's weighted mean of per-class Dice losses,
  not Sudre et al.'s ratio of weighted sums.

  Args:
    predictions: ``[batch, *spatial, num_classes]`` logits, or probabilities
      with ``apply_softmax=False``.
    targets: one-hot or soft targets, same shape.
    smooth: ``s >= 0``.
    apply_softmax: ``False`` if ``predictions`` are probabilities already;
      they must then sum to 1 over the class axis, as in :func:`dice_loss`
      (a ``ValueError`` in an eager call, :func:`jaxloss.checked` under
      ``jit``).
    ignore_background: leave class 0 out (after the weights are normalised
      over all classes, as optax does).
    squared_denominator: use :math:`\sum p^2 + \sum t^2` (V-Net's form).
    where: boolean mask of the pixel shape or of the per-image shape
      ``[batch]``; masked pixels and images count neither in the loss nor in
      the class frequencies.
    weights, reduction: see :func:`jaxloss.reduce`; default ``"mean"``
      (optax's scalar).

  Returns:
    A scalar by default; ``[batch]`` per-image values for ``"none"``.

  Matches ``optax.losses.multiclass_generalized_dice_loss``.

  >>> import jax.numpy as jnp, numpy as np, jaxloss
  >>> logits = jnp.array([[[2.0, -1.0], [0.0, 1.0], [-1.0, 3.0]]])
  >>> targets = jnp.array([[[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]])
  >>> loss = jaxloss.multiclass_generalized_dice_loss(logits, targets)
  >>> print(f"{float(loss):.4f}")
  0.0747

  References:
    Sudre, Li, Vercauteren, Ourselin and Cardoso, `Generalised Dice overlap
    as a deep learning loss function for highly unbalanced segmentations
    <https://arxiv.org/abs/1707.03237>`_, 2017.
  """
  values, mask = _overlap(
    predictions,
    targets,
    smooth=smooth,
    alpha=0.5,
    beta=0.5,
    generalized=True,
    apply_softmax=apply_softmax,
    ignore_background=ignore_background,
    squared_denominator=squared_denominator,
    where=where,
    expand=False,
    check_sums=True,
  )
  return reduce(values, reduction, weights=weights, where=mask)


@loss(**RULES)
def jaccard_loss(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  class_weights: ArrayLike | None = None,
  smooth: ArrayLike = 1.0,
  apply_softmax: bool = True,
  ignore_background: bool = False,
  axis: Axis = None,
  squared_denominator: bool = False,
  class_reduction: ClassReduction = "mean",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Soft Jaccard (IoU) loss, one value per image.

  .. math::
    \ell = \operatorname*{mean}_c\, w_c \Big(1 - \frac{I_c + s}{P_c + T_c
      - I_c + s}\Big)

  Args:
    predictions: ``[batch, *spatial, num_classes]`` logits, or probabilities
      with ``apply_softmax=False``.
    targets: one-hot or soft targets in [0, 1], same shape.
    class_weights, smooth, apply_softmax, ignore_background, axis,
      squared_denominator, class_reduction, where: as in :func:`dice_loss`.
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[batch]`` per-image losses (``[batch, classes]`` with
    ``class_reduction="none"``), or a scalar.

  Equals :func:`tversky_loss` with α = β = 1 (the soft IoU of Rahman and
  Wang; ``segmentation_models_pytorch``'s ``JaccardLoss`` uses the same
  ratio but sums over the whole batch and zeroes classes absent from it).

  >>> import jax.numpy as jnp, numpy as np, jaxloss
  >>> logits = jnp.array([[[2.0, -1.0], [0.0, 1.0], [-1.0, 3.0]]])
  >>> targets = jnp.array([[[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]])
  >>> print(np.asarray(jaxloss.jaccard_loss(logits, targets)).round(4))
  [0.128]

  References:
    Rahman and Wang, `Optimizing Intersection-Over-Union in Deep Neural
    Networks for Image Segmentation
    <https://doi.org/10.1007/978-3-319-50835-1_22>`_, 2016.
  """
  values, mask = _overlap(
    predictions,
    targets,
    smooth=smooth,
    alpha=1.0,
    beta=1.0,
    class_weights=class_weights,
    apply_softmax=apply_softmax,
    ignore_background=ignore_background,
    axis=axis,
    squared_denominator=squared_denominator,
    class_reduction=class_reduction,
    where=where,
  )
  return reduce(values, reduction, weights=weights, where=mask)


@loss(**RULES)
def tversky_loss(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  alpha: ArrayLike = 0.3,
  beta: ArrayLike = 0.7,
  class_weights: ArrayLike | None = None,
  smooth: ArrayLike = 1.0,
  apply_softmax: bool = True,
  ignore_background: bool = False,
  axis: Axis = None,
  squared_denominator: bool = False,
  class_reduction: ClassReduction = "mean",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Tversky loss: Dice with separate weights on false positives and negatives.

  .. math::
    \ell = \operatorname*{mean}_c\, w_c (1 - \mathrm{TI}_c), \quad
    \mathrm{TI}_c = \frac{I_c + s}{I_c + \alpha (P_c - I_c)
      + \beta (T_c - I_c) + s}

  Args:
    predictions: ``[batch, *spatial, num_classes]`` logits, or probabilities
      with ``apply_softmax=False``.
    targets: one-hot or soft targets in [0, 1], same shape.
    alpha: weight ``α >= 0`` of the false positives :math:`P_c - I_c`.
    beta: weight ``β >= 0`` of the false negatives :math:`T_c - I_c`;
      ``β > α`` favours recall (the defaults 0.3/0.7 are the paper's best).
    class_weights, smooth, apply_softmax, ignore_background, axis,
      squared_denominator, class_reduction, where: as in :func:`dice_loss`.
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[batch]`` per-image losses (``[batch, classes]`` with
    ``class_reduction="none"``), or a scalar.

  Matches :func:`dice_loss` with the same ``alpha`` and ``beta``
  (``optax.losses.dice_loss`` per image).

  >>> import jax.numpy as jnp, numpy as np, jaxloss
  >>> logits = jnp.array([[[2.0, -1.0], [0.0, 1.0], [-1.0, 3.0]]])
  >>> targets = jnp.array([[[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]])
  >>> print(np.asarray(jaxloss.tversky_loss(logits, targets)).round(4))
  [0.0655]

  References:
    Salehi, Erdogmus and Gholipour, `Tversky loss function for image
    segmentation using 3D fully convolutional deep networks
    <https://arxiv.org/abs/1706.05721>`_, 2017.
  """
  values, mask = _overlap(
    predictions,
    targets,
    smooth=smooth,
    alpha=alpha,
    beta=beta,
    class_weights=class_weights,
    apply_softmax=apply_softmax,
    ignore_background=ignore_background,
    axis=axis,
    squared_denominator=squared_denominator,
    class_reduction=class_reduction,
    where=where,
  )
  return reduce(values, reduction, weights=weights, where=mask)


@loss(**RULES)
def focal_tversky_loss(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  alpha: ArrayLike = 0.3,
  beta: ArrayLike = 0.7,
  gamma: ArrayLike = 0.75,
  class_weights: ArrayLike | None = None,
  smooth: ArrayLike = 1.0,
  apply_softmax: bool = True,
  ignore_background: bool = False,
  axis: Axis = None,
  squared_denominator: bool = False,
  class_reduction: ClassReduction = "mean",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Focal Tversky loss: each class's Tversky loss raised to ``gamma``.

  .. math::
    \ell = \operatorname*{mean}_c\, w_c\, (1 - \mathrm{TI}_c)^{\gamma}

  with :math:`\mathrm{TI}_c` as in :func:`tversky_loss`. The power is applied
  **per class, before the classes are averaged** (the paper's
  :math:`\sum_c (1 - \mathrm{TI}_c)^{1/\gamma}`); some libraries (e.g. the
  paper's own Keras code) raise the class-averaged loss instead, which
  differs unless there is one class. ``gamma`` here is the exponent itself:
  the paper's best :math:`1/\gamma = 1/(4/3)` is the default 0.75.

  Args:
    predictions: ``[batch, *spatial, num_classes]`` logits, or probabilities
      with ``apply_softmax=False``.
    targets: one-hot or soft targets in [0, 1], same shape.
    alpha, beta: weights of the false positives and negatives (as in
      :func:`tversky_loss`).
    gamma: the exponent ``γ > 0``; ``γ < 1`` raises the loss of classes that
      are already well segmented. At a perfect class (``1 − TI = 0``) the
      gradient is taken as 0 (for ``γ < 1`` it is infinite).
    class_weights, smooth, apply_softmax, ignore_background, axis,
      squared_denominator, class_reduction, where: as in :func:`dice_loss`.
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[batch]`` per-image losses (``[batch, classes]`` with
    ``class_reduction="none"``), or a scalar.

  No reference implementation: tested against the paper's formula, applied
  per class.

  >>> import jax.numpy as jnp, numpy as np, jaxloss
  >>> logits = jnp.array([[[2.0, -1.0], [0.0, 1.0], [-1.0, 3.0]]])
  >>> targets = jnp.array([[[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]])
  >>> print(np.asarray(jaxloss.focal_tversky_loss(logits, targets)).round(4))
  [0.1293]

  References:
    Abraham and Khan, `A Novel Focal Tversky loss function with improved
    Attention U-Net for lesion segmentation
    <https://arxiv.org/abs/1810.07842>`_, 2019.
  """
  values, mask = _overlap(
    predictions,
    targets,
    smooth=smooth,
    alpha=alpha,
    beta=beta,
    gamma=gamma,
    class_weights=class_weights,
    apply_softmax=apply_softmax,
    ignore_background=ignore_background,
    axis=axis,
    squared_denominator=squared_denominator,
    class_reduction=class_reduction,
    where=where,
  )
  return reduce(values, reduction, weights=weights, where=mask)
