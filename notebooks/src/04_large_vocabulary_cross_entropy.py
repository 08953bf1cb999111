# %% [markdown]
# # Memory-efficient large-vocabulary cross-entropy
#
# A language model's last layer computes `logits = hidden @ weight` with one
# column per vocabulary entry: for 8,192 tokens and a 131,072-token vocabulary
# that is 4 GiB of float32 logits, and autodiff keeps more of the same size.
# `jaxloss.linear_cross_entropy(hidden, weight, labels)` computes the same loss
# and gradients a chunk of tokens at a time, so the `[tokens, vocab]` logits
# are never materialised: one `[chunk, vocab]` block exists at a time, and for
# a mean or sum the gradients are computed in the same pass.

# %%
# Eight simulated devices on the CPU, for the vocabulary-parallel section. XLA
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
import codecs
import this

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from flax import nnx

import jaxloss as jl
import jaxloss.distributed as jd


def naive(hidden, weight, labels):
  return jl.softmax_cross_entropy_with_integer_labels(
    hidden @ weight, labels, reduction="mean"
  )


# %% [markdown]
# ## Same values, same gradients

# %%
k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
tokens, dim, vocab = 1024, 128, 32768
hidden = jax.random.normal(k1, (tokens, dim))
weight = jax.random.normal(k2, (dim, vocab)) / np.sqrt(dim)
labels = jax.random.randint(k3, (tokens,), 0, vocab)

grad = lambda f: jax.jit(jax.value_and_grad(f, argnums=(0, 1)))
dense_value, dense_grads = grad(naive)(hidden, weight, labels)
chunked_value, chunked_grads = grad(
  lambda h, w, y: jl.linear_cross_entropy(h, w, y, chunk_size=256)
)(hidden, weight, labels)
print(
  f"loss: naive {float(dense_value):.6f}, chunked {float(chunked_value):.6f}"
)
for name, a, b in zip(("d hidden", "d weight"), chunked_grads, dense_grads):
  error = float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
  print(f"{name}: largest relative difference {error:.1e}")
  assert error < 1e-5
assert abs(float(dense_value) - float(chunked_value)) < 1e-5

# %% [markdown]
# ## Memory
#
# The compiled programs' temporary memory (`memory_analysis()`, compiled, not
# run) of the loss and its gradients, at 8,192 tokens, dim 512 and a
# 131,072-token vocabulary:


# %%
def temp_mib(fn, tokens=8192, dim=512, vocab=131072):
  args = (
    jax.ShapeDtypeStruct((tokens, dim), jnp.float32),
    jax.ShapeDtypeStruct((dim, vocab), jnp.float32),
    jax.ShapeDtypeStruct((tokens,), jnp.int32),
  )
  compiled = (
    jax.jit(jax.value_and_grad(fn, argnums=(0, 1))).lower(*args).compile()
  )
  return compiled.memory_analysis().temp_size_in_bytes / 2**20


memory = {
  "naive": temp_mib(naive),
  "default": temp_mib(jl.linear_cross_entropy),  # chunks of 128 tokens here
}
for chunk in (512, 2048):
  memory[f"{chunk} tokens"] = temp_mib(
    lambda h, w, y, c=chunk: jl.linear_cross_entropy(h, w, y, chunk_size=c)
  )
for name, mib in memory.items():
  print(f"{name:>11}: {mib:9,.1f} MiB")
plt.barh(list(memory), list(memory.values()))
plt.xscale("log")
plt.xlabel("temporary memory (MiB)")
plt.show()

# %% [markdown]
# ## The vocabulary sharded across devices
#
# A large model shards its output projection over a model axis. On a
# `("data", "model")` mesh of 2 × 4 devices, each device holds a quarter of
# the vocabulary's columns and half of the tokens;
# `jaxloss.distributed.linear_cross_entropy` combines a few per-token
# numbers (the max, the sum of exponentials, the label's logit) over the
# model axis, never the logits or the weight. `jaxloss.distributed.shard`
# wraps it in `shard_map` for global arrays. The loss and its gradients
# equal the one-device loss's; the weight's gradient stays sharded.

# %%
mesh = jax.make_mesh((2, 4), ("data", "model"))
sharded_loss = jax.jit(
  jax.value_and_grad(
    jd.shard(jd.linear_cross_entropy, mesh, axis="data", vocab_axis="model"),
    argnums=(0, 1),
  )
)
put = lambda x, spec: jax.device_put(x, jax.NamedSharding(mesh, spec))
args = (
  put(hidden, jax.P("data", None)),
  put(weight, jax.P(None, "model")),
  put(labels, jax.P("data")),
)
mesh_value, (mesh_dh, mesh_dw) = sharded_loss(*args)
print(
  f"loss on the mesh {float(mesh_value):.6f}, "
  f"one device {float(chunked_value):.6f}"
)
print("weight gradient sharded as", mesh_dw.sharding.spec)
for name, a, b in zip(
  ("d hidden", "d weight"), (mesh_dh, mesh_dw), chunked_grads
):
  error = float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
  print(f"{name}: largest relative difference {error:.1e}")
  assert error < 1e-5


# %% [markdown]
# Per-device temporary memory (compiled, not run) at 16,384 tokens, dim 1,024
# and a 262,144-token vocabulary, against materialising each device's
# `[tokens, vocab / 4]` logits block:


# %%
def mesh_temp_mib(fn, tokens=16384, dim=1024, vocab=262144):
  shapes = (
    jax.ShapeDtypeStruct(
      (tokens, dim),
      jnp.float32,
      sharding=jax.NamedSharding(mesh, jax.P("data", None)),
    ),
    jax.ShapeDtypeStruct(
      (dim, vocab),
      jnp.float32,
      sharding=jax.NamedSharding(mesh, jax.P(None, "model")),
    ),
    jax.ShapeDtypeStruct(
      (tokens,), jnp.int32, sharding=jax.NamedSharding(mesh, jax.P("data"))
    ),
  )
  step = jax.jit(jax.value_and_grad(fn, argnums=(0, 1)))
  return (
    step.lower(*shapes).compile().memory_analysis().temp_size_in_bytes / 2**20
  )


def naive_sharded(h, w, y):
  def local(h, w, y):
    logits = h @ w  # this device's [tokens, vocab / 4] block
    start = jax.lax.axis_index("model") * w.shape[1]
    top = jax.lax.pmax(jax.lax.stop_gradient(jnp.max(logits, axis=1)), "model")
    total = jax.lax.psum(
      jnp.sum(jnp.exp(logits - top[:, None]), axis=1), "model"
    )
    mine = (y >= start) & (y < start + w.shape[1])
    picked = jnp.take_along_axis(
      logits, jnp.clip(y - start, 0, w.shape[1] - 1)[:, None], 1
    )[:, 0]
    label = jax.lax.psum(jnp.where(mine, picked, 0), "model")
    return jax.lax.pmean(jnp.mean(jnp.log(total) + top - label), "data")

  specs = (jax.P("data", None), jax.P(None, "model"), jax.P("data"))
  return jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=jax.P())(
    h, w, y
  )


vocab_parallel = jd.shard(
  jd.linear_cross_entropy, mesh, axis="data", vocab_axis="model"
)
for name, fn in (
  ("naive sharded logits", naive_sharded),
  ("vocabulary-parallel", vocab_parallel),
):
  print(f"{name:>21}: {mesh_temp_mib(fn):9,.1f} MiB per device")

# %% [markdown]
# ## A small language-model head
#
# A character-level model of the Zen of Python: the previous three characters'
# embeddings go through an MLP to a hidden state, and the head's kernel is the
# `weight` of `linear_cross_entropy`. Padding past each line's end is masked
# with `where`, and a small z-loss keeps the log-partition function near 0.

# %%
text = codecs.decode(this.s, "rot13")
chars = sorted(set(text))
vocab, context, width = len(chars), 3, 48
ids = {c: i for i, c in enumerate(chars)}
lines = [line for line in text.splitlines() if line]
pad = np.zeros((len(lines), width + context), np.int32)
mask = np.zeros((len(lines), width), bool)
for row, line in enumerate(lines):
  encoded = [ids[c] for c in line[:width]]
  pad[row, context : context + len(encoded)] = encoded
  mask[row, : len(encoded)] = True
inputs = np.stack([pad[:, i : i + width] for i in range(context)], -1)
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
    hidden,
    model.head.kernel[...],
    batch["y"],
    bias=model.head.bias[...],
    where=batch["mask"],
    z_loss=1e-4,
    chunk_size=16,
  )


objective = jl.train.objective(lambda m, b: (m(b["x"]), m), {"lm": lm_loss})
model = CharModel(nnx.Rngs(0))
optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
step = jl.train.nnx_step(objective)
batch = {"x": inputs, "y": targets, "mask": mask}
history = [float(step(model, optimizer, batch)["lm"]) for _ in range(300)]
print(
  f"cross-entropy per character: {history[0]:.3f} -> {history[-1]:.3f} "
  f"(uniform: {np.log(vocab):.3f})"
)
plt.plot(history)
plt.xlabel("step")
plt.ylabel("loss")
plt.show()


# %%
def generate(prompt, steps=40):
  out = [ids[c] for c in prompt]
  for _ in range(steps):
    h = model(jnp.array(out[-context:]))
    logits = h @ model.head.kernel[...] + model.head.bias[...]
    out.append(int(jnp.argmax(logits)))
  return "".join(chars[i] for i in out)


print(generate("Bea"))
print(generate("Sim"))


# %% [markdown]
# ## Policy-gradient fine-tuning: GRPO fed by `linear_log_probs`
#
# Reinforcement-learning fine-tuning (GRPO, PPO) needs the per-token
# log-probabilities of the sampled tokens under the policy, at the sampling
# temperature, and often the softmax entropy as a bonus. verl and tunix take
# them from the full `[tokens, vocab]` logits;
# `jaxloss.linear_log_probs(hidden, weight, tokens, temperature=T,
# return_entropy=True)` computes them a chunk of tokens at a time from the
# hidden states and the head, like `linear_cross_entropy`.
#
# Here the character model above is the policy: for each of 4 prompts it
# samples a group of 8 completions of 12 characters at temperature 0.8, a
# toy reward scores each completion (its fraction of vowels),
# `group_normalized_advantages` compares it with the others of its group, and
# `grpo_loss` (with a k3 KL penalty towards the model before fine-tuning and
# an entropy bonus) takes two gradient steps per sampled batch.

# %%
prompts = np.array([[ids[c] for c in p] for p in ("Bea", "Sim", "Fla", "Err")])
group, length, temperature = 8, 12, 0.8
vowels = np.isin(np.array(chars), list("aeiou"))


@nnx.jit
def sample(model, windows, key):
  """``length`` characters per window, drawn at ``temperature``."""
  drawn = []
  for step_key in jax.random.split(key, length):
    h = model(windows)
    logits = h @ model.head.kernel[...] + model.head.bias[...]
    token = jax.random.categorical(step_key, logits / temperature)
    drawn.append(token)
    windows = jnp.concatenate([windows[:, 1:], token[:, None]], axis=1)
  return jnp.stack(drawn, axis=1)


def contexts(windows, completions):
  """The ``[batch, length, context]`` windows preceding each sampled token."""
  sequence = jnp.concatenate([windows, completions], axis=1)
  return jnp.stack(
    [sequence[:, i : i + length] for i in range(context)], axis=-1
  )


def log_probs(model, batch):
  return jl.linear_log_probs(
    model(batch["x"]),
    model.head.kernel[...],
    batch["y"],
    bias=model.head.bias[...],
    temperature=temperature,
    return_entropy=True,
    chunk_size=128,  # 384 tokens: three chunks (the logits never in memory)
  )


def grpo(outputs, batch):
  log_p, entropy = outputs
  loss = jl.grpo_loss(
    log_p,
    batch["old"],
    batch["advantages"],
    ref_log_probs=batch["ref"],
    beta=0.04,
    reduction="mean",
  )
  return loss - 0.01 * jnp.mean(entropy)


reference = nnx.clone(model)  # the KL penalty's reference policy
policy_step = jl.train.nnx_step(jl.train.objective(log_probs, {"grpo": grpo}))
optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)
windows = jnp.repeat(jnp.asarray(prompts), group, axis=0)  # [32, 3]
key = jax.random.key(1)
rewards_seen = []
for _ in range(10):
  key, draw = jax.random.split(key)
  completions = sample(model, windows, draw)
  rewards = jnp.mean(vowels[np.asarray(completions)], axis=1)
  batch = {"x": contexts(windows, completions), "y": completions}
  old, _ = log_probs(model, batch)  # the sampling policy's log-probabilities
  ref, _ = log_probs(reference, batch)
  batch.update(
    old=old,
    ref=ref,
    advantages=jl.group_normalized_advantages(rewards, group),
  )
  for _ in range(2):
    policy_step(model, optimizer, batch)
  rewards_seen.append(float(jnp.mean(rewards)))
print(
  f"mean reward (fraction of vowels): {rewards_seen[0]:.3f} -> "
  f"{np.mean(rewards_seen[-3:]):.3f}"
)
plt.plot(rewards_seen)
plt.xlabel("generation")
plt.ylabel("mean reward")
plt.show()

# %% [markdown]
# The log-probabilities are those of the materialised logits
# `log_softmax((hidden @ kernel + bias) / T)` at the sampled tokens, and the
# entropy that of the same softmax:

# %%
log_p, entropy = log_probs(model, batch)
full = jax.nn.log_softmax(
  (model(batch["x"]) @ model.head.kernel[...] + model.head.bias[...])
  / temperature
)
picked = jnp.take_along_axis(full, batch["y"][..., None], -1)[..., 0]
dense_entropy = -jnp.sum(jnp.exp(full) * full, axis=-1)
print(
  f"largest difference: log p {float(jnp.max(jnp.abs(log_p - picked))):.1e}"
)
print(f"entropy {float(jnp.max(jnp.abs(entropy - dense_entropy))):.1e}")
assert jnp.allclose(log_p, picked, atol=1e-5)
assert jnp.allclose(entropy, dense_entropy, atol=1e-5)
print(generate("Bea"))
