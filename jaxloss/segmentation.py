r"""Segmentation losses: Dice, Jaccard, Tversky, focal Tversky, combo, Lovász.

Layout (optax's): channel-last ``predictions`` (logits by default, or
probabilities with ``apply_softmax=False``) and ``targets`` (one-hot or soft,
in [0, 1]) of one shape ``[batch, *spatial, num_classes]``. Each loss sums
over ``axis`` (by default every axis but the first and the last) and combines
the classes itself (``class_reduction``, class weights, ``ignore_background``),
so its per-example value is **one value per image**; ``reduction``,
``weights`` and ``where`` then follow :func:`jaxloss.reduce`. A single channel
uses a sigmoid instead of a softmax. :func:`dice_loss` keeps optax's meaning
of ``reduction`` (the classes) and calls the reduction over the images
``batch_reduction``.

``where`` is read by rank: a mask of the pixel shape ``[batch, *spatial]``
leaves pixels out of every sum (an image without a pixel left is dropped); a
mask of the per-image shape ``[batch]`` drops images.

All overlap losses share one smoothing term ``smooth`` (optax's name), added to
the numerator and the denominator of each class's index:

.. math::
  \mathrm{TI}_c = \frac{I_c + s}{I_c + \alpha (P_c - I_c)
                  + \beta (T_c - I_c) + s},
  \quad I_c = \sum_i p_{ic} t_{ic},\ P_c = \sum_i p_{ic},\ T_c = \sum_i t_{ic}

(Dice: α = β = ½; Jaccard: α = β = 1). With ``squared_denominator=True``,
:math:`P_c` and :math:`T_c` become :math:`\sum_i p_{ic}^2` and
:math:`\sum_i t_{ic}^2` (V-Net's form). Combo and Lovász-Softmax live in
:mod:`jaxloss._segmentation_extra` and are re-exported here.
"""

from __future__ import annotations

from jaxloss import _segmentation_common as common
from jaxloss import _segmentation_extra
from jaxloss._core import checks, value_checks
from jaxloss._core import reduction as reduction_lib
from jaxloss._segmentation_extra import *  # noqa: F403

_RULES = dict(
  predictions=common.predictions_rule, targets=value_checks.unit_interval
)


def _overlap(
  name,
  predictions,
  targets,
  *,
  kind,
  class_weights=None,
  smooth=1.0,
  alpha=0.5,
  beta=0.5,
  gamma=None,
  apply_softmax=True,
  ignore_background=False,
  axis=None,
  squared_denominator=False,
  class_reduction="mean",
  where=None,
  weights=None,
  reduction="none",
  expand=True,
):
  """Checks the options and inputs, then calls the jitted core."""
  common.check_reduction(name, reduction)
  for arg, value in (("smooth", smooth), ("alpha", alpha), ("beta", beta)):
    checks.nonnegative(name, arg, value)
  x = common.inputs(
    name,
    predictions,
    targets,
    axis,
    where,
    class_reduction=class_reduction,
    expand=expand,
  )
  class_weights = common.class_weights_array(
    name, class_weights, x.predictions.shape[-1], x.predictions.dtype
  )
  hyper = dict(smooth=smooth, alpha=alpha, beta=beta)
  if gamma is not None:
    checks.positive(name, "gamma", gamma)
    hyper["gamma"] = gamma
  return common.region_loss(
    x.predictions,
    x.targets,
    x.pixels,
    x.outputs,
    weights,
    class_weights,
    common.hyper_parameters(x.predictions, **hyper),
    name=name,
    kind=kind,
    axes=x.axes,
    apply_softmax=bool(apply_softmax),
    squared=bool(squared_denominator),
    ignore_background=bool(ignore_background),
    class_reduction=class_reduction,
    reduction=reduction,
  )


@value_checks.value_rules(**_RULES)
def dice_loss(
  predictions,
  targets,
  *,
  class_weights=None,
  smooth=1.0,
  alpha=0.5,
  beta=0.5,
  apply_softmax=True,
  reduction="mean",
  ignore_background=False,
  axis=None,
  squared_denominator=False,
  where=None,
  weights=None,
  batch_reduction="none",
):
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
    targets: one-hot or soft targets in [0, 1], same shape.
    class_weights: optional ``[num_classes]`` weights ``w_c`` multiplying each
      class's loss (before ``ignore_background``).
    smooth: ``s >= 0``, added to numerator and denominator.
    alpha: weight of the false positives :math:`P_c - I_c`.
    beta: weight of the false negatives :math:`T_c - I_c`.
    apply_softmax: ``False`` if ``predictions`` are probabilities already.
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

  Matches ``optax.losses.dice_loss`` with the same arguments, except that
  probabilities given with ``apply_softmax=False`` are not checked to sum to 1
  (use :func:`jaxloss.checked`), and a class with an empty denominator
  (``smooth=0``, nothing predicted, nothing there) has loss 0, not NaN.

  >>> import jax.numpy as jnp, numpy as np, jaxloss
  >>> logits = jnp.array([[[2.0, -1.0], [0.0, 1.0], [-1.0, 3.0]]])  # [1, 3, 2]
  >>> targets = jnp.array([[[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]])
  >>> print(np.asarray(jaxloss.dice_loss(logits, targets)).round(4))
  [0.0685]
  >>> print(np.asarray(jaxloss.dice_loss(logits, targets, reduction="none")
  ...                  ).round(4))
  [[0.0789 0.058 ]]

  References:
    Milletari, Navab and Ahmadi, `V-Net: Fully Convolutional Neural Networks
    for Volumetric Medical Image Segmentation
    <https://arxiv.org/abs/1606.04797>`_, 2016.
  """
  name = "dice_loss"
  checks.option(name, "reduction", reduction, common.CLASS_REDUCTIONS)
  checks.option(
    name, "batch_reduction", batch_reduction, reduction_lib.REDUCTIONS
  )
  return _overlap(
    name,
    predictions,
    targets,
    kind="tversky",
    class_weights=class_weights,
    smooth=smooth,
    alpha=alpha,
    beta=beta,
    apply_softmax=apply_softmax,
    ignore_background=ignore_background,
    axis=axis,
    squared_denominator=squared_denominator,
    class_reduction=reduction,
    where=where,
    weights=weights,
    reduction=batch_reduction,
  )


@value_checks.value_rules(**_RULES)
def binary_dice_loss(
  predictions,
  targets,
  *,
  smooth=1.0,
  apply_sigmoid=True,
  squared_denominator=False,
  where=None,
  weights=None,
  reduction="none",
):
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
  name = "binary_dice_loss"
  p, t = checks.as_float(name, "predictions", predictions), targets
  t = checks.as_targets(name, "targets", t, p)
  if p.ndim == t.ndim and p.ndim and p.shape[-1] != 1:  # optax's rule
    p, t = p[..., None], t[..., None]
  return _overlap(
    name,
    p,
    t,
    kind="tversky",
    smooth=smooth,
    apply_softmax=apply_sigmoid,
    squared_denominator=squared_denominator,
    where=where,
    weights=weights,
    reduction=reduction,
  )


@value_checks.value_rules(**_RULES)
def multiclass_generalized_dice_loss(
  predictions,
  targets,
  *,
  smooth=1.0,
  apply_softmax=True,
  ignore_background=False,
  squared_denominator=False,
  where=None,
  weights=None,
  reduction="mean",
):
  r"""Dice loss with class weights from the batch's class frequencies; optax's form.

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
    apply_softmax: ``False`` if ``predictions`` are probabilities already.
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
  >>> print(f"{float(jaxloss.multiclass_generalized_dice_loss(logits, targets)):.4f}")
  0.0747

  References:
    Sudre, Li, Vercauteren, Ourselin and Cardoso, `Generalised Dice overlap
    as a deep learning loss function for highly unbalanced segmentations
    <https://arxiv.org/abs/1707.03237>`_, 2017.
  """
  return _overlap(
    "multiclass_generalized_dice_loss",
    predictions,
    targets,
    kind="generalized",
    smooth=smooth,
    apply_softmax=apply_softmax,
    ignore_background=ignore_background,
    squared_denominator=squared_denominator,
    where=where,
    weights=weights,
    reduction=reduction,
    expand=False,
  )


@value_checks.value_rules(**_RULES)
def jaccard_loss(
  predictions,
  targets,
  *,
  class_weights=None,
  smooth=1.0,
  apply_softmax=True,
  ignore_background=False,
  axis=None,
  squared_denominator=False,
  class_reduction="mean",
  where=None,
  weights=None,
  reduction="none",
):
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
  return _overlap(
    "jaccard_loss",
    predictions,
    targets,
    kind="tversky",
    class_weights=class_weights,
    smooth=smooth,
    alpha=1.0,
    beta=1.0,
    apply_softmax=apply_softmax,
    ignore_background=ignore_background,
    axis=axis,
    squared_denominator=squared_denominator,
    class_reduction=class_reduction,
    where=where,
    weights=weights,
    reduction=reduction,
  )


@value_checks.value_rules(**_RULES)
def tversky_loss(
  predictions,
  targets,
  *,
  alpha=0.3,
  beta=0.7,
  class_weights=None,
  smooth=1.0,
  apply_softmax=True,
  ignore_background=False,
  axis=None,
  squared_denominator=False,
  class_reduction="mean",
  where=None,
  weights=None,
  reduction="none",
):
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
  return _overlap(
    "tversky_loss",
    predictions,
    targets,
    kind="tversky",
    class_weights=class_weights,
    smooth=smooth,
    alpha=alpha,
    beta=beta,
    apply_softmax=apply_softmax,
    ignore_background=ignore_background,
    axis=axis,
    squared_denominator=squared_denominator,
    class_reduction=class_reduction,
    where=where,
    weights=weights,
    reduction=reduction,
  )


@value_checks.value_rules(**_RULES)
def focal_tversky_loss(
  predictions,
  targets,
  *,
  alpha=0.3,
  beta=0.7,
  gamma=0.75,
  class_weights=None,
  smooth=1.0,
  apply_softmax=True,
  ignore_background=False,
  axis=None,
  squared_denominator=False,
  class_reduction="mean",
  where=None,
  weights=None,
  reduction="none",
):
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
  return _overlap(
    "focal_tversky_loss",
    predictions,
    targets,
    kind="focal",
    class_weights=class_weights,
    smooth=smooth,
    alpha=alpha,
    beta=beta,
    gamma=gamma,
    apply_softmax=apply_softmax,
    ignore_background=ignore_background,
    axis=axis,
    squared_denominator=squared_denominator,
    class_reduction=class_reduction,
    where=where,
    weights=weights,
    reduction=reduction,
  )


__all__ = [
  "binary_dice_loss",
  "dice_loss",
  "focal_tversky_loss",
  "jaccard_loss",
  "multiclass_generalized_dice_loss",
  "tversky_loss",
] + list(_segmentation_extra.__all__)
