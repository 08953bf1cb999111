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
:math:`\sum_i t_{ic}^2` (V-Net's form). The parts: the overlap losses
(:mod:`~jaxloss.segmentation.overlap`), combo
(:mod:`~jaxloss.segmentation.combo`) and Lovász-Softmax
(:mod:`~jaxloss.segmentation.lovasz`).
"""

from jaxloss.segmentation.combo import combo_loss
from jaxloss.segmentation.lovasz import lovasz_softmax_loss
from jaxloss.segmentation.overlap import (
  binary_dice_loss,
  dice_loss,
  focal_tversky_loss,
  jaccard_loss,
  multiclass_generalized_dice_loss,
  tversky_loss,
)

__all__ = [
  "binary_dice_loss",
  "combo_loss",
  "dice_loss",
  "focal_tversky_loss",
  "jaccard_loss",
  "lovasz_softmax_loss",
  "multiclass_generalized_dice_loss",
  "tversky_loss",
]
