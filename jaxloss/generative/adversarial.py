"""GAN objectives: the discriminator's (or critic's) and the generator's loss.

The losses take the discriminator's (or critic's) raw outputs, called logits,
and work in log space (``softplus``), so logits of ±1e4 give finite values and
gradients. The discriminator loss pairs real and fake outputs of one shape:
the per-example value is the real term of example ``i`` plus the fake term of
example ``i``, so ``"mean"`` is :math:`E[\\text{real term}] + E[\\text{fake
term}]`.
"""

from __future__ import annotations

from typing import Literal, get_args

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce

GanKind = Literal[
  "minimax", "non_saturating", "least_squares", "wasserstein", "hinge"
]
GAN_KINDS: tuple[str, ...] = get_args(GanKind)


@loss
def gan_discriminator_loss(
  real_logits: ArrayLike,
  fake_logits: ArrayLike,
  *,
  kind: GanKind,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""The discriminator's (or critic's) loss of a GAN, from its raw outputs.

  With :math:`r = D(x)` on real data and :math:`f = D(G(z))` on generated
  data (logits, before any sigmoid):

  .. math::
    \begin{array}{ll}
    \text{minimax, non\_saturating} & -\log\sigma(r) - \log(1 - \sigma(f))
      = \operatorname{softplus}(-r) + \operatorname{softplus}(f) \\
    \text{least\_squares} & \tfrac12 (r - 1)^2 + \tfrac12 f^2 \\
    \text{wasserstein} & f - r \\
    \text{hinge} & \max(0, 1 - r) + \max(0, 1 + f)
    \end{array}

  The minimax and non-saturating GANs share this loss (they differ in the
  generator's). Least squares is LSGAN with targets ``a = 0``, ``b = c = 1``
  on the raw output; wasserstein is the WGAN critic (add
  :func:`gradient_penalty` or clip the weights).

  Args:
    real_logits: ``[...]`` floating discriminator outputs on real data.
    fake_logits: ``[...]`` outputs on generated data, same shape: entry ``i``
      is paired with ``real_logits[i]``. A batch of reals and a batch of fakes
      of different sizes is an error; use equal batches.
    kind: one of ``"minimax"``, ``"non_saturating"``, ``"least_squares"``,
      ``"wasserstein"``, ``"hinge"``; required (no default).
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` elementwise loss (real term plus fake term), or a scalar for
    ``"sum"``/``"mean"``; ``"mean"`` is :math:`E[\cdot]_{real} +
    E[\cdot]_{fake}`.

  Matches TF-GAN's ``modified_discriminator_loss`` (``minimax_discriminator_
  loss`` with ``label_smoothing=0``), ``least_squares_discriminator_loss``,
  ``wasserstein_discriminator_loss`` and ``wasserstein_hinge_discriminator_
  loss``, each with ``reduction=NONE`` summed over its two terms.

  >>> import jax.numpy as jnp, jaxloss
  >>> real, fake = jnp.array([2.0, -1.0]), jnp.array([-3.0, 0.5])
  >>> print(jaxloss.gan_discriminator_loss(real, fake, kind="non_saturating"))
  [0.1755... 2.2873...]
  >>> print(jaxloss.gan_discriminator_loss(real, fake, kind="hinge"))
  [0.  3.5]

  References:
    Goodfellow et al., `Generative Adversarial Nets
    <https://arxiv.org/abs/1406.2661>`_, 2014.
    Mao et al., `Least Squares Generative Adversarial Networks
    <https://arxiv.org/abs/1611.04076>`_, 2017.
    Arjovsky, Chintala and Bottou, `Wasserstein GAN
    <https://arxiv.org/abs/1701.07875>`_, 2017.
    Lim and Ye, `Geometric GAN <https://arxiv.org/abs/1705.02894>`_, 2017.
  """
  checks.option("kind", kind, GAN_KINDS)
  real, fake = checks.same_shape_floats(
    real_logits=real_logits, fake_logits=fake_logits
  )
  if kind in ("minimax", "non_saturating"):
    # -log σ(r) - log(1 - σ(f)) = softplus(-r) + softplus(f).
    values = jax.nn.softplus(-real) + jax.nn.softplus(fake)
  elif kind == "least_squares":
    values = 0.5 * jnp.square(real - 1) + 0.5 * jnp.square(fake)
  elif kind == "wasserstein":
    values = fake - real
  else:  # hinge
    values = jax.nn.relu(1 - real) + jax.nn.relu(1 + fake)
  return reduce(values, reduction, weights=weights, where=where)


@loss
def gan_generator_loss(
  fake_logits: ArrayLike,
  *,
  kind: GanKind,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""The generator's loss of a GAN, from the discriminator's raw outputs.

  With :math:`f = D(G(z))` the discriminator's logit on generated data:

  .. math::
    \begin{array}{ll}
    \text{minimax} & \log(1 - \sigma(f)) = -\operatorname{softplus}(f) \\
    \text{non\_saturating} & -\log\sigma(f) = \operatorname{softplus}(-f) \\
    \text{least\_squares} & \tfrac12 (f - 1)^2 \\
    \text{wasserstein, hinge} & -f
    \end{array}

  ``"minimax"`` is the original game's generator objective (to be
  minimised; it is negative and saturates when the discriminator wins);
  ``"non_saturating"`` is the heuristic Goodfellow et al. recommend.

  Args:
    fake_logits: ``[...]`` floating discriminator outputs on generated data.
    kind: one of ``"minimax"``, ``"non_saturating"``, ``"least_squares"``,
      ``"wasserstein"``, ``"hinge"``; required (no default).
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` elementwise loss, or a scalar for ``"sum"``/``"mean"``.

  Matches TF-GAN's ``minimax_generator_loss``, ``modified_generator_loss``,
  ``least_squares_generator_loss`` and ``wasserstein_generator_loss`` with
  ``reduction=NONE`` (and TorchGAN's generator losses).

  >>> import jax.numpy as jnp, jaxloss
  >>> fake = jnp.array([-3.0, 0.5])
  >>> print(jaxloss.gan_generator_loss(fake, kind="non_saturating"))
  [3.0485...  0.4740...]
  >>> print(jaxloss.gan_generator_loss(fake, kind="least_squares"))
  [8.    0.125]

  References:
    Goodfellow et al., `Generative Adversarial Nets
    <https://arxiv.org/abs/1406.2661>`_, 2014.
    Mao et al., `Least Squares Generative Adversarial Networks
    <https://arxiv.org/abs/1611.04076>`_, 2017.
    Miyato et al., `Spectral Normalization for Generative Adversarial
    Networks <https://arxiv.org/abs/1802.05957>`_, 2018 (hinge loss).
  """
  checks.option("kind", kind, GAN_KINDS)
  fake = checks.as_float("fake_logits", fake_logits)
  if kind == "minimax":
    values = -jax.nn.softplus(fake)  # log(1 - σ(f)), minimised by G
  elif kind == "non_saturating":
    values = jax.nn.softplus(-fake)  # -log σ(f)
  elif kind == "least_squares":
    values = 0.5 * jnp.square(fake - 1)
  else:  # wasserstein and hinge
    values = -fake
  return reduce(values, reduction, weights=weights, where=where)


__all__ = ["gan_discriminator_loss", "gan_generator_loss"]
