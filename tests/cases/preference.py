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
]
