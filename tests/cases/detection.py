"""Registry entries for jaxloss.detection."""

import numpy as np

import jaxloss as jl
from jaxloss.testing import LossCase
from tests.cases import _inputs as I


def _xyxy(rng, n):
  """Valid boxes: corners in [0, 4), sides in [0.5, 3)."""
  corner = rng.uniform(0, 4, (n, 2))
  size = rng.uniform(0.5, 3, (n, 2))
  return np.concatenate([corner, corner + size], -1).astype(I.F32)


def _pairs(rng, n):
  return (_xyxy(rng, n), _xyxy(rng, n)), {}


def _same_aspect(rng, n):
  """Pairs whose boxes have the same aspect ratio, so CIoU's v is 0.

  CIoU's α is a stop-gradient (torchvision computes it under ``no_grad``), so
  its gradient is not the derivative of its value wherever v != 0, and
  ``check_grads`` would fail there; tests/test_detection.py checks the
  gradient against torchvision's (α held fixed) on general boxes.
  """
  first = _xyxy(rng, n)
  size = (first[:, 2:] - first[:, :2]) * rng.uniform(0.5, 2, (n, 1))
  corner = rng.uniform(0, 4, (n, 2))
  second = np.concatenate([corner, corner + size], -1).astype(I.F32)
  return (first, second), {}


def _to_format(boxes, box_format):
  xy, xy2 = boxes[:, :2], boxes[:, 2:]
  if box_format == "xywh":
    return np.concatenate([xy, xy2 - xy], -1)
  return np.concatenate([(xy + xy2) / 2, xy2 - xy], -1)  # cxcywh


def _formatted(make, box_format):
  def inputs(rng, n):
    (a, b), _ = make(rng, n)
    return (
      (
        _to_format(a, box_format).astype(I.F32),
        _to_format(b, box_format).astype(I.F32),
      ),
      {"box_format": box_format},
    )

  return inputs


def _edges():
  """Disjoint, identical, nested, touching, zero-width, zero-height and point
  boxes (alone and against themselves), and large coordinates."""
  a = np.array(
    [
      [0, 0, 1, 1],  # disjoint
      [0, 0, 2, 3],  # identical
      [0, 0, 4, 4],  # nested
      [0, 0, 1, 1],  # touching at an edge
      [1, 1, 1, 3],  # zero width
      [1, 1, 3, 1],  # zero height
      [2, 2, 2, 2],  # point
      [0, 0, 0, 0],  # point at the origin, against itself
      [1, 1, 3, 1],  # zero height, against itself
      [-1e4, -1e4, 1e4, 1e4],
    ],
    I.F32,
  )
  b = np.array(
    [
      [2, 2, 3, 3],
      [0, 0, 2, 3],
      [1, 1, 2, 2],
      [1, 0, 2, 1],
      [0, 0, 2, 2],
      [0, 0, 2, 2],
      [0, 0, 4, 4],
      [0, 0, 0, 0],
      [1, 1, 3, 1],
      [0, 0, 1e4, 1],
    ],
    I.F32,
  )
  return [((a, b), {}), ((b, a), {})]


def _formatted_edges(box_format):
  def edges():
    return [
      (
        (
          _to_format(a, box_format).astype(I.F32),
          _to_format(b, box_format).astype(I.F32),
        ),
        {"box_format": box_format},
      )
      for (a, b), _ in _edges()
    ]

  return edges


def _case(fn, make=_pairs, box_format=None):
  if box_format is None:
    return LossCase(fn, make, float_args=(0, 1), edge_inputs=_edges)
  return LossCase(
    fn,
    _formatted(make, box_format),
    name=f"{fn.__name__}[{box_format}]",
    float_args=(0, 1),
    edge_inputs=_formatted_edges(box_format),
  )


CASES = [
  _case(jl.box_iou_loss),
  _case(jl.generalized_box_iou_loss),
  _case(jl.distance_box_iou_loss),
  _case(jl.complete_box_iou_loss, _same_aspect),
  # The formats share one conversion to corners: one case, the other
  # format is checked in tests/test_detection.py.
  _case(jl.complete_box_iou_loss, _same_aspect, box_format="cxcywh"),
]
