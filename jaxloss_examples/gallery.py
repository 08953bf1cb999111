"""Part 4: the loss gallery, each family's loss and gradient against its input.

Every curve is computed by calling a jaxloss function on a one-example input
built from a scalar ``u`` and differentiating it with ``jax.grad`` (jitted and
vmapped over a grid). The left panel is the loss, the right panel its
derivative with respect to ``u``; ``u`` is the plotted input itself, except
where a family says otherwise (classification: the true-class logit, plotted
against ``p_t``). One PNG per family, plus an ``index.md``::

  python -m jaxloss_examples.gallery [out_dir]   # default out/gallery
  python -m jaxloss_examples.gallery docs/gallery  # refresh the committed copy
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys
from collections.abc import Callable

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import jaxloss as jl
from jaxloss_examples import common


@dataclasses.dataclass
class Family:
  """One figure: curves ``u -> loss`` drawn against ``x`` (``u = to_u(x)``)."""

  name: str
  title: str
  xlabel: str
  x: jax.Array
  curves: dict[str, Callable]
  grad_label: str = ""
  to_u: Callable = lambda x: x
  ylim: tuple | None = None
  grad_ylim: tuple | None = None
  note: str = ""
  draw: Callable[[pathlib.Path], None] | None = None  # a figure of its own


def _one(x):
  return jnp.reshape(x, (1,))


def classification() -> Family:
  def softmax_losses():
    logits = lambda u: jnp.stack([u, jnp.zeros_like(u)])[None, :]  # p_t = σ(u)
    label, onehot = jnp.array([0]), jnp.array([[1.0, 0.0]])
    curves = {
      "cross-entropy": lambda u: jl.softmax_cross_entropy(
        logits(u), onehot, reduction="sum"
      )
    }
    for gamma in (0.5, 1.0, 2.0, 5.0):
      curves[f"focal, γ={gamma:g}"] = lambda u, g=gamma: jl.softmax_focal_loss(
        logits(u), label, gamma=g, reduction="sum"
      )
    curves["PolyLoss, ε=1"] = lambda u: jl.poly_loss_cross_entropy(
      logits(u), onehot, epsilon=1.0, reduction="sum"
    )
    return curves

  p = jnp.linspace(0.005, 0.995, 200)
  return Family(
    "classification",
    "Cross-entropy vs focal loss vs PolyLoss",
    "probability of the true class  $p_t$",
    p,
    softmax_losses(),
    grad_label="∂ℓ/∂z  (z: true-class logit, $p_t = σ(z)$)",
    to_u=lambda p: jnp.log(p) - jnp.log1p(-p),
    ylim=(0, 5),
    note="2-class softmax; focal loss down-weights well-classified examples "
    "(Lin et al. 2017), PolyLoss adds ε(1 − p_t) (Leng et al. 2022).",
  )


def margin() -> Family:
  y = jnp.array([1.0])
  return Family(
    "margin",
    "Binary margin losses",
    "margin  $y·f(x)$",
    jnp.linspace(-2.5, 2.5, 201),
    {
      "hinge": lambda u: jl.hinge_loss(_one(u), y, reduction="sum"),
      "squared hinge": lambda u: jl.squared_hinge_loss(
        _one(u), y, reduction="sum"
      ),
      "logistic (soft margin)": lambda u: jl.soft_margin_loss(
        _one(u), y, reduction="sum"
      ),
      "perceptron": lambda u: jl.perceptron_loss(_one(u), y, reduction="sum"),
    },
    ylim=(0, 6),
    grad_ylim=(-3, 0.5),
    note="Targets y in {−1, +1}; f(x) the score.",
  )


def regression() -> Family:
  zero = jnp.zeros(1)
  curves = {
    "MSE (squared error)": jl.squared_error,
    "MAE (absolute error)": jl.absolute_error,
    "Huber, δ=1": lambda p, t, **k: jl.huber_loss(p, t, delta=1.0, **k),
    "log-cosh": jl.log_cosh,
    "smooth L1, β=0.5": lambda p, t, **k: jl.smooth_l1_loss(
      p, t, beta=0.5, **k
    ),
    "quantile, q=0.8": lambda p, t, **k: jl.quantile_loss(
      p, t, quantiles=0.8, **k
    ),
  }
  return Family(
    "regression",
    "Regression losses",
    "error  prediction − target",
    jnp.linspace(-3, 3, 241),
    {
      k: lambda u, f=f: f(_one(u), zero, reduction="sum")
      for k, f in curves.items()
    },
    ylim=(0, 4),
    grad_ylim=(-2, 2),
    note="Robust losses grow linearly: bounded gradients.",
  )


def metric_learning() -> Family:
  def pair(d):  # two 2-d embeddings at distance d
    return jnp.zeros((1, 2)), jnp.stack([d, jnp.zeros_like(d)])[None, :]

  def triplet(d, margin):
    anchor, positive = pair(d)
    negative = jnp.array([[0.0, 1.0]])  # d(a, n) = 1
    return jl.triplet_margin_loss(
      anchor, positive, negative, margin=margin, reduction="sum"
    )

  return Family(
    "metric_learning",
    "Contrastive (Hadsell) and triplet losses",
    "distance  d(a, p)  (triplet: d(a, n) = 1)",
    jnp.linspace(0, 2, 201),
    {
      "contrastive, similar pair": lambda d: jl.contrastive_loss(
        *pair(d), jnp.array([1.0]), margin=1.0, reduction="sum"
      ),
      "contrastive, dissimilar, m=1": lambda d: jl.contrastive_loss(
        *pair(d), jnp.array([0.0]), margin=1.0, reduction="sum"
      ),
      "triplet, margin 0.5": lambda d: triplet(d, 0.5),
      "triplet, margin 1": lambda d: triplet(d, 1.0),
    },
    note="Similar pairs are pulled together; dissimilar ones pushed out to "
    "the margin, then ignored.",
  )


def segmentation() -> Family:
  target = jnp.concatenate([jnp.ones(50), jnp.zeros(50)])[None, :, None]

  def overlap(loss_fn, **options):  # probability p on the object, 0 elsewhere
    return lambda p: jnp.sum(
      loss_fn(target * p, target, apply_softmax=False, smooth=0.0, **options)
    )  # one image

  return Family(
    "segmentation",
    "Overlap losses (under-segmentation)",
    "predicted probability on the object's pixels (background: 0)",
    jnp.linspace(0, 1, 201),
    {
      "Dice": overlap(jl.dice_loss),
      "Jaccard (IoU)": overlap(jl.jaccard_loss),
      "Tversky α=0.3, β=0.7": overlap(jl.tversky_loss, alpha=0.3, beta=0.7),
      "focal Tversky γ=0.75": overlap(jl.focal_tversky_loss, gamma=0.75),
    },
    note="Missing object pixels are false negatives, which Tversky's β "
    "weighs more than Dice does; focal Tversky's γ < 1 makes the "
    "gradient grow as the overlap nears perfect.",
  )


def detection() -> Family:
  target = jnp.array([[0.0, 0.0, 1.0, 1.0]])

  def box(dx):  # a 1.5 × 1 box shifted by dx
    return jnp.stack([dx, 0.0 * dx, dx + 1.5, 0.0 * dx + 1.0])[None, :]

  losses = {
    "IoU": jl.box_iou_loss,
    "GIoU": jl.generalized_box_iou_loss,
    "DIoU": jl.distance_box_iou_loss,
    "CIoU": jl.complete_box_iou_loss,
  }
  return Family(
    "detection",
    "Box regression losses",
    "horizontal offset of the predicted 1.5×1 box from the 1×1 target",
    jnp.linspace(-3, 3, 241),
    {
      k: lambda u, f=f: f(box(u), target, reduction="sum")
      for k, f in losses.items()
    },
    note="Without overlap the IoU loss is flat (zero gradient); GIoU, DIoU "
    "and CIoU still point the box home. CIoU's aspect-ratio term is "
    "small here: its curve lies just above DIoU's.",
  )


def gan() -> Family:
  kinds = ("minimax", "hinge", "least_squares", "wasserstein", "non_saturating")
  return Family(
    "gan",
    "GAN generator losses",
    "discriminator's logit on a fake  D(G(z))",
    jnp.linspace(-5, 5, 201),
    {
      k.replace("_", "-"): lambda u, k=k: jl.gan_generator_loss(
        _one(u), kind=k, reduction="sum"
      )
      for k in kinds
    },
    ylim=(-5, 8),
    note="Minimax saturates where the discriminator wins (logit ≪ 0); the "
    "non-saturating loss does not. The generator's hinge loss is the "
    "Wasserstein one, −D(G(z)).",
  )


def preference() -> Family:
  zero = jnp.zeros(1)
  variants = {
    "DPO (sigmoid)": dict(loss_type="sigmoid"),
    "cDPO, ε=0.1": dict(loss_type="sigmoid", label_smoothing=0.1),
    "rDPO, ε=0.1": dict(loss_type="robust", label_smoothing=0.1),
    "hinge (SLiC)": dict(loss_type="hinge"),
    "IPO": dict(loss_type="ipo"),
  }
  return Family(
    "preference",
    "DPO and its variants (β = 0.5)",
    "log-ratio margin  z = (log π_w − log π_l) − (log π_ref,w − log π_ref,l)",
    jnp.linspace(-6, 6, 241),
    {
      k: lambda u, o=o: jl.dpo_loss(
        _one(u), zero, zero, zero, beta=0.5, reduction="sum", **o
      )
      for k, o in variants.items()
    },
    ylim=(-0.5, 6),
    grad_ylim=(-2, 1),
    note="IPO pulls z to 1/(2β) instead of pushing it up forever.",
  )


def divergence() -> Family:
  p = jnp.array([0.3, 0.7])
  log = lambda q: jnp.log(jnp.stack([q, 1 - q]))
  return Family(
    "divergence",
    "Divergences between Bernoulli(0.3) and Bernoulli(q)",
    "q",
    jnp.linspace(0.01, 0.99, 197),
    {
      "KL(p ‖ q)": lambda q: jl.kl_divergence(log(q), p),
      "KL(q ‖ p)": lambda q: jl.kl_divergence(jnp.log(p), jnp.exp(log(q))),
      "Jensen-Shannon": lambda q: jl.js_divergence(jnp.log(p), log(q)),
    },
    ylim=(0, 2),
    grad_ylim=(-10, 10),
    note="p = (0.3, 0.7) fixed; q = (q, 1 − q).",
  )


def ranking() -> Family:
  labels = jnp.array([1.0, 0.0])  # item 0 is relevant

  def pairwise(f, **k):
    return lambda s: f(
      jnp.stack([s, jnp.zeros_like(s)]), labels, reduction="sum", **k
    )

  return Family(
    "ranking",
    "Pairwise ranking losses",
    "score difference  s_relevant − s_irrelevant",
    jnp.linspace(-4, 4, 201),
    {
      "pairwise hinge, margin 1": pairwise(jl.pairwise_hinge_loss),
      "pairwise logistic (RankNet)": pairwise(jl.pairwise_logistic_loss),
      "pairwise soft 0-1": pairwise(jl.pairwise_soft_zero_one_loss),
      "margin ranking, margin 0.5": lambda s: jl.margin_ranking_loss(
        _one(s), jnp.zeros(1), jnp.ones(1), margin=0.5, reduction="sum"
      ),
    },
  )


def rl() -> Family:
  def ppo(ratio, advantage):
    return jl.ppo_clip_loss(
      _one(jnp.log(ratio)),
      jnp.zeros(1),
      jnp.full(1, advantage),
      epsilon=0.2,
      reduction="sum",
    )

  return Family(
    "rl",
    "PPO's clipped surrogate (ε = 0.2)",
    "probability ratio  π(a|s) / π_old(a|s)",
    jnp.linspace(0.05, 2, 200),
    {
      "advantage +1": lambda r: ppo(r, 1.0),
      "advantage −1": lambda r: ppo(r, -1.0),
    },
    note="Outside [1 − ε, 1 + ε] the loss is flat in the direction that "
    "would move the policy further (zero gradient).",
  )


def diffusion() -> Family:
  """Each weighting as the effective weight on the ε-MSE, against log-SNR:
  the loss of an ε-prediction whose error is 1 everywhere (EDM: the raw
  output whose denoiser error is σ, i.e. an ε-error of 1)."""

  def vp(weighting):
    def weight(lam):
      alpha, sigma = jl.alpha_sigma_from_log_snr(_one(lam))
      zeros = jnp.zeros((1, 1))
      return jl.diffusion_loss(
        zeros + 1.0,
        zeros,
        zeros,
        alpha,
        sigma,
        weighting=weighting,
        reduction="sum",
      )

    return weight

  def edm(lam, sigma_data=0.5):
    sigma = jnp.exp(-0.5 * _one(lam))  # α = 1: SNR = 1/σ²
    # F − target = ε-error · σ / c_out = sqrt(σ² + σ_d²) / σ_d
    output = (jnp.sqrt(jnp.square(sigma) + sigma_data**2) / sigma_data)[:, None]
    zeros = jnp.zeros((1, 1))
    return jl.diffusion_loss(
      output,
      zeros,
      zeros,
      1.0,
      sigma,
      weighting="edm",
      sigma_data=sigma_data,
      reduction="sum",
    )

  return Family(
    "diffusion",
    "Diffusion loss weightings (effective weight on the ε-MSE)",
    "log-SNR  λ = log(α²/σ²)",
    jnp.linspace(-10, 10, 201),
    {
      "none (ε-prediction)": vp("none"),
      "Min-SNR, γ = 5": vp("min_snr"),
      "sigmoid, b = −2": vp("sigmoid"),
      "EDM, σ_data = 0.5": edm,
    },
    grad_label="∂w/∂λ",
    ylim=(0, 2.5),
    grad_ylim=(-1.5, 0.5),
    note="Per-example weight only: the sampler's density over λ (EDM's "
    "log-normal σ, Kingma & Gao's −dλ/dt) is not included. Min-SNR caps the "
    "weight of the clean end (min(SNR, γ)/SNR); the sigmoid weighting falls "
    "smoothly past λ = b; EDM's 1 + σ²/σ_data² grows at the noisy end.",
  )


def flow_matching() -> Family:
  """Flow matching's two paths from noise x0 (t = 0) to data x1 (t = 1)."""
  x0 = jax.random.normal(jax.random.key(3), (5, 2))
  angles = jnp.linspace(0, 2 * jnp.pi, 6)[:-1]
  x1 = 3.0 * jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=1)
  t = jnp.linspace(0, 1, 21)
  paths = {"linear (rectified flow)": {}, "lipman, σ_min = 0.2": {}}
  kwargs = dict(zip(paths, ({}, {"path": "lipman", "sigma_min": 0.2})))

  def draw(path: pathlib.Path):
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), dpi=80)
    for ax, (title, kw) in zip(axes, kwargs.items()):
      at = lambda s, kw=kw: jl.flow_matching_path(x0, x1, s, **kw)
      points = jax.vmap(at)(t)  # [time, pair, 2]
      arrows = jnp.array([0.0, 0.5])
      _, velocity = jax.vmap(lambda s: jax.jvp(at, (s,), (jnp.ones(()),)))(
        arrows
      )
      loss = jax.vmap(
        lambda v, s: jl.flow_matching_loss(v, x0, x1, s, **kw, reduction="sum")
      )(velocity, arrows)  # d x_t / dt is the target: zero loss
      if not jnp.allclose(loss, 0.0, atol=1e-10):
        raise FloatingPointError(f"gallery: flow matching {title}: {loss}")
      ax.plot(points[..., 0], points[..., 1], color="0.6", lw=1)
      ax.scatter(*x0.T, marker="o", label="x0 (noise, t = 0)", zorder=3)
      ax.scatter(*points[-1].T, marker="*", s=90, label="x_t at t = 1")
      ax.scatter(*x1.T, marker="x", color="k", label="x1 (data)", zorder=4)
      at_arrows = jax.vmap(at)(arrows)
      ax.quiver(
        at_arrows[..., 0],
        at_arrows[..., 1],
        0.25 * velocity[..., 0],
        0.25 * velocity[..., 1],
        angles="xy",
        scale_units="xy",
        scale=1,
        color="C3",
        width=0.008,
        zorder=5,
        label="target velocity at t = 0, 0.5 (× 0.25)",
      )
      ax.set(title=title, aspect="equal")
      ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=4)
    fig.suptitle(
      "Flow matching: x_t from flow_matching_path, velocity = d x_t / dt",
      fontsize=12,
    )
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=80)
    plt.close(fig)

  return Family(
    "flow_matching",
    "Flow-matching paths from noise to data",
    "",
    t,
    {},
    note="Five noise points x0 paired with five data points x1; grey lines "
    "are x_t for t in [0, 1], red arrows the target velocity at t = 0 and "
    "0.5 (constant along each path: its loss is 0, checked). "
    "Lipman's path ends at x1 + σ_min·x0, a Gaussian of width σ_min "
    "around the data.",
    draw=draw,
  )


FAMILIES = (
  classification,
  margin,
  regression,
  metric_learning,
  segmentation,
  detection,
  gan,
  preference,
  divergence,
  ranking,
  rl,
  diffusion,
  flow_matching,
)


def evaluate(family: Family):
  """``(values, gradients)`` of every curve on the family's grid."""
  u = family.to_u(family.x)
  out = {}
  for label, fn in family.curves.items():
    values, grads = jax.jit(jax.vmap(jax.value_and_grad(fn)))(u)
    if not (jnp.all(jnp.isfinite(values)) and jnp.all(jnp.isfinite(grads))):
      raise FloatingPointError(f"gallery: {family.name}/{label} is not finite")
    out[label] = (values, grads)
  return out


def plot(family: Family, curves, path: pathlib.Path):
  fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=80)
  for i, (label, (values, grads)) in enumerate(curves.items()):
    style = dict(label=label, lw=1.8, ls=("-", "--", "-.", ":")[i % 4])
    left.plot(family.x, values, **style)  # styles keep overlaps visible
    right.plot(family.x, grads, **style)
  left.set(title="loss", xlabel=family.xlabel, ylabel="loss")
  right.set(
    title="gradient (jax.grad)",
    xlabel=family.xlabel,
    ylabel=family.grad_label or "∂ℓ/∂(input)",
  )
  if family.ylim:
    left.set_ylim(*family.ylim)
  if family.grad_ylim:
    right.set_ylim(*family.grad_ylim)
  for axes in (left, right):
    axes.grid(alpha=0.3)
    axes.xaxis.label.set_size(9)
  left.legend(fontsize=8)
  fig.suptitle(family.title, fontsize=12)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)


def run(out=common.OUT / "gallery", *, families=FAMILIES, progress=True):
  """Draws every family; writes the PNGs and ``index.md``; returns paths."""
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  lines = [
    "# The jaxloss gallery",
    "",
    "Each family's losses (left) and their gradients from `jax.grad` "
    "(right), computed by calling the jaxloss functions "
    "(`python -m jaxloss_examples.gallery`).",
    "",
  ]
  paths = []
  for make in common.progress(families, "gallery", progress):
    family = make()
    path = out / f"{family.name}.png"
    if family.draw is not None:
      family.draw(path)
    else:
      plot(family, evaluate(family), path)
    paths.append(path)
    lines += [
      f"## {family.title}",
      "",
      family.note,
      "",
      f"![{family.title}]({path.name})",
      "",
    ]
  (out / "index.md").write_text("\n".join(lines))
  print(
    f"\n## 4. Loss gallery\n\n{len(paths)} figures in {out}/ "
    f"(index: {out / 'index.md'}).",
    flush=True,
  )
  return paths


if __name__ == "__main__":
  run(sys.argv[1] if len(sys.argv) > 1 else common.OUT / "gallery")
