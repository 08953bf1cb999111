"""Registry entries for jaxloss.segmentation: tiny channel-last images
(``[batch, 3, 3, classes]``) with one-hot targets."""

import numpy as np

import jaxloss as jl
from jaxloss.testing import LossCase
from tests.cases import _inputs as I

H = W = 3
C = 3


def _one_hot(labels, num_classes=C):
  return np.eye(num_classes, dtype=I.F32)[labels]


def _images(num_classes=C, probabilities=False, spatial=(H, W)):
  """``(rng, n) -> ((predictions, targets), {})`` with one-hot targets."""

  def make(rng, n):
    targets = _one_hot(
      rng.integers(0, num_classes, (n,) + spatial), num_classes
    )
    if probabilities:
      predictions = I.distributions(rng, n, *spatial, num_classes)
    else:
      predictions = I.logits(rng, n, *spatial, num_classes)
    return (predictions, targets), {}

  return make


def _binary(rng, n):
  return (I.logits(rng, n, H, W), I.binary(rng, n, H, W)), {}


def _with(make, **kwargs):
  def inputs(rng, n):
    args, base = make(rng, n)
    return args, {**base, **kwargs}

  return inputs


def _edge_targets(n):
  """Image 0 lacks the last class, image 1 is all class 0, the others mix."""
  labels = np.arange(n * H * W).reshape(n, H, W) % C
  labels[0] %= C - 1
  labels[1] = 0
  return _one_hot(labels)


def _edges(probabilities=False, binary=False, **kwargs):
  """±1e4 logits (right and wrong) or probabilities of exactly 0 and 1, an
  empty target class, and an image whose pixels are all ignored (image 2),
  at the harness's batch size and with a pixel mask, so that the compiled
  programs are those of the ``where`` properties."""

  def edges(n=6):
    if binary:  # image 1 has no foreground
      targets = _edge_targets(n)[..., 1]
    else:
      targets = _edge_targets(n)
    ignore_image = np.ones(targets.shape[:3], bool)
    ignore_image[2] = False
    kw = {**kwargs, "where": ignore_image}
    if probabilities:
      wrong = 1 - targets if binary else np.roll(targets, 1, axis=-1)
      return [((targets.copy(), targets), kw), ((wrong, targets), kw)]
    return [
      (((2 * targets - 1) * 1e4, targets), kw),
      ((I.extreme_logits(*targets.shape), targets), kw),
    ]

  return edges


def _case(fn, make=None, name=None, edges=None, magnitude_args=None, **kwargs):
  return LossCase(
    fn,
    _with(make or _images(), **kwargs),
    name=name,
    edge_inputs=edges or _edges(**kwargs),
    magnitude_args=magnitude_args,
  )


def dice_loss(predictions, targets, *, reduction="none", **kwargs):
  """``jl.dice_loss`` under the contract's names: its own ``reduction`` is
  optax's reduction of the classes; the contract's is ``batch_reduction``."""
  return jl.dice_loss(predictions, targets, batch_reduction=reduction, **kwargs)


CASES = [
  _case(dice_loss),
  LossCase(jl.binary_dice_loss, _binary, edge_inputs=_edges(binary=True)),
  _case(jl.multiclass_generalized_dice_loss),
  # The options shared by the overlap losses are spread over the cases
  # (one code path): probabilities, smooth=0 and one spatial axis here;
  # per-class output, V-Net's denominator and class weights below.
  _case(
    jl.jaccard_loss,
    _images(probabilities=True, spatial=(4,)),
    name="jaccard_loss[probabilities,smooth=0,1-d]",
    edges=_edges(probabilities=True, apply_softmax=False, smooth=0.0),
    magnitude_args=(),  # probabilities and one-hot targets: bounded
    apply_softmax=False,
    smooth=0.0,
  ),
  _case(
    jl.tversky_loss,
    name="tversky_loss[class_reduction=none,...]",
    class_reduction="none",
    squared_denominator=True,
    ignore_background=True,
    class_weights=np.array([0.5, 1.0, 2.0], I.F32),
  ),
  _case(jl.focal_tversky_loss),
  _case(jl.combo_loss),
  _case(jl.lovasz_softmax_loss),
  # per_image=False: one value for the whole batch, not per image.
  LossCase(
    jl.lovasz_softmax_loss,
    _with(_images(), per_image=False, classes="all"),
    name="lovasz_softmax_loss[batch,all]",
    per_example=False,
    edge_inputs=_edges(per_image=False, classes="all"),
  ),
]
