"""Value tests for grpo_loss's loss types and kl_estimate.

References, independent of jaxloss:

* ``grpo_loss``: trl 1.16's own ``GRPOTrainer._compute_loss``
  (trl/trainer/grpo_trainer.py), CALLED in float64 torch on a minimal stand-in
  for the trainer (``_trl_loss`` below): its model call
  ``_get_per_token_logps_and_entropies`` returns the test's log-probabilities
  (a leaf tensor, so torch autograd gives trl's gradient), evaluation mode
  (no gradient-accumulation normaliser), one process, no vLLM, no entropy or
  off-policy masks. ``"vespo"`` runs trl's ``get_gamma_weights`` inside it.
* ``kl_estimate``: Schulman 2020, "Approximating KL Divergence"
  (http://joschu.net/blog/kl-approx.html): ``k1 = −log r``, ``k2 = ½ (log
  r)²``, ``k3 = (r − 1) − log r`` with ``r = π_ref(x) / π(x)``, written in
  float64 NumPy with their derivatives by hand; and, as the blog does, a
  Monte Carlo check against the exact KL of two categorical distributions.

The shared properties (jit, vmap, where ≡ slicing, bf16, edge cases, …) run
over tests/cases/preference.py in tests/test_properties.py.
"""

import collections
import os
import types

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from trl.trainer.grpo_trainer import GRPOTrainer

import jaxloss as jl
from jaxloss.testing import assert_close

F64_TOL = dict(rtol=1e-10, atol=1e-12)


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


# --------------------------------------------------------------------------- #
# trl 1.16's GRPOTrainer._compute_loss, called


def _trl_loss(logp, old, ref, adv, mask, loss_type, **options):
  """``GRPOTrainer._compute_loss`` (trl 1.16, trainer/grpo_trainer.py) on a
  stand-in ``self`` with the config values of ``options`` (trl's names and
  defaults); returns ``(loss, d loss / d logp)`` in float64."""
  config = dict(
    importance_sampling_level="token",
    epsilon=0.2,
    epsilon_high=None,
    delta=None,
    beta=0.0,
    use_bias_correction_kl=False,
    max_completion_length=None,
    sapo_temperature_pos=1.0,
    sapo_temperature_neg=1.05,
    vespo_k_pos=2.0,
    vespo_lambda_pos=3.0,
    vespo_k_neg=3.0,
    vespo_lambda_neg=2.0,
  )
  unknown = set(options) - set(config)
  assert not unknown, unknown
  config.update(options)
  args = types.SimpleNamespace(steps_per_generation=1, **config)
  per_token_logps = torch.tensor(logp, dtype=torch.float64, requires_grad=True)
  # One process: gather and reduce are the identity.
  accelerator = types.SimpleNamespace(
    num_processes=1,
    gather=lambda x: x,
    gather_for_metrics=lambda x: x,
    reduce=lambda x, reduction: x,
  )
  trainer = types.SimpleNamespace(
    _get_per_token_logps_and_entropies=lambda *a, **k: (
      per_token_logps,
      torch.zeros_like(per_token_logps),
      None,
    ),
    get_gamma_weights=GRPOTrainer.get_gamma_weights,
    args=args,
    loss_type=loss_type,
    importance_sampling_level=config["importance_sampling_level"],
    beta=config["beta"],
    epsilon_low=config["epsilon"],
    # GRPOTrainer.__init__: `args.epsilon_high or args.epsilon`.
    epsilon_high=config["epsilon"]
    if config["epsilon_high"] is None
    else config["epsilon_high"],
    max_completion_length=config["max_completion_length"],
    top_entropy_quantile=1.0,
    off_policy_mask_threshold=None,
    use_vllm=False,
    aux_loss_enabled=False,
    _entropy_bonus_enabled=False,
    model=types.SimpleNamespace(training=False),  # eval: no accumulation
    current_gradient_accumulation_steps=1,
    accelerator=accelerator,
    _metrics=collections.defaultdict(lambda: collections.defaultdict(list)),
  )
  n, t = logp.shape
  completion_mask = torch.tensor(mask, dtype=torch.float64)
  inputs = dict(
    prompt_ids=torch.zeros((n, 1), dtype=torch.long),
    prompt_mask=torch.ones((n, 1), dtype=torch.long),
    completion_ids=torch.zeros((n, t), dtype=torch.long),
    completion_mask=completion_mask,
    advantages=torch.tensor(adv, dtype=torch.float64),
    # one process, one accumulation step: the batch's active tokens
    num_items_in_batch=completion_mask.sum(),
  )
  if old is not None:
    inputs["old_per_token_logps"] = torch.tensor(old, dtype=torch.float64)
  if ref is not None:
    inputs["ref_per_token_logps"] = torch.tensor(ref, dtype=torch.float64)
  loss = GRPOTrainer._compute_loss(trainer, None, inputs)
  loss.backward()
  return loss.item(), per_token_logps.grad.numpy()


def _inputs(seed, n=6, t=5):
  """Ratios on both sides of the clip range, advantages of both signs, a
  completion without tokens (row 5), garbage in the padding."""
  rng = np.random.default_rng(seed)
  logp = -rng.uniform(0.05, 3.0, size=(n, t))
  old = logp + rng.normal(scale=0.4, size=(n, t))
  ref = logp + rng.normal(scale=0.5, size=(n, t))
  adv = rng.normal(size=n)
  lengths = np.array([5, 3, 1, 4, 2, 0, 5, 3])[:n]
  mask = np.arange(t)[None, :] < lengths[:, None]
  garbage = np.where(mask, 0.0, 7.0)
  return logp + garbage, old + garbage, ref + garbage, adv, mask


# (loss_type, jaxloss options; trl takes the same names).
# trl builds sapo's temperatures with torch.where(cond, float, float): a
# float32 tensor even for float64 inputs, so the temperatures here are exact
# in float32 (trl's default 1.05 is not: it would differ by ~1e-8).
SETTINGS = [
  ("grpo", {}),
  ("grpo", dict(epsilon=0.1, epsilon_high=0.28, delta=1.3)),
  ("grpo", dict(importance_sampling_level="sequence")),  # GSPO
  ("bnpo", dict(epsilon_high=0.28)),
  ("dr_grpo", dict(max_completion_length=8)),
  ("dapo", dict(epsilon_high=0.28, delta=1.5)),
  ("dapo", dict(importance_sampling_level="sequence")),
  ("cispo", dict(epsilon_high=1.2)),
  ("cispo", dict(epsilon_high=1.1, importance_sampling_level="sequence")),
  ("sapo", dict(sapo_temperature_pos=1.0, sapo_temperature_neg=1.25)),
  ("luspo", dict(importance_sampling_level="sequence")),
  ("luspo", {}),
  ("vespo", {}),
  ("vespo", dict(vespo_k_pos=1.5, vespo_lambda_pos=0.5, vespo_k_neg=0.75)),
]
KL = [None, dict(beta=0.05), dict(beta=0.05, use_bias_correction_kl=True)]


def _per_completion_from_trl(loss_type, trl_single, count):
  """What ``"none"`` holds for one completion, from trl's loss on a batch
  of that completion alone: that loss itself ("grpo"/"sapo": its token mean;
  "dr_grpo": its token sum over max_completion_length; "luspo": its token
  sum), times its token count for the token-mean types (their token sum)."""
  if loss_type in ("bnpo", "dapo", "cispo", "vespo"):
    return trl_single * count
  return trl_single


def test_grpo_loss_types_match_trl(x64):
  """Every loss type (with options and with the KL penalty, plain and
  bias-corrected): "mean" is trl's loss, its gradient trl's (torch
  autograd); with the bias-corrected KL, each "none" value is trl's loss of
  that completion alone (times its token count for the token-mean types)
  and "sum" is their sum."""
  logp, old, ref, adv, mask = _inputs(0)
  ratio = np.exp(logp - old)[mask]
  assert np.any(ratio < 0.8) and np.any(ratio > 1.5)
  counts = mask.sum(1)
  for (loss_type, options), kl in [(s, k) for s in SETTINGS for k in KL]:
    kl = kl or {}
    what = f"{loss_type} {options} {kl}"
    refs = ref if kl else None
    want, want_grad = _trl_loss(
      logp, old, refs, adv, mask, loss_type, **options, **kl
    )

    def loss(x, reduction, options=options, kl=kl, refs=refs):
      return jl.grpo_loss(
        x,
        old,
        adv,
        mask,
        refs,
        loss_type=loss_type,
        reduction=reduction,
        **options,
        **kl,
      )

    got, grad = jax.value_and_grad(loss)(logp, "mean")
    assert_close(got, want, **F64_TOL, what=what)
    assert_close(grad, want_grad, **F64_TOL, what=what + " gradient")
    assert not np.any(grad[~mask])
    if kl.get("use_bias_correction_kl") is not True:
      continue  # "none" and "sum": once per setting, with the full KL term
    none = loss(logp, "none")
    single = [
      _trl_loss(
        *(x[i : i + 1] for x in (logp, old)),
        None if refs is None else refs[i : i + 1],
        adv[i : i + 1],
        mask[i : i + 1],
        loss_type,
        **options,
        **kl,
      )[0]
      for i in range(len(adv))
    ]
    expected = [
      _per_completion_from_trl(loss_type, s, c) for s, c in zip(single, counts)
    ]
    assert_close(none, expected, **F64_TOL, what=what + " none")
    assert_close(loss(logp, "sum"), np.sum(expected), **F64_TOL, what=what)


def test_grpo_where_drops_completions_and_weights(x64):
  """A completion-shaped where is trl on the kept completions; a
  token-shaped where is a completion mask; weights weigh completions (and,
  for the token-mean types, their tokens)."""
  logp, old, ref, adv, mask = _inputs(1)
  keep = np.array([True, False, True, True, False, True])
  w = np.array([0.5, 2.0, 1.0, 3.0, 1.5, 0.25])
  for loss_type, options in [
    ("grpo", {}),
    ("dr_grpo", dict(max_completion_length=8)),
    ("dapo", {}),
    ("cispo", dict(epsilon_high=1.2)),
    ("luspo", dict(importance_sampling_level="sequence")),
  ]:
    call = lambda *a, **k: jl.grpo_loss(
      *a, loss_type=loss_type, beta=0.05, reduction="mean", **options, **k
    )
    want, _ = _trl_loss(
      logp[keep],
      old[keep],
      ref[keep],
      adv[keep],
      mask[keep],
      loss_type,
      beta=0.05,
      **options,
    )
    assert_close(call(logp, old, adv, mask, ref, where=keep), want, **F64_TOL)
    # A token-shaped where is a completion mask (rows without tokens stay:
    # "grpo" counts them as 0).
    want, _ = _trl_loss(
      logp,
      old,
      ref,
      adv,
      mask & keep[:, None],
      loss_type,
      **options,
      beta=0.05,
    )
    assert_close(
      call(logp, old, adv, None, ref, where=mask & keep[:, None]),
      want,
      **F64_TOL,
    )
    # Weights: the weighted mean of the "none" values (by tokens for the
    # token-mean types).
    none = jl.grpo_loss(
      logp, old, adv, mask, ref, loss_type=loss_type, beta=0.05, **options
    )
    denominator = w * mask.sum(1) if loss_type in ("dapo", "cispo") else w
    assert_close(
      call(logp, old, adv, mask, ref, weights=w),
      np.sum(w * none) / np.sum(denominator),
      **F64_TOL,
    )


def test_grpo_token_averaging_is_dapo_and_default_leaves_empty_out(x64):
  logp, old, ref, adv, mask = _inputs(2)
  for reduction in ("none", "sum", "mean"):
    assert_close(
      jl.grpo_loss(
        logp, old, adv, mask, ref, token_averaging="token", reduction=reduction
      ),
      jl.grpo_loss(
        logp, old, adv, mask, ref, loss_type="dapo", reduction=reduction
      ),
      **F64_TOL,
    )
  # The default (loss_type=None) is "grpo" but for the mean over completions:
  # row 5 (no tokens) is left out, not counted as 0.
  legacy = jl.grpo_loss(logp, old, adv, mask, ref)
  assert_close(
    legacy, jl.grpo_loss(logp, old, adv, mask, ref, loss_type="grpo")
  )
  has = mask.any(1)
  assert not has.all()
  assert_close(
    jl.grpo_loss(logp, old, adv, mask, ref, reduction="mean"),
    legacy[has].mean(),
    **F64_TOL,
  )
  assert_close(
    jl.grpo_loss(logp, old, adv, mask, ref, loss_type="grpo", reduction="mean"),
    legacy.mean(),
    **F64_TOL,
  )


def test_grpo_all_masked_is_zero_not_nan(x64):
  logp, old, ref, adv, mask = _inputs(3)
  none = np.zeros_like(mask)
  options = {
    None: {},
    "grpo": dict(importance_sampling_level="sequence"),
    "bnpo": {},
    "dr_grpo": dict(max_completion_length=4),
    "dapo": {},
    "cispo": dict(epsilon_high=2.0, importance_sampling_level="sequence"),
    "sapo": {},
    "luspo": dict(importance_sampling_level="sequence"),
    "vespo": {},
  }
  for loss_type, extra in options.items():
    for reduction in ("none", "sum", "mean"):
      f = lambda x, r=reduction, t=loss_type, e=extra: jnp.sum(
        jl.grpo_loss(
          x,
          old,
          adv,
          none,
          ref,
          loss_type=t,
          use_bias_correction_kl=True,
          reduction=r,
          **e,
        )
      )
      value, grad = jax.value_and_grad(f)(logp)
      assert value == 0, (loss_type, reduction)
      assert not np.any(grad), (loss_type, reduction)
      assert np.all(np.isfinite(grad))


BAD_OPTIONS = [
  (dict(loss_type="ppo"), r"unknown loss_type='ppo'"),
  (dict(importance_sampling_level="batch"), r"unknown importance_sampling"),
  (dict(token_averaging="batch"), r"unknown token_averaging"),
  (dict(loss_type="grpo", token_averaging="token"), r"conflicts with"),
  (dict(loss_type="dapo", token_averaging="sequence"), r"conflicts with"),
  (dict(loss_type="cispo", epsilon_high=5.0, epsilon=0.1), r"`epsilon` is"),
  (dict(loss_type="cispo", epsilon_high=5.0, delta=2.0), r"`delta` is not"),
  (dict(loss_type="cispo"), r"needs `epsilon_high`"),
  (dict(loss_type="sapo", epsilon_high=0.28), r"`epsilon_high` is not"),
  (dict(loss_type="vespo", epsilon=0.3), r"`epsilon` is not used"),
  (dict(loss_type="grpo", sapo_temperature_pos=2.0), r"`sapo_temperature"),
  (dict(loss_type="dapo", vespo_k_pos=1.0), r"`vespo_k_pos` is not"),
  (dict(loss_type="grpo", max_completion_length=8), r"`max_completion_len"),
  (dict(loss_type="dr_grpo"), r"needs `max_completion_length`"),
  (dict(loss_type="vespo", importance_sampling_level="sequence"), r"vespo"),
  (dict(use_bias_correction_kl=True), r"needs `ref_log_probs`"),
  (dict(loss_type="dapo", delta=0.0), r"`delta` must be > 0"),
  (dict(loss_type="sapo", sapo_temperature_neg=-1.0), r"must be > 0"),
  (dict(loss_type="dr_grpo", max_completion_length=0), r"must be > 0"),
  (dict(loss_type="vespo", vespo_lambda_neg=-1.0), r"must be >= 0"),
]


@pytest.mark.parametrize("options,message", BAD_OPTIONS)
def test_grpo_bad_options(options, message):
  logp, old, _, adv, mask = _inputs(4)
  with pytest.raises(ValueError, match=r"grpo_loss: .*" + message):
    jl.grpo_loss(logp, old, adv, mask, **options)


# --------------------------------------------------------------------------- #
# kl_estimate


def _schulman(logp, ref, estimator):
  """Schulman 2020: with r = π_ref(x)/π(x), k1 = −log r, k2 = ½(log r)²,
  k3 = (r − 1) − log r; and each one's derivative with respect to log π(x)
  (d log r / d log π = −1)."""
  log_r = ref - logp
  r = np.exp(log_r)
  if estimator == "k1":
    return -log_r, np.ones_like(log_r)
  if estimator == "k2":
    return 0.5 * log_r**2, -log_r
  return (r - 1) - log_r, 1 - r


def test_kl_estimate_matches_schulman_and_trl_k3(x64):
  logp, _, ref, _, mask = _inputs(5)
  w = np.random.default_rng(5).uniform(0.5, 2.0, size=logp.shape)
  for estimator in ("k1", "k2", "k3"):
    want, d_want = _schulman(logp, ref, estimator)
    kl = lambda x, e=estimator, **k: jl.kl_estimate(x, ref, estimator=e, **k)
    assert_close(kl(logp), want, **F64_TOL)
    assert_close(kl(logp, reduction="sum", where=mask), want[mask].sum())
    mean, grad = jax.value_and_grad(
      lambda x: kl(x, where=mask, weights=w, reduction="mean")
    )(logp)
    assert_close(mean, np.sum((w * want)[mask]) / np.sum(w[mask]), **F64_TOL)
    assert_close(
      grad, np.where(mask, w * d_want, 0) / np.sum(w[mask]), **F64_TOL
    )
  # trl's per-token KL (GRPOTrainer._compute_loss) is k3: the KL part of
  # trl's loss is beta times the mean of k3.
  zeros = np.zeros(len(logp))
  trl_kl, _ = _trl_loss(logp, None, ref, zeros, mask, "bnpo", beta=1.0)
  assert_close(
    jl.kl_estimate(logp, ref, where=mask, reduction="mean"), trl_kl, **F64_TOL
  )


def test_kl_estimate_monte_carlo_and_huge_ratios():
  """Schulman's experiment: for x ~ π, k1 and k3 average to KL(π‖π_ref)
  (unbiased); k2 averages to E_π[½ log²(π/π_ref)], close to the KL only when
  the two are close (here 8% below it)."""
  rng = np.random.default_rng(6)
  p = np.array([0.5, 0.3, 0.15, 0.05])
  q = np.array([0.25, 0.25, 0.3, 0.2])
  exact = np.sum(p * np.log(p / q))
  x = rng.choice(4, size=200_000, p=p)
  logp, ref = np.log(p)[x].astype(np.float32), np.log(q)[x].astype(np.float32)
  k2_mean = np.sum(p * 0.5 * np.log(p / q) ** 2)
  for estimator, mean in (("k1", exact), ("k2", k2_mean), ("k3", exact)):
    k = np.asarray(jl.kl_estimate(logp, ref, estimator=estimator), np.float64)
    se = k.std() / np.sqrt(k.size)
    assert abs(k.mean() - mean) < 4 * se, estimator
  # exp(r) of r = 1e4 is bounded: finite value, finite gradient.
  value, grad = jax.value_and_grad(
    lambda x: jl.kl_estimate(x, jnp.zeros(2), reduction="sum")
  )(jnp.array([-1e4, -1.0]))
  assert np.isfinite(value) and np.all(np.isfinite(grad))


def test_kl_estimate_errors():
  with pytest.raises(ValueError, match=r"kl_estimate: unknown estimator"):
    jl.kl_estimate(np.zeros(3), np.zeros(3), estimator="k4")
  with pytest.raises(ValueError, match=r"kl_estimate: argument `ref_log_pr"):
    jl.kl_estimate(np.zeros(3), np.zeros(2))
