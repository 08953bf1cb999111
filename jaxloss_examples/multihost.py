"""A CLIP step on several processes of this machine, as on a pod.

``python -m jaxloss_examples.multihost --processes 2`` starts two processes
here, each with ``--devices-per-process`` simulated CPU devices, joined by
:func:`jax.distributed.initialize` on 127.0.0.1 (a free port) with gloo's CPU
collectives: the same program a pod runs, one process per host. Every process
makes only its own part of each batch (its own seed, standing in for its own
data loader), assembles the global batch with
:func:`jax.make_array_from_process_local_data`, and trains two linear
encoders with :func:`jaxloss.distributed.clip_loss` (through
:func:`jaxloss.distributed.shard`, ring strategy) and optax's Adam on one
global mesh. At the first and the last step every process gathers the whole
batch (``multihost_utils.process_allgather``) and checks that the sharded
loss and its gradients equal :func:`jaxloss.clip_loss` on one device; process
0 prints the result and the exit status says whether they agreed.

On a real pod, start the same worker once per host instead, with the
coordinator's address (``--coordinator host:port``) or, on Cloud TPU, with
``jax.distributed.initialize()`` and no arguments (see
docs/distributed.md). Run from the repository root.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
IMAGE, TEXT, LATENT, EMBED = 32, 24, 8, 16
TOLERANCE = 1e-5  # relative to the largest entry (float32).


def _parser():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--processes", type=int, default=2)
  parser.add_argument("--devices-per-process", type=int, default=2)
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument(
    "--batch-per-process", type=int, default=64, help="examples per process"
  )
  parser.add_argument(
    "--timeout", type=float, default=300, help="seconds for the whole run"
  )
  # Set by the launcher for each worker (or by you, once per host):
  parser.add_argument("--process-id", type=int, default=None)
  parser.add_argument("--coordinator", default=None, help="host:port")
  return parser


# --------------------------------------------------------------------------- #
# the launcher: N workers on this machine


def free_port() -> int:
  """A port that was free on the loopback address a moment ago."""
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def run_processes(argv_of, count, *, env, timeout, logdir, cwd=ROOT):
  """Starts ``count`` children, ``argv_of(i)`` each, and waits for all of
  them at most ``timeout`` seconds in all, killing every one still running
  when the time is up or one has failed (a peer left waiting in a collective
  would otherwise hang). Returns ``[(returncode, stdout, stderr)]``; a
  killed child's return code is negative."""
  logdir = pathlib.Path(logdir)
  children, files = [], []
  try:
    for i in range(count):
      out = open(logdir / f"out{i}.txt", "w+")
      err = open(logdir / f"err{i}.txt", "w+")
      files.append((out, err))
      children.append(
        subprocess.Popen(
          argv_of(i), cwd=cwd, env=env, stdout=out, stderr=err, text=True
        )
      )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      codes = [c.poll() for c in children]
      if all(code is not None for code in codes) or any(codes):
        break
      time.sleep(0.2)
  finally:
    for child in children:
      if child.poll() is None:
        child.kill()
      child.wait()
  results = []
  for child, (out, err) in zip(children, files):
    out.seek(0)
    err.seek(0)
    results.append((child.returncode, out.read(), err.read()))
    out.close()
    err.close()
  return results


def child_env(xla_flags: str) -> dict:
  """This environment with ``xla_flags``, the CPU platform, and the
  repository first on the path (the children import this checkout)."""
  env = dict(os.environ, XLA_FLAGS=xla_flags.strip(), JAX_PLATFORMS="cpu")
  env["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p]
  )
  return env


def launch(args) -> int:
  """Starts ``args.processes`` workers on the loopback address; kills them
  all when one fails or the time is up. Worker 0's output is printed; the
  others' is shown only if something goes wrong."""
  coordinator = f"127.0.0.1:{free_port()}"
  flags = os.environ.get("XLA_FLAGS", "")
  if "xla_force_host_platform_device_count" not in flags:
    flags += (
      f" --xla_force_host_platform_device_count={args.devices_per_process}"
    )
  print(
    f"{args.processes} processes x {args.devices_per_process} CPU devices, "
    f"coordinator {coordinator}",
    flush=True,
  )
  forwarded = [
    f"--processes={args.processes}",
    f"--devices-per-process={args.devices_per_process}",
    f"--steps={args.steps}",
    f"--batch-per-process={args.batch_per_process}",
    f"--coordinator={coordinator}",
  ]
  with tempfile.TemporaryDirectory() as tmp:
    results = run_processes(
      lambda i: (
        [sys.executable, "-m", "jaxloss_examples.multihost"]
        + [f"--process-id={i}"]
        + forwarded
      ),
      args.processes,
      env=child_env(flags),
      timeout=args.timeout,
      logdir=tmp,
    )
  codes = [code for code, _, _ in results]
  print(results[0][1], end="", flush=True)
  if any(codes):
    for i, (code, out, err) in enumerate(results):
      print(
        f"--- process {i} (exit {code}):\n{(out + err)[-3000:]}",
        file=sys.stderr,
      )
    if any(c < 0 for c in codes):
      print(f"killed after {args.timeout:.0f} s or a failed peer", flush=True)
  return max((abs(c) for c in codes), default=1)


# --------------------------------------------------------------------------- #
# a worker: one process of the run (one host of a pod)


def worker(args) -> int:
  import jax
  import jax.numpy as jnp
  import numpy as np
  import optax
  from jax.experimental import multihost_utils

  import jaxloss
  import jaxloss.distributed as jd

  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(
    coordinator_address=args.coordinator,
    num_processes=args.processes,
    process_id=args.process_id,
    initialization_timeout=60,
  )
  rank, talk = jax.process_index(), jax.process_index() == 0
  mesh = jax.make_mesh(
    (jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,)
  )
  batch = jax.NamedSharding(mesh, jax.P("data"))
  replicated = jax.NamedSharding(mesh, jax.P())
  clip = jd.shard(jd.clip_loss, mesh, axis="data")

  # A hidden pairing: both views are noisy linear images of one latent.
  world = np.random.default_rng(0)
  to_image = world.normal(size=(LATENT, IMAGE))
  to_text = world.normal(size=(LATENT, TEXT))

  def local_batch(step):
    """This process's examples only (its own seed: its own data loader)."""
    rng = np.random.default_rng((step, rank))
    z = rng.normal(size=(args.batch_per_process, LATENT))
    noise = lambda n: 0.5 * rng.normal(size=(len(z), n))
    return (
      (z @ to_image + noise(IMAGE)).astype(np.float32),
      (z @ to_text + noise(TEXT)).astype(np.float32),
    )

  def init(key):
    a, b = jax.random.split(key)
    return {
      "image": jax.random.normal(a, (IMAGE, EMBED)) / np.sqrt(IMAGE),
      "text": jax.random.normal(b, (TEXT, EMBED)) / np.sqrt(TEXT),
      "log_scale": jnp.log(jnp.float32(10.0)),
    }

  def sharded_loss(params, images, texts):
    return clip(
      images @ params["image"],
      texts @ params["text"],
      temperature=jnp.exp(-params["log_scale"]),
    )

  def one_device_loss(params, images, texts):
    return jaxloss.clip_loss(
      images @ params["image"],
      texts @ params["text"],
      temperature=jnp.exp(-params["log_scale"]),
      reduction="mean",
    )

  optimizer = optax.adam(3e-2)
  params = jax.jit(init, out_shardings=replicated)(jax.random.key(0))
  state = jax.jit(optimizer.init, out_shardings=replicated)(params)

  @jax.jit
  def train_step(params, state, images, texts):
    loss, grads = jax.value_and_grad(sharded_loss)(params, images, texts)
    updates, state = optimizer.update(grads, state, params)
    return loss, grads, optax.apply_updates(params, updates), state

  one_device = jax.jit(jax.value_and_grad(one_device_loss))

  def relative(got, want):
    return max(
      float(np.max(np.abs(np.asarray(g) - np.asarray(w))))
      / max(float(np.max(np.abs(np.asarray(w)))), 1e-30)
      for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want))
    )

  worst, losses, start = 0.0, [], time.perf_counter()
  for step in range(args.steps):
    images, texts = (
      jax.make_array_from_process_local_data(batch, x)
      for x in local_batch(step)
    )
    checked = step in (0, args.steps - 1)
    if checked:  # the whole batch, gathered to every process: the reference.
      whole = multihost_utils.process_allgather((images, texts), tiled=True)
      here = jax.device_put(
        (jax.device_get(params), *whole), jax.local_devices()[0]
      )
      want = jax.device_get(one_device(*here))
    loss, grads, params, state = train_step(params, state, images, texts)
    losses.append(float(loss))  # waits for the step (see docs/distributed.md)
    if checked:
      error = max(
        relative(loss, want[0]), relative(jax.device_get(grads), want[1])
      )
      worst = max(worst, error)
      if talk:
        print(
          f"step {step:3d}: sharded CLIP loss {float(loss):.6f}, one-device "
          f"{float(want[0]):.6f} (max relative difference of value and "
          f"gradients {error:.1e})",
          flush=True,
        )
  seconds = time.perf_counter() - start
  multihost_utils.sync_global_devices("jaxloss_examples.multihost done")
  equal = worst <= TOLERANCE
  if talk:
    print(
      f"{args.steps} steps on {jax.device_count()} devices in "
      f"{jax.process_count()} processes, global batch "
      f"{args.batch_per_process * jax.process_count()}, {seconds:.1f} s; "
      f"loss {losses[0]:.4f} -> {losses[-1]:.4f}",
      flush=True,
    )
    print(
      ("sharded loss = one-device loss" if equal else "MISMATCH")
      + f" (value and gradients, max relative difference {worst:.1e}, "
      f"tolerance {TOLERANCE:g})",
      flush=True,
    )
  return 0 if equal else 1


def main(argv=None) -> int:
  args = _parser().parse_args(argv)
  if args.processes < 1 or args.steps < 1:
    raise SystemExit("--processes and --steps must be at least 1")
  if args.process_id is None:
    return launch(args)
  if args.coordinator is None:
    raise SystemExit("a worker needs --coordinator host:port")
  return worker(args)


if __name__ == "__main__":
  sys.exit(main())
