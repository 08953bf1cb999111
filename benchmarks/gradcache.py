"""GradCache vs the plain full-batch gradient: memory and time.

A two-tower MLP encoder (two hidden layers of width 512, embeddings of 128,
float32) trained with CLIP's loss and a learned temperature. The loss uses
``chunk_size=512`` in both variants, so its own ``batch × batch`` matrix is
never materialised and the comparison is about the encoder's activations:

* ``full``: ``jit(value_and_grad(loss(encode(params, batch))))``, the
  activations of the whole batch kept for the backward pass;
* ``grad_cache``: :func:`jaxloss.train.grad_cache` with mini-batches of 256.

Reports compiled temporary memory (``memory_analysis().temp_size_in_bytes``)
at several batch sizes (compiled only, not run, at the largest), the median
wall time of both at the smallest, and the largest gradient difference
between them there. Prints a Markdown section and (re)writes this benchmark's
section of ``benchmarks/RESULTS.md``::

  .venv/bin/python -m benchmarks.gradcache [--repeats 5] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import platform

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np

import jaxloss as jl
from benchmarks._report import cpu_model, median_times, mib, write_section
from jaxloss import train

RESULTS = pathlib.Path(__file__).with_name("RESULTS.md")
BEGIN = "<!-- gradcache: begin -->"
END = "<!-- gradcache: end -->"
SIZES = (128, 512, 512, 128)  # input, hidden, hidden, embedding
MINI_BATCH = 256
LOSS_CHUNK = 512
MEMORY_BATCHES = (4096, 16384, 65536)
TIME_BATCH = 4096


def init(seed: int) -> dict:
  def tower(key):
    keys = jax.random.split(key, len(SIZES) - 1)
    return [
      {"w": jax.random.normal(k, (m, n)) / np.sqrt(m), "b": jnp.zeros((1, n))}
      for k, m, n in zip(keys, SIZES[:-1], SIZES[1:])
    ]

  image_key, text_key = jax.random.split(jax.random.key(seed))
  return {
    "image": tower(image_key),
    "text": tower(text_key),
    "log_scale": jnp.asarray(np.log(1 / 0.07), jnp.float32),
  }


def mlp(layers, x):
  for i, layer in enumerate(layers):
    x = x @ layer["w"] + layer["b"]
    if i < len(layers) - 1:
      x = jax.nn.gelu(x)
  return x


def encode(params, inputs):
  images, texts = inputs
  return mlp(params["image"], images), mlp(params["text"], texts)


def loss(params, embeddings):
  return jl.clip_loss(
    *embeddings,
    temperature=jnp.exp(-params["log_scale"]),
    chunk_size=LOSS_CHUNK,
    reduction="mean",
  )


def variants() -> dict:
  return {
    "full": jax.jit(jax.value_and_grad(lambda p, x: loss(p, encode(p, x)))),
    "grad_cache": jax.jit(
      train.grad_cache(encode, loss, mini_batch_size=MINI_BATCH)
    ),
  }


def spec(batch: int, dim: int):
  one = jax.ShapeDtypeStruct((batch, dim), jnp.float32)
  return one, one


def temp_bytes(fn, *args) -> int:
  return fn.lower(*args).compile().memory_analysis().temp_size_in_bytes


def loss_alone_bytes(params, batch: int) -> int:
  """The loss's own share: its value and gradient given the embeddings."""
  fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
  return temp_bytes(fn, params, spec(batch, SIZES[-1]))


def run(repeats: int) -> str:
  params = init(0)
  fns = variants()
  rows = []
  for batch in MEMORY_BATCHES:
    full, cached = (
      temp_bytes(fns[k], params, spec(batch, SIZES[0]))
      for k in ("full", "grad_cache")
    )
    alone = loss_alone_bytes(params, batch)
    shares = (full - alone, cached - alone)
    rows.append(
      [
        f"{batch:,}",
        mib(full),
        mib(cached),
        f"1/{full / cached:.1f}",
        mib(alone),
        mib(full - alone),
        mib(cached - alone),
      ]
    )
    print(" | ".join(rows[-1]), flush=True)
  keys = jax.random.split(jax.random.key(1))
  x = tuple(jax.random.normal(k, (TIME_BATCH, SIZES[0])) for k in keys)
  times = median_times(fns, (params, x), repeats)
  (full_loss, full_grads), (gc_loss, gc_grads) = (
    fns[k](params, x) for k in ("full", "grad_cache")
  )
  difference = max(
    float(jnp.max(jnp.abs(a - b)))
    for a, b in zip(jax.tree.leaves(full_grads), jax.tree.leaves(gc_grads))
  )
  scale = max(float(jnp.max(jnp.abs(a))) for a in jax.tree.leaves(full_grads))
  encoder_ratio = shares[0] / shares[1]
  header = [
    "batch",
    "full-batch temp",
    f"GradCache temp (mini-batch {MINI_BATCH})",
    "GradCache / full",
    "loss alone",
    "full − loss",
    "GradCache − loss",
  ]
  table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  table += ["| " + " | ".join(row) + " |" for row in rows]
  machine = (
    f"{os.cpu_count()} CPU cores ({cpu_model()}), "
    f"{jax.devices()[0].platform} device, jax {jax.__version__}, "
    f"jaxlib {jaxlib.__version__}, Python {platform.python_version()}"
  )
  return "\n".join(
    [
      "## GradCache vs full-batch gradient (`benchmarks/gradcache.py`)",
      "",
      f"Two-tower MLP encoder (layers {' → '.join(map(str, SIZES))}, GELU, "
      f"float32), CLIP loss with a learned temperature and "
      f"`chunk_size={LOSS_CHUNK}` in both variants (so the loss's "
      f"`batch × batch` matrix is in neither), `jit` of the loss and the "
      f"gradient with respect to every parameter. Memory: compiled temporary "
      f"bytes (`memory_analysis().temp_size_in_bytes`; the inputs and "
      f"parameters are arguments, not temporaries); batches above "
      f"{TIME_BATCH:,} are compiled, not run.",
      "",
      f"Machine: {machine}; measured {datetime.date.today().isoformat()}.",
      "",
      *table,
      "",
      f"At batch {TIME_BATCH:,}: full batch {times['full']:.3f} s, GradCache "
      f"{times['grad_cache']:.3f} s per step "
      f"({times['grad_cache'] / times['full']:.2f}×; median of {repeats} "
      f"interleaved rounds, on a machine other jobs may share, so the times "
      f"vary from run to run). GradCache runs the encoder's forward pass "
      f"twice (about 4/3 of the full-batch FLOPs); on this CPU its "
      f"mini-batch working set, which stays in cache, offsets that. Loss "
      f"{float(full_loss):.6f} vs {float(gc_loss):.6f}; the largest gradient "
      f"difference is "
      f"{difference:.1e} (largest gradient entry {scale:.1e}), float32 "
      f"rounding.",
      "",
      'Reading the memory: "loss alone" is the chunked loss\'s own '
      "temporary memory (its value and gradient given the embeddings), "
      "O(batch × chunk), which both variants need. Beyond it, the full-batch "
      "gradient keeps every layer's activations for the whole batch, "
      "O(batch × the encoder's widths); GradCache keeps the batch's "
      "embeddings and their gradient, O(batch × embedding size), and one "
      f"mini-batch's activations: {encoder_ratio:.0f}× less here, and the "
      "gap widens with a wider or deeper encoder.",
      "",
    ]
  )


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument(
    "--no-write",
    action="store_true",
    help="print the section without updating RESULTS.md",
  )
  args = parser.parse_args()
  section = run(args.repeats)
  print(section)
  if not args.no_write:
    write_section(RESULTS, BEGIN, END, section)


if __name__ == "__main__":
  main()
