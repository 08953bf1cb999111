# %% [markdown]
# # Large-batch contrastive pretraining with the sharded losses
#
# Contrastive losses get better with more negatives, and the negatives of a
# data-parallel batch live on other devices. `jaxloss.distributed` has CLIP,
# SigLIP, InfoNCE, SupCon and MNR losses that see the **global** batch while
# each device holds its slice; `strategy="ring"` passes the other devices'
# embeddings round a ring, so the memory per device does not grow with the
# number of devices.
#
# This notebook simulates 8 devices on the CPU. On a real multi-GPU machine or
# TPU pod nothing changes but the first cell: drop the flag, call
# `jax.distributed.initialize()` on a pod, and build the same mesh over
# `jax.devices()` (see `docs/distributed.md`).

# %%
# Eight simulated devices on the CPU, for this notebook's sharded losses. XLA
# reads the flag once, when jax starts, so it is set before jax is imported
# (restart the runtime if jax was already imported). On a TPU or multi-GPU
# runtime the flag only affects the CPU and the real devices are used.
import os

if "xla_force_host_platform_device_count" not in os.environ.get(
  "XLA_FLAGS", ""
):
  os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " "
    "--xla_force_host_platform_device_count=8"
  )

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from sklearn.datasets import load_digits

import jaxloss as jl
import jaxloss.distributed as jd

mesh = jax.make_mesh(
  (jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,)
)
batch_sharding = jax.NamedSharding(mesh, jax.P("data"))
print(jax.device_count(), "devices:", jax.devices())

# %% [markdown]
# ## Paired data and two towers
#
# Each 8×8 digit is cut into two views, its top half and its bottom half. Two
# small towers embed them; CLIP's loss pulls each pair together against every
# other pair in the global batch. The temperature is learned (as a log-scale).

# %%
digits = (load_digits().data / 16).astype(np.float32)
tops, bottoms = digits[:, :32], digits[:, 32:]


def init_tower(key, hidden=64, out=32):
  k1, k2 = jax.random.split(key)
  return {
    "w1": jax.random.normal(k1, (32, hidden)) / np.sqrt(32),
    "w2": jax.random.normal(k2, (hidden, out)) / np.sqrt(hidden),
  }


def tower(p, x):
  return jax.nn.relu(x @ p["w1"]) @ p["w2"]


key_top, key_bottom = jax.random.split(jax.random.key(0))
params = {
  "top": init_tower(key_top),
  "bottom": init_tower(key_bottom),
  "log_scale": jnp.log(10.0),
}

clip = jd.shard(jd.clip_loss, mesh)  # called on globally sharded arrays


def loss_fn(params, top, bottom):
  return clip(
    tower(params["top"], top),
    tower(params["bottom"], bottom),
    temperature=jnp.exp(-params["log_scale"]),
    strategy="ring",
  )


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
  i = rng.choice(len(digits), 512, replace=False)  # 64 per device
  top, bottom = jax.device_put((tops[i], bottoms[i]), batch_sharding)
  params, state, loss = train_step(params, state, top, bottom)
  losses.append(float(loss))  # waiting for each step (see the note below)
plt.plot(losses)
plt.xlabel("step")
plt.ylabel("global CLIP loss")
plt.show()


def retrieval(params):  # does a top half find its own bottom half?
  a, b = tower(params["top"], tops), tower(params["bottom"], bottoms)
  a = a / jnp.linalg.norm(a, axis=1, keepdims=True)
  b = b / jnp.linalg.norm(b, axis=1, keepdims=True)
  return float(jnp.mean(jnp.argmax(a @ b.T, 1) == jnp.arange(len(a))))


print(
  f"top-1 retrieval among {len(digits)} digits: {retrieval(params):.3f} "
  f"(chance {1 / len(digits):.4f})"
)

# %% [markdown]
# (On simulated CPU devices, wait for each step before dispatching the next:
# XLA:CPU's simulated devices share one thread pool, and queueing ring programs
# back to back can starve the collectives. `float(loss)` does it here; real
# devices do not need it.)
#
# ## The sharded loss is the single-device loss of the global batch
#
# `jd.clip_loss` over 8 devices equals `jl.clip_loss` on the concatenated batch,
# in value and in gradient, for both strategies:

# %%
top, bottom = tops[:1024], bottoms[:1024]
single = jax.value_and_grad(
  lambda p: jl.clip_loss(
    tower(p["top"], top),
    tower(p["bottom"], bottom),
    temperature=jnp.exp(-p["log_scale"]),
    reduction="mean",
  )
)(params)
sharded_inputs = jax.device_put((top, bottom), batch_sharding)
for strategy in ("ring", "all_gather"):
  value, grads = jax.jit(
    jax.value_and_grad(
      lambda p: clip(
        tower(p["top"], sharded_inputs[0]),
        tower(p["bottom"], sharded_inputs[1]),
        temperature=jnp.exp(-p["log_scale"]),
        strategy=strategy,
      )
    )
  )(params)
  # Relative to the largest gradient entry: float32 sums in another order.
  scale = max(float(jnp.max(jnp.abs(b))) for b in jax.tree.leaves(single[1]))
  grad_error = (
    max(
      float(jnp.max(jnp.abs(a - b)))
      for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(single[1]))
    )
    / scale
  )
  print(
    f"{strategy:>10}: loss {float(value):.6f} vs {float(single[0]):.6f}, "
    f"largest relative gradient difference {grad_error:.1e}"
  )
  assert abs(float(value) - float(single[0])) < 1e-5 and grad_error < 1e-5

# %% [markdown]
# ## Memory per device: ring vs all_gather
#
# `all_gather` collects the other side's embeddings and holds `b × B` logits
# per device (a local batch `b`, a global batch `B`); the ring holds one
# `b × chunk` block. The compiled programs' temporary memory shows it
# (compiled, not run):


# %%
def temp_mib(strategy, batch, dim=128, chunk_size=512):
  def loss(x, y):
    return jd.shard(jd.clip_loss, mesh)(
      x,
      y,
      strategy=strategy,
      chunk_size=chunk_size if strategy == "ring" else None,
    )

  spec = jax.ShapeDtypeStruct(
    (batch, dim), jnp.float32, sharding=batch_sharding
  )
  compiled = (
    jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    .lower(spec, spec)
    .compile()
  )
  return compiled.memory_analysis().temp_size_in_bytes / 2**20


batches = (2048, 8192, 32768)
memory = {s: [temp_mib(s, b) for b in batches] for s in ("all_gather", "ring")}
for b, gather, ring in zip(batches, memory["all_gather"], memory["ring"]):
  print(
    f"global batch {b:6,}: all_gather {gather:8.1f} MiB, "
    f"ring {ring:6.1f} MiB (1/{gather / ring:.0f})"
  )
for strategy, values in memory.items():
  plt.plot(batches, values, "o-", label=strategy)
plt.xscale("log")
plt.yscale("log")
plt.minorticks_off()
plt.xticks(batches, [f"{b:,}" for b in batches])
plt.xlabel("global batch")
plt.ylabel("temporary memory per device (MiB)")
plt.legend()
plt.show()

# %% [markdown]
# SigLIP works the same way (`jd.siglip_loss` with `logit_scale` and
# `logit_bias`), and `jaxloss.train.grad_cache` adds GradCache when even the
# encoders' activations for the whole batch do not fit.

# %% [markdown]
# ## Non-contrastive pretraining: Barlow Twins with global batch statistics
#
# Barlow Twins has no negatives: it standardises every embedding dimension
# over the batch and pulls the two views' cross-correlation matrix towards
# the identity. Its statistics are the batch's, so a data-parallel run that
# standardises each device's slice on its own trains a different model.
# `jd.barlow_twins_loss` (and `jd.vicreg_loss`, `jd.dino_loss`,
# `jd.swav_loss`) sums the statistics over the data axis: the loss of the
# global batch, wherever its rows live.
#
# An encoder of whole digits, two views made by dropping 20% of the pixels
# and adding noise:


# %%
def augment(key, x):
  drop, noise = jax.random.split(key)
  kept = jax.random.bernoulli(drop, 0.8, x.shape)
  return x * kept + 0.1 * jax.random.normal(noise, x.shape)


def encoder(p, x):
  return jax.nn.relu(x @ p["w1"]) @ p["w2"]


k1, k2 = jax.random.split(jax.random.key(1))
encoder_params = {
  "w1": jax.random.normal(k1, (64, 128)) / 8.0,
  "w2": jax.random.normal(k2, (128, 64)) / np.sqrt(128),
}
barlow = jd.shard(jd.barlow_twins_loss, mesh)


def barlow_objective(p, key, x):
  view_a, view_b = jax.random.split(key)
  return barlow(encoder(p, augment(view_a, x)), encoder(p, augment(view_b, x)))


ssl_optimizer = optax.adam(1e-3)
ssl_state = ssl_optimizer.init(encoder_params)


@jax.jit
def ssl_step(p, state, key, x):
  loss, grads = jax.value_and_grad(barlow_objective)(p, key, x)
  updates, state = ssl_optimizer.update(grads, state)
  return optax.apply_updates(p, updates), state, loss


ssl_losses = []
for step in range(80):
  i = rng.choice(len(digits), 512, replace=False)  # 64 per device
  x = jax.device_put(digits[i], batch_sharding)
  encoder_params, ssl_state, loss = ssl_step(
    encoder_params, ssl_state, jax.random.key(step), x
  )
  ssl_losses.append(float(loss))
plt.plot(ssl_losses)
plt.xlabel("step")
plt.ylabel("global Barlow Twins loss")
plt.show()

# %% [markdown]
# The sharded loss equals the one-device loss on the global batch, in value
# and gradient; the mean of the per-device losses (each device standardising
# its own 128 rows) is another number, and another gradient:

# %%
x = digits[:1024]
views = (augment(jax.random.key(100), x), augment(jax.random.key(101), x))


def one_device(p):
  return jl.barlow_twins_loss(encoder(p, views[0]), encoder(p, views[1]))


def sharded(p):
  a, b = jax.device_put(views, batch_sharding)
  return barlow(encoder(p, a), encoder(p, b))


def per_device(p):  # what a per-device loss computes, averaged
  return jnp.mean(
    jnp.stack(
      [
        jl.barlow_twins_loss(
          encoder(p, views[0][k : k + 128]), encoder(p, views[1][k : k + 128])
        )
        for k in range(0, 1024, 128)
      ]
    )
  )


results = {
  name: jax.jit(jax.value_and_grad(fn))(encoder_params)
  for name, fn in (
    ("one device", one_device),
    ("sharded", sharded),
    ("per-device", per_device),
  )
}
reference_value, reference_grads = results["one device"]
for name, (value, grads) in results.items():
  difference = max(
    float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(reference_grads))
  )
  print(
    f"{name:>10}: loss {float(value):9.4f}, largest relative gradient "
    f"difference to one device {difference:.1e}"
  )
relative = lambda v: abs(float(v) / float(reference_value) - 1)
assert relative(results["sharded"][0]) < 1e-5
assert relative(results["per-device"][0]) > 1e-2
