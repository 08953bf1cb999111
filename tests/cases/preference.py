"""Registry entries for jaxloss.preference."""

import numpy as np

import jaxloss as jl
from jaxloss.testing import LossCase
from tests.cases import _inputs as I

HELPERS = {"dpo_implicit_rewards", "group_normalized_advantages"}

T, T2 = 4, 5  # token lengths (chosen / completions, rejected)


def _sequence_logps(rng, *shape):
  return -rng.uniform(5.0, 30.0, size=shape).astype(I.F32)


def _dpo(**kwargs):
  def make(rng, n):
    return tuple(_sequence_logps(rng, n) for _ in range(4)), kwargs

  return make


def _dpo_edges(**kwargs):
  def edges():
    zeros = np.zeros(4, I.F32)
    far = np.array([0.0, -1e4, -1e4, 0.0], I.F32)
    return [
      ((zeros, zeros, zeros, zeros), kwargs),  # z = 0, log-probs of 0
      ((far, -1e4 - far, far, -1e4 - far), kwargs),
      ((far, -1e4 - far, -1e4 - far, far), kwargs),
    ]

  return edges


def _token_logps(rng, *shape):
  return -rng.uniform(0.05, 3.0, size=shape).astype(I.F32)


def _token_mask(rng, n, t, dtype=bool):
  """Right-padded masks with at least one token per row."""
  lengths = rng.integers(1, t + 1, size=n)
  return (np.arange(t)[None, :] < lengths[:, None]).astype(dtype)


def _pairs(rng, n, **kwargs):
  return (
    _token_logps(rng, n, T),
    _token_logps(rng, n, T2),
    _token_mask(rng, n, T),
    _token_mask(rng, n, T2, np.int32),
  ), kwargs


def _pair_edges(**kwargs):
  """Log-probabilities of exactly 0 (probability 1) and -1e4, and pairs with
  an empty completion."""

  def edges():
    chosen = np.array(
      [
        [0.0, 0.0, 0.0, 0.0],
        [-1e4, -1e4, 0.0, 0.0],
        [0.0, -1e4, 0.0, 0.0],
        [-1.0, -2.0, -3.0, -4.0],
      ],
      I.F32,
    )
    rejected = np.array(
      [[-1e4] * T2, [0.0] * T2, [0.0] * T2, [-1.0] * T2], I.F32
    )
    chosen_mask = np.array(
      [[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], bool
    )
    rejected_mask = np.array([[1] * T2, [1] * T2, [0] * T2, [1] * T2], bool)
    return [
      ((chosen, rejected, chosen_mask, rejected_mask), kwargs),
      ((chosen, rejected), kwargs),
    ]

  return edges


def _grpo(kl=False, **kwargs):
  def make(rng, n):
    log_probs = _token_logps(rng, n, T)
    old = (log_probs + rng.normal(scale=0.3, size=(n, T))).astype(I.F32)
    args = (
      log_probs,
      old,
      rng.normal(size=n).astype(I.F32),
      _token_mask(rng, n, T),
    )
    if kl:
      args += ((log_probs + rng.normal(scale=0.5, size=(n, T))).astype(I.F32),)
    return args, kwargs

  return make


def _grpo_edges(kl=False, **kwargs):
  """Ratios of exp(±1e4), a completion without tokens, zero advantages."""

  def edges():
    log_probs = np.array([[0.0, -1e4, 0.0, -1.0]] * 3, I.F32)
    old = np.array([[-1e4, 0.0, 0.0, -1.0]] * 3, I.F32)
    advantages = np.array([1.0, -1.0, 0.0], I.F32)
    mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]], bool)
    args = (log_probs, old, advantages, mask)
    if kl:
      args += (old[:, ::-1].copy(),)
    return [(args, kwargs)]

  return edges


def _dpo_case(variant, **options):
  """A dpo_loss case: all four log-probabilities differentiated, the same
  options for the random and the edge inputs."""
  return LossCase(
    jl.dpo_loss,
    _dpo(**options),
    name=f"dpo_loss[{variant}]",
    float_args=(0, 1, 2, 3),
    edge_inputs=_dpo_edges(**options),
  )


# --------------------------------------------------------------------------- #
# Issue 21 (H3): dpo_loss's other trl loss types, kto_loss, cpo_loss. One case
# per type that is its own program; option validation is a plain-call test in
# tests/test_preference.py. "aot"/"aot_unpaired" sort the batch and refuse
# `weights`: per_example=False skips the checks that pass weights, and
# tests/test_preference.py runs the where/all-masked/empty-batch properties
# on them by hand. kto_loss's KL log-probabilities (2, 3) are inputs but not
# differentiated: their gradient is stopped (finite differences would see
# the reference point move). "apo_zero_unpaired" takes None for them, which
# the vmap check cannot stack: tested by hand.


def _aot_case(loss_type):
  return LossCase(
    jl.dpo_loss,
    _dpo(loss_type=loss_type, label_smoothing=0.1),
    name=f"dpo_loss[{loss_type}]",
    float_args=(0, 1, 2, 3),
    edge_inputs=_dpo_edges(loss_type=loss_type, label_smoothing=0.1),
    per_example=False,
  )


AOT_CASES = [_aot_case("aot"), _aot_case("aot_unpaired")]


def _kto(rng, n):
  logps = tuple(_sequence_logps(rng, n) for _ in range(4))
  desirable = rng.random(n) < 0.5
  return logps + (desirable,), dict(beta=0.2, undesirable_weight=1.5)


def _kto_edges():
  zeros = np.zeros(4, I.F32)
  far = np.array([0.0, -1e4, -1e4, 0.0], I.F32)
  desirable = np.array([True, False, True, False])
  return [
    ((zeros, zeros, zeros, zeros, desirable), {}),
    ((far, -1e4 - far, far, -1e4 - far, desirable), {}),
    ((far, -1e4 - far, -1e4 - far, far, ~desirable), {}),
  ]


def _cpo(**kwargs):
  def make(rng, n):
    return (_sequence_logps(rng, n), _sequence_logps(rng, n)), kwargs

  return make


def _cpo_edges(**kwargs):
  def edges():
    zeros = np.zeros(4, I.F32)
    far = np.array([0.0, -300.0, -1e-3, -300.0], I.F32)
    return [((zeros, zeros), kwargs), ((far, far[::-1].copy()), kwargs)]

  return edges


ISSUE_21_CASES = [
  _dpo_case("exo_pair", loss_type="exo_pair", label_smoothing=1e-3),
  _dpo_case("nca_pair", loss_type="nca_pair"),
  _dpo_case("bco_pair", loss_type="bco_pair"),
  _dpo_case("sppo_hard", loss_type="sppo_hard", beta=0.5),
  _dpo_case("apo_zero", loss_type="apo_zero"),
  _dpo_case("apo_down", loss_type="apo_down"),
  _dpo_case("discopop", loss_type="discopop", discopop_tau=0.1),
  _dpo_case(
    "sigmoid_norm",
    loss_type="sigmoid_norm",
    chosen_lengths=7,
    rejected_lengths=3,
  ),
  *AOT_CASES,
  LossCase(
    jl.kto_loss,
    _kto,
    float_args=(0, 1),
    edge_inputs=_kto_edges,
  ),
  LossCase(
    jl.cpo_loss,
    _cpo(label_smoothing=0.1, chosen_nll=0.7, cpo_alpha=0.5),
    name="cpo_loss[sigmoid,nll]",
    float_args=(0, 1),
    edge_inputs=_cpo_edges(label_smoothing=0.1),
  ),
  # AlphaPO overflows where -alpha·logp > 88.7 (float32): 354 for alpha 1/4.
  LossCase(
    jl.cpo_loss,
    _cpo(loss_type="simpo", simpo_gamma=0.3, alpha=0.25),
    name="cpo_loss[simpo,alphapo]",
    float_args=(0, 1),
    edge_inputs=_cpo_edges(loss_type="simpo", alpha=0.25),
    max_magnitude=350.0,
  ),
]

CASES = [
  _dpo_case("sigmoid,cdpo", label_smoothing=0.1),
  _dpo_case("hinge", loss_type="hinge", beta=0.2),
  _dpo_case("ipo", loss_type="ipo", beta=0.5),
  _dpo_case("robust", loss_type="robust", label_smoothing=0.2),
  LossCase(
    jl.grpo_loss, _grpo(), name="grpo_loss[sequence]", edge_inputs=_grpo_edges()
  ),
  # "token" weights each completion by its token count: "mean" is not the
  # mean of the "none" values (token sums).
  LossCase(
    jl.grpo_loss,
    _grpo(kl=True, token_averaging="token", epsilon_high=0.28, beta=0.1),
    name="grpo_loss[token,kl,clip_higher]",
    float_args=(0, 4),
    mean_of_none=False,
    edge_inputs=_grpo_edges(kl=True, token_averaging="token"),
  ),
  LossCase(jl.simpo_loss, _pairs, float_args=(0, 1), edge_inputs=_pair_edges()),
  LossCase(
    jl.orpo_loss,
    lambda rng, n: _pairs(rng, n, beta=0.5),
    float_args=(0, 1),
    edge_inputs=_pair_edges(beta=0.5),
  ),
  *ISSUE_21_CASES,
]
