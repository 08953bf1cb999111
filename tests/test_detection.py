"""Value tests for jaxloss.detection.

Reference: torchvision.ops (0.15+: ``_loss_inter_union``,
``generalized_box_iou_loss``, ``_diou_iou_loss``/``distance_box_iou_loss``,
``complete_box_iou_loss``, ``box_convert``), written out in float64 NumPy with
torchvision's eps placement (torch is not a test dependency).
"""

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss as jl
from jaxloss.testing import assert_close
from tests.assertions import checked_rejects

F32, F64 = np.float32, np.float64
RTOL, ATOL = 1e-5, 1e-6
LOSSES = {
  "iou": jl.box_iou_loss,
  "giou": jl.generalized_box_iou_loss,
  "diou": jl.distance_box_iou_loss,
  "ciou": jl.complete_box_iou_loss,
}


# --------------------------------------------------------------------------- #
# float64 NumPy references (torchvision.ops)


def tv_inter_union(b1, b2):
  """torchvision.ops._utils._loss_inter_union: the intersection is set only
  where both of its sides are > 0; union = area1 + area2 - intersection."""
  x1, y1, x2, y2 = np.moveaxis(np.asarray(b1, F64), -1, 0)
  x1g, y1g, x2g, y2g = np.moveaxis(np.asarray(b2, F64), -1, 0)
  xk1, yk1 = np.maximum(x1, x1g), np.maximum(y1, y1g)
  xk2, yk2 = np.minimum(x2, x2g), np.minimum(y2, y2g)
  mask = (yk2 > yk1) & (xk2 > xk1)
  inter = np.where(mask, (xk2 - xk1) * (yk2 - yk1), 0.0)
  union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - inter
  return inter, union


def tv_iou_loss(b1, b2, eps=1e-7):
  """1 - inter / (union + eps): the IoU term of torchvision's box losses."""
  inter, union = tv_inter_union(b1, b2)
  return 1 - inter / (union + eps)


def tv_giou_loss(b1, b2, eps=1e-7):
  """torchvision.ops.generalized_box_iou_loss(reduction="none"):
  iou = inter / (union + eps); 1 - (iou - (area_c - union) / (area_c + eps))."""
  inter, union = tv_inter_union(b1, b2)
  iou = inter / (union + eps)
  x1, y1, x2, y2 = np.moveaxis(np.asarray(b1, F64), -1, 0)
  x1g, y1g, x2g, y2g = np.moveaxis(np.asarray(b2, F64), -1, 0)
  area_c = (np.maximum(x2, x2g) - np.minimum(x1, x1g)) * (
    np.maximum(y2, y2g) - np.minimum(y1, y1g)
  )
  return 1 - (iou - (area_c - union) / (area_c + eps))


def tv_diou_iou_loss(b1, b2, eps=1e-7):
  """torchvision.ops.diou_loss._diou_iou_loss: (1 - iou + d² / (c² + eps),
  iou), with c² = the enclosing box's squared diagonal (eps added to it)."""
  inter, union = tv_inter_union(b1, b2)
  iou = inter / (union + eps)
  x1, y1, x2, y2 = np.moveaxis(np.asarray(b1, F64), -1, 0)
  x1g, y1g, x2g, y2g = np.moveaxis(np.asarray(b2, F64), -1, 0)
  diag = (
    (np.maximum(x2, x2g) - np.minimum(x1, x1g)) ** 2
    + (np.maximum(y2, y2g) - np.minimum(y1, y1g)) ** 2
    + eps
  )
  dist = ((x2 + x1) / 2 - (x1g + x2g) / 2) ** 2 + (
    (y2 + y1) / 2 - (y1g + y2g) / 2
  ) ** 2
  return 1 - iou + dist / diag, iou


def tv_ciou_parts(b1, b2, eps=1e-7, diou_eps=1e-7):
  """torchvision.ops.complete_box_iou_loss(reduction="none") as
  (diou_loss, alpha, v): _diou_iou_loss is called without eps (so 1e-7);
  v = 4/π² (atan(w_gt/h_gt) - atan(w/h))²; alpha = v / (1 - iou + v + eps)
  under no_grad; loss = diou_loss + alpha v."""
  diou, iou = tv_diou_iou_loss(b1, b2, diou_eps)
  b1, b2 = np.asarray(b1, F64), np.asarray(b2, F64)
  w, h = b1[..., 2] - b1[..., 0], b1[..., 3] - b1[..., 1]
  wg, hg = b2[..., 2] - b2[..., 0], b2[..., 3] - b2[..., 1]
  with np.errstate(divide="ignore", invalid="ignore"):
    v = (4 / np.pi**2) * (np.arctan(wg / hg) - np.arctan(w / h)) ** 2
  alpha = v / (1 - iou + v + eps)
  return diou, alpha, v


def tv_ciou_loss(b1, b2, eps=1e-7, diou_eps=1e-7):
  diou, alpha, v = tv_ciou_parts(b1, b2, eps, diou_eps)
  return diou + alpha * v


REFERENCES = {
  "iou": tv_iou_loss,
  "giou": tv_giou_loss,
  "diou": lambda a, b, eps=1e-7: tv_diou_iou_loss(a, b, eps)[0],
  "ciou": tv_ciou_loss,
}


def tv_box_convert_to_xyxy(boxes, in_fmt):
  """torchvision.ops.box_convert(boxes, in_fmt, "xyxy")."""
  b = np.asarray(boxes, F64)
  if in_fmt == "xywh":
    return np.concatenate([b[..., :2], b[..., :2] + b[..., 2:]], -1)
  return np.concatenate(
    [b[..., :2] - 0.5 * b[..., 2:], b[..., :2] + 0.5 * b[..., 2:]], -1
  )


# --------------------------------------------------------------------------- #
# inputs


def random_boxes(seed, *shape):
  rng = np.random.default_rng(seed)
  corner = rng.uniform(-2, 4, shape + (2,))
  size = rng.uniform(0.1, 3, shape + (2,))
  return np.concatenate([corner, corner + size], -1).astype(F32)


def special_pairs():
  """Disjoint, nested, touching, partly overlapping, identical boxes."""
  a = np.array(
    [
      [0, 0, 1, 1],
      [0, 0, 4, 4],
      [0, 0, 1, 1],
      [0, 0, 2, 2],
      [1, 2, 3, 5],
      [0, 0, 1, 1],
    ],
    F32,
  )
  b = np.array(
    [
      [2, 3, 3, 5],
      [1, 1, 2, 3],
      [1, 0, 2, 1],
      [1, 1, 3, 3],
      [1, 2, 3, 5],
      [5, 0, 6, 1],
    ],
    F32,
  )
  return a, b


# --------------------------------------------------------------------------- #
# values


@pytest.mark.parametrize("kind", LOSSES)
def test_matches_torchvision(kind):
  fn, ref = LOSSES[kind], REFERENCES[kind]
  a = np.concatenate([random_boxes(0, 20), special_pairs()[0]])
  b = np.concatenate([random_boxes(1, 20), special_pairs()[1]])
  out = fn(a, b)
  assert out.dtype == jnp.float32 and out.shape == (26,)
  assert_close(out, ref(a, b), RTOL, ATOL)
  assert_close(fn(a, b, reduction="mean"), ref(a, b).mean(), RTOL, ATOL)
  with jax.enable_x64(True):
    out = fn(a.astype(F64), b.astype(F64))
    assert out.dtype == jnp.float64
    assert_close(out, ref(a, b), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", LOSSES)
@pytest.mark.parametrize("scale", [1e15, 1e19, 1e30])
def test_huge_boxes_match_torchvision_float64(kind, scale):
  """Issue 19: areas and squared diagonals of 1e19-sized boxes overflowed
  float32 (GIoU gave -inf though it lies in [0, 2), the others NaN or a
  wrong value); both boxes scaled, and only the second one scaled. float32
  against the float64 NumPy transcription of torchvision."""
  fn, ref = LOSSES[kind], REFERENCES[kind]
  a = np.concatenate([random_boxes(4, 12), special_pairs()[0]])
  b = np.concatenate([random_boxes(5, 12), special_pairs()[1]])
  for big_a, big_b in [(a * scale, b * scale), (a, b * scale)]:
    big_a, big_b = F32(big_a), F32(big_b)
    out = np.asarray(fn(big_a, big_b))
    assert np.all(np.isfinite(out))
    assert_close(out, ref(big_a, big_b), 1e-5, 1e-5)
    if kind == "giou":
      assert np.all((out >= 0) & (out < 2))


@pytest.mark.parametrize("kind", ["iou", "giou", "diou"])
def test_eps_placement(kind):
  """A large eps shows where it is added."""
  a, b = random_boxes(2, 8), random_boxes(3, 8)
  with jax.enable_x64(True):
    assert_close(
      LOSSES[kind](a.astype(F64), b.astype(F64), eps=0.5),
      REFERENCES[kind](a, b, eps=0.5),
      rtol=1e-12,
      atol=1e-12,
    )


def test_ciou_eps_is_used_everywhere():
  """torchvision's CIoU uses eps only in alpha (its DIoU part always 1e-7);
  jaxloss uses it everywhere, and agrees with torchvision at the default."""
  a, b = random_boxes(4, 8), random_boxes(5, 8)
  with jax.enable_x64(True):
    a64, b64 = a.astype(F64), b.astype(F64)
    assert_close(
      jl.complete_box_iou_loss(a64, b64, eps=0.5),
      tv_ciou_loss(a, b, eps=0.5, diou_eps=0.5),
      rtol=1e-12,
      atol=1e-12,
    )
    assert_close(
      jl.complete_box_iou_loss(a64, b64),
      tv_ciou_loss(a, b),
      rtol=1e-12,
      atol=1e-12,
    )


@pytest.mark.parametrize("box_format", ["cxcywh", "xywh"])
@pytest.mark.parametrize("kind", LOSSES)
def test_box_formats(kind, box_format):
  rng = np.random.default_rng(6)
  a = np.concatenate(
    [rng.uniform(0, 4, (8, 2)), rng.uniform(0.1, 3, (8, 2))], -1
  ).astype(F32)
  b = np.concatenate(
    [rng.uniform(0, 4, (8, 2)), rng.uniform(0.1, 3, (8, 2))], -1
  ).astype(F32)
  expected = REFERENCES[kind](
    tv_box_convert_to_xyxy(a, box_format), tv_box_convert_to_xyxy(b, box_format)
  )
  assert_close(LOSSES[kind](a, b, box_format=box_format), expected, RTOL, ATOL)


@pytest.mark.parametrize("kind", LOSSES)
def test_batch_shapes(kind):
  """Any leading shape: [4] gives a scalar, [2, 3, 4] gives [2, 3]."""
  fn, ref = LOSSES[kind], REFERENCES[kind]
  a, b = random_boxes(7, 2, 3), random_boxes(8, 2, 3)
  assert_close(fn(a, b), ref(a, b), RTOL, ATOL)
  assert fn(a[0, 0], b[0, 0]).shape == ()
  assert_close(fn(a[0, 0], b[0, 0]), ref(a[0, 0], b[0, 0]), RTOL, ATOL)


def test_ciou_gradient_holds_alpha_fixed():
  """The CIoU gradient is torchvision's: α is a constant (no_grad). Compared
  with central differences of the reference with α frozen at the point."""
  # Disjoint and overlapping pairs; no ties between coordinates (a kink).
  a = np.concatenate([random_boxes(9, 6), special_pairs()[0][[0, 3]]])
  b = np.concatenate([random_boxes(10, 6), special_pairs()[1][[0, 3]]])
  _, alpha, _ = tv_ciou_parts(a, b)

  def frozen(x):
    diou, _, v = tv_ciou_parts(x, b)
    return np.sum(diou + alpha * v)

  step = 1e-6
  expected = np.zeros(a.shape)
  for idx in np.ndindex(a.shape):
    up, down = a.astype(F64), a.astype(F64)
    up[idx] += step
    down[idx] -= step
    expected[idx] = (frozen(up) - frozen(down)) / (2 * step)
  with jax.enable_x64(True):
    grad = jax.grad(
      lambda x: jl.complete_box_iou_loss(x, b.astype(F64), reduction="sum")
    )(a.astype(F64))
  assert_close(grad, expected, rtol=1e-6, atol=1e-7)


def test_degenerate_boxes():
  """Zero-area boxes: IoU 0 (even against themselves), finite values and
  gradients; a zero-height box's CIoU angle is π/2, torchvision's value."""
  a = np.array([[1, 1, 1, 3], [1, 1, 3, 1], [2, 2, 2, 2], [0, 0, 0, 0]], F32)
  b = np.array([[0, 0, 2, 2], [0, 0, 2, 2], [2, 2, 2, 2], [0, 0, 0, 0]], F32)
  assert_close(jl.box_iou_loss(a, b), [1, 1, 1, 1], RTOL, ATOL)
  assert_close(
    jl.generalized_box_iou_loss(a, b), tv_giou_loss(a, b), RTOL, ATOL
  )
  assert_close(
    jl.distance_box_iou_loss(a, b), REFERENCES["diou"](a, b), RTOL, ATOL
  )
  # torchvision's CIoU is finite for h = 0 < w (atan(inf) = π/2) and NaN for
  # a point box; jaxloss takes the angle of a point box to be 0.
  ciou = np.asarray(jl.complete_box_iou_loss(a, b))
  assert_close(ciou[:2], tv_ciou_loss(a[:2], b[:2]), RTOL, ATOL)
  assert np.isnan(tv_ciou_loss(a[2:3], b[2:3])).all()
  assert_close(ciou[2:], [1, 1], RTOL, ATOL)
  for fn in LOSSES.values():
    grads = jax.grad(lambda x, y: jnp.sum(fn(x, y)), argnums=(0, 1))(a, b)
    assert all(np.isfinite(g).all() for g in grads)


def test_ciou_tiny_boxes_have_finite_gradients():
  a = np.array([[0, 0, 1e-30, 1e-30], [0, 0, 1e-20, 0]], F32)
  b = np.array([[0, 0, 1, 2], [0, 0, 1e-20, 1e-20]], F32)
  grads = jax.grad(
    lambda x, y: jnp.sum(jl.complete_box_iou_loss(x, y)), argnums=(0, 1)
  )(a, b)
  assert all(np.isfinite(g).all() for g in grads)


@hypothesis.settings(max_examples=15, deadline=None, derandomize=True)
@hypothesis.given(seed=st.integers(0, 2**16))
def test_symmetric_and_bounded(seed):
  """All four losses are symmetric in the two boxes; IoU in [0, 1], GIoU and
  DIoU in [0, 2), CIoU >= 0."""
  a, b = random_boxes(seed, 5), random_boxes(seed + 1, 5)
  for kind, fn in LOSSES.items():
    ab, ba = np.asarray(fn(a, b)), np.asarray(fn(b, a))
    assert_close(ab, ba, RTOL, ATOL)
    assert (ab >= -1e-6).all()
    if kind != "ciou":
      assert (ab <= 2).all()


def test_identical_boxes_give_zero():
  a = random_boxes(11, 5)
  for fn in LOSSES.values():
    assert_close(fn(a, a), np.zeros(5), rtol=RTOL, atol=1e-6)


# --------------------------------------------------------------------------- #
# errors


@pytest.mark.parametrize("name", sorted(fn.__name__ for fn in LOSSES.values()))
def test_errors_name_the_loss_and_argument(name):
  fn = getattr(jl, name)
  a = random_boxes(0, 3)
  with pytest.raises(ValueError, match=f"{name}.*\\[..., 4\\]"):
    fn(a[:, :3], a[:, :3])
  with pytest.raises(ValueError, match=f"{name}.*same shape"):
    fn(a, a[:2])
  with pytest.raises(TypeError, match=f"{name}.*boxes1"):
    fn(a.astype(np.int32), a)
  with pytest.raises(ValueError, match=f"{name}.*box_format.*'xyxy'"):
    fn(a, a, box_format="yxyx")
  with pytest.raises(ValueError, match=f"{name}.*eps"):
    fn(a, a, eps=-1.0)
  with pytest.raises(ValueError, match=f"{name}.*reduction"):
    fn(a, a, reduction="avg")


def test_checked_rejects_inverted_boxes():
  a = random_boxes(0, 3)
  bad = a[:, [2, 1, 0, 3]]  # x2 < x1
  jl.checked(jl.generalized_box_iou_loss)(a, a)
  checked_rejects(
    jl.generalized_box_iou_loss,
    a,
    bad,
    arg="boxes2",
    what=r"must hold boxes of non-negative width and height \(xyxy\)",
  )
  cxcywh = np.concatenate([a[:, :2], -np.ones((3, 2), F32)], -1)
  checked_rejects(
    jl.box_iou_loss,
    cxcywh,
    cxcywh,
    arg="boxes1",
    what=r"must hold boxes .*\(cxcywh\)",
    box_format="cxcywh",
  )
