# %% [markdown]
# # Choosing a loss with jaxloss
#
# A tour of the questions that pick a loss: is the problem balanced, are there
# outliers, do you need an interval rather than a point, are your inputs what
# the loss expects? Every curve and number below is computed by calling
# jaxloss; the [loss gallery](../docs/gallery/index.md) has one figure per
# family.

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import jaxloss as jl

# %% [markdown]
# ## 1. Classification: how much should easy examples count?
#
# Cross-entropy keeps pushing examples the model already gets right. The focal
# loss multiplies it by $(1 - p_t)^\gamma$, so well-classified examples
# ($p_t \to 1$) stop dominating the gradient, which helps when easy negatives
# vastly outnumber everything else (dense detection, long tails). PolyLoss goes
# the other way and adds $\epsilon (1 - p_t)$.

# %%
p_t = jnp.linspace(0.01, 0.99, 99)
logits = jnp.stack([jnp.log(p_t) - jnp.log1p(-p_t), jnp.zeros_like(p_t)], -1)
labels = jnp.zeros(len(p_t), jnp.int32)  # class 0, so p_t = softmax(logits)[0]

curves = {
  "cross-entropy": jl.softmax_cross_entropy_with_integer_labels(logits, labels)
}
for gamma in (1.0, 2.0, 5.0):
  curves[f"focal, gamma={gamma:g}"] = jl.softmax_focal_loss(
    logits, labels, gamma=gamma
  )
curves["PolyLoss, eps=1"] = jl.poly_loss_cross_entropy(
  logits, jax.nn.one_hot(labels, 2), epsilon=1.0
)

for name, values in curves.items():
  plt.plot(p_t, values, label=name)
plt.xlabel("probability of the true class $p_t$")
plt.ylabel("loss")
plt.ylim(0, 4)
plt.legend()
plt.show()

# %% [markdown]
# With a long tail, class weights are the other lever.
# `class_weights_from_counts` turns class counts into weights normalised to sum
# to the number of classes; "effective number" (Cui et al. 2019) sits between
# no weighting and inverse frequency. Pass them as `class_weights=` to the
# cross-entropies or as `alpha=` to `softmax_focal_loss`.

# %%
counts = np.array([500, 200, 50, 10])
for method in ("inverse", "inverse_sqrt", "effective_number"):
  w = jl.class_weights_from_counts(counts, method=method, beta=0.99)
  print(f"{method:>16}:", np.round(np.asarray(w), 3))

# %% [markdown]
# ## 2. Regression: are there outliers?
#
# The squared error's gradient grows with the error, so a few outliers pull the
# whole fit. The absolute error's is bounded (but not smooth at 0); Huber is
# quadratic near 0 and linear beyond `delta`. Fit a line to data with 10%
# gross outliers with each:

# %%
rng = np.random.default_rng(0)
x = rng.uniform(-1, 1, 200).astype(np.float32)
y = 2 * x + 1 + 0.1 * rng.normal(size=200).astype(np.float32)
y[:20] += 8.0  # outliers


def fit(loss_fn, steps=400):
  def objective(p):
    return loss_fn(p["w"] * x + p["b"], y, reduction="mean")

  opt = optax.adam(0.05)
  params = {"w": jnp.zeros(()), "b": jnp.zeros(())}
  state = opt.init(params)

  @jax.jit
  def step(params, state):
    grads = jax.grad(objective)(params)
    updates, state = opt.update(grads, state)
    return optax.apply_updates(params, updates), state

  for _ in range(steps):
    params, state = step(params, state)
  return params


fits = {
  "squared error": fit(jl.squared_error),
  "Huber (delta=1)": fit(jl.huber_loss),
  "absolute error": fit(jl.absolute_error),
}
plt.scatter(x, y, s=6, color="gray")
grid = np.linspace(-1, 1, 3)
for name, p in fits.items():
  line = f"y = {float(p['w']):.2f} x + {float(p['b']):.2f}"
  print(f"{name:>15}: {line}")
  plt.plot(grid, p["w"] * grid + p["b"], label=f"{name}: {line}")
plt.legend()
plt.title("true line: y = 2 x + 1")
plt.show()

# %% [markdown]
# ## 3. Do you need an interval? Quantile (pinball) loss
#
# `quantile_loss` with `quantiles=q` is minimised by the q-th conditional
# quantile. With a vector of quantiles matching the predictions' last axis, one
# model predicts several at once: here the 10%, 50% and 90% quantiles of data
# whose noise grows with x.

# %%
x = rng.uniform(0, 1, 400).astype(np.float32)
y = (x + (0.1 + 0.5 * x) * rng.normal(size=400)).astype(np.float32)
quantiles = jnp.array([0.1, 0.5, 0.9])
targets = jnp.repeat(jnp.asarray(y)[:, None], 3, axis=1)


def objective(p):
  predictions = x[:, None] * p["w"][None, :] + p["b"][None, :]
  return jl.quantile_loss(
    predictions, targets, quantiles=quantiles, reduction="mean"
  )


opt = optax.adam(0.05)
params = {"w": jnp.zeros(3), "b": jnp.zeros(3)}
state = opt.init(params)


@jax.jit
def step(params, state):
  updates, state = opt.update(jax.grad(objective)(params), state)
  return optax.apply_updates(params, updates), state


for _ in range(800):
  params, state = step(params, state)

plt.scatter(x, y, s=5, color="gray")
grid = np.linspace(0, 1, 3)
for i, q in enumerate(quantiles):
  plt.plot(grid, params["w"][i] * grid + params["b"][i], label=f"q = {q:.1f}")
below = [(y < x * params["w"][i] + params["b"][i]).mean() for i in range(3)]
plt.legend()
plt.show()
print("share of points below each line:", np.round(below, 2))

# %% [markdown]
# ## 4. Margins, rankings and retrieval
#
# * Scores rather than probabilities (SVM-style): `hinge_loss`,
#   `squared_hinge_loss`, `multiclass_hinge_loss`.
# * Orderings: `pairwise_logistic_loss` (RankNet), `pairwise_hinge_loss`,
#   `listmle_loss`, `ranking_softmax_loss`.
# * Embeddings: `triplet_margin_loss`, `batch_hard_triplet_loss`,
#   `supervised_contrastive_loss`, and for image-text pairs `clip_loss` and
#   `siglip_loss` (sharded versions in `jaxloss.distributed`, notebook 03).
# * A language model's head: `linear_cross_entropy` (notebook 04).
#
# ## 5. Are the inputs what the loss expects?
#
# Shapes are checked when the function is traced; values (labels in range,
# probabilities in [0, 1], no NaN) only on request, with `jaxloss.checked`,
# which costs a device-to-host sync:

# %%
logits = jnp.zeros((2, 3))
# Unchecked, label 5 of 3 classes silently gives NaN:
print(jl.softmax_cross_entropy_with_integer_labels(logits, jnp.array([0, 5])))
checked_ce = jl.checked(jl.softmax_cross_entropy_with_integer_labels)
try:
  checked_ce(logits, jnp.array([0, 5]))
except Exception as error:  # a JaxRuntimeError from checkify
  print(type(error).__name__, "-", str(error).splitlines()[0])
