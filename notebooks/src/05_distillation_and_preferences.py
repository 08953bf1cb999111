# %% [markdown]
# # Distilling and aligning a language model
#
# Post-training a language model uses two kinds of losses that compare
# distributions over the vocabulary or completions:
#
# * **distillation**: a student matches a teacher's next-token distribution
#   (`kd_loss`, trl's generalized Jensen-Shannon `generalized_jsd_loss`,
#   DistiLLM's `skew_kl_loss`, `total_variation_distance`, and
#   `sparse_kd_loss` for a teacher stored as its top-k tokens);
# * **preference optimisation**: the policy learns from chosen and rejected
#   completions (`dpo_loss` with every trl loss type, `cpo_loss`, `kto_loss`)
#   or from rewarded samples (`grpo_loss`, in notebook 04).
#
# This notebook checks the fused `linear_distillation_loss` against the
# materialised one, measures its memory, distils a small teacher head, and
# draws the preference losses side by side.

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import jaxloss as jl

# %% [markdown]
# ## The divergences on one vocabulary
#
# Every distillation loss takes the student's and the teacher's logits
# (the teacher's gradient is stopped) and returns one value per token, summed
# over the vocabulary. A teacher that forbids part of the vocabulary
# (logits of `-inf`) is fine for every divergence except the reverse KL
# (`beta=1`), which is `+inf` there: the student puts mass where the teacher
# has none.

# %%
k1, k2 = jax.random.split(jax.random.key(0))
vocab = 8
student = jax.random.normal(k1, (vocab,))
teacher = jax.random.normal(k2, (vocab,)).at[-2:].set(-jnp.inf)
divergences = {
  "kd_loss (T=2)": jl.kd_loss(student, teacher, temperature=2.0),
  "forward KL (beta=0)": jl.generalized_jsd_loss(student, teacher, beta=0.0),
  "JSD (beta=0.5)": jl.generalized_jsd_loss(student, teacher),
  "reverse KL (beta=1)": jl.generalized_jsd_loss(student, teacher, beta=1.0),
  "skew KL (alpha=0.1)": jl.skew_kl_loss(student, teacher),
  "skew reverse KL": jl.skew_kl_loss(student, teacher, reverse=True),
  "total variation": jl.total_variation_distance(student, teacher),
}
for name, value in divergences.items():
  print(f"{name:>20}: {float(value):.4f}")

# %% [markdown]
# ## Distillation from hidden states, without the logits
#
# `linear_distillation_loss(student_hidden, student_weight, teacher_hidden,
# teacher_weight)` is `generalized_jsd_loss(student_hidden @ student_weight,
# teacher_hidden @ teacher_weight)` computed a chunk of tokens at a time: for
# a mean or a sum, the student's gradients are taken in the same pass. The
# teacher may be wider than the student; only the vocabulary is shared.


# %%
def materialised(hs, ws, ht, wt):
  return jl.generalized_jsd_loss(hs @ ws, ht @ wt, reduction="mean")


keys = jax.random.split(jax.random.key(1), 4)
tokens, student_dim, teacher_dim, vocab = 512, 64, 128, 4096
hs = jax.random.normal(keys[0], (tokens, student_dim))
ws = jax.random.normal(keys[1], (student_dim, vocab)) / np.sqrt(student_dim)
ht = jax.random.normal(keys[2], (tokens, teacher_dim))
wt = jax.random.normal(keys[3], (teacher_dim, vocab)) / np.sqrt(teacher_dim)

grad = lambda f: jax.jit(jax.value_and_grad(f, argnums=(0, 1)))
dense_value, dense_grads = grad(materialised)(hs, ws, ht, wt)
fused_value, fused_grads = grad(
  lambda *a: jl.linear_distillation_loss(*a, chunk_size=128)
)(hs, ws, ht, wt)
print(
  f"loss: materialised {float(dense_value):.6f}, fused {float(fused_value):.6f}"
)
for name, a, b in zip(("d hidden", "d weight"), fused_grads, dense_grads):
  error = float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
  print(f"{name}: largest relative difference {error:.1e}")
  assert error < 1e-5
assert abs(float(dense_value) - float(fused_value)) < 1e-5

# %% [markdown]
# The compiled programs' temporary memory (`memory_analysis()`, compiled, not
# run) of the loss and the student's gradients, at 4,096 tokens, hidden size
# 512 for both models and a 32,768-token vocabulary:


# %%
def temp_mib(fn, tokens=4096, dim=512, vocab=32768):
  hidden = jax.ShapeDtypeStruct((tokens, dim), jnp.float32)
  weight = jax.ShapeDtypeStruct((dim, vocab), jnp.float32)
  compiled = (
    jax.jit(jax.value_and_grad(fn, argnums=(0, 1)))
    .lower(hidden, weight, hidden, weight)
    .compile()
  )
  return compiled.memory_analysis().temp_size_in_bytes / 2**20


memory = {
  "materialised": temp_mib(materialised),
  "fused (default)": temp_mib(jl.linear_distillation_loss),
}
for name, mib in memory.items():
  print(f"{name:>15}: {mib:9,.1f} MiB")
print(f"ratio: 1/{memory['materialised'] / memory['fused (default)']:.0f}")
plt.barh(list(memory), list(memory.values()))
plt.xlabel("temporary memory (MiB)")
plt.show()

# %% [markdown]
# ## A short distillation run
#
# A fixed random "teacher" head reads 128-dimensional features; the student
# sees a 32-dimensional random projection of the same features and learns its
# own head (and the projection) by minimising the generalized JSD to the
# teacher, with optax's Adam.

# %%
keys = jax.random.split(jax.random.key(2), 4)
tokens, teacher_dim, student_dim, vocab = 256, 128, 32, 2048
features = jax.random.normal(keys[0], (tokens, teacher_dim))
teacher_weight = (
  3 * jax.random.normal(keys[1], (teacher_dim, vocab)) / np.sqrt(teacher_dim)
)
params = {
  "projection": jax.random.normal(keys[2], (teacher_dim, student_dim))
  / np.sqrt(teacher_dim),
  "weight": jnp.zeros((student_dim, vocab)),
}


def distillation(params, features):
  return jl.linear_distillation_loss(
    features @ params["projection"],
    params["weight"],
    features,
    teacher_weight,
    beta=0.5,
  )


optimizer = optax.adam(3e-2)


@jax.jit
def train_step(params, state, features):
  value, grads = jax.value_and_grad(distillation)(params, features)
  updates, state = optimizer.update(grads, state)
  return optax.apply_updates(params, updates), state, value


state = optimizer.init(params)
history = []
for _ in range(150):
  params, state, value = train_step(params, state, features)
  history.append(float(value))
print(f"generalized JSD per token: {history[0]:.4f} -> {history[-1]:.4f}")
assert history[-1] < 0.5 * history[0]
plt.plot(history)
plt.xlabel("step")
plt.ylabel("generalized JSD (beta = 0.5)")
plt.show()

# %% [markdown]
# ## The preference losses side by side
#
# Each pairwise loss as a function of the implicit reward margin
# `z = (log π_w − log π_ref,w) − (log π_l − log π_ref,l)`, with the chosen and
# the rejected log-ratios `±z/2` (the types that treat them separately,
# `nca_pair`, `bco_pair`, `apo_zero`, `sppo_hard`, see each half). `aot` and
# `aot_unpaired` sort over the batch, so they are batch-level and left out.

# %%
margins = jnp.linspace(-20.0, 20.0, 201)
half = margins / 2
zero = jnp.zeros_like(margins)
curves = {}
for loss_type, options in (
  ("sigmoid", {}),
  ("hinge", {}),
  ("ipo", {}),
  ("robust", {"label_smoothing": 0.1}),
  ("exo_pair", {"label_smoothing": 1e-3}),
  ("nca_pair", {}),
  ("bco_pair", {}),
  ("apo_zero", {}),
  ("sppo_hard", {}),
  ("discopop", {}),
):
  values = jl.dpo_loss(
    half, -half, zero, zero, beta=0.1, loss_type=loss_type, **options
  )
  curves[loss_type] = values
  plt.plot(margins, values, label=loss_type)
plt.ylim(-0.5, 4)
plt.xlabel("margin z")
plt.ylabel("loss (beta = 0.1)")
plt.legend(ncol=2, fontsize="small")
plt.show()
