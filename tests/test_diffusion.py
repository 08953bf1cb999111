"""Value tests for jaxloss.diffusion.

References:

* diffusers 0.42.1 (installed, called with torch float64 tensors):
  ``training_utils.compute_snr`` (SNR and log-SNR; it computes in float32),
  ``DDPMScheduler.get_velocity`` (the v target and ``convert_prediction``).
* diffusers' ``examples/text_to_image/train_text_to_image.py`` (not in the
  wheel; huggingface/diffusers at commit 58eb52c, lines 1022-1040): the
  Min-SNR-γ weights ``min(snr, γ) / snr`` (epsilon) and ``min(snr, γ) /
  (snr + 1)`` (v_prediction), transcribed in torch below around the real
  ``compute_snr``, gradients by torch autograd.
* k-diffusion (not installable here; crowsonkb/k-diffusion at commit
  4601bf0), ``k_diffusion/layers.py``, ``Denoiser.get_scalings`` and
  ``Denoiser.loss`` with ``weighting='karras'``: transcribed in float64 NumPy.
* Hang et al. 2023 (Min-SNR, x0 form ``min(SNR, γ)``) and Kingma and Gao
  2023 (``sigmoid(b − λ)`` on the epsilon-MSE): the papers' formulas in
  float64 NumPy.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler
from diffusers.training_utils import compute_snr

import jaxloss as jl
from jaxloss.diffusion.objectives import PREDICTIONS, WEIGHTINGS
from jaxloss.testing import assert_close

F64 = np.float64
RTOL64 = 1e-10  # float64 against float64 references
# compute_snr casts alpha and sigma to float32 (``.float()``): its SNR carries
# float32 rounding, ~1e-7 relative, whatever the input dtype.
RTOL_COMPUTE_SNR = 2e-6

SCHEDULER = DDPMScheduler(num_train_timesteps=1000)


def _schedule(timesteps):
  """alpha, sigma (float64) of DDPMScheduler's alphas_cumprod at t."""
  acp = SCHEDULER.alphas_cumprod.double().numpy()[timesteps]
  return np.sqrt(acp), np.sqrt(1.0 - acp)


def _data(rng, shape):
  return rng.normal(size=shape), rng.normal(size=shape), rng.normal(size=shape)


def _t64(x):
  return torch.tensor(np.asarray(x, F64), requires_grad=True)


# --------------------------------------------------------------------------- #
# SNR helpers


def test_snr_and_log_snr_equal_diffusers_compute_snr():
  timesteps = np.array([0, 1, 10, 250, 500, 750, 998, 999])
  expected = compute_snr(SCHEDULER, torch.tensor(timesteps)).double().numpy()
  alpha, sigma = _schedule(timesteps)
  with jax.enable_x64(True):
    assert_close(jl.snr(alpha, sigma), expected, rtol=RTOL_COMPUTE_SNR)
    assert_close(
      jl.log_snr(alpha, sigma), np.log(expected), rtol=0, atol=RTOL_COMPUTE_SNR
    )
    # float64 against the float64 formula (the paper's) at 1e-10
    assert_close(jl.snr(alpha, sigma), (alpha / sigma) ** 2, rtol=RTOL64)
    assert_close(
      jl.log_snr(alpha, sigma), np.log(alpha**2 / sigma**2), rtol=RTOL64
    )
  # the ends: exact infinities
  assert np.asarray(jl.snr(1.0, 0.0)) == np.inf
  assert np.asarray(jl.log_snr(1.0, 0.0)) == np.inf
  assert np.asarray(jl.log_snr(0.0, 1.0)) == -np.inf


def test_alpha_sigma_from_log_snr_is_variance_preserving_and_inverts():
  lam = np.array([-30.0, -5.0, -0.3, 0.0, 0.7, 6.0, 30.0])
  with jax.enable_x64(True):
    alpha, sigma = jl.alpha_sigma_from_log_snr(lam)
    assert_close(alpha, np.sqrt(1 / (1 + np.exp(-lam))), rtol=RTOL64)
    assert_close(sigma, np.sqrt(1 / (1 + np.exp(lam))), rtol=RTOL64)
    assert_close(jnp.square(alpha) + jnp.square(sigma), 1.0, rtol=RTOL64)
    assert_close(jl.log_snr(alpha, sigma), lam, rtol=RTOL64)
  # float32 ends: no overflow, exact limits, finite gradients
  big = jnp.array([-200.0, 200.0, -jnp.inf, jnp.inf], jnp.float32)
  alpha, sigma = jl.alpha_sigma_from_log_snr(big)
  assert_close(alpha, [0.0, 1.0, 0.0, 1.0], atol=1e-30)
  assert_close(sigma, [1.0, 0.0, 1.0, 0.0], atol=1e-30)
  grad = jax.grad(lambda x: jnp.sum(sum(jl.alpha_sigma_from_log_snr(x))))
  assert np.all(np.isfinite(grad(big[:2])))


# --------------------------------------------------------------------------- #
# Targets and conversions


def test_convert_prediction_round_trips_and_matches_get_velocity():
  rng = np.random.default_rng(0)
  shape = (4, 2, 3)
  x0, eps, _ = _data(rng, shape)
  # general (non-VP) scales for the exact conversions
  alpha = rng.uniform(0.2, 2.0, 4)
  sigma = rng.uniform(0.2, 2.0, 4)
  a, s = alpha[:, None, None], sigma[:, None, None]
  x_t = a * x0 + s * eps
  truth = {
    "epsilon": eps,
    "x0": x0,
    "v": a * eps - s * x0,
    "score": -eps / s,
  }
  worst = 0.0
  with jax.enable_x64(True):
    for source, target in itertools.product(PREDICTIONS, PREDICTIONS):
      got = jl.convert_prediction(
        truth[source], x_t, alpha, sigma, source=source, target=target
      )
      assert got.dtype == jnp.float64
      assert_close(got, truth[target], rtol=RTOL64, atol=1e-12)
      back = jl.convert_prediction(
        got, x_t, alpha[:, None, None], sigma, source=target, target=source
      )
      assert_close(back, truth[source], rtol=RTOL64, atol=1e-12)
      worst = max(worst, float(np.max(np.abs(np.asarray(got) - truth[target]))))
    # diffusers' get_velocity (VP scales from DDPMScheduler) in float64
    timesteps = np.array([0, 100, 500, 999])
    va, vs = _schedule(timesteps)
    vx_t = va[:, None, None] * x0 + vs[:, None, None] * eps
    expected = SCHEDULER.get_velocity(
      torch.tensor(x0), torch.tensor(eps), torch.tensor(timesteps)
    ).numpy()
    got = jl.convert_prediction(eps, vx_t, va, vs, source="epsilon", target="v")
    assert_close(got, expected, rtol=RTOL64, atol=1e-12)
    got = jl.convert_prediction(x0, vx_t, va, vs, source="x0", target="v")
    assert_close(got, expected, rtol=RTOL64, atol=1e-12)
  assert worst < 1e-11


def test_each_prediction_regresses_on_its_target():
  rng = np.random.default_rng(1)
  shape = (3, 4)
  x0, eps, out = _data(rng, shape)
  timesteps = np.array([3, 400, 990])
  alpha, sigma = _schedule(timesteps)
  s = sigma[:, None]
  v = SCHEDULER.get_velocity(
    torch.tensor(x0), torch.tensor(eps), torch.tensor(timesteps)
  ).numpy()
  targets = {"epsilon": eps, "x0": x0, "v": v, "score": -eps / s}
  with jax.enable_x64(True):
    for prediction, target in targets.items():
      got = jl.diffusion_loss(out, x0, eps, alpha, sigma, prediction=prediction)
      assert_close(got, np.mean((out - target) ** 2, axis=1), rtol=RTOL64)


# --------------------------------------------------------------------------- #
# Weightings


def _diffusers_min_snr(model_pred, target, timesteps, gamma, prediction_type):
  """train_text_to_image.py's Min-SNR loss (huggingface/diffusers 58eb52c,
  examples/text_to_image/train_text_to_image.py, lines 1028-1040), around
  diffusers' own compute_snr."""
  snr = compute_snr(SCHEDULER, timesteps).double()
  mse_loss_weights = torch.stack(
    [snr, gamma * torch.ones_like(timesteps, dtype=torch.float64)], dim=1
  ).min(dim=1)[0]
  if prediction_type == "epsilon":
    mse_loss_weights = mse_loss_weights / snr
  elif prediction_type == "v_prediction":
    mse_loss_weights = mse_loss_weights / (snr + 1)
  loss = torch.nn.functional.mse_loss(model_pred, target, reduction="none")
  loss = loss.mean(dim=list(range(1, len(loss.shape)))) * mse_loss_weights
  return loss.mean()


def test_min_snr_equals_diffusers_training_example_values_and_gradients():
  rng = np.random.default_rng(2)
  shape = (6, 2, 3)
  timesteps = np.array([0, 5, 60, 300, 700, 999])
  alpha, sigma = _schedule(timesteps)
  x0, eps, out = _data(rng, shape)
  v = SCHEDULER.get_velocity(
    torch.tensor(x0), torch.tensor(eps), torch.tensor(timesteps)
  ).numpy()
  errors = {}
  for gamma in (1.0, 5.0):
    for prediction, ptype, target in (
      ("epsilon", "epsilon", eps),
      ("v", "v_prediction", v),
    ):
      pred = _t64(out)
      expected = _diffusers_min_snr(
        pred, torch.tensor(target), torch.tensor(timesteps), gamma, ptype
      )
      expected.backward()

      def fn(o, prediction=prediction, gamma=gamma):
        return jl.diffusion_loss(
          o,
          x0,
          eps,
          alpha,
          sigma,
          prediction=prediction,
          weighting="min_snr",
          snr_gamma=gamma,
          reduction="mean",
        )

      with jax.enable_x64(True):
        value, grad = jax.value_and_grad(fn)(out)
      assert_close(value, expected.item(), rtol=RTOL_COMPUTE_SNR)
      assert_close(grad, pred.grad.numpy(), rtol=RTOL_COMPUTE_SNR, atol=1e-12)
      errors[(gamma, prediction)] = abs(float(value) / expected.item() - 1)
  assert max(errors.values()) < RTOL_COMPUTE_SNR


def _edm_k_diffusion(model_output, x0, noise, sigma, sigma_data):
  """k-diffusion's Denoiser.loss (crowsonkb/k-diffusion 4601bf0,
  k_diffusion/layers.py, get_scalings and loss with weighting='karras', so
  c_weight = 1), in float64 NumPy with the network's output given."""
  s = sigma.reshape((-1,) + (1,) * (x0.ndim - 1))
  c_skip = sigma_data**2 / (s**2 + sigma_data**2)
  c_out = s * sigma_data / (s**2 + sigma_data**2) ** 0.5
  noised_input = x0 + noise * s
  target = (x0 - c_skip * noised_input) / c_out
  c_weight = np.ones_like(sigma)
  return ((model_output - target) ** 2).reshape(len(x0), -1).mean(1) * c_weight


def test_weightings_against_the_papers_and_k_diffusion():
  rng = np.random.default_rng(3)
  shape = (5, 3, 2)
  x0, eps, out = _data(rng, shape)
  lam = np.array([-12.0, -2.5, 0.0, 1.5, 9.0])
  alpha, sigma = np.sqrt(1 / (1 + np.exp(-lam))), np.sqrt(1 / (1 + np.exp(lam)))
  edm_sigma = np.array([0.002, 0.1, 0.5, 3.0, 80.0])
  gamma, bias = 5.0, -2.0
  snr = np.exp(lam)
  mse = lambda target: np.mean((out - target) ** 2, axis=(1, 2))
  a, s = alpha[:, None, None], sigma[:, None, None]
  with jax.enable_x64(True):
    call = lambda **kw: jl.diffusion_loss(out, x0, eps, alpha, sigma, **kw)
    # Min-SNR, x0 form of the paper: min(SNR, γ) · x0-MSE
    assert_close(
      call(prediction="x0", weighting="min_snr", snr_gamma=gamma),
      np.minimum(snr, gamma) * mse(x0),
      rtol=RTOL64,
    )
    # Kingma & Gao: sigmoid(b − λ) · ε-MSE
    assert_close(
      call(weighting="sigmoid", sigmoid_bias=bias),
      1 / (1 + np.exp(-(bias - lam))) * mse(eps),
      rtol=RTOL64,
    )
    assert_close(
      call(weighting="sigmoid"), call(weighting="sigmoid", sigmoid_bias=-2.0)
    )
    # EDM against k-diffusion's Denoiser.loss, both sigma_data
    for sigma_data in (0.5, 1.0):
      got = jl.diffusion_loss(
        out,
        x0,
        eps,
        1.0,
        edm_sigma,
        weighting="edm",
        sigma_data=sigma_data,
      )
      expected = _edm_k_diffusion(out, x0, eps, edm_sigma, sigma_data)
      assert_close(got, expected, rtol=RTOL64)
    # one objective whatever the parametrisation: the same network output,
    # converted by hand, gives the same weighted loss
    eps_hat = out
    x_t = a * x0 + s * eps
    x0_hat = (x_t - s * eps_hat) / a
    as_pred = {
      "epsilon": eps_hat,
      "x0": x0_hat,
      "v": a * eps_hat - s * x0_hat,
      "score": -eps_hat / s,
    }
    for weighting in ("min_snr", "sigmoid"):
      values = {
        p: jl.diffusion_loss(
          o, x0, eps, alpha, sigma, prediction=p, weighting=weighting
        )
        for p, o in as_pred.items()
      }
      for p in PREDICTIONS:
        assert_close(values[p], values["epsilon"], rtol=1e-9, what=p)


# --------------------------------------------------------------------------- #
# Edge cases, dtypes, masks, errors


def test_schedule_ends_give_finite_values_and_gradients():
  rng = np.random.default_rng(4)
  shape = (4, 3)
  x0, eps, out = (a.astype(np.float32) for a in _data(rng, shape))
  alpha = np.array([1.0, 1.0 - 1e-7, 1e-20, 0.0], np.float32)
  sigma = np.array([0.0, 1e-20, 1.0 - 1e-7, 1.0], np.float32)
  for prediction, weighting in itertools.product(PREDICTIONS, WEIGHTINGS):
    if prediction == "score" and weighting == "none":
      continue  # the score's target -noise/sigma is infinite at sigma = 0

    def fn(o, a, s, prediction=prediction, weighting=weighting):
      return jl.diffusion_loss(
        o,
        x0,
        eps,
        a,
        s,
        prediction=prediction,
        weighting=weighting,
        reduction="sum",
      )

    value, grads = jax.value_and_grad(fn, argnums=(0, 1, 2))(out, alpha, sigma)
    assert np.isfinite(value), (prediction, weighting)
    for g in grads:
      assert np.all(np.isfinite(g)), (prediction, weighting, grads)
  # the exact limits of the weights at the ends
  ones = np.ones((2, 3), np.float32)
  ends = (np.array([1.0, 0.0], np.float32), np.array([0.0, 1.0], np.float32))
  zeros = np.zeros_like(ones)
  got = jl.diffusion_loss(ones, zeros, zeros, *ends, weighting="min_snr")
  assert_close(got, [0.0, 1.0])  # min(SNR, γ)/SNR: 0 at SNR=inf, 1 at 0
  got = jl.diffusion_loss(ones, zeros, zeros, *ends, weighting="sigmoid")
  assert_close(got, [0.0, 1.0])
  got = jl.diffusion_loss(
    ones, zeros, zeros, *ends, prediction="x0", weighting="min_snr"
  )
  assert_close(got, [5.0, 0.0])


def test_bfloat16_is_computed_in_float32():
  rng = np.random.default_rng(5)
  x0, eps, out = _data(rng, (3, 2, 2))
  alpha, sigma = jl.alpha_sigma_from_log_snr(jnp.array([-3.0, 0.5, 4.0]))
  for weighting in WEIGHTINGS:
    half = [jnp.asarray(a, jnp.bfloat16) for a in (out, x0, eps)]
    got = jl.diffusion_loss(*half, alpha, sigma, weighting=weighting)
    assert got.dtype == jnp.float32
    want = jl.diffusion_loss(
      *(h.astype(jnp.float32) for h in half), alpha, sigma, weighting=weighting
    )
    assert_close(got, want, rtol=1e-6)


def test_element_mask_means_over_the_kept_elements():
  rng = np.random.default_rng(6)
  x0, eps, out = _data(rng, (3, 4))
  alpha, sigma = np.full(3, 0.6), np.full(3, 0.8)
  mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], bool)
  with jax.enable_x64(True):
    got = jl.diffusion_loss(out, x0, eps, alpha, sigma, where=mask)
    err = (out - eps) ** 2
    expected = [err[0, :2].mean(), err[1].mean(), 0.0]
    assert_close(got, expected, rtol=RTOL64)
    mean = jl.diffusion_loss(
      out, x0, eps, alpha, sigma, where=mask, reduction="mean"
    )
    assert_close(mean, np.mean(expected[:2]), rtol=RTOL64)
    per_example = jl.diffusion_loss(
      out, x0, eps, alpha, sigma, where=np.array([True, False, True])
    )
    assert_close(per_example, [err[0].mean(), 0.0, err[2].mean()], rtol=RTOL64)
    # alpha, sigma as [batch, 1] broadcast like [batch]
    assert_close(
      jl.diffusion_loss(out, x0, eps, alpha[:, None], sigma[:, None]),
      jl.diffusion_loss(out, x0, eps, alpha, sigma),
    )


def test_bad_options_and_shapes_name_the_function_and_argument():
  x = jnp.zeros((2, 3))
  a = jnp.ones(2)
  cases = [
    (lambda: jl.diffusion_loss(x, x, x, a, a, prediction="eps"), "prediction"),
    (lambda: jl.diffusion_loss(x, x, x, a, a, weighting="snr"), "weighting"),
    (lambda: jl.diffusion_loss(x, x, x, a, a, snr_gamma=0.0), "snr_gamma"),
    (lambda: jl.diffusion_loss(x, x, x, jnp.ones(3), a), "alpha"),
    (lambda: jl.diffusion_loss(x, x, x, a, jnp.ones((2, 3))), "sigma"),
    (lambda: jl.diffusion_loss(x, x[:, :2], x, a, a), "x0"),
    (
      lambda: jl.convert_prediction(x, x, a, a, source="eps", target="v"),
      "source",
    ),
    (
      lambda: jl.convert_prediction(x, x, a, a, source="v", target="sample"),
      "target",
    ),
  ]
  for call, arg in cases:
    with pytest.raises(ValueError) as info:
      call()
    message = str(info.value)
    assert arg in message, message
    assert message.split(":")[0] in ("diffusion_loss", "convert_prediction")
  with pytest.raises(TypeError, match="diffusion_loss.*model_output"):
    jl.diffusion_loss(jnp.zeros((2, 3), int), x, x, a, a)
