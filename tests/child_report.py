"""What the checkers that run in child processes share: a report of JSON
lines (tests/distributed_checks.py, tests/multihost_checks.py) and the
assertion the launching tests make on it (tests/test_distributed.py,
tests/test_multihost.py). Importing it does nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

# (got leaf, expected leaf as NumPy) -> (worst error, problems found)
LeafCheck = Callable[[Any, np.ndarray], tuple[float, list[str]]]


class Report:
  """Collects check results and prints them as JSON lines."""

  def __init__(self):
    self.failed = 0

  def add(self, group, label, ok, detail=""):
    self.failed += not ok
    line = {
      "process": jax.process_index(),
      "group": group,
      "label": label,
      "ok": bool(ok),
      "detail": detail,
    }
    print(json.dumps(line), flush=True)

  def close(self, group, label, got, want, leaf_check: LeafCheck):
    """``got`` ≈ ``want`` leaf by leaf: same structure, shapes and dtypes,
    and ``leaf_check`` finds no problem in any leaf."""
    got_leaves, want_leaves = jax.tree.leaves(got), jax.tree.leaves(want)
    if len(got_leaves) != len(want_leaves):
      return self.add(
        group, label, False, f"{len(got_leaves)} leaves, not {len(want_leaves)}"
      )
    worst, problems = 0.0, []
    for i, (g, w) in enumerate(zip(got_leaves, want_leaves)):
      w = np.asarray(w)
      if g.shape != w.shape or g.dtype != w.dtype:
        problems.append(f"leaf {i}: {g.dtype}{g.shape} vs {w.dtype}{w.shape}")
        continue
      error, found = leaf_check(g, w)
      worst = max(worst, error)
      problems += [f"leaf {i}: {p}" for p in found]
    self.add(
      group,
      label,
      not problems,
      "; ".join(problems[:4]) or f"max error {worst:.2g}",
    )


def assert_group(results: dict, group: str, minimum: int, processes=(0,)):
  """Every check of ``group`` passed, and at least ``minimum`` of them ran,
  in each of ``processes``."""
  for process in processes:
    checks = [
      r
      for r in results["lines"]
      if r["group"] == group
      and r.get("process", 0) == process
      and r["label"] != "time"
    ]
    failures = [f"{r['label']}: {r['detail']}" for r in checks if not r["ok"]]
    assert not failures, (
      f"process {process}: {len(failures)} of {len(checks)} {group} checks "
      "failed:\n" + "\n".join(failures)
    )
    assert len(checks) >= minimum, (
      f"process {process}: only {len(checks)} {group} checks ran (expected "
      f"{minimum}); stderr:\n{results['stderr'][-4000:]}"
    )
