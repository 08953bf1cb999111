# %% [markdown]
# # Composing losses into an optax + Flax NNX training step
#
# `jaxloss.train` turns a model and a dictionary of named, weighted losses into
# an objective `(model, batch) -> (loss, aux)` that logs every term, and into a
# jitted optax step. Masks and weights are read from the batch, so they are
# data, not constants compiled into the step.

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from flax import nnx
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import jaxloss as jl

x, y = load_digits(return_X_y=True)
x = (x / 16).astype(np.float32)
x_train, x_test, y_train, y_test = train_test_split(
  x, y.astype(np.int32), test_size=0.3, random_state=0, stratify=y
)
rng = np.random.default_rng(0)

# %% [markdown]
# ## Two losses, one mask
#
# A digit classifier trained with cross-entropy plus half a focal loss, where
# only a third of the training images have labels (the `labeled` mask drops the
# others from both terms). With label smoothing 0.1 the cross-entropy cannot go
# much below 0.5, so its curve flattens while the focal term keeps falling.


# %%
class Classifier(nnx.Module):
  def __init__(self, rngs):
    self.hidden = nnx.Linear(64, 128, rngs=rngs)
    self.out = nnx.Linear(128, 10, rngs=rngs)

  def __call__(self, x):
    return self.out(nnx.relu(self.hidden(x)))


ce = jl.softmax_cross_entropy_with_integer_labels
objective = jl.train.objective(
  lambda model, batch: model(batch["x"]),
  {
    "ce": jl.train.term(ce, "y", where="labeled", label_smoothing=0.1),
    "focal": (
      jl.train.term(jl.softmax_focal_loss, "y", where="labeled", gamma=2.0),
      0.5,
    ),
  },
)

model = Classifier(nnx.Rngs(0))
optimizer = nnx.Optimizer(
  model, optax.adamw(3e-3, weight_decay=1e-4), wrt=nnx.Param
)
step = jl.train.nnx_step(objective)
labeled = rng.random(len(y_train)) < 1 / 3

logs = []
for _ in range(300):
  i = rng.choice(len(y_train), 128, replace=False)
  logs.append(
    step(
      model,
      optimizer,
      {"x": x_train[i], "y": y_train[i], "labeled": labeled[i]},
    )
  )
accuracy = np.mean(np.argmax(model(x_test), -1) == y_test)
print(f"{labeled.sum()} labeled images; test accuracy {accuracy:.3f}")
for name in ("loss", "ce", "focal"):
  plt.plot([float(log[name]) for log in logs], label=name)
plt.xlabel("step")
plt.legend()
plt.yscale("log")
plt.show()

# %% [markdown]
# ## Two tasks, learned weights
#
# A denoising multi-task model: from a noisy digit, classify it and reconstruct
# the clean image. Instead of hand-tuning the two terms' weights,
# `jaxloss.nn.UncertaintyWeighting` (Kendall et al. 2018) learns one variance
# per task; it lives inside the model, and `combine=` hands it the weighted
# terms. Its parameters are trained with the model's; for a regression task
# the optimal variance is the task's loss, for a classification task twice it,
# so the learned variances say how hard each task is. Adam moves each
# log-variance by about its learning rate per step, so a variance far from 1
# takes a while to get there: compare the learned values with their optima
# below.


# %%
class MultiTask(nnx.Module):
  def __init__(self, rngs):
    self.encoder = nnx.Linear(64, 128, rngs=rngs)
    self.classify = nnx.Linear(128, 10, rngs=rngs)
    self.reconstruct = nnx.Linear(128, 64, rngs=rngs)
    self.weighting = jl.nn.UncertaintyWeighting(
      {"ce": "classification", "reconstruction": "regression"}
    )

  def __call__(self, x):
    h = nnx.relu(self.encoder(x))
    return {
      "logits": self.classify(h),
      "image": jax.nn.sigmoid(self.reconstruct(h)),
    }


objective = jl.train.objective(
  lambda model, batch: model(batch["noisy"]),
  {
    "ce": jl.train.term(ce, "y", output="logits"),
    "reconstruction": jl.train.term(jl.squared_error, "clean", output="image"),
  },
  combine=lambda model, weighted: model.weighting(weighted),
)

model = MultiTask(nnx.Rngs(1))
optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)
step = jl.train.nnx_step(objective)
noisy = lambda images: np.clip(
  images + 0.4 * rng.normal(size=images.shape), 0, 1
).astype(np.float32)

for _ in range(600):
  i = rng.choice(len(y_train), 128, replace=False)
  aux = step(
    model,
    optimizer,
    {"noisy": noisy(x_train[i]), "clean": x_train[i], "y": y_train[i]},
  )
out = model(noisy(x_test))
accuracy = np.mean(np.argmax(out["logits"], -1) == y_test)
print(f"test accuracy from noisy images: {accuracy:.3f}")
variances = model.weighting.variances()
for task, optimum in (
  ("ce", 2 * aux["ce"]),
  ("reconstruction", aux["reconstruction"]),
):
  print(
    f"{task:>14}: loss {float(aux[task]):.4f}, learned variance "
    f"{float(variances[task]):.4f} (its optimum for this loss: "
    f"{float(optimum):.4f})"
  )

# %% [markdown]
# ## The same objective with a line-search optimizer
#
# `jaxloss.train.step` works on a pytree of parameters with any optax
# transformation, including `optax.lbfgs`, which needs the objective's value
# and a function to re-evaluate it. A multinomial logistic regression:


# %%
def linear(params, batch):
  return batch["x"] @ params["w"] + params["b"][None, :]


objective = jl.train.objective(linear, {"ce": jl.train.term(ce, "y")})
lbfgs = optax.lbfgs()
params = {"w": jnp.zeros((64, 10)), "b": jnp.zeros(10)}
state = lbfgs.init(params)
train_step = jl.train.step(objective, lbfgs)
batch = {"x": x_train, "y": y_train}
for i in range(30):
  params, state, aux = train_step(params, state, batch)
  if i % 10 == 0 or i == 29:
    print(f"iteration {i:2d}: cross-entropy {float(aux['ce']):.4f}")
accuracy = np.mean(np.argmax(linear(params, {"x": x_test}), -1) == y_test)
print(f"test accuracy: {accuracy:.3f}")
