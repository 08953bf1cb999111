"""Fused linear distillation: jaxloss vs the materialised loss, the floor, trl.

The step is forward + backward (``jit(value_and_grad)`` with respect to the
student's hidden states and output weight), float32, one CPU device,
``beta=0.5`` (the generalized JSD, trl's default), ``"mean"`` over the
tokens, at N=4,096 tokens, D=512 for both models, V=32,768:

* jaxloss: :func:`jaxloss.distillation.linear.linear_distillation_loss`
  with its default ``chunk_size="auto"`` (128 tokens here), and with 512
  tokens per chunk (a memory / time trade-off);
* materialised JAX: ``jaxloss.generalized_jsd_loss(hs @ ws, ht @ wt,
  reduction="mean")`` on the two ``[N, V]`` logits (the teacher's gradient
  stopped);
* the floor: the four ``N × V × D`` products any exact method does (the
  student's logits, the teacher's, ``G @ wsᵀ`` and ``hsᵀ @ G`` for a given
  ``G [N, V]``), jitted alone, nothing else;
* trl (when torch and trl are importable; never a dependency of jaxloss):
  trl 1.16's ``trl.trainer.distillation_trainer._chunked_divergence_loss``
  (its CPU path: ``[4096, 32768]`` float32 tiles per model, two passes
  over them for the JSD, a third in the backward pass), eager, with
  ``torch.set_num_threads`` = the JAX CPU device's cores.

All steps run in one process, in paired rounds (one warm-up call each, then
every step once per round, the order reversed every other round); the stable
measure is the process CPU time (all threads of this process, none of the
other jobs on the machine), wall time is given too. Ratios are medians over
the rounds of the per-round ratio. Memory: XLA's compiled temporary memory
(``memory_analysis().temp_size_in_bytes``) of each JAX step, and, compiled
only (never run), jaxloss vs materialised at N=8,192, D=4,096, V=128,256.

Prints the tables and (re)writes this benchmark's section of
``benchmarks/RESULTS.md``. Run from the repository root:
``.venv/bin/python -m benchmarks.linear_distillation [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np

import jaxloss
from benchmarks._report import cpu_model, mib, write_section
from jaxloss._core import linear_softmax
from jaxloss.distillation.linear import linear_distillation_loss

TIMED = (4096, 512, 32768)  # tokens, dim (student and teacher), vocab
COMPILED = ((8192, 4096, 128256),)
CHUNK = 512  # the trade-off row's tokens per chunk
BETA = 0.5
RESULTS = pathlib.Path(__file__).with_name("RESULTS.md")
BEGIN = "<!-- linear_distillation: begin -->"
END = "<!-- linear_distillation: end -->"
LOADS: list = []  # the 1-minute load average at the start of each round


# --------------------------------------------------------------------------- #
# The JAX steps.


def materialised(hs, ws, ht, wt):
  return jaxloss.generalized_jsd_loss(
    hs @ ws, ht @ wt, beta=BETA, reduction="mean"
  )


def fused(chunk_size="auto"):
  def loss(hs, ws, ht, wt):
    return linear_distillation_loss(
      hs, ws, ht, wt, beta=BETA, chunk_size=chunk_size
    )

  return loss


def step(loss):
  return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))


@jax.jit
def floor(hs, ws, ht, wt, g):
  """The four products of an exact forward + backward, given the student
  logits' gradient ``g``: both models' logits, the student's hidden-state
  and weight gradients."""
  return hs @ ws, ht @ wt, g @ ws.T, hs.T @ g


def _shapes(tokens, dim, vocab):
  s = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)
  return s(tokens, dim), s(dim, vocab), s(tokens, dim), s(dim, vocab)


def temp_bytes(jitted, *shapes) -> int:
  compiled = jitted.lower(*shapes).compile()
  return compiled.memory_analysis().temp_size_in_bytes


# --------------------------------------------------------------------------- #
# trl


def trl_step(hs, ws, ht, wt, threads: int):
  """``(step, note)``: trl's ``_chunked_divergence_loss`` forward + backward
  returning ``(loss, dhidden, dweight [dim, vocab])``; ``(None, why)``
  without torch or trl."""
  os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
  try:
    import torch  # pylint: disable=import-outside-toplevel
    from trl.trainer.distillation_trainer import (  # pylint: disable=import-outside-toplevel
      _chunked_divergence_loss,
    )
  except ImportError as error:
    return None, f"not measured ({error})"
  torch.set_num_threads(threads)
  h = torch.from_numpy(np.array(hs)[None]).requires_grad_()
  # trl's layout: lm_head weights [vocab, dim], contiguous.
  w = torch.from_numpy(np.ascontiguousarray(np.array(ws).T)).requires_grad_()
  h_t = torch.from_numpy(np.array(ht)[None])
  w_t = torch.from_numpy(np.ascontiguousarray(np.array(wt).T))
  mask = torch.ones(h.shape[:2], dtype=torch.bool)

  def call():
    h.grad = w.grad = None
    loss = _chunked_divergence_loss(h, h_t, w, w_t, mask, BETA)[0]
    loss.backward()
    return loss.detach(), h.grad[0], w.grad

  import trl  # pylint: disable=import-outside-toplevel

  note = (
    f"trl {trl.__version__}, torch {torch.__version__} with "
    f"{torch.get_num_threads()} threads"
  )
  return call, note


def _numpy(out) -> tuple:
  """``(loss, dhidden, dweight [dim, vocab])`` of any step, as NumPy."""
  if isinstance(out[1], tuple):  # a JAX step: (loss, (dh, dw))
    loss, (dh, dw) = out
    return float(loss), np.asarray(dh), np.asarray(dw)
  loss, dh, dw = out
  return float(loss), dh.detach().numpy(), dw.detach().numpy().T


def max_error(a, b) -> float:
  """The largest difference of loss and gradients, each relative to the
  largest entry of ``b``'s."""
  (la, ha, wa), (lb, hb, wb) = _numpy(a), _numpy(b)
  return max(
    abs(la - lb) / max(abs(lb), 1e-30),
    float(np.max(np.abs(ha - hb)) / np.max(np.abs(hb))),
    float(np.max(np.abs(wa - wb)) / np.max(np.abs(wb))),
  )


# --------------------------------------------------------------------------- #
# Paired rounds.


def paired_rounds(fns: dict, args: dict, repeats: int) -> dict:
  """``{key: [(wall, process CPU seconds), ...]}``: one warm-up call each,
  then ``repeats`` rounds that call every function once, the order reversed
  every other round. ``args[key]`` are the function's arguments."""
  for key, fn in fns.items():
    jax.block_until_ready(fn(*args[key]))
  times: dict = {key: [] for key in fns}
  for round_ in range(repeats):
    LOADS.append(os.getloadavg()[0])
    keys = list(fns) if round_ % 2 == 0 else list(fns)[::-1]
    for key in keys:
      wall, cpu = time.perf_counter(), time.process_time()
      jax.block_until_ready(fns[key](*args[key]))
      times[key].append((time.perf_counter() - wall, time.process_time() - cpu))
  return times


def ratio(times: dict, a: str, b: str, which: int = 1) -> float:
  """Median over the rounds of ``a``'s time / ``b``'s (CPU: ``which=1``)."""
  return statistics.median(
    x[which] / y[which] for x, y in zip(times[a], times[b])
  )


def medians(times: dict, key: str) -> tuple:
  return tuple(statistics.median(t[i] for t in times[key]) for i in (0, 1))


def _sizes(sizes) -> str:
  tokens, dim, vocab = sizes
  return f"N={tokens:,}, D={dim:,}, V={vocab:,}"


# --------------------------------------------------------------------------- #
# The run.


def run(repeats: int) -> str:
  tokens, dim, vocab = TIMED
  auto = linear_softmax.token_chunk_size(tokens, vocab, np.float32)
  mem_rows = []
  for sizes in (TIMED, *COMPILED):
    naive = temp_bytes(step(materialised), *_shapes(*sizes))
    ours = temp_bytes(step(fused()), *_shapes(*sizes))
    chunk = linear_softmax.token_chunk_size(sizes[0], sizes[2], np.float32)
    mem_rows.append(
      [
        _sizes(sizes),
        str(chunk),
        mib(naive),
        mib(ours),
        f"1/{naive / ours:.1f}",
        "yes" if sizes == TIMED else "compiled only",
      ]
    )
    print(" | ".join(mem_rows[-1]), flush=True)

  rng = np.random.default_rng(0)
  normal = lambda *shape, scale=1.0: jnp.asarray(
    rng.normal(size=shape) * scale, jnp.float32
  )
  hs, ht = normal(tokens, dim), normal(tokens, dim)
  ws = normal(dim, vocab, scale=2 / np.sqrt(dim))
  wt = normal(dim, vocab, scale=3 / np.sqrt(dim))
  g = normal(tokens, vocab, scale=1 / tokens)
  xs = (hs, ws, ht, wt)

  jax_steps = {
    "jaxloss (auto)": step(fused()),
    f"jaxloss, chunk {CHUNK}": step(fused(CHUNK)),
    "materialised JAX": step(materialised),
  }
  chunks = {
    "jaxloss (auto)": str(auto),
    f"jaxloss, chunk {CHUNK}": str(CHUNK),
    "materialised JAX": "—",
    "floor": "—",
  }
  mem = {k: temp_bytes(f, *_shapes(*TIMED)) for k, f in jax_steps.items()}
  fns = dict(jax_steps, floor=floor)
  args = {k: xs for k in jax_steps} | {"floor": xs + (g,)}
  threads = os.cpu_count() or 1
  trl_fn, trl_note = trl_step(hs, ws, ht, wt, threads)
  if trl_fn is not None:
    fns["trl _chunked_divergence_loss"] = trl_fn
    args["trl _chunked_divergence_loss"] = ()
    chunks["trl _chunked_divergence_loss"] = "4,096 × 32,768 tiles"
  outputs = {k: fns[k](*args[k]) for k in fns if k != "floor"}
  times = paired_rounds(fns, args, repeats)

  first = "jaxloss (auto)"
  rows = []
  for key in fns:
    wall, cpu = medians(times, key)
    rows.append(
      [
        key,
        chunks[key],
        mib(mem[key])
        if key in mem
        else ("0 (outputs)" if key == "floor" else "—"),
        f"1/{mem['materialised JAX'] / mem[key]:.1f}" if key in mem else "—",
        f"{wall:.2f} s",
        f"{cpu:.2f} s",
        f"{ratio(times, key, 'floor'):.2f}×",
        f"{ratio(times, first, key):.2f}× ({ratio(times, first, key, 0):.2f}×)",
        (
          f"{max_error(outputs[key], outputs['materialised JAX']):.1e}"
          if key in outputs
          else "—"
        ),
      ]
    )
    print(" | ".join(rows[-1]), flush=True)
  found = {
    "memory": mem["materialised JAX"] / mem[first],
    "materialised": ratio(times, first, "materialised JAX"),
    "floor": ratio(times, first, "floor"),
    "chunk": ratio(times, f"jaxloss, chunk {CHUNK}", "floor"),
    "auto": auto,
  }
  return section(repeats, mem_rows, rows, found, trl_note)


def _table(header, rows) -> list:
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  return lines + ["| " + " | ".join(row) + " |" for row in rows]


def section(repeats, mem_rows, rows, found, trl_note) -> str:
  machine = (
    f"{os.cpu_count()} CPU cores ({cpu_model()}), "
    f"{jax.devices()[0].platform} device, jax {jax.__version__}, "
    f"jaxlib {jaxlib.__version__}, Python {platform.python_version()}"
  )
  memory = _table(
    [
      "sizes (float32)",
      "jaxloss chunk (tokens)",
      "materialised temp",
      "jaxloss temp",
      "jaxloss / materialised",
      "timed",
    ],
    mem_rows,
  )
  timing = _table(
    [
      f"step ({_sizes(TIMED)})",
      "chunk (tokens)",
      "temp",
      "/ materialised temp",
      "wall",
      "CPU",
      "CPU / floor",
      "jaxloss / this: CPU (wall)",
      "max error vs materialised",
    ],
    rows,
  )
  met = found["memory"] >= 16
  return "\n".join(
    [
      "## Fused linear distillation: jaxloss vs the materialised loss, the "
      "floor and trl (`benchmarks/linear_distillation.py`)",
      "",
      "Forward + backward (`jit(value_and_grad)` with respect to the "
      "student's `hidden` and `weight`), float32, one CPU device, "
      f'`beta={BETA}` (the generalized JSD), `"mean"` over the tokens; the '
      "teacher has the student's width. jaxloss: "
      "`linear_distillation_loss(hs, ws, ht, wt)` (default "
      f'`chunk_size="auto"`: {found["auto"]} tokens here), and with '
      f"{CHUNK} tokens per chunk; materialised JAX: "
      "`jaxloss.generalized_jsd_loss(hs @ ws, ht @ wt, "
      'reduction="mean")`; floor: the four `N × V × D` products (both '
      "models' logits, `G @ wsᵀ`, `hsᵀ @ G` with a given `G`) jitted alone "
      "(their results are outputs, hence no temporary memory); trl: "
      "`trl.trainer.distillation_trainer._chunked_divergence_loss` "
      f"forward + backward, eager, {trl_note} (its weights `[V, D]`). "
      "Reproduce from the repository root: `.venv/bin/python -m "
      "benchmarks.linear_distillation`.",
      "",
      "Memory: compiled temporary bytes "
      "(`memory_analysis().temp_size_in_bytes`; trl's is not measured); "
      "the larger size is compiled, not run. Time: "
      f"{repeats} paired rounds in one process after a warm-up call each "
      "(every step once per round, the order reversed every other round); "
      "medians of the wall and process CPU seconds, and medians over the "
      "rounds of the per-round ratios. Max error: the largest difference "
      "from the materialised step's loss and gradients, each relative to "
      "its largest entry.",
      "",
      f"Machine: {machine}; measured {datetime.date.today().isoformat()}; "
      "1-minute load average "
      f"{min(LOADS):.1f} to {max(LOADS):.1f} on {os.cpu_count()} cores "
      "during the timed rounds (this process's own steps count for about "
      "2 of it).",
      "",
      *memory,
      "",
      *timing,
      "",
      f"Issue 21's target at {_sizes(TIMED)}: compiled temporary memory "
      "≤ 1/16 of the materialised loss's: "
      f"1/{found['memory']:.1f}, {'met' if met else '**not met**'}. "
      f"jaxloss's default takes {found['materialised']:.2f}× the "
      f"materialised step's CPU time and {found['floor']:.2f}× the floor's "
      f"({found['chunk']:.2f}× with {CHUNK}-token chunks). The fused step "
      "does the floor's four products (three for the student, one for the "
      "teacher) plus the per-token divergence and its vector-Jacobian "
      "product on each `[chunk, V]` block of both models, elementwise work "
      "several times that of a cross-entropy (two log-softmaxes, the "
      "log-space mixture, two KL terms and their derivatives), and streams "
      "both weights and the weight gradient once per chunk.",
      "",
    ]
  )


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument(
    "--no-write",
    action="store_true",
    help="print the tables without updating RESULTS.md",
  )
  args = parser.parse_args()
  text = run(args.repeats)
  if not args.no_write:
    write_section(RESULTS, BEGIN, END, text)
  print(text)


if __name__ == "__main__":
  main()
