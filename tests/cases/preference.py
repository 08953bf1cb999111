"""Registry entries for jaxloss.preference."""

import jax.numpy as jnp
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


def _grpo_loss_given_ratio(
  log_probs,
  log_ratio,
  advantages,
  completion_mask=None,
  ref_log_probs=None,
  **kwargs,
):
  """grpo_loss with ``old_log_probs = log_probs − log_ratio``: the ratio's
  value is the data ``log_ratio`` whatever ``log_probs`` is, so finite
  differences in ``log_probs`` agree with a loss that stops the ratio's
  gradient ("cispo", "vespo")."""
  old = jnp.asarray(log_probs) - jnp.asarray(log_ratio, jnp.float32)
  return jl.grpo_loss(
    log_probs, old, advantages, completion_mask, ref_log_probs, **kwargs
  )


_grpo_loss_given_ratio.__name__ = "grpo_loss"
# The loss's attributes (its value rules among them), not its signature.
vars(_grpo_loss_given_ratio).update(
  (k, v) for k, v in vars(jl.grpo_loss).items() if k != "__wrapped__"
)


def _given_ratio(make):
  """``make``'s inputs with the old log-probabilities as a log-ratio."""

  def given(rng, n):
    (log_probs, old, *rest), kwargs = make(rng, n)
    return (log_probs, (log_probs - old).astype(I.F32), *rest), kwargs

  return given


def _given_ratio_edges(edges):
  return lambda: [
    ((lp, (lp - old).astype(I.F32), *rest), kwargs)
    for (lp, old, *rest), kwargs in edges()
  ]


def _drop_last_advantage(inputs):
  args, kwargs = inputs
  return (*args[:2], np.asarray(args[2])[:-1], *args[3:]), kwargs


def _grpo_case(variant, kl=False, mean_of_none=True, **options):
  """A grpo_loss case of one loss type: the same options for the random and
  the edge inputs; "cispo" and "vespo" (ratio's gradient stopped) through
  :func:`_grpo_loss_given_ratio`."""
  make, edges = _grpo(kl, **options), _grpo_edges(kl, **options)
  fn = jl.grpo_loss
  extra = {}
  if options.get("loss_type") in ("cispo", "vespo"):
    fn, make, edges = (
      _grpo_loss_given_ratio,
      _given_ratio(make),
      _given_ratio_edges(edges),
    )
    # At 1e15 the wrapper's log_probs − (log_probs − log_ratio) cancels in
    # float32 (the float64 run keeps the ratio): no huge-magnitude check.
    extra = dict(wrong_shape=_drop_last_advantage, magnitude_args=())
  return LossCase(
    fn,
    make,
    name=f"grpo_loss[{variant}]",
    float_args=(0, 4) if kl else (0,),
    mean_of_none=mean_of_none,
    edge_inputs=edges,
    **extra,
  )


def _kl(estimator):
  def make(rng, n):
    return (_token_logps(rng, n, T), _token_logps(rng, n, T)), {
      "estimator": estimator
    }

  def edges():
    lp = np.array([[0.0, -1e4, 0.0, -1.0], [-1e4, -1e4, -3.0, 0.0]], I.F32)
    return [((lp, lp[::-1, ::-1].copy()), {"estimator": estimator})]

  return LossCase(
    jl.kl_estimate,
    make,
    name=f"kl_estimate[{estimator}]",
    float_args=(0, 1),
    edge_inputs=edges,
  )


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
  # trl 1.16's loss types (tests/test_preference_policy.py checks the values
  # against trl): one case per program ("bnpo" and "dapo" are the "token"
  # case above).
  _grpo_case(
    "grpo,gspo,delta,bias_kl",
    kl=True,
    loss_type="grpo",
    importance_sampling_level="sequence",
    delta=1.5,
    use_bias_correction_kl=True,
  ),
  _grpo_case("dr_grpo", loss_type="dr_grpo", max_completion_length=6),
  _grpo_case("cispo", mean_of_none=False, loss_type="cispo", epsilon_high=1.2),
  _grpo_case("sapo,kl", kl=True, loss_type="sapo"),
  _grpo_case(
    "luspo,gspo", loss_type="luspo", importance_sampling_level="sequence"
  ),
  _grpo_case("vespo", mean_of_none=False, loss_type="vespo"),
  _kl("k1"),
  _kl("k2"),
  _kl("k3"),
  LossCase(jl.simpo_loss, _pairs, float_args=(0, 1), edge_inputs=_pair_edges()),
  LossCase(
    jl.orpo_loss,
    lambda rng, n: _pairs(rng, n, beta=0.5),
    float_args=(0, 1),
    edge_inputs=_pair_edges(beta=0.5),
  ),
  *ISSUE_21_CASES,
]
