"""Dense, chunked and default contrastive losses: memory and time of forward
+ backward.

For ``clip_loss``, ``infonce_loss``, ``siglip_loss`` and
``supervised_contrastive_loss`` on one device (dim 256, float32), compares the
dense path (``chunk_size=None``: the ``batch × batch`` similarity matrix,
plain autodiff), an explicit ``chunk_size`` (online log-sum-exp over column
chunks, custom VJP) and the default (``chunk_size="auto"``):

* compiled temporary memory of ``jit(value_and_grad(loss))``
  (``memory_analysis().temp_size_in_bytes``) at batch 1024, 4096, 16384 and
  65536 (compiled only, never run, at 65536: the dense path would need ~48
  GiB);
* time of the same step at batch 1024, 4096 and 16384: paired rounds after a
  warm-up, so that other jobs on the machine slow all three alike; the ratios
  are medians of per-round process CPU time ratios.

Prints a Markdown table and (re)writes this benchmark's section of
``benchmarks/RESULTS.md``::

  .venv/bin/python -m benchmarks.contrastive_chunked [--repeats 9] [--chunk 512]
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

from benchmarks._report import cpu_model, mib, paired_times, write_section
from jaxloss import contrastive
from jaxloss._core import chunking

DIM = 256
MEMORY_BATCHES = (1024, 4096, 16384, 65536)
TIME_BATCHES = (1024, 4096, 16384)
RESULTS = pathlib.Path(__file__).with_name("RESULTS.md")
BEGIN = "<!-- contrastive_chunked: begin -->"
END = "<!-- contrastive_chunked: end -->"


def _supcon(x, y, t, chunk_size):
  del y  # one view per example; labels shared by groups of four.
  labels = jnp.arange(x.shape[0]) // 4
  return contrastive.supervised_contrastive_loss(
    x, labels, temperature=t, chunk_size=chunk_size, reduction="mean"
  )


LOSSES = {
  "clip_loss": lambda x, y, t, c: contrastive.clip_loss(
    x, y, temperature=t, chunk_size=c, reduction="mean"
  ),
  "infonce_loss": lambda x, y, t, c: contrastive.infonce_loss(
    x, y, temperature=t, chunk_size=c, reduction="mean"
  ),
  "siglip_loss": lambda x, y, t, c: contrastive.siglip_loss(
    x, y, logit_scale=1 / t, chunk_size=c, reduction="mean"
  ),
  "supervised_contrastive_loss": _supcon,
}


def step(loss, chunk_size):
  """``jit(value_and_grad)`` with respect to both embeddings and the
  temperature (or SigLIP's scale)."""
  return jax.jit(
    jax.value_and_grad(
      lambda x, y, t: loss(x, y, t, chunk_size), argnums=(0, 1, 2)
    )
  )


def temp_bytes(loss, chunk_size, batch) -> int:
  embeddings = jax.ShapeDtypeStruct((batch, DIM), jnp.float32)
  scalar = jax.ShapeDtypeStruct((), jnp.float32)
  compiled = (
    step(loss, chunk_size).lower(embeddings, embeddings, scalar).compile()
  )
  return compiled.memory_analysis().temp_size_in_bytes


def _used(name, batch) -> str:
  """What ``chunk_size="auto"`` does at this batch (dim 256, float32)."""
  chunk = chunking.auto_chunk_size(batch, batch, jnp.float32)
  return "dense" if chunk is None else f"chunk {chunk}"


def run(repeats: int, chunk: int, losses) -> str:
  rng = np.random.default_rng(0)
  rows = []
  variants = {"dense": None, "chunked": chunk, "default": "auto"}
  for name in losses:
    loss = LOSSES[name]
    for batch in MEMORY_BATCHES:
      memory = {k: temp_bytes(loss, c, batch) for k, c in variants.items()}
      row = [
        name,
        f"{batch:,}",
        _used(name, batch),
        mib(memory["dense"]),
        mib(memory["chunked"]),
        mib(memory["default"]),
        f"1/{memory['dense'] / memory['default']:.0f}",
      ]
      if batch in TIME_BATCHES:
        x, y = (
          jnp.asarray(rng.normal(size=(batch, DIM)), jnp.float32)
          for _ in range(2)
        )
        args = (x, y, jnp.float32(0.07))
        times = paired_times(
          {k: step(loss, c) for k, c in variants.items()}, args, repeats
        )
        row += [
          f"{times['dense'][0]:.3f} s",
          f"{times['chunked'][0]:.3f} s",
          f"{times['default'][0]:.3f} s",
          f"{times['chunked'][2]:.2f}×",
          f"{times['default'][2]:.2f}×",
        ]
        del x, y, args
      else:
        row += ["not run"] * 5
      print(" | ".join(row), flush=True)
      rows.append(row)
  header = [
    "loss",
    "batch",
    "default does",
    "dense temp",
    f"chunk {chunk} temp",
    "default temp",
    "default / dense memory",
    "dense time",
    f"chunk {chunk} time",
    "default time",
    f"chunk {chunk} / dense CPU time",
    "default / dense CPU time",
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
      "## Contrastive losses: dense, chunked and the default "
      "(`benchmarks/contrastive_chunked.py`)",
      "",
      f"Forward + backward (`jit(value_and_grad)` with respect to both "
      f"embeddings and the temperature), dim {DIM}, float32, one CPU device, "
      f'`reduction="mean"`: the dense path (`chunk_size=None`), an explicit '
      f'`chunk_size={chunk}`, and the default (`chunk_size="auto"`, no '
      f"argument passed: dense while the matrix fits the 16 MiB budget, else "
      f"the chunk that keeps each block within it; the column *default "
      f"does* says which). Memory: compiled temporary bytes "
      f"(`memory_analysis().temp_size_in_bytes`); batch 65,536 is compiled, "
      f"not run. Time: {repeats} paired rounds after a warm-up, the three "
      f"steps in each round (the order reversed every other round); the "
      f"times are medians of wall time, the ratios medians over the rounds "
      f"of process CPU time (all threads of this process, none of the other "
      f"jobs').",
      "",
      f"Machine: {machine}; measured {datetime.date.today().isoformat()}. "
      f"Other "
      f"CPU-heavy jobs may share this machine, so absolute times vary from "
      f"run to run; the paired CPU-time ratios are the stable measure.",
      "",
      *table,
      "",
      "Reading the times: at batch 1,024 the default is the dense program "
      "itself. The chunked step does four `batch × batch × dim` "
      "products (the forward pass, then the recomputation and the two "
      "gradient products of the backward pass) where the dense step does "
      "three, but it never writes or reads a `batch × batch` matrix. On this "
      "CPU the dense step is bound by memory traffic, so the chunked one is "
      "as fast or faster; where the products dominate (a faster matmul unit, "
      "small batches that fit in cache) expect the chunked step to take up "
      "to about 4/3 of the dense time.",
      "",
    ]
  )


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=9)
  parser.add_argument("--chunk", type=int, default=512)
  parser.add_argument(
    "--losses", nargs="+", default=list(LOSSES), choices=list(LOSSES)
  )
  parser.add_argument(
    "--no-write",
    action="store_true",
    help="print the table without updating RESULTS.md",
  )
  args = parser.parse_args()
  section = run(args.repeats, args.chunk, args.losses)
  print(section)
  if not args.no_write:
    write_section(RESULTS, BEGIN, END, section)


if __name__ == "__main__":
  main()
