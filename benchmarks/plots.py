"""The report of benchmarks/RESULTS.md: header, summary table and plots.

Reads the numbers back from the benchmarks' own sections of RESULTS.md (each
script rewrites its section between ``<!-- name: begin -->`` and
``<!-- name: end -->``) and from ``benchmarks/results/optax_dropin.json``;
writes small PNGs into ``benchmarks/plots/`` and (re)writes the report block
(machine, commands, headline ratios, plots) at the top of RESULTS.md::

  .venv/bin/python -m benchmarks.plots

Run it after any benchmark (``make bench`` runs every benchmark, then this).
It runs no benchmark itself.
"""

from __future__ import annotations

import json
import pathlib
import re
import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = pathlib.Path(__file__).parent
RESULTS = HERE / "RESULTS.md"
PLOTS = HERE / "plots"
DROPIN_JSON = HERE / "results" / "optax_dropin.json"
BEGIN, END = "<!-- report: begin -->", "<!-- report: end -->"
BENCHMARKS = {  # section name -> what it compares
  "contrastive_chunked": "contrastive losses, dense vs chunked vs the default "
  "(one device)",
  "distributed_ring": "sharded contrastive losses, ring vs all_gather "
  "(8 simulated devices)",
  "linear_cross_entropy": "linear cross-entropy, jaxloss vs naive, the "
  "matmul floor and torch",
  "linear_distillation": "fused linear distillation (generalized JSD), "
  "jaxloss vs the materialised loss, the matmul floor and trl",
  "vocab_parallel": "vocabulary-parallel linear cross-entropy vs a gathered "
  "weight and sharded naive logits (8 simulated devices)",
  "gradcache": "GradCache vs full-batch gradient",
  "optax_dropin": "optax drop-ins, jaxloss vs optax",
}


# --------------------------------------------------------------------------- #
# Reading the sections.


def sections(text: str) -> dict:
  """``{name: section text}`` of every marked section."""
  found = re.findall(
    r"<!-- (\w+): begin -->\n(.*?)<!-- \1: end -->", text, re.S
  )
  return {name: body for name, body in found if name != "report"}


def table(section: str, index: int = 0) -> list:
  """The ``index``-th Markdown table of a section (the first by default),
  as dicts keyed by its header."""
  blocks, block = [], []
  for line in section.splitlines() + [""]:
    if line.startswith("|"):
      block.append(line)
    elif block:
      blocks.append(block)
      block = []
  if len(blocks) <= index or len(blocks[index]) < 3:
    return []
  rows = blocks[index]
  cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows]
  return [dict(zip(cells[0], row)) for row in cells[2:]]


def mib(cell: str):
  """``'1,024.0 MiB'`` -> 1024.0; ``None`` for anything else."""
  match = re.match(r"([\d,.]+) MiB", cell or "")
  return float(match.group(1).replace(",", "")) if match else None


def number(cell: str):
  """The first number of a cell (``'4,096'``, ``'0.81×'``, ``'1/109'``)."""
  match = re.search(r"[\d,]*\.?\d+", cell or "")
  return float(match.group(0).replace(",", "")) if match else None


def column(rows: list, prefix: str) -> str:
  """The header that starts with ``prefix``."""
  return next(k for k in rows[0] if k.startswith(prefix))


def machine(section: str) -> str:
  match = re.search(r"Machine: (.*?); measured ([\d-]+)", section)
  return (match.group(1), match.group(2)) if match else ("?", "?")


# --------------------------------------------------------------------------- #
# Summary rows: (benchmark, case, memory ratio, time ratio).


def _short(step: str) -> str:
  """A torch step's name in the summary: ``"torch chunked (default
  options)"`` -> ``"torch chunked (default)"``, ``"torch chunked,
  batch_chunk_size=128"`` -> ``"torch chunked (128)"``."""
  step = step.replace(" options)", ")")
  return re.sub(r", batch_chunk_size=(\d+)", r" (\1)", step)


def summary_rows(found: dict) -> list:
  rows = []
  if "contrastive_chunked" in found:
    t = table(found["contrastive_chunked"])
    for r in t:
      if r["batch"] == "16,384":
        big, small = (
          next(x for x in t if x["loss"] == r["loss"] and x["batch"] == b)
          for b in ("65,536", "1,024")
        )
        rows.append(
          (
            "contrastive_chunked",
            f"`{r['loss']}`, default / dense",
            f"{big['default / dense memory']} at 65,536",
            f"{small['default / dense CPU time']} at 1,024, "
            f"{r['default / dense CPU time']} at 16,384",
          )
        )
  if "distributed_ring" in found:
    t = table(found["distributed_ring"])
    for r in t:
      if r["global batch"] == "16,384":
        big = next(
          x
          for x in t
          if x["loss"] == r["loss"] and x["global batch"] == "65,536"
        )
        rows.append(
          (
            "distributed_ring",
            f"`{r['loss']}`, default ring / dense all_gather",
            f"{big['ring (default) / all_gather memory']} at 65,536",
            f"{r['ring (default) / all_gather CPU time']} at 16,384",
          )
        )
  if "linear_cross_entropy" in found:
    t = table(found["linear_cross_entropy"])
    ratio = column(t, "jaxloss / naive memory")
    size = column(t, "sizes")
    steps = {
      r[column([r], "step")]: r for r in table(found["linear_cross_entropy"], 1)
    }
    time = "—"
    if "jaxloss" in steps and "naive JAX" in steps:
      # "jaxloss / this: CPU (wall)" cells: "0.95× (0.97×)" -> "0.95×".
      ratios = {
        k: r[column([r], "jaxloss / this")].split(" ")[0]
        for k, r in steps.items()
      }
      time = (
        f"{steps['jaxloss']['CPU / floor']} the floor, "
        f"{ratios['naive JAX']} naive"
        + "".join(
          f", {v} {_short(k)}" for k, v in ratios.items() if "torch" in k
        )
        + f" (CPU) at {t[0][size]}"
      )
    rows.append(
      (
        "linear_cross_entropy",
        "jaxloss / naive (time also / floor, / torch)",
        "; ".join(f"{r[ratio]} at {r[size]}" for r in t),
        time,
      )
    )
  if "linear_distillation" in found:
    t = table(found["linear_distillation"])
    ratio = column(t, "jaxloss / materialised")
    size = column(t, "sizes")
    steps = {
      r[column([r], "step")]: r for r in table(found["linear_distillation"], 1)
    }
    time = "—"
    if "jaxloss (auto)" in steps and "materialised JAX" in steps:
      ratios = {
        k: r[column([r], "jaxloss / this")].split(" ")[0]
        for k, r in steps.items()
      }
      time = (
        f"{steps['jaxloss (auto)']['CPU / floor']} the floor, "
        f"{ratios['materialised JAX']} materialised"
        + "".join(f", {v} trl" for k, v in ratios.items() if "trl" in k)
        + f" (CPU) at {t[0][size]}"
      )
    rows.append(
      (
        "linear_distillation",
        "jaxloss / materialised (time also / floor, / trl)",
        "; ".join(f"{r[ratio]} at {r[size]}" for r in t),
        time,
      )
    )
  if "vocab_parallel" in found:
    for r in table(found["vocab_parallel"]):
      if r["method"] == "vocab-parallel":
        rows.append(
          (
            "vocab_parallel",
            "vocab-parallel / sharded naive logits, mesh "
            + r["mesh (data × model)"],
            f"{r['vs (ii)']} at 16,384 × 1,024 × 262,144",
            f"{r['paired CPU / (i)']} of the gathered weight's (reduced size)",
          )
        )
  if "gradcache" in found:
    t = table(found["gradcache"])
    time = re.search(r"per step \(([\d.]+×)", found["gradcache"])
    rows.append(
      (
        "gradcache",
        "GradCache / full batch",
        f"{t[-1][column(t, 'GradCache / full')]} at {t[-1]['batch']}",
        f"{time.group(1)} at 4,096" if time else "—",
      )
    )
  if DROPIN_JSON.exists():
    data = json.loads(DROPIN_JSON.read_text())
    ratios = [r["cpu_ratio"] for r in data["rows"]]
    agree = sum(r["agree"] for r in data["rows"])
    functions = len({r["name"] for r in data["rows"]})
    rows.append(
      (
        "optax_dropin",
        f"jaxloss / optax, {functions} functions, {len(ratios)} rows "
        f"({agree} agree in value)",
        "—",
        f"median {statistics.median(ratios):.2f}× "
        f"({min(ratios):.2f}× to {max(ratios):.2f}×), CPU time",
      )
    )
  return rows


# --------------------------------------------------------------------------- #
# Plots.


def _style(ax, title, xlabel, ylabel):
  ax.set_title(title, fontsize=9)
  ax.set_xlabel(xlabel, fontsize=8)
  ax.set_ylabel(ylabel, fontsize=8)
  ax.tick_params(labelsize=7)
  ax.grid(True, which="major", alpha=0.3)


def plot_memory(found: dict) -> str:
  """Temporary memory against batch size, one panel per benchmark."""
  fig, axes = plt.subplots(1, 4, figsize=(12, 3.2))
  if "contrastive_chunked" in found:
    t = table(found["contrastive_chunked"])
    chunk = column(t, "default temp")
    for loss in dict.fromkeys(r["loss"] for r in t):
      r = [x for x in t if x["loss"] == loss]
      batch = [number(x["batch"]) for x in r]
      (line,) = axes[0].plot(
        batch, [mib(x["dense temp"]) for x in r], "o--", ms=3, lw=1
      )
      axes[0].plot(
        batch,
        [mib(x[chunk]) for x in r],
        "o-",
        ms=3,
        lw=1,
        color=line.get_color(),
        label=loss.replace("_loss", ""),
      )
    _style(axes[0], "contrastive: dense (--) vs default (—)", "batch", "MiB")
  if "distributed_ring" in found:
    t = table(found["distributed_ring"])
    ring = column(t, "ring temp (default)")
    for loss in dict.fromkeys(r["loss"] for r in t):
      r = [x for x in t if x["loss"] == loss]
      batch = [number(x["global batch"]) for x in r]
      (line,) = axes[1].plot(
        batch, [mib(x["all_gather temp (dense)"]) for x in r], "o--", ms=3, lw=1
      )
      axes[1].plot(
        batch,
        [mib(x[ring]) for x in r],
        "o-",
        ms=3,
        lw=1,
        color=line.get_color(),
        label=loss.replace("_loss", ""),
      )
    _style(
      axes[1],
      "8 devices: dense all_gather (--) vs default ring (—)",
      "global batch",
      "MiB per device",
    )
  if "gradcache" in found:
    t = table(found["gradcache"])
    batch = [number(x["batch"]) for x in t]
    axes[2].plot(
      batch,
      [mib(x["full-batch temp"]) for x in t],
      "o--",
      ms=3,
      lw=1,
      label="full batch",
    )
    axes[2].plot(
      batch,
      [mib(x[column(t, "GradCache temp")]) for x in t],
      "o-",
      ms=3,
      lw=1,
      label="GradCache",
    )
    _style(axes[2], "GradCache vs full batch", "batch", "MiB")
  if "linear_cross_entropy" in found:
    t = table(found["linear_cross_entropy"])
    labels = [
      x[column(t, "sizes")].replace(", ", "\n").replace(" (float32)", "")
      for x in t
    ]
    xs = range(len(t))
    axes[3].bar(
      [x - 0.2 for x in xs],
      [mib(x["naive temp"]) for x in t],
      0.4,
      label="naive",
    )
    axes[3].bar(
      [x + 0.2 for x in xs],
      [mib(x["jaxloss temp"]) for x in t],
      0.4,
      label="jaxloss",
    )
    axes[3].set_xticks(list(xs), labels, fontsize=6)
    _style(axes[3], "linear cross-entropy", "", "MiB")
  for i, ax in enumerate(axes):
    ax.set_yscale("log")
    if i < 3:
      ax.set_xscale("log", base=2)
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=7)
  fig.suptitle(
    "Compiled temporary memory of forward + backward (lower is better)",
    fontsize=10,
  )
  fig.tight_layout()
  path = PLOTS / "memory.png"
  fig.savefig(path, dpi=80)
  plt.close(fig)
  return path.name


def plot_dropin() -> str:
  """jaxloss / optax time per function."""
  data = json.loads(DROPIN_JSON.read_text())
  rows = sorted(data["rows"], key=lambda r: r["cpu_ratio"])
  fig, ax = plt.subplots(figsize=(6.5, 7.5))
  sizes = {}  # a function timed at several shapes is labelled with each
  for r in rows:
    sizes[r["name"]] = sizes.get(r["name"], 0) + 1
  names = [
    f"{r['name']} {r['shape']}" if sizes[r["name"]] > 1 else r["name"]
    for r in rows
  ]
  ratios = [r["cpu_ratio"] for r in rows]
  ax.barh(
    names,
    [x - 1 for x in ratios],
    left=1,
    color=["tab:orange" if x > 1.1 else "tab:green" for x in ratios],
  )
  for i, x in enumerate(ratios):
    if x < 0.5:
      ax.text(x * 1.1, i, f"{x:.2f}×", va="center", fontsize=7)
  ax.axvline(1.0, color="k", lw=0.8)
  ax.set_xscale("log")
  ax.set_xlim(min(ratios) / 2, 2)
  _style(
    ax,
    "jaxloss / optax: CPU time of jit(value_and_grad)\n"
    "(left of 1: jaxloss faster; orange: above 1.1×)",
    "ratio (log scale)",
    "",
  )
  fig.tight_layout()
  path = PLOTS / "optax_dropin.png"
  fig.savefig(path, dpi=80)
  plt.close(fig)
  return path.name


# --------------------------------------------------------------------------- #
# The report block.


def report(found: dict, pngs: list) -> str:
  machines = [machine(body) for body in found.values()]
  parts = []  # the machine strings' parts, devices left out, in order
  for m, _ in machines:
    parts += [p for p in m.split(", ") if "device" not in p and p not in parts]
  lines = [
    "One run of each benchmark in `benchmarks/`, each in its own process; "
    "every section below gives its sizes, its method and the machine and "
    "date of its run. Ratios, not only absolute times: the machine has 2 "
    "cores that other jobs share, so absolute times vary from run to run, "
    "while the interleaved rounds keep the ratios comparable. Memory is "
    "XLA's compiled temporary memory "
    "(`jit(...).lower(...).compile().memory_analysis().temp_size_in_bytes`),"
    " which does not depend on the load.",
    "",
    f"Machine: {', '.join(parts)}; one CPU device (`distributed_ring`: 8 "
    "simulated CPU devices on the same cores). Measured "
    + ", ".join(sorted({d for _, d in machines}))
    + ".",
    "",
    "Reproduce (from the repository root, after `make test` or `make demo` "
    "has built `.venv`; `make bench` runs them all, one after the other, "
    "then this report):",
    "",
  ]
  for name, what in BENCHMARKS.items():
    lines.append(f"* {what}: `.venv/bin/python -m benchmarks.{name}`")
  lines += [
    "* this summary and the plots: `.venv/bin/python -m benchmarks.plots`",
    "",
    "## Summary",
    "",
    "| benchmark | case | memory ratio | time ratio |",
    "|---|---|---|---|",
  ]
  lines += [
    f"| [{b}](#{b}) | {c} | {m} | {t} |" for b, c, m, t in summary_rows(found)
  ]
  lines += [
    "",
    "Memory ratios: jaxloss's way / the alternative (1/109: 109 "
    "times less); time ratios likewise (below 1: faster).",
    "",
  ]
  lines += [f"![{png}](plots/{png})" for png in pngs]
  return "\n".join(lines) + "\n"


def write_report(block: str) -> None:
  text = RESULTS.read_text()
  new = f"{BEGIN}\n{block}{END}\n"
  if BEGIN in text:
    head, rest = text.split(BEGIN, 1)
    text = head + new + rest.split(END, 1)[1].lstrip("\n")
  else:
    title, _, rest = text.partition("\n")
    text = f"{title}\n\n{new}\n{rest.lstrip(chr(10))}"
  # Anchors for the summary's links: one before each marked section.
  text = re.sub(
    r'(?:<a id="\w+"></a>\n)?(<!-- (\w+): begin -->)',
    lambda m: (
      m.group(1)
      if m.group(2) == "report"
      else f'<a id="{m.group(2)}"></a>\n{m.group(1)}'
    ),
    text,
  )
  RESULTS.write_text(text)


def main():
  found = sections(RESULTS.read_text())
  PLOTS.mkdir(exist_ok=True)
  pngs = [plot_memory(found)]
  if DROPIN_JSON.exists():
    pngs.append(plot_dropin())
  write_report(report(found, pngs))
  print(
    f"wrote {', '.join(str(PLOTS / p) for p in pngs)} and the report of "
    f"{RESULTS}"
  )


if __name__ == "__main__":
  main()
