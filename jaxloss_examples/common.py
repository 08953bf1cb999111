"""Helpers shared by the demo's parts: data, Markdown tables, progress bars."""

from __future__ import annotations

import pathlib

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tqdm.auto import tqdm

OUT = pathlib.Path("out")

# The small configuration of each part (``python -m jaxloss_examples.demo
# --quick``, and the tests): fewer steps, smaller batches.
QUICK = {
  "imbalanced": {"steps": 150},
  "metric": {"steps": 150, "batch_size": 96},
  "sharded": {
    "steps": 100,
    "batch_size": 256,
    "memory_batches": (1024, 4096),
    "dim": 64,
    "chunk_size": 128,
  },
  "gallery": {},
}


def digits(seed: int = 0, test_size: float = 0.4):
  """scikit-learn's bundled 8×8 digits (no download), pixels in [0, 1].

  Returns ``x_train, x_test, y_train, y_test``: ``[n, 64]`` float32 images and
  int32 labels, split with every class in the same proportion.
  """
  x, y = load_digits(return_X_y=True)
  x = (x / 16.0).astype(np.float32)
  return train_test_split(
    x, y.astype(np.int32), test_size=test_size, random_state=seed, stratify=y
  )


def table(header, rows) -> str:
  """A Markdown table from a header and rows of already formatted cells."""
  lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
  lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
  return "\n".join(lines)


def report(out: pathlib.Path, name: str, title: str, text: str) -> str:
  """Prints ``text`` under ``title`` and writes it to ``out/name``."""
  out.mkdir(parents=True, exist_ok=True)
  body = f"## {title}\n\n{text}\n"
  (out / name).write_text(body)
  print("\n" + body, flush=True)
  return body


def progress(iterable, desc: str, enabled: bool = True, **kwargs):
  """A tqdm progress bar (on stderr) that disappears when it is done."""
  return tqdm(
    iterable,
    desc=desc,
    leave=False,
    disable=not enabled,
    dynamic_ncols=True,
    **kwargs,
  )
