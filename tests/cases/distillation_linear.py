"""Registry entry for jaxloss.distillation's linear_distillation_loss.

One case, the fused path (chunks of 6 tokens over ``[batch, 3]`` tokens:
three for the harness's batch of 6, one short chunk per example under
``vmap``; a chunk that does not divide the tokens is tested in
tests/test_distillation_linear.py, and costs a second compiled chunk body
here; ``"mean"``/``"sum"`` take the gradients in the forward pass,
``"none"``/``"batchmean"`` recompute them): its dense path
(``chunk_size=None``, or ``"auto"`` on small problems) is
:func:`jaxloss.generalized_jsd_loss` of the two matmuls, covered by that
loss's cases. The teacher's hidden states and weight carry no gradient
(stopped), so they are left out of ``float_args``; the teacher is wider
than the student.
"""

import numpy as np

from jaxloss.distillation.linear import linear_distillation_loss
from jaxloss.testing import LossCase
from tests.cases import _inputs as I

T, D_S, D_T, V, CHUNK = 3, 4, 6, 11, 6


def _inputs(rng, n):
  """The harness reads the per-example shape from a call with ``kwargs``:
  ``reduction="none"`` there, since this loss defaults to ``"mean"``."""
  args = (
    I.logits(rng, n, T, D_S, scale=1.0),
    I.logits(rng, D_S, V, scale=1.0),
    I.logits(rng, n, T, D_T, scale=1.0),
    I.logits(rng, D_T, V, scale=1.0),
  )
  return args, dict(
    beta=0.3, temperature=1.5, chunk_size=CHUNK, reduction="none"
  )


def _teacher_a_token_short(inputs):
  (hs, ws, ht, wt), kwargs = inputs
  return (hs, ws, ht[:, :-1], wt), kwargs


def _edges():
  """Logits of ±1e4 for both models (ties, and teacher and student peaked
  on different entries), with ``beta`` 0.5, 0 and 1 (trl's branches,
  separate programs). The all-masked batch is a property of its own."""
  kwargs = dict(chunk_size=CHUNK, reduction="none")
  w_s = np.zeros((D_S, V), I.F32)
  w_s[0] = np.where(np.arange(V) % 2 == 0, 1.0, -1.0)
  w_t = np.zeros((D_T, V), I.F32)
  w_t[0] = np.where(np.arange(V) % 3 == 0, 1.0, -1.0)
  w_t[1, 3] = 1.0
  h_s = np.zeros((4, T, D_S), I.F32)
  h_s[..., 0] = 1e4 * np.array([1, -1, 1], I.F32)
  h_t = np.zeros((4, T, D_T), I.F32)
  h_t[..., 0] = -1e4
  h_t[..., 1] = 1e4
  inputs = (h_s, w_s, h_t, w_t)
  return [(inputs, dict(kwargs, beta=beta)) for beta in (0.5, 0.0, 1.0)]


CASES = [
  LossCase(
    linear_distillation_loss,
    _inputs,
    name="linear_distillation_loss[chunk]",
    float_args=(0, 1),
    batch_args=(0, 2),
    wrong_shape=_teacher_a_token_short,
    edge_inputs=_edges,
    reductions=("none", "sum", "mean", "batchmean"),
    grad_modes=("rev",),
    # The logits hidden @ weight overflow float32 at 1e19 per input (as
    # linear_cross_entropy's: entries up to 1e15).
    max_magnitude=1e15,
  ),
]
