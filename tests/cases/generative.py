"""Registry entries for jaxloss.generative.

``gradient_penalty`` draws one interpolation weight per example from a key,
so dropping examples changes the others' draws and the shared "where is
slicing" property cannot hold: it is a HELPER, and tests/test_generative.py
runs every other shared property on it. ``r1_penalty`` is registered with a
fixed smooth critic (a wrapper of the same name).
"""

import jax.numpy as jnp
import numpy as np

import jaxloss as jl
from jaxloss.generative.adversarial import GAN_KINDS
from jaxloss.testing import LossCase
from tests.cases import _inputs as I

HELPERS = {"gradient_penalty"}

FEATURES = (2, 2)  # per-example input shape of the critic
HIDDEN = 5
_critic_rng = np.random.default_rng(1234)
W1 = _critic_rng.normal(size=(4, HIDDEN)).astype(I.F32)
B1 = _critic_rng.normal(size=(1, HIDDEN)).astype(I.F32)
W2 = _critic_rng.normal(size=(HIDDEN,)).astype(I.F32)


def critic(x, params=(W1, B1, W2)):
  """A smooth two-layer critic ``[batch, 2, 2] -> [batch]``."""
  w1, b1, w2 = params
  hidden = jnp.tanh(x.reshape(x.shape[0], W1.shape[0]) @ w1 + b1)
  return hidden @ w2


def r1_penalty(real, **kwargs):
  """:func:`jaxloss.r1_penalty` with the fixed :func:`critic`."""
  return jl.r1_penalty(critic, real, **kwargs)


def gradient_penalty(real, fake, key, **kwargs):
  """:func:`jaxloss.gradient_penalty` with the fixed :func:`critic`."""
  return jl.gradient_penalty(critic, real, fake, key, **kwargs)


def _critic_inputs(rng, n):
  return (rng.normal(size=(n,) + FEATURES).astype(I.F32),), {}


def _critic_edges():
  """Zeros, and inputs so large that the critic saturates (zero gradient)."""
  zeros = np.zeros((2,) + FEATURES, I.F32)
  return [((zeros,), {}), ((I.extreme_logits(2, *FEATURES),), {})]


def _penalty_inputs(rng, n):
  key = np.asarray([0, int(rng.integers(0, 2**31))], np.uint32)
  return (
    rng.normal(size=(n,) + FEATURES).astype(I.F32),
    rng.normal(size=(n,) + FEATURES).astype(I.F32),
    key,
  ), {}


def _penalty_edges():
  """Identical real and fake, saturated critic (gradient norm 0)."""
  x = np.ones((2,) + FEATURES, I.F32)
  key = np.array([0, 7], np.uint32)
  big = I.extreme_logits(2, *FEATURES)
  return [
    ((x, x.copy(), key), {}),
    ((big, big.copy(), key), {}),
    ((big, x, key), {"target": 0.0}),
  ]


GRADIENT_PENALTY_CASE = LossCase(
  gradient_penalty,
  _penalty_inputs,
  float_args=(0, 1),
  batch_args=(0, 1),
  edge_inputs=_penalty_edges,
)


def _logit_pair(shape):
  def make(rng, n):
    return (I.logits(rng, n, *shape), I.logits(rng, n, *shape)), {}

  return make


def _logit_edges():
  big = I.extreme_logits(2, 2)
  zeros = np.zeros((2, 2), I.F32)
  return [((big, big.copy()), {}), ((big, -big), {}), ((zeros, zeros), {})]


def _discriminator(kind, shape=(), name=None):
  def edges():
    return [(a, {"kind": kind}) for a, _ in _logit_edges()]

  def make(rng, n):
    args, _ = _logit_pair(shape)(rng, n)
    return args, {"kind": kind}

  return LossCase(
    jl.gan_discriminator_loss,
    make,
    float_args=(0, 1),
    name=name or f"gan_discriminator_loss[{kind}]",
    edge_inputs=edges,
  )


def _generator(kind):
  def edges():
    return [((a[0],), {"kind": kind}) for a, _ in _logit_edges()]

  def make(rng, n):
    return (I.logits(rng, n),), {"kind": kind}

  return LossCase(
    jl.gan_generator_loss,
    make,
    name=f"gan_generator_loss[{kind}]",
    edge_inputs=edges,
  )


LATENT = 2


def _vae_inputs(likelihood):
  def make(rng, n):
    if likelihood == "bernoulli":
      reconstruction = I.logits(rng, n, 3)
      targets = rng.uniform(0, 1, (n, 3)).astype(I.F32)
    else:
      reconstruction = rng.normal(size=(n, 3)).astype(I.F32)
      targets = rng.normal(size=(n, 3)).astype(I.F32)
    mean = rng.normal(size=(n, LATENT)).astype(I.F32)
    log_variance = rng.normal(size=(n, LATENT)).astype(I.F32)
    return (reconstruction, targets, mean, log_variance), {
      "likelihood": likelihood,
      "beta": 0.5,
    }

  return make


def _vae_edges(likelihood):
  def edges():
    big = I.extreme_logits(2, 3)
    targets = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]], I.F32)
    mean = np.array([[0.0, 0.0], [30.0, -30.0]], I.F32)
    log_variance = np.array([[0.0, 20.0], [-20.0, 0.0]], I.F32)
    kwargs = {"likelihood": likelihood}
    return [
      ((big, targets, mean, log_variance), kwargs),
      (
        (targets, targets.copy(), np.zeros_like(mean), np.zeros_like(mean)),
        kwargs,
      ),
    ]

  return edges


def _vae(likelihood, float_args):
  return LossCase(
    jl.vae_loss,
    _vae_inputs(likelihood),
    name=f"vae_loss[{likelihood}]",
    float_args=float_args,
    edge_inputs=_vae_edges(likelihood),
  )


def _cycle_inputs(rng, n):
  a = rng.normal(size=(n, 3)).astype(I.F32)
  b = rng.normal(size=(n, 2, 2)).astype(I.F32)
  return (
    a,
    a + rng.normal(size=a.shape).astype(I.F32),
    b,
    b + rng.normal(size=b.shape).astype(I.F32),
  ), {"lambda_a": 10.0, "lambda_b": 5.0}


def _cycle_edges():
  a = np.array([[0.0, 1.0, -2.0], [0.0, 0.0, 0.0]], I.F32)
  b = I.extreme_logits(2, 2, 2)
  return [
    ((a, a.copy(), b, b.copy()), {}),
    ((a, a + 1e4, b, np.zeros_like(b)), {}),
  ]


CASES = (
  [_discriminator(kind) for kind in GAN_KINDS]
  + [_discriminator("hinge", (2, 2), "gan_discriminator_loss[hinge,patch]")]
  + [_generator(kind) for kind in GAN_KINDS]
  + [
    LossCase(r1_penalty, _critic_inputs, edge_inputs=_critic_edges),
    _vae("bernoulli", (0, 2, 3)),
    _vae("gaussian", (0, 1, 2, 3)),
    LossCase(
      jl.cycle_consistency_loss,
      _cycle_inputs,
      float_args=(0, 1, 2, 3),
      edge_inputs=_cycle_edges,
    ),
  ]
)

# --------------------------------------------------------------------------- #
# Vector quantisation (issue 23 §4). ``straight_through`` is an activation,
# not a loss: a HELPER, tested in tests/test_quantization.py.

HELPERS = HELPERS | {"straight_through"}


def _vq_inputs(rng, n):
  inputs = rng.normal(size=(n, 3, 2)).astype(I.F32)
  quantized = inputs + rng.normal(scale=0.5, size=inputs.shape).astype(I.F32)
  return (inputs, quantized), {"commitment_cost": 0.25}


def _vq_edges():
  """Quantised exactly onto the inputs (zero error), and ±1e4 far apart."""
  z = np.array([[[0.0, 1.0], [-2.0, 0.5]], [[0.0, 0.0], [0.0, 0.0]]], I.F32)
  big = I.extreme_logits(2, 2, 2)
  return [((z, z.copy()), {}), ((big, -big), {}), ((z, big), {})]


CASES += [
  LossCase(
    jl.vector_quantization_loss,
    _vq_inputs,
    float_args=(0, 1),
    edge_inputs=_vq_edges,
    # The stop-gradients make the gradient, by design, not the derivative of
    # the value (1 + β)·MSE: no finite-difference check; the gradients are
    # checked against the paper's in tests/test_quantization.py.
    grad_modes=(),
  ),
]
