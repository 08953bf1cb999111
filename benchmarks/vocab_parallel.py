"""Vocabulary-parallel linear cross-entropy: memory, communication and time.

On 8 simulated CPU devices (``--xla_force_host_platform_device_count=8``,
set here before jax is imported), float32, forward + backward
(``jit(value_and_grad)`` with respect to ``hidden`` and ``weight``) of the
mean token cross-entropy of ``hidden @ weight`` on ``data × model`` meshes
``(1, 8)`` and ``(2, 4)``, three ways:

* **vocab-parallel**: ``jaxloss.distributed.shard(jd.linear_cross_entropy,
  mesh, axis="data", vocab_axis="model")``: the weight ``P(None, "model")``,
  the tokens ``P("data")``; defaults (``chunk_size="auto"``);
* **(i) gather weight**: the weight all-gathered over ``model`` and the
  one-device chunked ``jaxloss.linear_cross_entropy`` (its defaults) run on
  each device's tokens, the tokens split over every device (data parallel
  with the weight gathered, FSDP-style; the weight's gradient is
  reduce-scattered back to its shards);
* **(ii) naive sharded logits**: ``hidden @ weight_shard`` materialised per
  device (``[tokens / data, V / model]``), the log-sum-exp combined with a
  ``pmax`` and a ``psum`` over ``model``, plain autodiff (what one writes by
  hand in ``shard_map``).

Reported: the compiled per-device temporary memory
(``memory_analysis().temp_size_in_bytes``) at the full size (global tokens
16,384, D=1,024, V=262,144; compiled, not run), the collectives in each
compiled step (the vocabulary-parallel one must have no all-gather), and
time at a reduced size (global tokens 2,048, D=256, V=32,768: a full-size
step is ~26 TFLOP, too slow on a 2-core machine) in paired rounds with
process CPU time. Prints a Markdown table and (re)writes this benchmark's
section of ``benchmarks/RESULTS.md``::

  .venv/bin/python -m benchmarks.vocab_parallel [--repeats 5] [--no-write]
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
import pathlib  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402

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

MESHES = ((1, 8), (2, 4))
FULL = dict(tokens=16384, dim=1024, vocab=262144)
REDUCED = dict(tokens=2048, dim=256, vocab=32768)
RESULTS = pathlib.Path(__file__).with_name("RESULTS.md")
BEGIN = "<!-- vocab_parallel: begin -->"
END = "<!-- vocab_parallel: end -->"
TARGET_MEMORY, TARGET_TIME = 1 / 8, 1.2  # vs (ii) memory, vs (i) time.


def _mesh(shape):
  return jax.make_mesh(
    shape, ("data", "model"), axis_types=(jax.sharding.AxisType.Auto,) * 2
  )


def vocab_parallel(mesh):
  loss = jd.shard(
    jd.linear_cross_entropy, mesh, axis="data", vocab_axis="model"
  )
  return jax.value_and_grad(loss, argnums=(0, 1))


def gather_weight(mesh):
  """(i): the weight gathered, the one-device chunked loss on each device's
  tokens (split over both mesh axes)."""
  tokens = ("data", "model")

  def local(hidden, weight, labels):
    full = jax.lax.all_gather(weight, "model", axis=1, tiled=True)
    total = jaxloss.linear_cross_entropy(hidden, full, labels, reduction="sum")
    return jax.lax.psum(total, tokens) / (labels.shape[0] * DEVICES)

  loss = jax.shard_map(
    local,
    mesh=mesh,
    in_specs=(jax.P(tokens), jax.P(None, "model"), jax.P(tokens)),
    out_specs=jax.P(),
  )
  return jax.value_and_grad(loss, argnums=(0, 1))


def naive_sharded(mesh):
  """(ii): the ``[tokens / data, V / model]`` logits materialised, the
  log-sum-exp combined over ``model``."""

  def local(hidden, weight, labels):
    logits = hidden @ weight
    start = jax.lax.axis_index("model") * weight.shape[1]
    # pmax has no differentiation rule: its input is a constant.
    peak = jax.lax.pmax(jax.lax.stop_gradient(jnp.max(logits, axis=1)), "model")
    total = jax.lax.psum(jnp.sum(jnp.exp(logits - peak[:, None]), 1), "model")
    columns = start + jnp.arange(weight.shape[1])
    picked = jnp.sum(
      jnp.where(columns[None, :] == labels[:, None], logits, 0), axis=1
    )
    label_logit = jax.lax.psum(picked, "model")
    nll = jnp.log(total) + peak - label_logit
    return jax.lax.psum(jnp.sum(nll), "data") / (
      labels.shape[0] * jax.lax.axis_size("data")
    )

  loss = jax.shard_map(
    local,
    mesh=mesh,
    in_specs=(jax.P("data"), jax.P(None, "model"), jax.P("data")),
    out_specs=jax.P(),
  )
  return jax.value_and_grad(loss, argnums=(0, 1))


VARIANTS = {
  "vocab-parallel": vocab_parallel,
  "(i) gather weight": gather_weight,
  "(ii) naive sharded": naive_sharded,
}


def _specs(mesh, tokens, dim, vocab):
  def struct(shape, dtype, spec):
    return jax.ShapeDtypeStruct(
      shape, dtype, sharding=jax.NamedSharding(mesh, spec)
    )

  return (
    struct((tokens, dim), jnp.float32, jax.P("data")),
    struct((dim, vocab), jnp.float32, jax.P(None, "model")),
    struct((tokens,), jnp.int32, jax.P("data")),
  )


def _collectives(hlo: str) -> str:
  """Counts of the collectives in a compiled module's text, and the largest
  all-gather's shape."""
  counts = {}
  for op in ("all-gather", "all-reduce", "reduce-scatter", "all-to-all"):
    counts[op] = len(re.findall(rf"= [^=]*\b{op}(-start)?\(", hlo))
  gathers = re.findall(r"= (\S+\[[\d,]*\])\S* all-gather(?:-start)?\(", hlo)
  text = ", ".join(f"{n} {op}" for op, n in counts.items() if n)
  if gathers:
    text += f" (e.g. {gathers[0]})"
  return text or "none", counts["all-gather"]


def compiled(make, mesh, size):
  return jax.jit(make(mesh)).lower(*_specs(mesh, **size)).compile()


def _inputs(mesh, tokens, dim, vocab, seed=0):
  rng = np.random.default_rng(seed)
  hidden, weight, labels = _specs(mesh, tokens, dim, vocab)
  return (
    jax.device_put(
      jnp.asarray(rng.normal(size=(tokens, dim)), jnp.float32),
      hidden.sharding,
    ),
    jax.device_put(
      jnp.asarray(rng.normal(size=(dim, vocab)) / np.sqrt(dim), jnp.float32),
      weight.sharding,
    ),
    jax.device_put(
      jnp.asarray(rng.integers(0, vocab, tokens), jnp.int32),
      labels.sharding,
    ),
  )


READING = (
  "Reading the numbers: each device of the vocabulary-parallel step holds "
  "one `[chunk, V / model]` block of logits and its gradient, the `[dim, V "
  "/ model]` gradient of its weight shard and per-token statistics; per "
  "chunk it sends one `pmax` and one `psum` of a few `[chunk]` vectors "
  "over `model` (the all-reduces counted above; the `data` all-reduces "
  "sum the weight's gradient and the loss), never the logits or the "
  "weight. (i) holds the whole gathered `[dim, V]` weight, its gradient "
  "before the reduce-scatter and a `[chunk, V]` block; (ii) holds its "
  "`[tokens / data, V / model]` logits and what autodiff keeps of them. "
  "The simulated devices share the CPU, so the times measure compute (the "
  "three methods do the same products; (ii) does them without a loop)."
)


def run(repeats: int) -> str:
  rows, verdicts = [], []
  for shape in MESHES:
    mesh = _mesh(shape)
    memory, comms = {}, {}
    for key, make in VARIANTS.items():
      step = compiled(make, mesh, FULL)
      memory[key] = step.memory_analysis().temp_size_in_bytes
      comms[key] = _collectives(step.as_text())
      del step
    args = _inputs(mesh, **REDUCED)
    times = paired_times(
      {key: jax.jit(make(mesh)) for key, make in VARIANTS.items()},
      args,
      repeats,
    )
    del args
    naive, gather = memory["(ii) naive sharded"], times["(i) gather weight"]
    for key in VARIANTS:
      rows.append(
        [
          f"{shape[0]} × {shape[1]}",
          key,
          mib(memory[key]),
          f"1/{naive / memory[key]:.1f}",
          comms[key][0],
          f"{times[key][0]:.3f} s",
          f"{times[key][1]:.3f} s",
          f"{times[key][1] / gather[1]:.2f}×",
          f"{times[key][2] / gather[2]:.2f}×",
        ]
      )
      print(" | ".join(rows[-1]), flush=True)
    ratio = memory["vocab-parallel"] / naive
    verdicts.append(
      f"* {shape[0]} × {shape[1]}: vocab-parallel memory / (ii) = "
      f"1/{1 / ratio:.1f} (target ≤ 1/{1 / TARGET_MEMORY:.0f})"
      + (": met" if ratio <= TARGET_MEMORY else ": **missed**")
    )
    gathers = comms["vocab-parallel"][1]
    verdicts.append(
      f"* {shape[0]} × {shape[1]}: all-gathers in the vocab-parallel step: "
      f"{gathers}" + (": met" if gathers == 0 else ": **missed**")
    )
    cpu = times["vocab-parallel"][2] / gather[2]
    verdicts.append(
      f"* {shape[0]} × {shape[1]}: vocab-parallel / (i) CPU time (reduced "
      f"size) = {cpu:.2f}× (target ≤ {TARGET_TIME}×)"
      + (": met" if cpu <= TARGET_TIME else ": **missed**")
    )
  header = [
    "mesh (data × model)",
    "method",
    "temp memory per device (full size)",
    "vs (ii)",
    "collectives in the compiled step (full size)",
    "wall time (reduced)",
    "CPU time (reduced)",
    "CPU / (i)",
    "paired CPU / (i)",
  ]
  table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  table += ["| " + " | ".join(row) + " |" for row in rows]
  machine = (
    f"{os.cpu_count()} CPU cores ({cpu_model()}), {DEVICES} "
    f"simulated {jax.devices()[0].platform} devices, jax "
    f"{jax.__version__}, jaxlib {jaxlib.__version__}, Python "
    f"{platform.python_version()}"
  )
  full = ", ".join(f"{k} {v:,}" for k, v in FULL.items())
  reduced = ", ".join(f"{k} {v:,}" for k, v in REDUCED.items())
  return "\n".join(
    [
      "## Vocabulary-parallel linear cross-entropy "
      "(`benchmarks/vocab_parallel.py`)",
      "",
      "Forward + backward (`jit(value_and_grad)` with respect to `hidden` "
      "and `weight`) of the mean token cross-entropy of `hidden @ weight`, "
      f"float32, on {DEVICES} simulated CPU devices: *vocab-parallel* is "
      '`jd.shard(jd.linear_cross_entropy, mesh, axis="data", '
      'vocab_axis="model")` with its defaults; *(i) gather weight* '
      "all-gathers the weight over `model` and runs the one-device chunked "
      "`jaxloss.linear_cross_entropy` on each device's tokens (split over "
      "all 8 devices); *(ii) naive sharded* materialises `hidden @ "
      "weight_shard` and combines the log-sum-exp with `pmax`/`psum`. "
      f"Memory and collectives: compiled (not run) at the full size "
      f"({full}), per device (`memory_analysis().temp_size_in_bytes`). "
      f"Time: at a reduced size ({reduced}; a full-size step is ~26 TFLOP), "
      f"median of {repeats} paired rounds after a warm-up (order reversed "
      "every other round); *paired CPU / (i)* is the median over rounds of "
      "the ratio of process CPU times, the stable measure on a shared "
      "machine.",
      "",
      f"Machine: {machine}; measured {datetime.date.today().isoformat()}. "
      "Other CPU-heavy jobs may share this machine: absolute times vary, "
      "the paired ratios much less.",
      "",
      *table,
      "",
      "Targets (issue 20):",
      "",
      *verdicts,
      "",
      READING,
      "",
    ]
  )


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument(
    "--no-write",
    action="store_true",
    help="print the table without updating RESULTS.md",
  )
  args = parser.parse_args()
  section = run(args.repeats)
  print(section)
  if not args.no_write:
    write_section(RESULTS, BEGIN, END, section)


if __name__ == "__main__":
  main()
