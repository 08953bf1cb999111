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


def paired_times(fns: dict, args, repeats: int) -> dict:
  """Paired rounds: one warm-up call each, then ``repeats`` rounds that call
  every function once, the order reversed every other round. Returns, per
  key, ``(median wall seconds, median process CPU seconds, median over the
  rounds of its CPU time / the first key's)``: process CPU time counts all
  threads of this process and none of the other jobs'."""
  for fn in fns.values():
    jax.block_until_ready(fn(*args))
  wall: dict = {key: [] for key in fns}
  cpu: dict = {key: [] for key in fns}
  for round_ in range(repeats):
    keys = list(fns) if round_ % 2 == 0 else list(fns)[::-1]
    for key in keys:
      start, start_cpu = time.perf_counter(), time.process_time()
      jax.block_until_ready(fns[key](*args))
      cpu[key].append(time.process_time() - start_cpu)
      wall[key].append(time.perf_counter() - start)
  first = next(iter(fns))
  return {
    key: (
      statistics.median(wall[key]),
      statistics.median(cpu[key]),
      statistics.median(c / f for c, f in zip(cpu[key], cpu[first])),
    )
    for key in fns
  }


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
