"""Writes the Colab-ready notebooks of this folder, outputs cleared.

The notebooks are generated from the cells below so that they stay
reviewable as code; edit this file, then run::

  .venv/bin/python notebooks/build.py

``tests/test_notebooks.py`` executes every notebook and checks that this
script reproduces the committed files.
"""

from __future__ import annotations

import pathlib

import nbformat

HERE = pathlib.Path(__file__).resolve().parent
REPOSITORY = "git+https://github.com/jaxloss/jaxloss"

COLAB_NOTE = f"""\
**Running this notebook.** Locally (from a clone, `make venv`), it uses the
installed jaxloss and the first code cell does nothing. In Google Colab the
first code cell installs jaxloss with `pip install {REPOSITORY}`; that URL is
a placeholder for the project's repository until it is published, so replace
it with the real one (or a wheel) if the install fails."""

INSTALL = f"""\
# In Colab, install jaxloss (placeholder URL, see above); locally, do nothing.
import subprocess
import sys

try:
  import google.colab  # noqa: F401
  IN_COLAB = True
except ImportError:
  IN_COLAB = False
if IN_COLAB:
  subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                  "{REPOSITORY}"], check=True)"""

SIMULATED_DEVICES = """\

# Eight simulated devices on the CPU, for this notebook's sharded losses. XLA
# reads the flag once, when jax starts, so it is set before jax is imported
# (restart the runtime if jax was already imported). On a TPU or multi-GPU
# runtime the flag only affects the CPU and the real devices are used.
import os

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS",
                                                                 ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " "
                             "--xla_force_host_platform_device_count=8")"""


def md(text):
  return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code(text):
  return nbformat.v4.new_code_cell(text.strip("\n"))


# --------------------------------------------------------------------------- #
# 01: choosing a loss

CHOOSING = [
    md("""
# Choosing a loss with jaxloss

A tour of the questions that pick a loss: is the problem balanced, are there
outliers, do you need an interval rather than a point, are your inputs what
the loss expects? Every curve and number below is computed by calling
jaxloss; the [loss gallery](../docs/gallery/index.md) has one figure per
family.
"""),
    md(COLAB_NOTE),
    code(INSTALL),
    code("""
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import jaxloss as jl
"""),
    md("""
## 1. Classification: how much should easy examples count?

Cross-entropy keeps pushing examples the model already gets right. The focal
loss multiplies it by $(1 - p_t)^\\gamma$, so well-classified examples
($p_t \\to 1$) stop dominating the gradient, which helps when easy negatives
vastly outnumber everything else (dense detection, long tails). PolyLoss goes
the other way and adds $\\epsilon (1 - p_t)$.
"""),
    code("""
p_t = jnp.linspace(0.01, 0.99, 99)
logits = jnp.stack([jnp.log(p_t) - jnp.log1p(-p_t), jnp.zeros_like(p_t)], -1)
labels = jnp.zeros(len(p_t), jnp.int32)  # class 0, so p_t = softmax(logits)[0]

curves = {"cross-entropy": jl.softmax_cross_entropy_with_integer_labels(
    logits, labels)}
for gamma in (1.0, 2.0, 5.0):
  curves[f"focal, gamma={gamma:g}"] = jl.softmax_focal_loss(logits, labels,
                                                            gamma=gamma)
curves["PolyLoss, eps=1"] = jl.poly_loss_cross_entropy(
    logits, jax.nn.one_hot(labels, 2), epsilon=1.0)

for name, values in curves.items():
  plt.plot(p_t, values, label=name)
plt.xlabel("probability of the true class $p_t$"); plt.ylabel("loss")
plt.ylim(0, 4); plt.legend(); plt.show()
"""),
    md("""
With a long tail, class weights are the other lever.
`class_weights_from_counts` turns class counts into weights normalised to sum
to the number of classes; "effective number" (Cui et al. 2019) sits between
no weighting and inverse frequency. Pass them as `class_weights=` to the
cross-entropies or as `alpha=` to `softmax_focal_loss`.
"""),
    code("""
counts = np.array([500, 200, 50, 10])
for method in ("inverse", "inverse_sqrt", "effective_number"):
  w = jl.class_weights_from_counts(counts, method=method, beta=0.99)
  print(f"{method:>16}:", np.round(np.asarray(w), 3))
"""),
    md("""
## 2. Regression: are there outliers?

The squared error's gradient grows with the error, so a few outliers pull the
whole fit. The absolute error's is bounded (but not smooth at 0); Huber is
quadratic near 0 and linear beyond `delta`. Fit a line to data with 10%
gross outliers with each:
"""),
    code("""
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

fits = {"squared error": fit(jl.squared_error),
        "Huber (delta=1)": fit(jl.huber_loss),
        "absolute error": fit(jl.absolute_error)}
plt.scatter(x, y, s=6, color="gray")
grid = np.linspace(-1, 1, 3)
for name, p in fits.items():
  line = f"y = {float(p['w']):.2f} x + {float(p['b']):.2f}"
  print(f"{name:>15}: {line}")
  plt.plot(grid, p["w"] * grid + p["b"], label=f"{name}: {line}")
plt.legend(); plt.title("true line: y = 2 x + 1"); plt.show()
"""),
    md("""
## 3. Do you need an interval? Quantile (pinball) loss

`quantile_loss` with `quantiles=q` is minimised by the q-th conditional
quantile. With a vector of quantiles matching the predictions' last axis, one
model predicts several at once: here the 10%, 50% and 90% quantiles of data
whose noise grows with x.
"""),
    code("""
x = rng.uniform(0, 1, 400).astype(np.float32)
y = (x + (0.1 + 0.5 * x) * rng.normal(size=400)).astype(np.float32)
quantiles = jnp.array([0.1, 0.5, 0.9])
targets = jnp.repeat(jnp.asarray(y)[:, None], 3, axis=1)

def objective(p):
  predictions = x[:, None] * p["w"][None, :] + p["b"][None, :]
  return jl.quantile_loss(predictions, targets, quantiles=quantiles,
                          reduction="mean")

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
plt.legend(); plt.show()
print("share of points below each line:", np.round(below, 2))
"""),
    md("""
## 4. Margins, rankings and retrieval

* Scores rather than probabilities (SVM-style): `hinge_loss`,
  `squared_hinge_loss`, `multiclass_hinge_loss`.
* Orderings: `pairwise_logistic_loss` (RankNet), `pairwise_hinge_loss`,
  `listmle_loss`, `ranking_softmax_loss`.
* Embeddings: `triplet_margin_loss`, `batch_hard_triplet_loss`,
  `supervised_contrastive_loss`, and for image-text pairs `clip_loss` and
  `siglip_loss` (sharded versions in `jaxloss.distributed`, notebook 03).
* A language model's head: `linear_cross_entropy` (notebook 04).

## 5. Are the inputs what the loss expects?

Shapes are checked when the function is traced; values (labels in range,
probabilities in [0, 1], no NaN) only on request, with `jaxloss.checked`,
which costs a device-to-host sync:
"""),
    code("""
logits = jnp.zeros((2, 3))
# Unchecked, label 5 of 3 classes silently gives NaN:
print(jl.softmax_cross_entropy_with_integer_labels(logits, jnp.array([0, 5])))
checked_ce = jl.checked(jl.softmax_cross_entropy_with_integer_labels)
try:
  checked_ce(logits, jnp.array([0, 5]))
except Exception as error:  # a JaxRuntimeError from checkify
  print(type(error).__name__, "-", str(error).splitlines()[0])
"""),
]


# --------------------------------------------------------------------------- #
# 02: training with optax and NNX

TRAINING = [
    md("""
# Composing losses into an optax + Flax NNX training step

`jaxloss.train` turns a model and a dictionary of named, weighted losses into
an objective `(model, batch) -> (loss, aux)` that logs every term, and into a
jitted optax step. Masks and weights are read from the batch, so they are
data, not constants compiled into the step.
"""),
    md(COLAB_NOTE),
    code(INSTALL),
    code("""
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
    x, y.astype(np.int32), test_size=0.3, random_state=0, stratify=y)
rng = np.random.default_rng(0)
"""),
    md("""
## Two losses, one mask

A digit classifier trained with cross-entropy plus half a focal loss, where
only a third of the training images have labels (the `labeled` mask drops the
others from both terms). With label smoothing 0.1 the cross-entropy cannot go
much below 0.5, so its curve flattens while the focal term keeps falling.
"""),
    code("""
class Classifier(nnx.Module):
  def __init__(self, rngs):
    self.hidden = nnx.Linear(64, 128, rngs=rngs)
    self.out = nnx.Linear(128, 10, rngs=rngs)

  def __call__(self, x):
    return self.out(nnx.relu(self.hidden(x)))

ce = jl.softmax_cross_entropy_with_integer_labels
objective = jl.train.objective(lambda model, batch: model(batch["x"]), {
    "ce": jl.train.term(ce, "y", where="labeled", label_smoothing=0.1),
    "focal": (jl.train.term(jl.softmax_focal_loss, "y", where="labeled",
                            gamma=2.0), 0.5)})

model = Classifier(nnx.Rngs(0))
optimizer = nnx.Optimizer(model, optax.adamw(3e-3, weight_decay=1e-4),
                          wrt=nnx.Param)
step = jl.train.nnx_step(objective)
labeled = rng.random(len(y_train)) < 1 / 3

logs = []
for _ in range(300):
  i = rng.choice(len(y_train), 128, replace=False)
  logs.append(step(model, optimizer, {"x": x_train[i], "y": y_train[i],
                                      "labeled": labeled[i]}))
accuracy = np.mean(np.argmax(model(x_test), -1) == y_test)
print(f"{labeled.sum()} labeled images; test accuracy {accuracy:.3f}")
for name in ("loss", "ce", "focal"):
  plt.plot([float(log[name]) for log in logs], label=name)
plt.xlabel("step"); plt.legend(); plt.yscale("log"); plt.show()
"""),
    md("""
## Two tasks, learned weights

A denoising multi-task model: from a noisy digit, classify it and reconstruct
the clean image. Instead of hand-tuning the two terms' weights,
`jaxloss.nn.UncertaintyWeighting` (Kendall et al. 2018) learns one variance
per task; it lives inside the model, and `combine=` hands it the weighted
terms. Its parameters are trained with the model's; for a regression task
the optimal variance is the task's loss, for a classification task twice it,
so the learned variances say how hard each task is. Adam moves each
log-variance by about its learning rate per step, so a variance far from 1
takes a while to get there: compare the learned values with their optima
below.
"""),
    code("""
class MultiTask(nnx.Module):
  def __init__(self, rngs):
    self.encoder = nnx.Linear(64, 128, rngs=rngs)
    self.classify = nnx.Linear(128, 10, rngs=rngs)
    self.reconstruct = nnx.Linear(128, 64, rngs=rngs)
    self.weighting = jl.nn.UncertaintyWeighting(
        {"ce": "classification", "reconstruction": "regression"})

  def __call__(self, x):
    h = nnx.relu(self.encoder(x))
    return {"logits": self.classify(h),
            "image": jax.nn.sigmoid(self.reconstruct(h))}

objective = jl.train.objective(
    lambda model, batch: model(batch["noisy"]), {
        "ce": jl.train.term(ce, "y", output="logits"),
        "reconstruction": jl.train.term(jl.squared_error, "clean",
                                        output="image")},
    combine=lambda model, weighted: model.weighting(weighted))

model = MultiTask(nnx.Rngs(1))
optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)
step = jl.train.nnx_step(objective)
noisy = lambda images: np.clip(
    images + 0.4 * rng.normal(size=images.shape), 0, 1).astype(np.float32)

for _ in range(600):
  i = rng.choice(len(y_train), 128, replace=False)
  aux = step(model, optimizer, {"noisy": noisy(x_train[i]),
                                "clean": x_train[i], "y": y_train[i]})
out = model(noisy(x_test))
accuracy = np.mean(np.argmax(out["logits"], -1) == y_test)
print(f"test accuracy from noisy images: {accuracy:.3f}")
variances = model.weighting.variances()
for task, optimum in (("ce", 2 * aux["ce"]),
                      ("reconstruction", aux["reconstruction"])):
  print(f"{task:>14}: loss {float(aux[task]):.4f}, learned variance "
        f"{float(variances[task]):.4f} (its optimum for this loss: "
        f"{float(optimum):.4f})")
"""),
    md("""
## The same objective with a line-search optimizer

`jaxloss.train.step` works on a pytree of parameters with any optax
transformation, including `optax.lbfgs`, which needs the objective's value
and a function to re-evaluate it. A multinomial logistic regression:
"""),
    code("""
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
"""),
]


# --------------------------------------------------------------------------- #
# 03: sharded contrastive pretraining

SHARDED = [
    md("""
# Large-batch contrastive pretraining with the sharded losses

Contrastive losses get better with more negatives, and the negatives of a
data-parallel batch live on other devices. `jaxloss.distributed` has CLIP,
SigLIP, InfoNCE, SupCon and MNR losses that see the **global** batch while
each device holds its slice; `strategy="ring"` passes the other devices'
embeddings round a ring, so the memory per device does not grow with the
number of devices.

This notebook simulates 8 devices on the CPU. On a real multi-GPU machine or
TPU pod nothing changes but the first cell: drop the flag, call
`jax.distributed.initialize()` on a pod, and build the same mesh over
`jax.devices()` (see `docs/distributed.md`).
"""),
    md(COLAB_NOTE),
    code(INSTALL + "\n" + SIMULATED_DEVICES),
    code("""
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from sklearn.datasets import load_digits

import jaxloss as jl
import jaxloss.distributed as jd

mesh = jax.make_mesh((jax.device_count(),), ("data",),
                     axis_types=(jax.sharding.AxisType.Auto,))
batch_sharding = jax.NamedSharding(mesh, jax.P("data"))
print(jax.device_count(), "devices:", jax.devices())
"""),
    md("""
## Paired data and two towers

Each 8×8 digit is cut into two views, its top half and its bottom half. Two
small towers embed them; CLIP's loss pulls each pair together against every
other pair in the global batch. The temperature is learned (as a log-scale).
"""),
    code("""
digits = (load_digits().data / 16).astype(np.float32)
tops, bottoms = digits[:, :32], digits[:, 32:]

def init_tower(key, hidden=64, out=32):
  k1, k2 = jax.random.split(key)
  return {"w1": jax.random.normal(k1, (32, hidden)) / np.sqrt(32),
          "w2": jax.random.normal(k2, (hidden, out)) / np.sqrt(hidden)}

def tower(p, x):
  return jax.nn.relu(x @ p["w1"]) @ p["w2"]

key_top, key_bottom = jax.random.split(jax.random.key(0))
params = {"top": init_tower(key_top), "bottom": init_tower(key_bottom),
          "log_scale": jnp.log(10.0)}

clip = jd.shard(jd.clip_loss, mesh)   # called on globally sharded arrays

def loss_fn(params, top, bottom):
  return clip(tower(params["top"], top), tower(params["bottom"], bottom),
              temperature=jnp.exp(-params["log_scale"]), strategy="ring")

optimizer = optax.adam(3e-3)
state = optimizer.init(params)

@jax.jit
def train_step(params, state, top, bottom):
  loss, grads = jax.value_and_grad(loss_fn)(params, top, bottom)
  updates, state = optimizer.update(grads, state)
  return optax.apply_updates(params, updates), state, loss

rng = np.random.default_rng(0)
losses = []
for _ in range(100):
  i = rng.choice(len(digits), 512, replace=False)   # 64 per device
  top, bottom = jax.device_put((tops[i], bottoms[i]), batch_sharding)
  params, state, loss = train_step(params, state, top, bottom)
  losses.append(float(loss))  # waiting for each step (see the note below)
plt.plot(losses); plt.xlabel("step"); plt.ylabel("global CLIP loss"); plt.show()

def retrieval(params):  # does a top half find its own bottom half?
  a, b = tower(params["top"], tops), tower(params["bottom"], bottoms)
  a = a / jnp.linalg.norm(a, axis=1, keepdims=True)
  b = b / jnp.linalg.norm(b, axis=1, keepdims=True)
  return float(jnp.mean(jnp.argmax(a @ b.T, 1) == jnp.arange(len(a))))

print(f"top-1 retrieval among {len(digits)} digits: {retrieval(params):.3f} "
      f"(chance {1 / len(digits):.4f})")
"""),
    md("""
(On simulated CPU devices, wait for each step before dispatching the next:
XLA:CPU's simulated devices share one thread pool, and queueing ring programs
back to back can starve the collectives. `float(loss)` does it here; real
devices do not need it.)

## The sharded loss is the single-device loss of the global batch

`jd.clip_loss` over 8 devices equals `jl.clip_loss` on the concatenated batch,
in value and in gradient, for both strategies:
"""),
    code("""
top, bottom = tops[:1024], bottoms[:1024]
single = jax.value_and_grad(lambda p: jl.clip_loss(
    tower(p["top"], top), tower(p["bottom"], bottom),
    temperature=jnp.exp(-p["log_scale"]), reduction="mean"))(params)
sharded_inputs = jax.device_put((top, bottom), batch_sharding)
for strategy in ("ring", "all_gather"):
  value, grads = jax.jit(jax.value_and_grad(lambda p: clip(
      tower(p["top"], sharded_inputs[0]), tower(p["bottom"], sharded_inputs[1]),
      temperature=jnp.exp(-p["log_scale"]), strategy=strategy)))(params)
  grad_error = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(
      jax.tree.leaves(grads), jax.tree.leaves(single[1])))
  print(f"{strategy:>10}: loss {float(value):.6f} vs {float(single[0]):.6f}, "
        f"largest gradient difference {grad_error:.1e}")
  assert abs(float(value) - float(single[0])) < 1e-5 and grad_error < 1e-4
"""),
    md("""
## Memory per device: ring vs all_gather

`all_gather` collects the other side's embeddings and holds `b × B` logits
per device (a local batch `b`, a global batch `B`); the ring holds one
`b × chunk` block. The compiled programs' temporary memory shows it (compiled,
not run):
"""),
    code("""
def temp_mib(strategy, batch, dim=128, chunk_size=512):
  def loss(x, y):
    return jd.shard(jd.clip_loss, mesh)(
        x, y, strategy=strategy,
        chunk_size=chunk_size if strategy == "ring" else None)
  spec = jax.ShapeDtypeStruct((batch, dim), jnp.float32,
                              sharding=batch_sharding)
  compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(
      spec, spec).compile()
  return compiled.memory_analysis().temp_size_in_bytes / 2**20

batches = (2048, 8192, 32768)
memory = {s: [temp_mib(s, b) for b in batches] for s in ("all_gather", "ring")}
for b, gather, ring in zip(batches, memory["all_gather"], memory["ring"]):
  print(f"global batch {b:6,}: all_gather {gather:8.1f} MiB, "
        f"ring {ring:6.1f} MiB (1/{gather / ring:.0f})")
for strategy, values in memory.items():
  plt.plot(batches, values, "o-", label=strategy)
plt.xscale("log"); plt.yscale("log"); plt.minorticks_off()
plt.xticks(batches, [f"{b:,}" for b in batches]); plt.xlabel("global batch")
plt.ylabel("temporary memory per device (MiB)"); plt.legend(); plt.show()
"""),
    md("""
SigLIP works the same way (`jd.siglip_loss` with `logit_scale` and
`logit_bias`), and `jaxloss.train.grad_cache` adds GradCache when even the
encoders' activations for the whole batch do not fit.
"""),
]


# --------------------------------------------------------------------------- #
# 04: large-vocabulary cross-entropy

VOCABULARY = [
    md("""
# Memory-efficient large-vocabulary cross-entropy

A language model's last layer computes `logits = hidden @ weight` with one
column per vocabulary entry: for 8,192 tokens and a 131,072-token vocabulary
that is 4 GiB of float32 logits, and autodiff keeps more of the same size.
`jaxloss.linear_cross_entropy(hidden, weight, labels)` computes the same loss
and gradients a chunk of the vocabulary at a time, so the logits are never
materialised.
"""),
    md(COLAB_NOTE),
    code(INSTALL),
    code("""
import codecs
import this  # noqa: F401  (prints the Zen of Python, our training text)

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from flax import nnx

import jaxloss as jl

def naive(hidden, weight, labels):
  return jl.softmax_cross_entropy_with_integer_labels(
      hidden @ weight, labels, reduction="mean")
"""),
    md("""
## Same values, same gradients
"""),
    code("""
k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
tokens, dim, vocab = 1024, 128, 32768
hidden = jax.random.normal(k1, (tokens, dim))
weight = jax.random.normal(k2, (dim, vocab)) / np.sqrt(dim)
labels = jax.random.randint(k3, (tokens,), 0, vocab)

grad = lambda f: jax.jit(jax.value_and_grad(f, argnums=(0, 1)))
dense_value, dense_grads = grad(naive)(hidden, weight, labels)
chunked_value, chunked_grads = grad(
    lambda h, w, y: jl.linear_cross_entropy(h, w, y, chunk_size=4096))(
        hidden, weight, labels)
print(f"loss: naive {float(dense_value):.6f}, chunked {float(chunked_value):.6f}")
for name, a, b in zip(("d hidden", "d weight"), chunked_grads, dense_grads):
  error = float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
  print(f"{name}: largest relative difference {error:.1e}")
  assert error < 1e-5
assert abs(float(dense_value) - float(chunked_value)) < 1e-5
"""),
    md("""
## Memory

The compiled programs' temporary memory (`memory_analysis()`, compiled, not
run) of the loss and its gradients, at 8,192 tokens, dim 512 and a
131,072-token vocabulary:
"""),
    code("""
def temp_mib(fn, tokens=8192, dim=512, vocab=131072):
  args = (jax.ShapeDtypeStruct((tokens, dim), jnp.float32),
          jax.ShapeDtypeStruct((dim, vocab), jnp.float32),
          jax.ShapeDtypeStruct((tokens,), jnp.int32))
  compiled = jax.jit(jax.value_and_grad(fn, argnums=(0, 1))).lower(
      *args).compile()
  return compiled.memory_analysis().temp_size_in_bytes / 2**20

memory = {"naive": temp_mib(naive)}
for chunk in (1024, 4096, 16384):
  memory[f"chunk {chunk}"] = temp_mib(
      lambda h, w, y, c=chunk: jl.linear_cross_entropy(h, w, y, chunk_size=c))
for name, mib in memory.items():
  print(f"{name:>11}: {mib:9,.1f} MiB")
plt.barh(list(memory), list(memory.values())); plt.xscale("log")
plt.xlabel("temporary memory (MiB)"); plt.show()
"""),
    md("""
## A small language-model head

A character-level model of the Zen of Python: the previous three characters'
embeddings go through an MLP to a hidden state, and the head's kernel is the
`weight` of `linear_cross_entropy`. Padding past each line's end is masked
with `where`, and a small z-loss keeps the log-partition function near 0.
"""),
    code("""
text = codecs.decode(this.s, "rot13")
chars = sorted(set(text))
vocab, context, width = len(chars), 3, 48
ids = {c: i for i, c in enumerate(chars)}
lines = [line for line in text.splitlines() if line]
pad = np.zeros((len(lines), width + context), np.int32)
mask = np.zeros((len(lines), width), bool)
for row, line in enumerate(lines):
  encoded = [ids[c] for c in line[:width]]
  pad[row, context:context + len(encoded)] = encoded
  mask[row, :len(encoded)] = True
inputs = np.stack([pad[:, i:i + width] for i in range(context)], -1)
targets = pad[:, context:]

class CharModel(nnx.Module):
  def __init__(self, rngs):
    self.embed = nnx.Embed(vocab, 32, rngs=rngs)
    self.hidden = nnx.Linear(32 * context, 128, rngs=rngs)
    self.head = nnx.Linear(128, vocab, rngs=rngs)

  def __call__(self, x):  # [..., context] ids -> [..., 128] hidden states
    e = self.embed(x)
    return nnx.relu(self.hidden(e.reshape(*e.shape[:-2], -1)))

def lm_loss(outputs, batch):
  hidden, model = outputs
  return jl.linear_cross_entropy(
      hidden, model.head.kernel[...], batch["y"], bias=model.head.bias[...],
      where=batch["mask"], z_loss=1e-4, chunk_size=16)

objective = jl.train.objective(lambda m, b: (m(b["x"]), m), {"lm": lm_loss})
model = CharModel(nnx.Rngs(0))
optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
step = jl.train.nnx_step(objective)
batch = {"x": inputs, "y": targets, "mask": mask}
history = [float(step(model, optimizer, batch)["lm"]) for _ in range(300)]
print(f"cross-entropy per character: {history[0]:.3f} -> {history[-1]:.3f} "
      f"(uniform: {np.log(vocab):.3f})")
plt.plot(history); plt.xlabel("step"); plt.ylabel("loss"); plt.show()
"""),
    code("""
def generate(prompt, steps=40):
  out = [ids[c] for c in prompt]
  for _ in range(steps):
    h = model(jnp.array(out[-context:]))
    out.append(int(jnp.argmax(h @ model.head.kernel[...] + model.head.bias[...])))
  return "".join(chars[i] for i in out)

print(generate("Bea"))
print(generate("Sim"))
"""),
]

NOTEBOOKS = {
    "01_choosing_a_loss.ipynb": CHOOSING,
    "02_training_with_optax_and_nnx.ipynb": TRAINING,
    "03_sharded_contrastive_pretraining.ipynb": SHARDED,
    "04_large_vocabulary_cross_entropy.ipynb": VOCABULARY,
}


def notebook(cells) -> nbformat.NotebookNode:
  nb = nbformat.v4.new_notebook(cells=cells)
  nb.metadata = {
      "kernelspec": {"name": "python3", "display_name": "Python 3",
                     "language": "python"},
      "language_info": {"name": "python"},
      "colab": {"provenance": []},
  }
  for i, cell in enumerate(nb.cells):
    cell.id = f"cell-{i:02d}"  # stable ids: rebuilding changes nothing
  return nb


def render(name: str) -> str:
  return nbformat.writes(notebook(NOTEBOOKS[name])) + "\n"


def main():
  for name in NOTEBOOKS:
    (HERE / name).write_text(render(name))
    print("wrote", HERE / name)


if __name__ == "__main__":
  main()
