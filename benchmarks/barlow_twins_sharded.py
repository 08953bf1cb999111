"""Sharded Barlow Twins: psum'd batch statistics vs all-gathering the
embeddings, memory and time.

On 8 simulated CPU devices (``--xla_force_host_platform_device_count=8``, set
here before jax is imported), float32, projector width D = 8,192 (Barlow
Twins' ``8192-8192-8192``), compares three ways of computing the loss of the
global batch, forward and backward (``jit(value_and_grad)`` with respect to
both views):

* ``psum``: :func:`jaxloss.distributed.barlow_twins_loss` (each device
  standardises its rows with ``psum``-ed means and variances and ``psum``-s
  its ``D × D`` part of the cross-correlation);
* ``all_gather``: ``all_gather`` both views (``[B, D]`` each) and compute
  :func:`jaxloss.barlow_twins_loss` of the global batch on every device
  (VICReg's ``FullGatherLayer`` way);
* ``psum, chunked``: a prototype written here, not in jaxloss: the
  cross-correlation built, ``psum``-ed and squared ``--chunk`` columns at a
  time under ``jax.checkpoint`` (so the backward pass recomputes each
  block), never the whole ``D × D``.

Measures the compiled per-device temporary memory
(``memory_analysis().temp_size_in_bytes``) and the time of paired rounds
(wall and process CPU time; the 8 simulated devices share the machine's
cores). Prints a Markdown table and (re)writes this benchmark's section of
``benchmarks/RESULTS.md``::

  .venv/bin/python -m benchmarks.barlow_twins_sharded [--repeats 3]
"""

from __future__ import annotations

import os

DEVICES = 8
os.environ["XLA_FLAGS"] = (
  os.environ.get("XLA_FLAGS", "")
  + f" --xla_force_host_platform_device_count={DEVICES}"
)

import argparse  # noqa: E402
import datetime  # noqa: E402
import functools  # noqa: E402
import pathlib  # noqa: E402
import platform  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jaxlib  # noqa: E402
import numpy as np  # noqa: E402

import jaxloss  # noqa: E402
from benchmarks._report import (  # noqa: E402
  cpu_model,
  mib,
  paired_times,
  write_section,
)
from jaxloss import distributed as jd  # noqa: E402

DIM = 8192
PER_DEVICE = 256
RESULTS = pathlib.Path(__file__).with_name("RESULTS.md")
BEGIN = "<!-- barlow_twins_sharded: begin -->"
END = "<!-- barlow_twins_sharded: end -->"
LAMBDA, EPS = 0.0051, 1e-5


def _mesh():
  return jax.make_mesh(
    (DEVICES,), ("data",), axis_types=(jax.sharding.AxisType.Auto,)
  )


def _gathered(z_a, z_b):
  every_a, every_b = (
    jax.lax.all_gather(z, "data", tiled=True) for z in (z_a, z_b)
  )
  loss = jaxloss.barlow_twins_loss(every_a, every_b, lambda_=LAMBDA, eps=EPS)
  # Every device computes the same loss; pmean makes it replicated for
  # out_specs=P() and gives each copy 1/D of the cotangent, so that the
  # transpose of all_gather (a psum_scatter) returns the gradient once.
  return jax.lax.pmean(loss, "data")


def _standardised(z, n):
  mean = jax.lax.psum(jnp.sum(z, axis=0, keepdims=True), "data") / n
  centred = z - mean
  variance = jax.lax.psum(
    jnp.sum(jnp.square(centred), axis=0, keepdims=True), "data"
  )
  return centred * jax.lax.rsqrt(variance / n + EPS)


def _chunked(z_a, z_b, chunk):
  """The prototype: ``C[:, block]`` one block of columns at a time."""
  n = z_a.shape[0] * DEVICES
  a, b = _standardised(z_a, n), _standardised(z_b, n)
  blocks = b.reshape(b.shape[0], DIM // chunk, chunk).transpose(1, 0, 2)

  @jax.checkpoint
  def block_terms(start, block):
    c = jax.lax.psum(a.T @ block, "data") / n  # [D, chunk]
    rows = jnp.arange(DIM)[:, None]
    diagonal = rows == start + jnp.arange(chunk)[None, :]
    on = jnp.sum(jnp.where(diagonal, jnp.square(1 - c), 0))
    off = jnp.sum(jnp.where(diagonal, 0, jnp.square(c)))
    return on + LAMBDA * off

  def step(total, xs):
    start, block = xs
    return total + block_terms(start, block), None

  starts = jnp.arange(DIM // chunk) * chunk
  total, _ = jax.lax.scan(step, jnp.zeros((), a.dtype), (starts, blocks))
  return total


def variants(chunk: int) -> dict:
  """``{label: shard_map-ed loss of the local views}``."""
  spec = jax.P("data")
  mesh = _mesh()

  def sharded(fn):
    return jax.shard_map(
      fn, mesh=mesh, in_specs=(spec, spec), out_specs=jax.P()
    )

  return {
    "psum": sharded(
      functools.partial(
        jd.barlow_twins_loss, axis_name="data", lambda_=LAMBDA, eps=EPS
      )
    ),
    "all_gather": sharded(_gathered),
    "psum, chunked": sharded(functools.partial(_chunked, chunk=chunk)),
  }


def step(loss):
  return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))


def temp_bytes(loss, batch) -> int:
  sharding = jax.NamedSharding(_mesh(), jax.P("data"))
  z = jax.ShapeDtypeStruct((batch, DIM), jnp.float32, sharding=sharding)
  compiled = step(loss).lower(z, z).compile()
  return compiled.memory_analysis().temp_size_in_bytes


def check_equal(chunk: int) -> float:
  """The three agree (value and gradients) on a small global batch at
  D = 8,192: the largest relative difference from ``psum``."""
  sharding = jax.NamedSharding(_mesh(), jax.P("data"))
  rng = np.random.default_rng(1)
  z_a, z_b = (
    jax.device_put(
      jnp.asarray(rng.normal(size=(4 * DEVICES, DIM)), jnp.float32), sharding
    )
    for _ in range(2)
  )
  results = {k: step(f)(z_a, z_b) for k, f in variants(chunk).items()}
  base = jax.tree.leaves(results["psum"])
  worst = 0.0
  for other in results.values():
    for x, y in zip(jax.tree.leaves(other), base, strict=True):
      x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
      worst = max(worst, float(np.max(np.abs(x - y)) / np.max(np.abs(y))))
  return worst


def run(repeats: int, chunk: int) -> str:
  batch = PER_DEVICE * DEVICES
  load = os.getloadavg()[0]
  agreement = check_equal(chunk)
  print(f"largest relative difference from psum: {agreement:.1e}", flush=True)
  memory = {k: temp_bytes(f, batch) for k, f in variants(chunk).items()}
  print({k: mib(v) for k, v in memory.items()}, flush=True)
  sharding = jax.NamedSharding(_mesh(), jax.P("data"))
  rng = np.random.default_rng(0)
  z_a, z_b = (
    jax.device_put(
      jnp.asarray(rng.normal(size=(batch, DIM)), jnp.float32), sharding
    )
    for _ in range(2)
  )
  times = paired_times(
    {k: step(f) for k, f in variants(chunk).items()}, (z_a, z_b), repeats
  )
  correlation = DIM * DIM * 4
  embeddings = PER_DEVICE * DIM * 4
  header = [
    "variant",
    "temp memory per device",
    "in D × D matrices (256 MiB each)",
    "wall time",
    "process CPU time",
    "CPU time / psum",
  ]
  rows = [
    [
      k,
      mib(memory[k]),
      f"{memory[k] / correlation:.2f}",
      f"{times[k][0]:.2f} s",
      f"{times[k][1]:.2f} s",
      f"{times[k][2]:.2f}×",
    ]
    for k in memory
  ]
  table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  table += ["| " + " | ".join(row) + " |" for row in rows]
  print("\n".join(table), flush=True)
  machine = (
    f"{os.cpu_count()} CPU cores ({cpu_model()}), {DEVICES} "
    f"simulated {jax.devices()[0].platform} devices, jax "
    f"{jax.__version__}, jaxlib {jaxlib.__version__}, Python "
    f"{platform.python_version()}"
  )
  return "\n".join(
    [
      "## Sharded Barlow Twins: psum'd statistics vs all_gather "
      "(`benchmarks/barlow_twins_sharded.py`)",
      "",
      f"Forward + backward (`jit(value_and_grad)` with respect to both "
      f"views) of Barlow Twins on {DEVICES} simulated CPU devices, "
      f"D = {DIM:,} (Barlow Twins' projector width), {PER_DEVICE} examples "
      f"per device (global batch {batch:,}), float32. *psum*: "
      f"`jaxloss.distributed.barlow_twins_loss` (means, variances and the "
      f"`D × D` cross-correlation `psum`-ed). *all_gather*: both views "
      f"all-gathered (`{batch:,} × {DIM:,}` each, "
      f"{mib(DEVICES * embeddings)}) and `jaxloss.barlow_twins_loss` of "
      f"the global batch on every device. *psum, chunked*: a prototype in "
      f"the benchmark (not in jaxloss), the cross-correlation built, "
      f"`psum`-ed and squared {chunk:,} columns at a time under "
      f"`jax.checkpoint`. Memory: compiled per-device temporary bytes "
      f"(`memory_analysis().temp_size_in_bytes`); one `D × D` float32 "
      f"matrix is {mib(correlation)}, one device's view "
      f"{mib(embeddings)}. Time: median of {repeats} paired rounds after a "
      f"warm-up (order alternating); the {DEVICES} simulated devices share "
      f"the machine's cores. The three agree to {agreement:.0e} (relative, "
      f"value and gradients, global batch {4 * DEVICES}).",
      "",
      f"Machine: {machine}; measured {datetime.date.today().isoformat()}, "
      f"load average {load:.1f} at the start (other jobs share the cores: "
      f"wall times vary, the paired CPU-time ratios less).",
      "",
      *table,
      "",
    ]
  )


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--chunk", type=int, default=1024)
  parser.add_argument(
    "--no-write",
    action="store_true",
    help="print the table without updating RESULTS.md",
  )
  args = parser.parse_args()
  section = run(args.repeats, args.chunk)
  print(section)
  if not args.no_write:
    write_section(RESULTS, BEGIN, END, section)


if __name__ == "__main__":
  main()
