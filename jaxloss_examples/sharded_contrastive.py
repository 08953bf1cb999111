"""Part 3: contrastive pretraining over simulated devices, sharded losses.

Two views of each digit, its top half and its bottom half (32 pixels each),
go through two small towers; the towers are trained so that a top half
retrieves its own bottom half among all the test digits. The batch is
sharded over every device (``--xla_force_host_platform_device_count`` gives
the CPU several, set by ``jaxloss_examples/demo.py`` before jax is imported)
and the loss is :mod:`jaxloss.distributed`'s CLIP or SigLIP loss with the ring
strategy, called through :func:`jaxloss.distributed.shard`.

The part then checks that the sharded loss of the global batch, and its
gradients, equal :func:`jaxloss.clip_loss` / :func:`jaxloss.siglip_loss` on
the same batch on one device, and compares the per-device compiled temporary
memory of the ring with ``all_gather`` at larger batches.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxloss as jl
import jaxloss.distributed as jd
from jaxloss_examples import common

EMBED = 32


def mesh():
  """A one-axis mesh over every device (Auto axes: jit propagates shardings)."""
  return jax.make_mesh(
    (jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,)
  )


def halves(x):
  """Top and bottom halves ``[n, 32]`` of ``[n, 64]`` 8×8 digits."""
  return x[:, :32], x[:, 32:]


def init(seed: int = 0, hidden: int = 64):
  """Parameters of the two towers (32 → hidden → EMBED) and of the loss."""
  keys = jax.random.split(jax.random.key(seed), 4)
  tower = lambda k1, k2: {
    "w1": jax.random.normal(k1, (32, hidden)) / np.sqrt(32),
    "b1": jnp.zeros(hidden),
    "w2": jax.random.normal(k2, (hidden, EMBED)) / np.sqrt(hidden),
  }
  return {
    "top": tower(*keys[:2]),
    "bottom": tower(*keys[2:]),
    "log_scale": jnp.log(10.0),
    "bias": jnp.array(-10.0),
  }


def tower(p, x):
  return jax.nn.relu(x @ p["w1"] + p["b1"][None, :]) @ p["w2"]


def encode(params, batch):
  """The model: both towers' embeddings and the loss's learned scale and bias
  (as open_clip's model returns its logit scale)."""
  return (
    tower(params["top"], batch["top"]),
    tower(params["bottom"], batch["bottom"]),
    params["log_scale"],
    params["bias"],
  )


def sharded_losses(the_mesh, strategy: str = "ring", chunk_size=None):
  """``{name: outputs -> global loss}`` for :func:`encode`'s outputs."""
  clip = jd.shard(jd.clip_loss, the_mesh)
  siglip = jd.shard(jd.siglip_loss, the_mesh)
  return {
    "CLIP": lambda x, y, log_scale, _: clip(
      x,
      y,
      temperature=jnp.exp(-log_scale),
      strategy=strategy,
      chunk_size=chunk_size,
    ),
    "SigLIP": lambda x, y, log_scale, bias: siglip(
      x,
      y,
      logit_scale=jnp.exp(log_scale),
      logit_bias=bias,
      strategy=strategy,
      chunk_size=chunk_size,
    ),
  }


def single_device_losses():
  """The same losses from the single-device functions of :mod:`jaxloss`."""
  return {
    "CLIP": lambda x, y, log_scale, _: jl.clip_loss(
      x, y, temperature=jnp.exp(-log_scale), reduction="mean"
    ),
    "SigLIP": lambda x, y, log_scale, bias: jl.siglip_loss(
      x, y, logit_scale=jnp.exp(log_scale), logit_bias=bias, reduction="mean"
    ),
  }


def as_batch(x):
  top, bottom = halves(x)
  return {"top": top, "bottom": bottom}


def retrieval_accuracy(params, x) -> float:
  """How often a top half's nearest bottom half (cosine) is its own."""
  top, bottom = (
    e / np.linalg.norm(e, axis=1, keepdims=True)
    for e in (
      np.asarray(e, np.float64) for e in encode(params, as_batch(x))[:2]
    )
  )
  return float(np.mean(np.argmax(top @ bottom.T, axis=1) == np.arange(len(x))))


def train(name, loss_fn, x, the_mesh, *, steps, batch_size, progress=True):
  """Adam on random global batches sharded over ``the_mesh``."""
  objective = jl.train.objective(encode, {name: lambda out, _: loss_fn(*out)})
  optimizer = optax.adam(3e-3)
  step = jl.train.step(objective, optimizer)
  params = init()
  state = optimizer.init(params)
  sharding = jax.NamedSharding(the_mesh, jax.P("data"))
  rng = np.random.default_rng(0)
  bar = common.progress(
    range(steps), f"{name} ({jax.device_count()} devices)", progress
  )
  for _ in bar:
    index = rng.choice(len(x), batch_size, replace=False)
    params, state, aux = step(
      params, state, jax.device_put(as_batch(x[index]), sharding)
    )
    # Wait for each step: on simulated CPU devices, dispatching the next
    # ring program while the last one runs can starve XLA:CPU's collective
    # rendezvous (its devices share one thread pool) and deadlock.
    bar.set_postfix(loss=f"{float(aux['loss']):.3f}")
  return params


def relative_difference(a, b) -> float:
  """``max |a − b| / max |b|`` over the leaves of two pytrees."""
  a, b = jax.tree.leaves(a), jax.tree.leaves(b)
  scale = max(float(jnp.max(jnp.abs(v))) for v in b)
  return max(float(jnp.max(jnp.abs(u - v))) for u, v in zip(a, b)) / scale


def equality(trained, x, the_mesh) -> list:
  """Sharded (both strategies) vs single-device loss and parameter gradients
  on one global batch ``x``, each loss with its own trained parameters: rows
  ``(loss, strategy, value, relative Δ value, relative Δ gradients)``."""
  batch = as_batch(x)
  sharded_batch = jax.device_put(
    batch, jax.NamedSharding(the_mesh, jax.P("data"))
  )
  rows = []
  for name, single in single_device_losses().items():
    value, grads = jax.jit(
      jax.value_and_grad(lambda p: single(*encode(p, batch)))
    )(trained[name])
    for strategy in ("ring", "all_gather"):
      loss = sharded_losses(the_mesh, strategy)[name]
      sharded = jax.jit(
        jax.value_and_grad(lambda p: loss(*encode(p, sharded_batch)))
      )(trained[name])
      rows.append(
        (
          name,
          strategy,
          float(value),
          relative_difference(sharded[0], value),
          relative_difference(sharded[1], grads),
        )
      )
  return rows


def temp_memory(name, strategy, batch, dim, the_mesh, chunk_size) -> int:
  """Per-device compiled temporary bytes of ``jit(value_and_grad(loss))``
  with respect to both embeddings and the scale (compiled, not run)."""
  loss = sharded_losses(
    the_mesh, strategy, chunk_size if strategy == "ring" else None
  )[name]
  embeddings = jax.ShapeDtypeStruct(
    (batch, dim),
    jnp.float32,
    sharding=jax.NamedSharding(the_mesh, jax.P("data")),
  )
  scalar = jax.ShapeDtypeStruct((), jnp.float32)
  step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))
  compiled = step.lower(embeddings, embeddings, scalar, scalar).compile()
  return compiled.memory_analysis().temp_size_in_bytes


def _mib(n: int) -> str:
  return f"{n / 2**20:,.1f} MiB"


def memory_table(batches, dim, the_mesh, chunk_size, progress=True):
  """``[(loss, global batch, strategy, temp bytes)]`` and its Markdown."""
  cases = [
    (name, b, s)
    for name in ("CLIP", "SigLIP")
    for b in batches
    for s in ("all_gather", "ring")
  ]
  sizes = {
    case: temp_memory(case[0], case[2], case[1], dim, the_mesh, chunk_size)
    for case in common.progress(cases, "compiling for memory", progress)
  }
  devices = jax.device_count()
  rows = []
  for name in ("CLIP", "SigLIP"):
    for b in batches:
      gather, ring = sizes[name, b, "all_gather"], sizes[name, b, "ring"]
      rows.append(
        [
          name,
          f"{b:,}",
          f"{b // devices:,}",
          _mib(gather),
          _mib(ring),
          f"1/{gather / ring:.0f}",
        ]
      )
  text = common.table(
    [
      "loss",
      "global batch",
      "per device",
      "all_gather temp",
      "ring temp",
      "ring / all_gather",
    ],
    rows,
  )
  return [(*case, size) for case, size in sizes.items()], text


def run(
  out=common.OUT,
  *,
  steps: int = 300,
  batch_size: int = 512,
  memory_batches=(4096, 16384, 65536),
  dim: int = 128,
  chunk_size: int = 512,
  progress=True,
) -> dict:
  """Trains both losses, checks equality, measures memory; writes the tables.

  Returns ``{"devices", "retrieval", "equality", "memory"}`` (the tables'
  numbers).
  """
  the_mesh = mesh()
  devices = jax.device_count()
  x_train, x_test, _, _ = common.digits()
  retrieval = {"untrained": retrieval_accuracy(init(), x_test)}
  trained = {}
  for name, loss_fn in sharded_losses(the_mesh).items():
    trained[name] = train(
      name,
      loss_fn,
      x_train,
      the_mesh,
      steps=steps,
      batch_size=batch_size,
      progress=progress,
    )
    retrieval[f"{name} (ring)"] = retrieval_accuracy(trained[name], x_test)
  n = len(x_test) // devices * devices
  checks = equality(trained, x_test[:n], the_mesh)
  memory, memory_text = memory_table(
    memory_batches, dim, the_mesh, chunk_size, progress
  )
  text = "\n\n".join(
    [
      f"{devices} {jax.devices()[0].platform} devices; the top half of each "
      f"digit is paired with its bottom half; two 32-64-{EMBED} towers, "
      f"{steps} Adam steps on global batches of {batch_size} "
      f"({batch_size // devices} per device), learned scale (and SigLIP "
      f'bias), `jaxloss.distributed.shard(loss)` with `strategy="ring"`.',
      f"**Retrieval**: a test top half's nearest bottom half (cosine) is its "
      f"own, among all {len(x_test)} test digits (chance "
      f"{1 / len(x_test):.4f}).",
      common.table(
        ["towers", "top-1 retrieval"],
        [[k, f"{v:.3f}"] for k, v in retrieval.items()],
      ),
      f"**Sharded = single device**: each loss's trained towers on a global "
      f"batch of {n} test pairs; the sharded loss of the global batch vs "
      f"`jaxloss.clip_loss` / `jaxloss.siglip_loss` on the same batch on one "
      f"device (float32), and the gradients with respect to all the towers' "
      f"parameters, the scale and the bias (relative difference: "
      f"max |sharded − single| / max |single|).",
      common.table(
        [
          "loss",
          "strategy",
          "single-device loss",
          "value rel. difference",
          "gradient rel. difference",
        ],
        [
          [a, b, f"{c:.6f}", f"{d:.1e}", f"{e:.1e}"] for a, b, c, d, e in checks
        ],
      ),
      f"**Memory**: compiled per-device temporary bytes of "
      f"`jit(value_and_grad(loss))` with respect to both embeddings and the "
      f"scale (`memory_analysis().temp_size_in_bytes`, compiled, not run), "
      f"dim {dim}, float32; ring with `chunk_size={chunk_size}`, all_gather "
      f"dense.",
      memory_text,
    ]
  )
  common.report(
    out,
    "sharded_contrastive.md",
    f"3. Contrastive pretraining on {devices} devices",
    text,
  )
  return {
    "devices": devices,
    "retrieval": retrieval,
    "equality": checks,
    "memory": memory,
  }
