"""The flagship demo (``make demo``, i.e. ``python -m jaxloss_examples.demo``).

Four parts, on data that needs no download (scikit-learn's bundled digits),
each in its own module, writing Markdown tables and PNGs under ``out/``:

1. :mod:`jaxloss_examples.imbalanced`: CE vs focal vs class-balanced vs
   PolyLoss on long-tailed digits;
2. :mod:`jaxloss_examples.metric_learning`: SupCon vs batch-hard triplet vs
   ArcFace embeddings, nearest-neighbour accuracy;
3. :mod:`jaxloss_examples.sharded_contrastive`: CLIP and SigLIP (ring) on 8
   simulated devices, sharded = single-device, ring vs all_gather memory;
4. :mod:`jaxloss_examples.gallery`: every family's loss and gradient curves.

``--quick`` runs a small configuration (the tests use it); ``--parts``
chooses parts (e.g. ``--parts sharded,gallery``); ``--out`` the output folder.

The CPU is split into 8 simulated devices for part 3. XLA reads the flag once,
when jax starts, so it is set here, before anything imports jax (appended to
any ``XLA_FLAGS`` already set; a device count already there is kept). On a
machine with accelerators, part 3 uses the real devices instead.
"""

import os

if "xla_force_host_platform_device_count" not in os.environ.get(
  "XLA_FLAGS", ""
):
  os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " "
    "--xla_force_host_platform_device_count=8"
  ).strip()

import argparse
import json
import pathlib
import time

from jaxloss_examples import (
  common,
  gallery,
  imbalanced,
  metric_learning,
  sharded_contrastive,
)

PARTS = {
  "imbalanced": imbalanced.run,
  "metric": metric_learning.run,
  "sharded": sharded_contrastive.run,
  "gallery": gallery.run,
}


def _jsonable(value):
  if isinstance(value, dict):
    return {str(k): _jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_jsonable(v) for v in value]
  if hasattr(value, "tolist"):
    return value.tolist()
  return (
    value if isinstance(value, (int, float, str, type(None))) else str(value)
  )


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
    "--quick",
    action="store_true",
    help="small configuration (fewer steps, smaller batches)",
  )
  parser.add_argument(
    "--parts",
    default=",".join(PARTS),
    help=f"comma-separated subset of {','.join(PARTS)}",
  )
  parser.add_argument("--out", default=str(common.OUT), type=pathlib.Path)
  parser.add_argument("--no-progress", action="store_true")
  args = parser.parse_args(argv)
  parts = [p.strip() for p in args.parts.split(",") if p.strip()]
  unknown = sorted(set(parts) - set(PARTS))
  if unknown:
    parser.error(f"unknown parts {unknown}; choose from {list(PARTS)}")

  start, results, times = time.perf_counter(), {}, {}
  for part in parts:
    out = args.out / "gallery" if part == "gallery" else args.out
    began = time.perf_counter()
    results[part] = PARTS[part](
      out,
      progress=not args.no_progress,
      **(common.QUICK[part] if args.quick else {}),
    )
    times[part] = round(time.perf_counter() - began, 1)
  results["seconds"] = times
  (args.out / "results.json").write_text(
    json.dumps(_jsonable(results), indent=1)
  )
  summary = ", ".join(f"{p} {t:.0f} s" for p, t in times.items())
  print(
    f"\nDone in {time.perf_counter() - start:.0f} s ({summary}); "
    f"outputs in {args.out}/",
    flush=True,
  )
  return results


if __name__ == "__main__":
  main()
