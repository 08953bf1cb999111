"""Reference tests for jaxloss.distillation (float64, eager, small shapes).

References:
* ``generalized_jsd_loss``: trl 1.16's own
  ``trl.experimental.gkd.GKDTrainer.generalized_jsd_loss``, called with
  torch float64 tensors (values, and gradients by torch autograd).
* ``kd_loss``: Hinton et al. 2015 written out in float64 NumPy, and torch's
  ``F.kl_div(..., log_target=True)`` times T² (autograd for the gradient).
* ``skew_kl_loss``: DistiLLM's definitions (Ko et al. 2024, section 3.1) in
  float64 NumPy with ``scipy.special.rel_entr``, and the authors' code
  (github jongwooko/distillm, distillm/losses.py ``skewed_forward_kl``,
  ``skewed_reverse_kl``) transcribed to torch float64 below.
* ``total_variation_distance``: ½ Σ |p_s − p_t| in float64 NumPy / torch.
* ``sparse_kd_loss``: its definition in float64 NumPy / torch.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.special import log_softmax, rel_entr, softmax

import jaxloss as jl
from jaxloss.testing import assert_close
from tests.assertions import checked_rejects

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
from trl.experimental.gkd import GKDTrainer

RTOL = 1e-10  # float64
B, T, V = 3, 4, 7
LABELS = np.array(
  [[1, 2, -100, 3], [-100, -100, 4, 5], [6, 0, 1, -100]], np.int64
)  # trl's labels: -100 marks padding


def _logits(seed, *shape, scale=2.0):
  return scale * np.random.default_rng(seed).normal(size=shape)


def _grad(fn, x, **kwargs):
  """jax.grad of the summed loss with respect to the student's logits."""
  return jax.grad(lambda s: jnp.sum(fn(s, **kwargs)))(x)


def _torch_grad(fn, student, *args, **kwargs):
  """(value, d value / d student) by torch autograd, float64."""
  s = torch.tensor(student, dtype=torch.float64, requires_grad=True)
  value = fn(s, *args, **kwargs)
  value.sum().backward()
  return value.detach().numpy(), s.grad.numpy()


def _t(x):
  return torch.tensor(np.asarray(x), dtype=torch.float64)


# --------------------------------------------------------------------------- #
# generalized_jsd_loss against trl 1.16


def _trl_jsd(student, teacher, **kwargs):
  return GKDTrainer.generalized_jsd_loss(student, _t(teacher), **kwargs)


@pytest.mark.parametrize("temperature", [1.0, 1.7])
def test_generalized_jsd_loss_matches_trl(temperature):
  """Values per token and gradients of trl's "batchmean with labels" for
  beta 0, 0.1, 0.5 and 1 (trl's two branches and the mixture), and trl's
  other reductions mapped to the library's."""
  s, t = _logits(0, B, T, V), _logits(1, B, T, V, scale=3.0)
  where = LABELS != -100
  with jax.enable_x64(True):
    for beta in (0.0, 0.1, 0.5, 1.0):
      kw = {"beta": beta, "temperature": temperature}
      ours = jl.generalized_jsd_loss(s, t, **kw)
      want = _trl_jsd(_t(s), t, reduction="none", **kw).numpy().sum(-1)
      assert_close(ours, want, rtol=RTOL, atol=0, what=f"beta={beta}")
      # trl's "batchmean" with labels: mean over the labelled tokens.
      value, grad = _torch_grad(
        _trl_jsd, s, t, labels=torch.tensor(LABELS), reduction="batchmean", **kw
      )

      def mean(x, kw=kw):
        return jl.generalized_jsd_loss(
          x, t, where=where, reduction="mean", **kw
        )

      assert_close(mean(s), value, rtol=RTOL, atol=0, what=f"beta={beta}")
      assert_close(jax.grad(mean)(jnp.asarray(s)), grad, rtol=RTOL, atol=1e-15)
      # trl's reductions without labels.
      for theirs, reduction, scale in (
        ("batchmean", "batchmean", 1),  # / B: axis 0 of [B, T] values
        ("sum", "sum", 1),
        ("mean", "mean", 1 / V),  # trl averages over the vocabulary too
      ):
        want = _trl_jsd(_t(s), t, reduction=theirs, **kw).numpy()
        got = scale * jl.generalized_jsd_loss(s, t, reduction=reduction, **kw)
        assert_close(got, want, rtol=RTOL, atol=0, what=f"{theirs} {beta}")


def test_generalized_jsd_loss_masked_teacher():
  """-inf teacher logits (a masked vocabulary): finite values and gradients
  for beta < 1, equal to trl at a teacher logit of -1e3 (its probability
  underflows to exactly 0 in float64 too, where trl is finite) and to a
  float64 ``rel_entr`` reference; trl itself gives NaN at -inf for beta < 1;
  beta = 1 is +inf, as in trl."""
  s, t = _logits(2, B, V), _logits(3, B, V, scale=3.0)
  masked, low = t.copy(), t.copy()
  masked[:, ::3], low[:, ::3] = -np.inf, -1e3
  p_s, p_t = softmax(s, -1), softmax(masked, -1)
  with jax.enable_x64(True):
    for beta in (0.0, 0.1, 0.5):
      ours = jl.generalized_jsd_loss(s, masked, beta=beta)
      grad = _grad(
        jl.generalized_jsd_loss,
        jnp.asarray(s),
        teacher_logits=masked,
        beta=beta,
      )
      want, want_grad = _torch_grad(
        _trl_jsd, s, low, beta=beta, reduction="sum"
      )
      assert_close(jnp.sum(ours), want, rtol=RTOL, atol=0)
      assert_close(grad, want_grad, rtol=RTOL, atol=1e-15)
      if beta == 0:
        ref = rel_entr(p_t, p_s).sum(-1)
      else:
        m = (1 - beta) * p_s + beta * p_t
        ref = beta * rel_entr(p_t, m).sum(-1) + (1 - beta) * rel_entr(
          p_s, m
        ).sum(-1)
      assert_close(ours, ref, rtol=1e-9, atol=1e-15, what=f"beta={beta}")
      nan = _trl_jsd(_t(s), masked, beta=beta, reduction="none").sum(-1)
      assert torch.isnan(nan).all(), "trl is NaN at -inf for beta < 1"
    ours = jl.generalized_jsd_loss(s, masked, beta=1.0)
    theirs = _trl_jsd(_t(s), masked, beta=1.0, reduction="none").sum(-1)
    assert np.all(np.isposinf(ours)) and torch.isposinf(theirs).all()


# --------------------------------------------------------------------------- #
# kd_loss


def numpy_kd(student, teacher, temperature):
  """Hinton et al. 2015: T² KL(softmax(t/T) ‖ softmax(s/T)), float64."""
  log_s = log_softmax(student / temperature, -1)
  log_t = log_softmax(teacher / temperature, -1)
  terms = np.where(
    np.isneginf(log_t), 0, np.exp(log_t) * (log_t - log_s)
  )  # 0 log 0 = 0
  return temperature**2 * terms.sum(-1)


def torch_kd(student, teacher, temperature):
  """torch's F.kl_div(log_softmax(s/T), log_softmax(t/T), log_target=True,
  reduction='sum') * T², per token (the sum over the vocabulary)."""
  return (
    F.kl_div(
      F.log_softmax(student / temperature, -1),
      F.log_softmax(_t(teacher) / temperature, -1),
      log_target=True,
      reduction="none",
    ).sum(-1)
    * temperature**2
  )


def test_kd_loss_matches_hinton_and_torch():
  s, t = _logits(4, B, T, V), _logits(5, B, T, V, scale=3.0)
  with jax.enable_x64(True):
    for temperature in (1.0, 2.5):
      ours = jl.kd_loss(s, t, temperature=temperature)
      assert_close(ours, numpy_kd(s, t, temperature), rtol=RTOL, atol=0)
      want, grad = _torch_grad(torch_kd, s, t, temperature)
      assert_close(ours, want, rtol=RTOL, atol=0)
      assert_close(
        _grad(
          jl.kd_loss, jnp.asarray(s), teacher_logits=t, temperature=temperature
        ),
        grad,
        rtol=RTOL,
        atol=1e-15,
      )
      total = (
        F.kl_div(
          F.log_softmax(_t(s) / temperature, -1),
          F.log_softmax(_t(t) / temperature, -1),
          log_target=True,
          reduction="sum",
        )
        * temperature**2
      )
      assert_close(
        jl.kd_loss(s, t, temperature=temperature, reduction="sum"),
        total.numpy(),
        rtol=RTOL,
        atol=0,
      )
    # beta = 0 of the generalized JSD is the forward KL: kd_loss / T².
    assert_close(
      jl.kd_loss(s, t, temperature=2.0) / 4,
      jl.generalized_jsd_loss(s, t, beta=0.0, temperature=2.0),
      rtol=RTOL,
      atol=0,
    )


# --------------------------------------------------------------------------- #
# skew_kl_loss


def numpy_skew_kl(student, teacher, alpha, reverse):
  """Ko et al. 2024, section 3.1: SKL = KL(p ‖ α p + (1 − α) q_θ) and
  SRKL = KL(q_θ ‖ (1 − α) p + α q_θ), p the teacher, q_θ the student."""
  p, q = softmax(teacher, -1), softmax(student, -1)
  if reverse:
    return rel_entr(q, (1 - alpha) * p + alpha * q).sum(-1)
  return rel_entr(p, alpha * p + (1 - alpha) * q).sum(-1)


def distillm_skewed_forward_kl(logits, teacher_logits, label, lam=0.1):
  """github jongwooko/distillm, distillm/losses.py ``skewed_forward_kl``
  (commit 17c0f98), line for line with float64 for float32."""
  teacher_probs = F.softmax(teacher_logits, dim=-1, dtype=torch.float64)
  student_probs = F.softmax(logits, dim=-1, dtype=torch.float64)
  mixed_probs = lam * teacher_probs + (1 - lam) * student_probs
  mixed_logprobs = torch.log(mixed_probs)
  mask = (label != -100).int()
  inf_mask = torch.isinf(logits) | torch.isinf(teacher_logits)
  prod_probs = torch.masked_fill(teacher_probs * mixed_logprobs, inf_mask, 0)
  x = torch.sum(prod_probs, dim=-1).view(-1)
  return -torch.sum(x * mask.view(-1), dim=0) / torch.sum(mask.view(-1), dim=0)


def distillm_skewed_reverse_kl(logits, teacher_logits, label, lam=0.1):
  """github jongwooko/distillm, distillm/losses.py ``skewed_reverse_kl``
  (commit 17c0f98), line for line with float64 for float32."""
  teacher_probs = F.softmax(teacher_logits, dim=-1, dtype=torch.float64)
  student_probs = F.softmax(logits, dim=-1, dtype=torch.float64)
  mixed_probs = (1 - lam) * teacher_probs + lam * student_probs
  student_logprobs = F.log_softmax(logits, dim=-1, dtype=torch.float64)
  mixed_logprobs = torch.log(mixed_probs)
  mask = (label != -100).int()
  inf_mask = torch.isinf(logits) | torch.isinf(teacher_logits)
  prod_probs = torch.masked_fill(student_probs * mixed_logprobs, inf_mask, 0)
  prod_probs -= torch.masked_fill(student_probs * student_logprobs, inf_mask, 0)
  x = torch.sum(prod_probs, dim=-1).view(-1)
  return -torch.sum(x * mask.view(-1), dim=0) / torch.sum(mask.view(-1), dim=0)


def test_skew_kl_loss_matches_the_paper_and_distillm():
  """The paper's definitions (values, alpha 0, 0.1, 0.5, 1, both
  directions); DistiLLM's code: its skewed_forward_kl is our skew KL plus the
  teacher's entropy (the documented difference: same gradient), its
  skewed_reverse_kl our skew reverse KL, both as reduction="mean" with
  where=labels != -100."""
  s, t = _logits(6, B, T, V), _logits(7, B, T, V, scale=3.0)
  where = LABELS != -100
  p_t = softmax(t, -1)
  entropy = -(p_t * np.log(p_t)).sum(-1)
  label = torch.tensor(LABELS)
  with jax.enable_x64(True):
    for reverse in (False, True):
      for alpha in (0.0, 0.1, 0.5, 1.0):
        ours = jl.skew_kl_loss(s, t, alpha=alpha, reverse=reverse)
        want = numpy_skew_kl(s, t, alpha, reverse)
        assert_close(ours, want, rtol=1e-9, atol=1e-15, what=f"{alpha}")
      code = (
        distillm_skewed_reverse_kl if reverse else distillm_skewed_forward_kl
      )
      value, grad = _torch_grad(code, s, _t(t), label, lam=0.1)

      def mean(x, reverse=reverse):
        return jl.skew_kl_loss(
          x, t, alpha=0.1, reverse=reverse, where=where, reduction="mean"
        )

      offset = 0 if reverse else entropy[where].mean()
      assert_close(mean(s) + offset, value, rtol=RTOL, atol=0)
      assert_close(jax.grad(mean)(jnp.asarray(s)), grad, rtol=1e-9, atol=1e-15)
    # A temperature divides both logits first (no T² factor).
    assert_close(
      jl.skew_kl_loss(s, t, alpha=0.1, temperature=2.0),
      numpy_skew_kl(s / 2, t / 2, 0.1, False),
      rtol=1e-9,
      atol=0,
    )


# --------------------------------------------------------------------------- #
# total_variation_distance


def test_total_variation_distance():
  """½ Σ |p_s − p_t| (values, torch autograd gradients); at p_s = p_t the
  gradient is 0 (the sign(x) subgradient at 0, torch's convention too)."""
  s, t = _logits(8, B, T, V), _logits(9, B, T, V, scale=3.0)

  def torch_tvd(student, teacher, temperature):
    p_s = F.softmax(student / temperature, -1)
    p_t = F.softmax(_t(teacher) / temperature, -1)
    return 0.5 * (p_s - p_t).abs().sum(-1)

  with jax.enable_x64(True):
    for temperature in (1.0, 3.0):
      ours = jl.total_variation_distance(s, t, temperature=temperature)
      ref = 0.5 * np.abs(
        softmax(s / temperature, -1) - softmax(t / temperature, -1)
      ).sum(-1)
      assert_close(ours, ref, rtol=RTOL, atol=0)
      value, grad = _torch_grad(torch_tvd, s, t, temperature)
      assert_close(ours, value, rtol=RTOL, atol=0)
      got = _grad(
        jl.total_variation_distance,
        jnp.asarray(s),
        teacher_logits=t,
        temperature=temperature,
      )
      assert_close(got, grad, rtol=RTOL, atol=1e-15)
    same = jl.total_variation_distance(s, s)
    assert_close(same, np.zeros((B, T)), rtol=0, atol=0)
    grad = _grad(jl.total_variation_distance, jnp.asarray(s), teacher_logits=s)
    assert np.all(np.asarray(grad) == 0)


# --------------------------------------------------------------------------- #
# sparse_kd_loss


def numpy_sparse_kd(student, indices, teacher_log_probs, temperature):
  """T² Σ_j p̃_j (log p̃_j − log softmax(s/T)[i_j]), p̃ the teacher
  renormalised over its top-k (empty -inf slots give 0)."""
  log_s = log_softmax(student / temperature, -1)
  picked = np.take_along_axis(log_s, indices, -1)
  finite = np.isfinite(teacher_log_probs)
  p = np.where(finite, np.exp(teacher_log_probs), 0)
  total = p.sum(-1, keepdims=True)
  p = p / np.where(total > 0, total, 1)
  terms = np.where(p > 0, p * (np.log(np.where(p > 0, p, 1)) - picked), 0)
  return temperature**2 * terms.sum(-1)


def _top_k(seed, k, temperature=1.0):
  """A teacher's top-k indices and log-probabilities at ``temperature``."""
  teacher = _logits(seed, B, T, V, scale=3.0)
  log_p = log_softmax(teacher / temperature, -1)
  indices = np.argsort(-log_p, -1)[..., :k]
  return teacher, indices, np.take_along_axis(log_p, indices, -1)


def test_sparse_kd_loss_matches_its_definition():
  s = _logits(10, B, T, V)
  with jax.enable_x64(True):
    for temperature in (1.0, 2.0):
      _, indices, log_p = _top_k(11, 3, temperature)
      log_p[0, 0, -1] = -np.inf  # fewer than k tokens kept
      ours = jl.sparse_kd_loss(s, indices, log_p, temperature=temperature)
      want = numpy_sparse_kd(s, indices, log_p, temperature)
      assert_close(ours, want, rtol=RTOL, atol=0)

      def torch_sparse(student, temperature=temperature):
        picked = torch.gather(
          F.log_softmax(student / temperature, -1), -1, torch.tensor(indices)
        )
        p = torch.softmax(_t(log_p), -1)  # renormalised over the top-k
        terms = torch.where(p > 0, p * (torch.log(p) - picked), 0.0)
        return temperature**2 * terms.sum(-1)

      value, grad = _torch_grad(torch_sparse, s)
      assert_close(ours, value, rtol=RTOL, atol=0)
      got = jax.grad(
        lambda x: jnp.sum(
          jl.sparse_kd_loss(x, indices, log_p, temperature=temperature)
        )
      )(jnp.asarray(s))
      assert_close(got, grad, rtol=RTOL, atol=1e-15)
      # The whole vocabulary as the "top-k": kd_loss.
      teacher, indices, log_p = _top_k(12, V, temperature)
      assert_close(
        jl.sparse_kd_loss(s, indices, log_p, temperature=temperature),
        jl.kd_loss(s, teacher, temperature=temperature),
        rtol=1e-9,
        atol=1e-15,
      )


def test_sparse_kd_loss_empty_slots_duplicates_and_bad_indices():
  """Empty (-inf) slots give 0 and finite gradients and may repeat an index;
  a duplicate index among kept slots, or an index outside [0, V), makes its
  token NaN (loud), dropped with finite gradients when masked out, and
  jaxloss.checked reports the bad index."""
  s = _logits(13, 4, V)
  indices = np.array([[0, 1, 2], [0, 1, 1], [0, 3, 3], [0, 1, V]], np.int32)
  log_p = np.log(np.array([[0.5, 0.2, 0.1]] * 4))
  log_p[2, 1:] = -np.inf  # index 3 twice, in empty slots: allowed
  log_p[0] = -np.inf  # nothing kept: 0
  values = np.asarray(jl.sparse_kd_loss(s, indices, log_p))
  assert values[0] == 0
  assert np.isnan(values[1]) and np.isnan(values[3])  # duplicate, index V
  assert_close(
    values[2], numpy_sparse_kd(s[2:3], indices[2:3], log_p[2:3], 1.0), rtol=1e-6
  )
  where = np.array([True, False, True, False])
  loss = lambda x: jl.sparse_kd_loss(
    x, indices, log_p, where=where, reduction="mean"
  )
  assert np.isfinite(float(loss(s)))
  assert np.all(np.isfinite(np.asarray(jax.grad(loss)(jnp.asarray(s)))))
  # checked rejects every inf in a float argument, the -inf of an empty
  # slot included: finite log-probabilities here.
  finite = np.log(np.array([[0.5, 0.2, 0.1]] * 4))
  checked_rejects(
    jl.sparse_kd_loss,
    s,
    indices,
    finite,
    arg="teacher_top_indices",
    what=r"must hold class indices in \[0, 7\); found 7",
  )


# --------------------------------------------------------------------------- #
# every loss: traced temperature, stopped teacher, options


DENSE = [
  (jl.kd_loss, {}),
  (jl.generalized_jsd_loss, {"beta": 0.3}),
  (jl.skew_kl_loss, {"alpha": 0.2, "reverse": True}),
  (jl.total_variation_distance, {}),
]


def test_traced_temperature_and_stopped_teacher():
  """A temperature traced under jit gives the eager values; the teacher's
  logits (and top-k log-probabilities) get a zero gradient."""
  s, t = _logits(14, B, V), _logits(15, B, V, scale=3.0)
  _, indices, log_p = _top_k(16, 3, 1.5)
  calls = [(fn, (t,), kw) for fn, kw in DENSE]
  calls.append((jl.sparse_kd_loss, (indices[:, 0], log_p[:, 0]), {}))
  for fn, rest, kw in calls:
    eager = fn(s, *rest, temperature=1.5, **kw)
    jitted = jax.jit(
      lambda s, temp, fn=fn, rest=rest, kw=kw: fn(
        s, *rest, temperature=temp, **kw
      )
    )(s, 1.5)
    assert_close(jitted, eager, rtol=1e-6, atol=1e-7, what=fn.__name__)
    teacher = rest[-1]
    zero = jax.grad(
      lambda x, fn=fn, rest=rest, kw=kw: jnp.sum(
        fn(s, *rest[:-1], x, temperature=1.5, **kw)
      )
    )(jnp.asarray(teacher, jnp.float32))
    assert np.all(np.asarray(zero) == 0), fn.__name__


@pytest.mark.parametrize(
  "fn, kwargs, error, match",
  [
    (jl.generalized_jsd_loss, {"beta": 1.5}, ValueError, "`beta` must lie"),
    (jl.generalized_jsd_loss, {"beta": -0.1}, ValueError, "`beta` must lie"),
    (
      jl.generalized_jsd_loss,
      {"beta": jnp.asarray(0.5)},
      TypeError,
      "`beta` must be a static",
    ),
    (jl.skew_kl_loss, {"alpha": 1.5}, ValueError, "`alpha` must lie"),
    (jl.skew_kl_loss, {"reverse": "yes"}, TypeError, "`reverse` must be"),
    (jl.kd_loss, {"temperature": 0.0}, ValueError, "`temperature` must be"),
    (
      jl.total_variation_distance,
      {"temperature": -1.0},
      ValueError,
      "`temperature` must be",
    ),
    (jl.kd_loss, {"temperature": jnp.ones(2)}, ValueError, "`temperature`"),
    (jl.kd_loss, {"where": np.ones((2, V), bool)}, ValueError, "`where`"),
    (jl.sparse_kd_loss, {"temperature": 0.0}, ValueError, "`temperature`"),
    (
      jl.sparse_kd_loss,
      {"teacher_top_indices": np.zeros((2, 3), np.float32)},
      TypeError,
      "`teacher_top_indices`",
    ),
    (
      jl.sparse_kd_loss,
      {"teacher_top_indices": np.zeros((3, 3), np.int32)},
      ValueError,
      "teacher_top_indices",
    ),
  ],
  ids=lambda x: getattr(x, "__name__", None) if callable(x) else None,
)
def test_bad_options(fn, kwargs, error, match):
  s = np.zeros((2, V), np.float32)
  if fn is jl.sparse_kd_loss:
    args = {
      "teacher_top_indices": np.zeros((2, 3), np.int32),
      "teacher_top_log_probs": np.full((2, 3), -1.0, np.float32),
    }
    args.update(kwargs)
    indices = args.pop("teacher_top_indices")
    log_p = args.pop("teacher_top_log_probs")
    with pytest.raises(error, match=f"sparse_kd_loss: .*{match}"):
      fn(s, indices, log_p, **args)
    return
  with pytest.raises(error, match=f"{fn.__name__}: .*{match}"):
    fn(s, s, **kwargs)
