"""jaxloss vs optax.losses: the drop-in functions timed on the same inputs.

For every callable of ``optax.losses`` (the names ``tests/test_optax_dropin.py``
checks), times ``jit(value_and_grad(lambda x, *rest: sum(loss(x, *rest))))``
(the gradient with respect to the first, floating argument) of the jaxloss and
the optax function, called with the same positional arguments and optax's
defaults, in one process (the five cross-entropies of issue 18 at a second,
larger size too, ``LARGE``):

* warm-up (compilation) first, then ``--rounds`` rounds; each round times a
  block of calls of each function (the order alternating from round to round,
  the block long enough to last ``--block`` seconds), so that other jobs on the
  machine slow both alike;
* reported: the median time per call of each, the median over the rounds of
  the jaxloss / optax ratio of wall time and of process CPU time (all threads
  of this process, none of the other jobs'), and whether the values and
  gradients agree (float32, relative 1e-5).

Prints a Markdown table, writes ``benchmarks/results/optax_dropin.json`` and
(re)writes this benchmark's section of ``benchmarks/RESULTS.md``::

  .venv/bin/python -m benchmarks.optax_dropin [--rounds 15] [--block 0.1]
                                              [--names NAME ...] [--no-write]
                                              [--render]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np
import optax
from jax.scipy.special import logsumexp

import jaxloss
from benchmarks._report import cpu_model, write_section

HERE = pathlib.Path(__file__).parent
RESULTS = HERE / "RESULTS.md"
JSON = HERE / "results" / "optax_dropin.json"
BEGIN = "<!-- optax_dropin: begin -->"
END = "<!-- optax_dropin: end -->"
N, C = 4096, 128  # batch × classes (or features) of the elementwise losses
TOLERANCE = 1e-5
LOADS = []  # the machine's 1-minute load average at the start of each round


def _f32(x):
  return jnp.asarray(x, jnp.float32)


def _normal(rng, *shape):
  return _f32(rng.normal(size=shape))


def _probs(rng, *shape):
  return jax.nn.softmax(_normal(rng, *shape))


def _classes(rng, *shape, k=C):
  return jnp.asarray(rng.integers(0, k, size=shape), jnp.int32)


def _segmentation(rng, classes):
  """``[batch 8, 64, 64, classes]`` logits and one-hot targets."""
  logits = _normal(rng, 8, 64, 64, classes)
  targets = jax.nn.one_hot(_classes(rng, 8, 64, 64, k=classes), classes)
  return logits, targets


def _ctc(rng):
  """64 sequences of 128 frames, 32 classes (blank 0), labels of 20 to 32
  tokens padded to 32."""
  batch, frames, classes, max_len = 64, 128, 32, 32
  labels = jnp.asarray(
    rng.integers(1, classes, size=(batch, max_len)), jnp.int32
  )
  lengths = rng.integers(20, max_len + 1, size=batch)
  label_paddings = _f32(np.arange(max_len)[None] >= lengths[:, None])
  return (
    _normal(rng, batch, frames, classes),
    jnp.zeros((batch, frames)),
    labels,
    label_paddings,
  )


def cross_entropy_inputs(n: int, c: int) -> dict:
  """The five cross-entropies of issue 18 at ``[n, c]``: name -> (input
  factory, shape shown in the table)."""
  shape = f"[{n}, {c}]"
  return {
    "poly_loss_cross_entropy": (
      lambda r: (_normal(r, n, c), jax.nn.one_hot(_classes(r, n, k=c), c)),
      shape,
    ),
    "safe_softmax_cross_entropy": (
      lambda r: (_normal(r, n, c), _probs(r, n, c)),
      shape,
    ),
    "sigmoid_binary_cross_entropy": (
      lambda r: (_normal(r, n, c), _f32(r.integers(0, 2, size=(n, c)))),
      shape,
    ),
    "softmax_cross_entropy": (
      lambda r: (_normal(r, n, c), _probs(r, n, c)),
      shape,
    ),
    "softmax_cross_entropy_with_integer_labels": (
      lambda r: (_normal(r, n, c), _classes(r, n, k=c)),
      shape,
    ),
  }


# name -> (input factory, shape shown in the table). Every factory returns the
# positional arguments; the first one is differentiated.
INPUTS = {
  "binary_dice_loss": (lambda r: _segmentation(r, 1), "[8, 64, 64, 1]"),
  "convex_kl_divergence": (
    lambda r: (jax.nn.log_softmax(_normal(r, N, C)), jnp.abs(_normal(r, N, C))),
    "[4096, 128]",
  ),
  "cosine_distance": (
    lambda r: (_normal(r, N, C), _normal(r, N, C)),
    "[4096, 128]",
  ),
  "cosine_similarity": (
    lambda r: (_normal(r, N, C), _normal(r, N, C)),
    "[4096, 128]",
  ),
  "ctc_loss": (_ctc, "[64, 128, 32], labels ≤ 32"),
  "ctc_loss_with_forward_probs": (_ctc, "[64, 128, 32], labels ≤ 32"),
  "dice_loss": (lambda r: _segmentation(r, 8), "[8, 64, 64, 8]"),
  "generalized_kl_divergence": (
    lambda r: (jax.nn.log_softmax(_normal(r, N, C)), jnp.abs(_normal(r, N, C))),
    "[4096, 128]",
  ),
  "hinge_loss": (
    lambda r: (_normal(r, N, C), _f32(r.choice([-1.0, 1.0], size=(N, C)))),
    "[4096, 128]",
  ),
  "huber_loss": (
    lambda r: (2 * _normal(r, N, C), _normal(r, N, C)),
    "[4096, 128]",
  ),
  "kl_divergence": (
    lambda r: (jax.nn.log_softmax(_normal(r, N, C)), _probs(r, N, C)),
    "[4096, 128]",
  ),
  "kl_divergence_with_log_targets": (
    lambda r: (
      jax.nn.log_softmax(_normal(r, N, C)),
      jax.nn.log_softmax(_normal(r, N, C)),
    ),
    "[4096, 128]",
  ),
  "l2_loss": (lambda r: (_normal(r, N, C), _normal(r, N, C)), "[4096, 128]"),
  "log_cosh": (lambda r: (_normal(r, N, C), _normal(r, N, C)), "[4096, 128]"),
  "make_fenchel_young_loss": (
    lambda r: (_normal(r, N, C), _probs(r, N, C)),
    "[4096, 128], logsumexp",
  ),
  "multiclass_generalized_dice_loss": (
    lambda r: _segmentation(r, 8),
    "[8, 64, 64, 8]",
  ),
  "multiclass_hinge_loss": (
    lambda r: (_normal(r, N, C), _classes(r, N)),
    "[4096, 128]",
  ),
  "multiclass_perceptron_loss": (
    lambda r: (_normal(r, N, C), _classes(r, N)),
    "[4096, 128]",
  ),
  "multiclass_sparsemax_loss": (
    lambda r: (_normal(r, N, C), _classes(r, N)),
    "[4096, 128]",
  ),
  "ntxent": (
    lambda r: (_normal(r, 1024, C), jnp.arange(1024, dtype=jnp.int32) // 2),
    "[1024, 128], pairs",
  ),
  "perceptron_loss": (
    lambda r: (_normal(r, N, C), _f32(r.choice([-1.0, 1.0], size=(N, C)))),
    "[4096, 128]",
  ),
  "ranking_softmax_loss": (
    lambda r: (_normal(r, N, C), _f32(r.integers(0, 5, size=(N, C)))),
    "[4096 lists, 128]",
  ),
  "sigmoid_focal_loss": (
    lambda r: (_normal(r, N, C), _f32(r.integers(0, 2, size=(N, C)))),
    "[4096, 128]",
  ),
  "smooth_labels": (
    lambda r: (jax.nn.one_hot(_classes(r, N), C), jnp.float32(0.1)),
    "[4096, 128]",
  ),
  "sparsemax_loss": (
    lambda r: (_normal(r, N, C), _f32(r.integers(0, 2, size=(N, C)))),
    "[4096, 128]",
  ),
  "squared_error": (
    lambda r: (_normal(r, N, C), _normal(r, N, C)),
    "[4096, 128]",
  ),
  "triplet_margin_loss": (
    lambda r: (_normal(r, N, C), _normal(r, N, C), _normal(r, N, C)),
    "[4096, 128] × 3",
  ),
  **cross_entropy_inputs(N, C),
}
# The cross-entropies are also timed at a larger size (issue 18): more
# classes, so the passes over the logits dominate. Rows of the same table.
LARGE = cross_entropy_inputs(8192, 1024)


def optax_names() -> list:
  """The callables of ``optax.losses``, as ``tests/test_optax_dropin.py``."""
  return sorted(
    n
    for n in dir(optax.losses)
    if not n.startswith("_") and callable(getattr(optax.losses, n))
  )


def loss_of(module, name):
  """The loss to time: ``make_fenchel_young_loss`` is built on logsumexp;
  ``ctc_loss_with_forward_probs`` gives its per-sequence losses."""
  fn = getattr(module, name)
  if name == "make_fenchel_young_loss":
    return fn(logsumexp)
  if name == "ctc_loss_with_forward_probs":
    return lambda *args: fn(*args)[0]
  return fn


def step(loss):
  """``jit(value_and_grad)`` of the summed loss, with respect to argument 0."""
  return jax.jit(jax.value_and_grad(lambda x, *rest: jnp.sum(loss(x, *rest))))


def _calls(fn, args, block: float) -> int:
  """How many calls make a block of about ``block`` seconds."""
  start = time.perf_counter()
  jax.block_until_ready(fn(*args))
  return max(1, round(block / max(time.perf_counter() - start, 1e-6)))


def _timed(fn, args, calls: int):
  """(wall, CPU) seconds per call over ``calls`` calls."""
  wall, cpu = time.perf_counter(), time.process_time()
  for _ in range(calls):
    out = fn(*args)
  jax.block_until_ready(out)
  return (
    (time.perf_counter() - wall) / calls,
    (time.process_time() - cpu) / calls,
  )


def _difference(ours, theirs) -> float:
  """Largest absolute difference relative to the largest magnitude."""
  ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
  scale = max(float(np.max(np.abs(theirs))), 1e-30)
  return float(np.max(np.abs(ours - theirs))) / scale


def cases(names: list) -> list:
  """``(name, input factory, shape)`` to time: every name at its size in
  ``INPUTS``, each name of ``LARGE`` next at that size as well."""
  return [
    (n, *sizes[n]) for n in names for sizes in (INPUTS, LARGE) if n in sizes
  ]


def measure(name: str, factory, shape: str, rounds: int, block: float) -> dict:
  args = factory(np.random.default_rng(0))
  fns = {
    "jaxloss": step(loss_of(jaxloss, name)),
    "optax": step(loss_of(optax.losses, name)),
  }
  outs = {key: jax.block_until_ready(fn(*args)) for key, fn in fns.items()}
  value_diff = _difference(outs["jaxloss"][0], outs["optax"][0])
  grad_diff = _difference(outs["jaxloss"][1], outs["optax"][1])
  calls = {key: _calls(fn, args, block) for key, fn in fns.items()}
  times = {key: [] for key in fns}
  for i in range(rounds):
    LOADS.append(os.getloadavg()[0])
    for key in ("jaxloss", "optax") if i % 2 == 0 else ("optax", "jaxloss"):
      times[key].append(_timed(fns[key], args, calls[key]))
  wall = {k: statistics.median(t[0] for t in v) for k, v in times.items()}
  cpu = {k: statistics.median(t[1] for t in v) for k, v in times.items()}
  ratio = statistics.median(
    a[0] / b[0] for a, b in zip(times["jaxloss"], times["optax"])
  )
  cpu_ratio = statistics.median(
    a[1] / b[1] for a, b in zip(times["jaxloss"], times["optax"])
  )
  return {
    "name": name,
    "shape": shape,
    "jaxloss_s": wall["jaxloss"],
    "optax_s": wall["optax"],
    "ratio": ratio,
    "jaxloss_cpu_s": cpu["jaxloss"],
    "optax_cpu_s": cpu["optax"],
    "cpu_ratio": cpu_ratio,
    "value_diff": value_diff,
    "grad_diff": grad_diff,
    "agree": value_diff <= TOLERANCE and grad_diff <= TOLERANCE,
  }


def _ms(seconds: float) -> str:
  return f"{seconds * 1e3:.2f} ms"


def machine() -> str:
  return (
    f"{os.cpu_count()} CPU cores ({cpu_model()}), "
    f"{jax.devices()[0].platform} device, jax {jax.__version__}, "
    f"jaxlib {jaxlib.__version__}, optax {optax.__version__}, "
    f"Python {platform.python_version()}"
  )


def section(rows: list, rounds: int, block: float) -> str:
  header = [
    "function",
    "input",
    "jaxloss",
    "optax",
    "jaxloss / optax (wall)",
    "jaxloss / optax (CPU)",
    "values agree (max rel. diff: value, grad)",
  ]
  table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for r in rows:
    agree = "yes" if r["agree"] else "**no**"
    table.append(
      f"| `{r['name']}` | {r['shape']} | {_ms(r['jaxloss_s'])} | "
      f"{_ms(r['optax_s'])} | {r['ratio']:.2f}× | {r['cpu_ratio']:.2f}× | "
      f"{agree} ({r['value_diff']:.0e}, {r['grad_diff']:.0e}) |"
    )
  ratios = [r["cpu_ratio"] for r in rows]
  slow = [r["name"] for r in rows if r["cpu_ratio"] > 1.3]
  return "\n".join(
    [
      "## optax drop-ins: jaxloss vs optax (`benchmarks/optax_dropin.py`)",
      "",
      "Forward + backward: `jit(value_and_grad(lambda x, *rest: "
      "sum(loss(x, *rest))))`, the gradient with respect to the first "
      "argument, float32, one CPU device, the same positional arguments and "
      "optax's defaults for both (`make_fenchel_young_loss` built on "
      "`logsumexp`). Time: per call, median over "
      f"{rounds} rounds after a warm-up; each round runs a block of about "
      f"{block * 1e3:.0f} ms of calls of each function, the order alternating "
      "from round to round; the ratios are the medians of the per-round "
      "ratios, of wall time and of process CPU time (all threads of this "
      "process, none of the other jobs'). Values agree: the largest absolute "
      "difference of the value and of the gradient, relative to optax's "
      f"largest magnitude, at most {TOLERANCE:g}.",
      "",
      f"Machine: {machine()}; measured {datetime.date.today().isoformat()}. "
      f"1-minute load average {min(LOADS):.1f} to {max(LOADS):.1f} during "
      "the timed rounds (2 cores: other jobs shared the machine), so wall "
      "times vary from run to run; the CPU-time ratios are the stable "
      "measure.",
      "",
      *table,
      "",
      f"Median CPU-time ratio {statistics.median(ratios):.2f}× "
      f"(range {min(ratios):.2f}× to {max(ratios):.2f}×); "
      + (
        f"above 1.3×: {', '.join(f'`{n}`' for n in slow)}."
        if slow
        else "none above 1.3×."
      ),
      "",
      "Reading the numbers: most functions compile to the same program as "
      "optax's, hence about 1×. Faster: `ntxent` (optax builds the "
      "`batch × batch × dim` broadcast product for its cosine similarities; "
      "jaxloss a matrix product), `cosine_similarity`/`cosine_distance` "
      "(optax normalises both inputs, then sums their product; jaxloss sums "
      "`a·b`, `‖a‖²`, `‖b‖²` in one pass), and the five cross-entropies "
      "of issue 18, timed at a second size too: the soft-label ones "
      "(`softmax_cross_entropy`, `safe_softmax_cross_entropy`, "
      "`poly_loss_cross_entropy`) are one `custom_jvp` whose value is three "
      "fused reductions over the logits and whose gradient "
      "`softmax · Σy − y` is one fused pass, with no `[batch, classes]` "
      "temporary (optax keeps the shifted logits and their exponentials); "
      "the integer-label one takes one maximum, not two; "
      "`sigmoid_binary_cross_entropy` is one `exp` and one `log1p` per "
      "element with a `custom_jvp` gradient (optax: two `log_sigmoid`s and "
      "their derivatives). jaxloss keeps 0 (not NaN) for a 0 label on a −inf "
      "logit and the precision of small losses (docs/design.md, "
      '"Cross-entropy speed").',
      "",
    ]
  )


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--rounds", type=int, default=15)
  parser.add_argument(
    "--block",
    type=float,
    default=0.1,
    help="seconds of calls per function per round",
  )
  parser.add_argument(
    "--names",
    nargs="+",
    default=None,
    help="only these functions (no files are written)",
  )
  parser.add_argument(
    "--no-write",
    action="store_true",
    help="print the table without writing any file",
  )
  parser.add_argument(
    "--render",
    action="store_true",
    help="rewrite the RESULTS.md section from the JSON, without timing",
  )
  args = parser.parse_args()
  if args.render:
    data = json.loads(JSON.read_text())
    LOADS.extend(data["load_average"])
    text = section(data["rows"], data["rounds"], data["block_s"])
    write_section(RESULTS, BEGIN, END, text)
    return
  names = optax_names()
  missing = sorted(set(names) - set(INPUTS))
  if missing:
    raise SystemExit(f"no inputs for optax.losses names: {missing}")
  rows = []
  for name, factory, shape in cases(args.names or names):
    rows.append(measure(name, factory, shape, args.rounds, args.block))
    r = rows[-1]
    print(
      f"{name} {shape}: {_ms(r['jaxloss_s'])} vs {_ms(r['optax_s'])}, "
      f"{r['ratio']:.2f}× wall, {r['cpu_ratio']:.2f}× CPU, "
      f"agree={r['agree']} ({r['value_diff']:.1e}, {r['grad_diff']:.1e})",
      flush=True,
    )
  text = section(rows, args.rounds, args.block)
  print(text)
  if args.no_write or args.names:
    return
  write_section(RESULTS, BEGIN, END, text)
  JSON.parent.mkdir(exist_ok=True)
  JSON.write_text(
    json.dumps(
      {
        "machine": machine(),
        "date": datetime.date.today().isoformat(),
        "rounds": args.rounds,
        "block_s": args.block,
        "load_average": [min(LOADS), max(LOADS)],
        "rows": rows,
      },
      indent=1,
    )
    + "\n"
  )


if __name__ == "__main__":
  main()
