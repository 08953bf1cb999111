"""Helpers shared by the benchmark scripts: timing, sizes, the machine, and
each benchmark's marked section of ``benchmarks/RESULTS.md``."""

from __future__ import annotations

import pathlib
import platform
import statistics
import time

import jax


def median_times(fns: dict, args, repeats: int) -> dict:
  """Median seconds per call; one warm-up call each, then ``repeats`` rounds
  that call every function once, in turn (so that other jobs on the machine
  slow them alike)."""
  for fn in fns.values():
    jax.block_until_ready(fn(*args))
  times = {key: [] for key in fns}
  for _ in range(repeats):
    for key, fn in fns.items():
      start = time.perf_counter()
      jax.block_until_ready(fn(*args))
      times[key].append(time.perf_counter() - start)
  return {key: statistics.median(values) for key, values in times.items()}


def mib(n: int) -> str:
  return f"{n / 2**20:,.1f} MiB"


def cpu_model() -> str:
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def write_section(
  results: pathlib.Path, begin: str, end: str, section: str
) -> None:
  """Puts ``section`` between the ``begin`` and ``end`` markers of
  ``results`` (appended, markers included, if they are not there yet)."""
  text = results.read_text() if results.exists() else "# Benchmark results\n"
  block = f"{begin}\n{section}{end}\n"
  start, stop = text.find(begin), text.find(end)
  if start >= 0 and stop > start:
    text = text[:start] + block + text[stop + len(end) :].lstrip("\n")
  else:
    text = text.rstrip("\n") + "\n\n" + block
  results.write_text(text)
