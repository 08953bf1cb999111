"""``chunk_size="auto"``: how many columns of a logits matrix exist at once.

A loss whose logits form a ``[rows, columns]`` matrix (in-batch similarities,
vocabulary logits) either builds it whole (dense: plain autodiff, the fastest
path while it is small) or scans over column chunks
(:mod:`jaxloss._core.online_softmax`, :mod:`jaxloss._core.ring`), holding one
``[rows, chunk]`` block at a time. :func:`auto_chunk_size` is the one rule
that picks between them, from static shapes and a dtype only, so it gives the
same answer under ``jit``, ``vmap`` and ``shard_map``:

* the matrix is dense while ``rows × columns × entry ≤ BUDGET_BYTES``
  (16 MiB), ``entry = COPIES × max(itemsize, 4)`` bytes: the forward and
  backward passes of the dense path keep about four matrix-sized arrays (the
  logits, their exponentials, the cotangent and a mask or select; measured
  with ``memory_analysis()``: 3.0 to 4.25 copies for the contrastive losses),
  and a narrower dtype may be upcast inside. A square float32 matrix is
  dense up to 1,024 rows;
* otherwise the chunk is the largest power of two with
  ``rows × chunk × entry ≤ BUDGET_BYTES``, but at least ``MIN_CHUNK`` (128, a
  TPU's lane width) columns: beyond 8,192 rows a block of 128 columns
  exceeds the budget, and the temporary memory is O(rows × 128).

Why 16 MiB: the chunked paths also hold a few ``rows × dim`` arrays (the
normalised embeddings, a ring's travelling block and its gradient, about
seven of them for the sharded CLIP and SigLIP); with 8,192 rows per device
and dim 256 those are 56 MiB, and a block budget of 16 MiB (chunks of 128
columns) keeps the sharded losses' temporary memory under 1/100 of the dense
all-gather one's at a global batch of 65,536 on 8 devices (docs/design.md).

An explicit ``chunk_size`` (an int) is used as given; ``None`` means dense.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from jax.typing import DTypeLike

ChunkSize = int | Literal["auto"] | None  # the type of every `chunk_size`

BUDGET_BYTES = 16 * 2**20
COPIES = 4
MIN_CHUNK = 128


def auto_chunk_size(rows: int, columns: int, dtype: DTypeLike) -> int | None:
  """The chunk of ``chunk_size="auto"`` for a ``[rows, columns]`` matrix of
  ``dtype``: ``None`` (dense) while it fits :data:`BUDGET_BYTES`, else a
  power of two ``≥ MIN_CHUNK`` (see the module docstring)."""
  entry = COPIES * max(np.dtype(dtype).itemsize, 4)
  per_column = max(rows, 1) * entry
  if columns * per_column <= BUDGET_BYTES:
    return None
  chunk = MIN_CHUNK
  while 2 * chunk * per_column <= BUDGET_BYTES:
    chunk *= 2
  return None if chunk >= columns else chunk
