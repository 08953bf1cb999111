"""Value tests for jaxloss.generative.

References: the papers' formulas written out in float64 NumPy, following
TF-GAN's ``losses_impl`` (GAN losses), Gulrajani et al.'s
``improved_wgan_training`` and StyleGAN2-ADA's R1 (penalties, with the
critic's input gradient derived by hand), the PyTorch VAE example, and
CycleGAN's ``L1Loss`` (mean over elements); optax's
``sigmoid_binary_cross_entropy`` for the logistic GAN losses. None of these
libraries but optax is installed, so each formula names the function it
mirrors.
"""

import functools

import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import test_util

import jaxloss as jl
from jaxloss import testing
from jaxloss.generative.adversarial import GAN_KINDS
from jaxloss.testing import assert_close
from tests.assertions import checked_rejects
from tests.cases import generative as cases

F32, F64 = np.float32, np.float64


def _softplus(x):
  return np.logaddexp(0.0, np.asarray(x, F64))


# --------------------------------------------------------------------------- #
# GAN losses


def tfgan_discriminator(kind, r, f):
  """TF-GAN (tensorflow_gan/python/losses/losses_impl.py) with reduction NONE,
  real term + fake term: modified/minimax_discriminator_loss (label_smoothing
  0): -log σ(r) - log(1 - σ(f)); least_squares_discriminator_loss: ½(r - 1)² +
  ½ f²; wasserstein_discriminator_loss: f - r;
  wasserstein_hinge_discriminator_loss: relu(1 - r) + relu(1 + f)."""
  r, f = np.asarray(r, F64), np.asarray(f, F64)
  if kind in ("minimax", "non_saturating"):
    return _softplus(-r) + _softplus(f)
  if kind == "least_squares":
    return 0.5 * (r - 1) ** 2 + 0.5 * f**2
  if kind == "wasserstein":
    return f - r
  return np.maximum(1 - r, 0) + np.maximum(1 + f, 0)


def tfgan_generator(kind, f):
  """TF-GAN minimax_generator_loss: log(1 - σ(f)); modified_generator_loss:
  -log σ(f); least_squares_generator_loss: ½(f - 1)²;
  wasserstein_generator_loss (and the hinge GAN's generator): -f."""
  f = np.asarray(f, F64)
  return {
    "minimax": -_softplus(f),
    "non_saturating": _softplus(-f),
    "least_squares": 0.5 * (f - 1) ** 2,
    "wasserstein": -f,
    "hinge": -f,
  }[kind]


LOGITS = np.array([-1e4, -30.0, -2.5, -1.0, -0.3, 0.0, 0.4, 1.0, 3.0, 1e4], F32)


@pytest.mark.parametrize("kind", GAN_KINDS)
def test_gan_losses_match_formulas(kind):
  real = LOGITS
  fake = LOGITS[::-1].copy()
  assert_close(
    jl.gan_discriminator_loss(real, fake, kind=kind),
    tfgan_discriminator(kind, real, fake),
  )
  assert_close(
    jl.gan_generator_loss(fake, kind=kind), tfgan_generator(kind, fake)
  )
  with jax.enable_x64(True):
    out = jl.gan_discriminator_loss(
      real.astype(F64), fake.astype(F64), kind=kind
    )
    assert out.dtype == jnp.float64
    assert_close(out, tfgan_discriminator(kind, real, fake), 1e-12, 1e-12)


def test_logistic_gan_losses_match_optax_cross_entropy():
  rng = np.random.default_rng(0)
  real, fake = rng.normal(size=(2, 6, 3)).astype(F32) * 3
  ones, zeros = np.ones_like(real), np.zeros_like(real)
  bce = optax.losses.sigmoid_binary_cross_entropy
  assert_close(
    jl.gan_discriminator_loss(real, fake, kind="minimax"),
    bce(real, ones) + bce(fake, zeros),
  )
  assert_close(
    jl.gan_generator_loss(fake, kind="non_saturating"), bce(fake, ones)
  )
  assert_close(jl.gan_generator_loss(fake, kind="minimax"), -bce(fake, zeros))


def test_discriminator_mean_is_sum_of_expectations():
  rng = np.random.default_rng(1)
  real, fake = rng.normal(size=(2, 6)).astype(F32)
  for kind in GAN_KINDS:
    expected = tfgan_discriminator(kind, real, fake)
    assert_close(
      jl.gan_discriminator_loss(real, fake, kind=kind, reduction="mean"),
      expected.mean(),
    )


@hypothesis.settings(max_examples=15, derandomize=True, deadline=None)
@hypothesis.given(
  hnp.arrays(F32, 4, elements=st.floats(-1e4, 1e4, width=32)),
  st.sampled_from(GAN_KINDS),
)
def test_gan_losses_finite_with_finite_gradients(logits, kind):
  def total(real, fake):
    return jl.gan_discriminator_loss(
      real, fake, kind=kind, reduction="sum"
    ) + jl.gan_generator_loss(fake, kind=kind, reduction="sum")

  value, grads = jax.value_and_grad(total, argnums=(0, 1))(logits, -logits)
  assert np.isfinite(value) and all(np.all(np.isfinite(g)) for g in grads)


def test_gan_errors():
  x = np.zeros(4, F32)
  with pytest.raises(
    ValueError,
    match=r"gan_discriminator_loss.*real_logits"
    r".*\(4,\).*fake_logits.*\(3,\)",
  ):
    jl.gan_discriminator_loss(x, x[:3], kind="hinge")
  with pytest.raises(
    ValueError,
    match="gan_generator_loss: unknown kind='lsgan'.*'least_squares'",
  ):
    jl.gan_generator_loss(x, kind="lsgan")
  with pytest.raises(TypeError, match="kind"):
    jl.gan_discriminator_loss(x, x)  # kind is required
  with pytest.raises(TypeError, match="gan_generator_loss.*fake_logits"):
    jl.gan_generator_loss(np.zeros(4, np.int32), kind="hinge")


# --------------------------------------------------------------------------- #
# gradient penalties


def numpy_critic_gradient(x, params):
  """∇_x of cases.critic, by hand: W1 (w2 ⊙ (1 - tanh²(x W1 + b1)))."""
  w1, b1, w2 = (np.asarray(p, F64) for p in params)
  flat = np.asarray(x, F64).reshape(len(x), -1)
  hidden = np.tanh(flat @ w1 + b1)
  return ((1 - hidden**2) * w2) @ w1.T


def critic_params(dtype=F32):
  return tuple(np.asarray(p, dtype) for p in (cases.W1, cases.B1, cases.W2))


def _penalty_inputs(seed=0, n=5, dtype=F32):
  rng = np.random.default_rng(seed)
  return (
    rng.normal(size=(n,) + cases.FEATURES).astype(dtype),
    rng.normal(size=(n,) + cases.FEATURES).astype(dtype),
  )


def test_gradient_penalty_matches_formula():
  """Gulrajani et al.'s improved_wgan_training penalty without λ:
  (‖∇D(x̂)‖ − 1)² with x̂ = ε x + (1 − ε) x̃, ε ~ U[0, 1] of shape
  [batch, 1, 1] drawn from the key."""
  real, fake = _penalty_inputs()
  key = jax.random.key(3)
  epsilon = np.asarray(jax.random.uniform(key, (5, 1, 1)), F64)
  interpolates = epsilon * real + (1 - epsilon) * fake
  norms = np.linalg.norm(
    numpy_critic_gradient(interpolates, critic_params()), axis=-1
  )
  for target in (1.0, 0.5):
    assert_close(
      jl.gradient_penalty(cases.critic, real, fake, key, target=target),
      (norms - target) ** 2,
      1e-5,
      1e-6,
    )
  # A raw uint32 key draws the same ε as the typed key it wraps.
  raw = jax.random.key_data(key)
  assert_close(
    jl.gradient_penalty(cases.critic, real, fake, raw),
    (norms - 1) ** 2,
    1e-5,
    1e-6,
  )


def test_gradient_penalty_epsilon_is_per_example_and_in_unit_interval():
  """With D(x) = ½‖x‖² the gradient at x̂ is x̂ itself; real = 1 and fake = 0
  give x̂ = ε, so the penalty with target 0 is ε²."""
  critic = lambda x: jnp.sum(0.5 * x**2, axis=(1, 2))  # ∇ = x̂ = ε·1
  real = np.ones((64, 1, 1), F32)
  out = jl.gradient_penalty(
    critic, real, np.zeros_like(real), jax.random.key(0), target=0.0
  )
  epsilon = np.sqrt(np.asarray(out))
  assert np.all((epsilon >= 0) & (epsilon <= 1))
  assert len(np.unique(epsilon)) == 64


def test_r1_penalty_matches_formula():
  """StyleGAN2-ADA's r1_penalty = Σ (∂D/∂x)² per example."""
  real, _ = _penalty_inputs(seed=1)
  expected = np.sum(numpy_critic_gradient(real, critic_params()) ** 2, -1)
  assert_close(jl.r1_penalty(cases.critic, real), expected, 1e-5, 1e-6)
  assert_close(
    jl.r1_penalty(cases.critic, real, reduction="mean"),
    expected.mean(),
    1e-5,
    1e-6,
  )


def test_penalties_gradients_match_finite_differences():
  """float64: gradients with respect to the critic's parameters and to the
  inputs, forward and reverse, against finite differences."""
  with jax.enable_x64(True):
    real, fake = _penalty_inputs(seed=2, n=3, dtype=F64)
    params = critic_params(F64)
    key = jax.random.key(5)

    def gp(params, real, fake):
      critic = functools.partial(cases.critic, params=params)
      return jl.gradient_penalty(critic, real, fake, key, reduction="mean")

    def r1(params, real):
      critic = functools.partial(cases.critic, params=params)
      return jl.r1_penalty(critic, real, reduction="sum")

    test_util.check_grads(
      gp, (params, real, fake), order=1, modes=("fwd", "rev"), eps=1e-6
    )
    test_util.check_grads(
      r1, (params, real), order=1, modes=("fwd", "rev"), eps=1e-6
    )


def test_penalties_safe_at_zero_gradient():
  """A critic flat at some examples: norm 0, value target², finite gradients
  with respect to the critic's parameters (safe norm)."""

  def critic(x, w):
    return jnp.sum(jax.nn.relu(x.reshape(x.shape[0], -1) @ w), axis=-1)

  w = np.array([[1.0], [1.0], [1.0], [1.0]], F32)
  real = np.array([[[1.0, 1.0], [1.0, 1.0]], [[-1.0, -1.0], [-1.0, -1.0]]], F32)
  key = jax.random.key(0)

  def gp(w):
    return jl.gradient_penalty(
      lambda x: critic(x, w), real, real, key, reduction="sum"
    )

  value, grad = jax.value_and_grad(gp)(w)
  assert_close(
    value, (2.0 - 1.0) ** 2 + 1.0
  )  # ‖w‖ = 2 on the first, 0 on the second
  assert np.all(np.isfinite(grad))
  r1_grad = jax.grad(
    lambda w: jl.r1_penalty(lambda x: critic(x, w), real, reduction="sum")
  )(w)
  assert_close(r1_grad, 2 * w)  # ‖∇‖² = ‖w‖² on the first example only


def test_gradient_penalty_shared_properties():
  """Every shared property but "where is slicing" (dropping examples changes
  the other examples' ε), and masking checked directly."""
  case = cases.GRADIENT_PENALTY_CASE
  for prop, check in testing.PROPERTIES.items():
    if prop != "where_is_slicing" and testing.applicable(case, prop):
      check(case)
  args, kwargs = case.inputs()
  mask = np.array([True, False, True, True, False, True])
  values = np.asarray(case.call(args, kwargs))
  assert_close(case.call(args, kwargs, where=mask), np.where(mask, values, 0))
  assert_close(
    case.call(args, kwargs, where=mask, reduction="mean"), values[mask].mean()
  )


def test_penalty_with_flax_nnx_critic():
  """An nnx critic: the penalties differentiate through nnx.split/merge."""
  from flax import nnx

  model = nnx.Sequential(
    nnx.Linear(4, 3, rngs=nnx.Rngs(0)),
    nnx.tanh,
    nnx.Linear(3, 1, rngs=nnx.Rngs(1)),
  )
  graphdef, params = nnx.split(model, nnx.Param)
  real, fake = _penalty_inputs(seed=4, n=4)
  real, fake = real.reshape(4, 4), fake.reshape(4, 4)

  def loss(params):
    critic = nnx.merge(graphdef, params)
    return jl.gradient_penalty(
      critic, real, fake, jax.random.key(1), reduction="mean"
    ) + jl.r1_penalty(critic, real, reduction="mean")

  grads = jax.jit(jax.grad(loss))(params)
  leaves = jax.tree.leaves(grads)
  assert leaves and all(np.all(np.isfinite(g)) for g in leaves)
  assert any(np.any(g != 0) for g in leaves)


def test_penalty_errors():
  real, fake = _penalty_inputs(n=4)
  key = jax.random.key(0)
  with pytest.raises(
    ValueError,
    match=r"gradient_penalty: `critic_fn` must "
    r"return one score per example.*\(\)",
  ):
    jl.gradient_penalty(lambda x: jnp.sum(x), real, fake, key)
  with pytest.raises(
    ValueError, match=r"r1_penalty: `critic_fn`.*got shape \(2, 4\)"
  ):
    jl.r1_penalty(lambda x: x.reshape(4, 4)[:, :2].T, real)
  with pytest.raises(TypeError, match="gradient_penalty: `key`"):
    jl.gradient_penalty(cases.critic, real, fake, 0)
  with pytest.raises(
    TypeError, match="r1_penalty: `critic_fn` must be callable"
  ):
    jl.r1_penalty(real, real)
  with pytest.raises(
    ValueError,
    match=r"gradient_penalty.*`real` "
    r"\(4, 2, 2\).*`fake` \(3, 2, 2\)",
  ):
    jl.gradient_penalty(cases.critic, real, fake[:3], key)
  with pytest.raises(
    ValueError, match="gradient_penalty: `target` must be >= 0"
  ):
    jl.gradient_penalty(cases.critic, real, fake, key, target=-1.0)
  with pytest.raises(TypeError, match="r1_penalty.*`real`"):
    jl.r1_penalty(cases.critic, real.astype(np.int32))
  with pytest.raises(
    ValueError, match=r"r1_penalty: argument `real` must have rank >= 1 "
  ):
    jl.r1_penalty(cases.critic, np.float32(1.0))


# --------------------------------------------------------------------------- #
# VAE


def torch_vae_example(recon_probabilities, x, mu, logvar, beta=1.0):
  """pytorch/examples vae/main.py loss_function, per example:
  binary_cross_entropy(recon_x, x, reduction="sum") - 0.5 β Σ(1 + logvar -
  mu² - exp(logvar))."""
  p, x = np.asarray(recon_probabilities, F64), np.asarray(x, F64)
  mu, logvar = np.asarray(mu, F64), np.asarray(logvar, F64)
  axes = tuple(range(1, x.ndim))
  bce = -np.sum(x * np.log(p) + (1 - x) * np.log1p(-p), axis=axes)
  kl_axes = tuple(range(1, mu.ndim))
  kld = -0.5 * np.sum(1 + logvar - mu**2 - np.exp(logvar), axis=kl_axes)
  return bce + beta * kld


def _vae_inputs(seed=0):
  rng = np.random.default_rng(seed)
  logits = rng.normal(size=(4, 2, 3)).astype(F32) * 2
  x = rng.uniform(0, 1, (4, 2, 3)).astype(F32)
  mu = rng.normal(size=(4, 2, 2)).astype(F32)
  logvar = rng.normal(size=(4, 2, 2)).astype(F32)
  return logits, x, mu, logvar


def test_vae_bernoulli_matches_pytorch_example():
  logits, x, mu, logvar = _vae_inputs()
  probabilities = 1 / (1 + np.exp(-np.asarray(logits, F64)))
  for beta in (1.0, 4.0):
    assert_close(
      jl.vae_loss(logits, x, mu, logvar, beta=beta),
      torch_vae_example(probabilities, x, mu, logvar, beta),
      1e-5,
      1e-5,
    )
  with jax.enable_x64(True):
    out = jl.vae_loss(*(a.astype(F64) for a in (logits, x, mu, logvar)))
    assert out.dtype == jnp.float64
    assert_close(
      out, torch_vae_example(probabilities, x, mu, logvar), 1e-10, 1e-10
    )


def test_vae_gaussian_is_half_squared_error_plus_kl():
  logits, x, mu, logvar = _vae_inputs(1)
  means = np.asarray(logits, F64)
  kld = -0.5 * np.sum(
    1 + logvar - mu.astype(F64) ** 2 - np.exp(logvar), axis=(1, 2)
  )
  expected = 0.5 * np.sum((means - x) ** 2, axis=(1, 2)) + 0.3 * kld
  assert_close(
    jl.vae_loss(logits, x, mu, logvar, likelihood="gaussian", beta=0.3),
    expected,
    1e-5,
    1e-5,
  )


def test_vae_traced_beta_and_integer_targets():
  logits, x, mu, logvar = _vae_inputs(2)
  binary = (x > 0.5).astype(np.int32)
  probabilities = 1 / (1 + np.exp(-np.asarray(logits, F64)))
  expected = torch_vae_example(probabilities, binary, mu, logvar, 0.25)
  out = jax.jit(lambda b: jl.vae_loss(logits, binary, mu, logvar, beta=b))(
    jnp.asarray(0.25)
  )
  assert_close(out, expected, 1e-5, 1e-5)


def test_vae_errors_and_value_checks():
  logits, x, mu, logvar = _vae_inputs()
  with pytest.raises(
    ValueError,
    match=r"vae_loss.*`reconstruction` "
    r"\(4, 2, 3\).*`mean` \(3, 2, 2\)",
  ):
    jl.vae_loss(logits, x, mu[:3], logvar[:3])
  with pytest.raises(ValueError, match=r"vae_loss.*`mean`.*`log_variance`"):
    jl.vae_loss(logits, x, mu, logvar[:, :1])
  with pytest.raises(
    ValueError,
    match="vae_loss: unknown likelihood='normal'.*'bernoulli', 'gaussian'",
  ):
    jl.vae_loss(logits, x, mu, logvar, likelihood="normal")
  with pytest.raises(ValueError, match="vae_loss: `beta` must be >= 0"):
    jl.vae_loss(logits, x, mu, logvar, beta=-1.0)
  with pytest.raises(TypeError, match="vae_loss.*`mean`"):
    jl.vae_loss(logits, x, mu.astype(np.int32), logvar)
  checked_rejects(
    jl.vae_loss, logits, x + 1, mu, logvar, arg="targets", what="must lie in"
  )
  checked = jl.checked(jl.vae_loss)
  checked(logits, x + 1, mu, logvar, likelihood="gaussian")  # any targets


# --------------------------------------------------------------------------- #
# cycle consistency


def cyclegan_cycle_loss(real_a, rec_a, real_b, rec_b, lambda_a, lambda_b):
  """pytorch-CycleGAN-and-pix2pix cycle_gan_model.backward_G, per example:
  lambda_A · L1Loss()(rec_A, real_A) + lambda_B · L1Loss()(rec_B, real_B),
  L1Loss averaging over each example's elements."""

  def l1(x, y):
    d = np.abs(np.asarray(x, F64) - np.asarray(y, F64))
    return d.reshape(len(d), -1).mean(-1)

  return lambda_a * l1(rec_a, real_a) + lambda_b * l1(rec_b, real_b)


def test_cycle_consistency_matches_cyclegan():
  rng = np.random.default_rng(0)
  a, rec_a = rng.normal(size=(2, 4, 3, 3, 2)).astype(F32)
  b, rec_b = rng.normal(size=(2, 4, 5)).astype(F32)
  expected = cyclegan_cycle_loss(a, rec_a, b, rec_b, 10.0, 5.0)
  out = jl.cycle_consistency_loss(
    a, rec_a, b, rec_b, lambda_a=10.0, lambda_b=5.0
  )
  assert_close(out, expected)
  assert_close(
    jl.cycle_consistency_loss(
      a, rec_a, b, rec_b, lambda_a=10.0, lambda_b=5.0, reduction="mean"
    ),
    expected.mean(),
  )


def test_cycle_consistency_gradient_zero_at_zero_error():
  a = np.array([[0.0, 1.0], [2.0, -1.0]], F32)
  rec_a = np.array([[0.0, 2.0], [2.0, -1.0]], F32)
  grad = jax.grad(
    lambda r: jl.cycle_consistency_loss(a, r, a, a, reduction="sum")
  )(rec_a)
  assert_close(grad, [[0.0, 0.5], [0.0, 0.0]])


def test_cycle_consistency_errors():
  a = np.zeros((4, 3), F32)
  with pytest.raises(
    ValueError,
    match=r"cycle_consistency_loss.*`real_a` "
    r"\(4, 3\).*`real_b` \(2, 3\)",
  ):
    jl.cycle_consistency_loss(a, a, a[:2], a[:2])
  with pytest.raises(
    ValueError,
    match=r"cycle_consistency_loss.*`real_b`.*"
    r"`reconstructed_b`",
  ):
    jl.cycle_consistency_loss(a, a, a, a[:, :2])
  with pytest.raises(
    ValueError,
    match=r"cycle_consistency_loss: argument `real_a` must have rank >= 1 "
    r"\(a batch axis\)",
  ):
    jl.cycle_consistency_loss(a[0, 0], a[0, 0], a, a)
