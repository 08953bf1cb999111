"""Detection losses: IoU-based losses over paired bounding boxes.

Every loss takes two arrays of boxes ``[..., 4]`` that are paired one to one
(``boxes1[i]`` with ``boxes2[i]``; no all-pairs matrix) and returns one value
per pair, ``[...]``, reduced by :func:`jaxloss.reduce`. Boxes are in
``"xyxy"`` (corners ``x1, y1, x2, y2``), ``"cxcywh"`` (centre, width, height)
or ``"xywh"`` (top-left corner, width, height) format; the losses are
computed on the ``xyxy`` corners, as ``torchvision.ops.box_convert`` followed
by the ``torchvision.ops`` loss would.

Degenerate boxes are finite, in value and gradient: a box of zero area has
IoU 0 with every box, itself included (its intersection is 0 and the union is
floored by ``eps``); its enclosing-box and centre-distance penalties are the
usual ones. Boxes with ``x2 < x1`` or ``y2 < y1`` are not rejected (they
cannot be checked at trace time); ``jaxloss.checked`` rejects them.
"""

from __future__ import annotations

import math
from typing import Literal

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce

__all__ = [
  "box_iou_loss",
  "complete_box_iou_loss",
  "distance_box_iou_loss",
  "generalized_box_iou_loss",
]

BoxFormat = Literal["xyxy", "cxcywh", "xywh"]
BOX_FORMATS: tuple[BoxFormat, ...] = ("xyxy", "cxcywh", "xywh")
_ASPECT = 4 / math.pi**2  # CIoU's aspect-ratio term 4/π² (atan difference)².


def _valid_boxes(args: dict, arg: str) -> tuple[jax.Array, str]:
  """Value rule: non-negative widths and heights."""
  boxes = jnp.asarray(args[arg])
  box_format = args.get("box_format", "xyxy")
  if box_format == "xyxy":
    sizes = boxes[..., 2:] - boxes[..., :2]
  else:
    sizes = boxes[..., 2:]
  return jnp.all(sizes >= 0), (
    f"must hold boxes of non-negative width and height ({box_format})"
  )


def _corners(
  boxes: jax.Array, box_format: str
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """``(x1, y1, x2, y2)`` of ``[..., 4]`` boxes in ``box_format``."""
  a, b, c, d = (boxes[..., k] for k in range(4))
  if box_format == "xyxy":
    return a, b, c, d
  if box_format == "xywh":
    return a, b, a + c, b + d
  half_w, half_h = 0.5 * c, 0.5 * d  # cxcywh
  return a - half_w, b - half_h, a + half_w, b + half_h


def _aspect_angle(width: jax.Array, height: jax.Array) -> jax.Array:
  """``atan(w / h)``, finite with a finite gradient everywhere.

  Written as ``atan2(s w, s h)`` with ``s = sign(h)`` (``+1`` at 0), which
  equals ``atan(w / h)`` for every ``h != 0`` and gives its limit
  ``±π/2`` at ``h = 0``; ``w = h = 0`` gives 0 with gradient 0 (torchvision's
  ``atan(w / h)`` is NaN there, and its gradient is NaN whenever ``h = 0``).
  """
  s = jnp.where(height < 0, -1, 1).astype(width.dtype)
  # Divided by max(|w|, |h|) (no gradient; atan2 is scale-invariant), so
  # that atan2's derivative h / (w² + h²) never underflows for tiny boxes
  # (nor is a tiny box, of w² + h² = 0 in float32, taken for w = h = 0).
  peak = jax.lax.stop_gradient(jnp.maximum(jnp.abs(width), jnp.abs(height)))
  nonzero = peak > 0
  s = s / jnp.where(nonzero, peak, 1)
  angle = jnp.arctan2(
    jnp.where(nonzero, s * width, 0), jnp.where(nonzero, s * height, 1)
  )
  return jnp.where(nonzero, angle, 0)


def _boxes(
  boxes1: ArrayLike, boxes2: ArrayLike, eps: ArrayLike, box_format: str
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The checked boxes (one float dtype, shape ``[..., 4]``) and ``eps``."""
  boxes1, boxes2 = checks.same_shape_floats(boxes1=boxes1, boxes2=boxes2)
  if boxes1.ndim == 0 or boxes1.shape[-1] != 4:
    raise checks.fail(
      f"arguments `boxes1` and `boxes2` must have shape [..., 4] (one box "
      f"per row), got {tuple(boxes1.shape)}."
    )
  checks.option("box_format", box_format, BOX_FORMATS)
  checks.nonnegative("eps", eps)
  return boxes1, boxes2, checks.scalar("eps", eps).astype(boxes1.dtype)


def _box_values(
  boxes1: jax.Array,
  boxes2: jax.Array,
  eps: jax.Array,
  kind: Literal["iou", "giou", "diou", "ciou"],
  box_format: str,
) -> jax.Array:
  """The per-pair values shared by the four losses (``kind`` picks the
  penalty)."""
  corners = _corners(boxes1, box_format) + _corners(boxes2, box_format)
  # Every coordinate of the pair divided by the pair's largest |coordinate|
  # (no gradient), so that no area or squared distance overflows (1e19² is
  # inf in float32): the losses are ratios of areas, invariant under
  # scaling once eps, an area, is scaled by 1/s² too. Exact gradients: the
  # scaled function equals the unscaled one for every s.
  scale = numerics.magnitude_scale(jnp.stack(corners), axis=0)[0]
  x1, y1, x2, y2, x1g, y1g, x2g, y2g = (c / scale for c in corners)
  unit_eps = eps  # CIoU's alpha adds eps to a dimensionless sum
  eps = jnp.where(eps > 0, eps / jnp.square(scale), 0)  # s² may be 0 or inf
  # Intersection (torchvision's _loss_inter_union: 0 unless both sides > 0).
  inter_w = jnp.minimum(x2, x2g) - jnp.maximum(x1, x1g)
  inter_h = jnp.minimum(y2, y2g) - jnp.maximum(y1, y1g)
  inter = jnp.where((inter_w > 0) & (inter_h > 0), inter_w * inter_h, 0)
  w1, h1, w2, h2 = x2 - x1, y2 - y1, x2g - x1g, y2g - y1g
  union = w1 * h1 + w2 * h2 - inter
  iou = numerics.safe_divide(inter, union + eps)
  values = 1 - iou
  if kind == "iou":
    return values
  # Smallest enclosing box.
  enclose_w = jnp.maximum(x2, x2g) - jnp.minimum(x1, x1g)
  enclose_h = jnp.maximum(y2, y2g) - jnp.minimum(y1, y1g)
  if kind == "giou":
    area = enclose_w * enclose_h
    return values + numerics.safe_divide(area - union, area + eps)
  diagonal = jnp.square(enclose_w) + jnp.square(enclose_h) + eps
  centres = jnp.square(0.5 * (x1 + x2) - 0.5 * (x1g + x2g)) + jnp.square(
    0.5 * (y1 + y2) - 0.5 * (y1g + y2g)
  )
  values = values + numerics.safe_divide(centres, diagonal)
  if kind == "diou":
    return values
  v = _ASPECT * jnp.square(_aspect_angle(w2, h2) - _aspect_angle(w1, h1))
  alpha = jax.lax.stop_gradient(numerics.safe_divide(v, 1 - iou + v + unit_eps))
  return values + alpha * v


@loss(boxes1=_valid_boxes, boxes2=_valid_boxes)
def box_iou_loss(
  boxes1: ArrayLike,
  boxes2: ArrayLike,
  *,
  eps: ArrayLike = 1e-7,
  box_format: BoxFormat = "xyxy",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""IoU loss: one minus the intersection over union of paired boxes.

  .. math::
    \ell = 1 - \frac{|A \cap B|}{|A \cup B| + \varepsilon}

  Args:
    boxes1: ``[..., 4]`` floating boxes (e.g. predictions).
    boxes2: ``[..., 4]`` boxes paired with ``boxes1`` (e.g. targets), same
      shape.
    eps: small number added to the union (may be traced).
    box_format: ``"xyxy"`` (default), ``"cxcywh"`` or ``"xywh"``.
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]``: one value per pair of boxes; a scalar for ``"sum"``/``"mean"``.

  Matches ``1 - iou`` with the IoU of torchvision's box losses
  (``torchvision.ops`` ``_loss_inter_union``, then ``inter / (union + eps)``);
  ``torchvision.ops.box_iou`` has no ``eps``. Disjoint boxes all give 1, so
  the loss has no gradient there: use one of the other three to move them.

  >>> import jax.numpy as jnp, numpy as np, jaxloss
  >>> a = jnp.array([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
  >>> b = jnp.array([[1.0, 1.0, 3.0, 3.0], [2.0, 2.0, 3.0, 3.0]])
  >>> print(np.round(np.asarray(jaxloss.box_iou_loss(a, b)), 4))
  [0.8571 1.    ]

  References:
    Yu, Jiang, Wang, Cao and Huang, `UnitBox: An Advanced Object Detection
    Network <https://arxiv.org/abs/1608.01471>`_, 2016.
  """
  boxes1, boxes2, eps = _boxes(boxes1, boxes2, eps, box_format)
  values = _box_values(boxes1, boxes2, eps, "iou", box_format)
  return reduce(values, reduction, weights=weights, where=where)


@loss(boxes1=_valid_boxes, boxes2=_valid_boxes)
def generalized_box_iou_loss(
  boxes1: ArrayLike,
  boxes2: ArrayLike,
  *,
  eps: ArrayLike = 1e-7,
  box_format: BoxFormat = "xyxy",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Generalized IoU loss: the IoU loss plus the empty share of the
  smallest enclosing box.

  .. math::
    \ell = 1 - \frac{|A \cap B|}{|A \cup B| + \varepsilon}
         + \frac{|C| - |A \cup B|}{|C| + \varepsilon}

  with :math:`C` the smallest box enclosing :math:`A` and :math:`B`. In
  :math:`[0, 2)`; non-zero gradient for disjoint boxes.

  Args:
    boxes1: ``[..., 4]`` floating boxes (e.g. predictions).
    boxes2: ``[..., 4]`` boxes paired with ``boxes1`` (e.g. targets), same
      shape.
    eps: small number added to the denominators (may be traced).
    box_format: ``"xyxy"`` (default), ``"cxcywh"`` or ``"xywh"``.
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]``: one value per pair of boxes; a scalar for ``"sum"``/``"mean"``.

  Matches ``torchvision.ops.generalized_box_iou_loss`` (for ``"xyxy"``; the
  other formats are converted as ``torchvision.ops.box_convert`` does).

  >>> import jax.numpy as jnp, numpy as np, jaxloss
  >>> a = jnp.array([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
  >>> b = jnp.array([[1.0, 1.0, 3.0, 3.0], [2.0, 2.0, 3.0, 3.0]])
  >>> print(np.round(np.asarray(jaxloss.generalized_box_iou_loss(a, b)), 4))
  [1.0794 1.7778]

  References:
    Rezatofighi, Tsoi, Gwak, Sadeghian, Reid and Savarese, `Generalized
    Intersection over Union: A Metric and A Loss for Bounding Box Regression
    <https://arxiv.org/abs/1902.09630>`_, 2019.
  """
  boxes1, boxes2, eps = _boxes(boxes1, boxes2, eps, box_format)
  values = _box_values(boxes1, boxes2, eps, "giou", box_format)
  return reduce(values, reduction, weights=weights, where=where)


@loss(boxes1=_valid_boxes, boxes2=_valid_boxes)
def distance_box_iou_loss(
  boxes1: ArrayLike,
  boxes2: ArrayLike,
  *,
  eps: ArrayLike = 1e-7,
  box_format: BoxFormat = "xyxy",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Distance IoU loss: the IoU loss plus the squared distance of the box
  centres over the squared diagonal of the enclosing box.

  .. math::
    \ell = 1 - \frac{|A \cap B|}{|A \cup B| + \varepsilon}
         + \frac{\lVert c_A - c_B \rVert^2}{d_C^2 + \varepsilon}

  with :math:`c` the box centres and :math:`d_C` the diagonal of the
  smallest box enclosing both.

  Args:
    boxes1: ``[..., 4]`` floating boxes (e.g. predictions).
    boxes2: ``[..., 4]`` boxes paired with ``boxes1`` (e.g. targets), same
      shape.
    eps: small number added to the denominators (may be traced).
    box_format: ``"xyxy"`` (default), ``"cxcywh"`` or ``"xywh"``.
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]``: one value per pair of boxes; a scalar for ``"sum"``/``"mean"``.

  Matches ``torchvision.ops.distance_box_iou_loss`` (for ``"xyxy"``).

  >>> import jax.numpy as jnp, numpy as np, jaxloss
  >>> a = jnp.array([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
  >>> b = jnp.array([[1.0, 1.0, 3.0, 3.0], [2.0, 2.0, 3.0, 3.0]])
  >>> print(np.round(np.asarray(jaxloss.distance_box_iou_loss(a, b)), 4))
  [0.9683 1.4444]

  References:
    Zheng, Wang, Liu, Li, Ye and Ren, `Distance-IoU Loss: Faster and Better
    Learning for Bounding Box Regression <https://arxiv.org/abs/1911.08287>`_,
    2020.
  """
  boxes1, boxes2, eps = _boxes(boxes1, boxes2, eps, box_format)
  values = _box_values(boxes1, boxes2, eps, "diou", box_format)
  return reduce(values, reduction, weights=weights, where=where)


@loss(boxes1=_valid_boxes, boxes2=_valid_boxes)
def complete_box_iou_loss(
  boxes1: ArrayLike,
  boxes2: ArrayLike,
  *,
  eps: ArrayLike = 1e-7,
  box_format: BoxFormat = "xyxy",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Complete IoU loss: the distance IoU loss plus an aspect-ratio term.

  .. math::
    \ell = \ell_\text{DIoU} + \alpha v, \qquad
    v = \frac{4}{\pi^2}\Big(\arctan\frac{w_B}{h_B}
                            - \arctan\frac{w_A}{h_A}\Big)^2, \qquad
    \alpha = \operatorname{sg}\Big[\frac{v}{1 - \mathrm{IoU} + v
                                            + \varepsilon}\Big]

  :math:`\alpha` carries no gradient (torchvision computes it under
  ``no_grad``; ``sg`` is ``jax.lax.stop_gradient``).

  Args:
    boxes1: ``[..., 4]`` floating boxes (e.g. predictions).
    boxes2: ``[..., 4]`` boxes paired with ``boxes1`` (e.g. targets), same
      shape.
    eps: small number added to the denominators (may be traced).
    box_format: ``"xyxy"`` (default), ``"cxcywh"`` or ``"xywh"``.
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]``: one value per pair of boxes; a scalar for ``"sum"``/``"mean"``.

  Matches ``torchvision.ops.complete_box_iou_loss`` (for ``"xyxy"``), with
  two differences: the angle is ``atan2`` (equal to ``atan(w / h)`` for
  ``h != 0``; ``π/2`` at ``h = 0 < w`` as ``atan(inf)``; 0 for a point box,
  where torchvision gives NaN, and finite gradients where ``h = 0``, where
  torchvision's are NaN); and ``eps`` is used in every denominator
  (torchvision's DIoU part always uses ``1e-7``, so the two agree at the
  default ``eps``).

  >>> import jax.numpy as jnp, numpy as np, jaxloss
  >>> a = jnp.array([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
  >>> b = jnp.array([[1.0, 1.0, 3.0, 3.0], [2.0, 2.0, 3.0, 4.0]])
  >>> print(np.round(np.asarray(jaxloss.complete_box_iou_loss(a, b)), 4))
  [0.9683 1.4117]

  References:
    Zheng, Wang, Liu, Li, Ye and Ren, `Distance-IoU Loss: Faster and Better
    Learning for Bounding Box Regression <https://arxiv.org/abs/1911.08287>`_,
    2020.
  """
  boxes1, boxes2, eps = _boxes(boxes1, boxes2, eps, box_format)
  values = _box_values(boxes1, boxes2, eps, "ciou", box_format)
  return reduce(values, reduction, weights=weights, where=where)
