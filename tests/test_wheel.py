"""The built wheel installs and works outside the checkout.

``python -m build`` writes the sdist, then builds the wheel from the sdist
(so a file missing from either fails here). The wheel is installed with pip
(``--no-deps --no-index``: offline, nothing but the wheel) into a fresh
virtual environment in a temporary folder, whose only view of the test
environment is a ``.pth`` file listing this interpreter's site-packages for
jax, flax, optax and the rest. Lines of a ``.pth`` file only extend
``sys.path``; the editable install of the checkout in that site-packages is
activated by an ``import`` line of its own ``.pth``, which is not processed
there, so ``import jaxloss`` can only find the wheel's copy (asserted).
Children run with ``python -I`` (no working directory, user site or
``PYTHON*`` variables on the path) from the temporary folder.

Checked: the installed files are the checkout's package files (every ``.py``
and ``py.typed``, nothing else), every module imports, the version metadata
equals ``jaxloss.__version__``, a loss gives NumPy's value, an ``nn`` module
runs, and a sharded loss on 4 simulated devices (its own process, the device
count set by ``XLA_FLAGS``) equals the one-device loss.

Not checked: the dependency declarations (the test environment provides
them, not a resolver from ``pyproject.toml``'s ranges), other Python
versions or platforms, and an isolated build (``--no-isolation`` uses this
environment's setuptools, as the machine is offline). Run by ``make dist``
(a CI step after ``make test``), not by ``make test``.
"""

import os
import pathlib
import site
import subprocess
import sys
import tarfile
import textwrap
import zipfile

import pytest

import jaxloss

ROOT = pathlib.Path(__file__).resolve().parents[1]
DIST = os.environ.get("JAXLOSS_DIST")  # `make dist` builds into dist/ first

pytestmark = pytest.mark.xdist_group("wheel")


def _run(args, **kwargs):
  child = subprocess.run(
    args, capture_output=True, text=True, timeout=300, **kwargs
  )
  assert child.returncode == 0, child.stdout[-3000:] + child.stderr[-5000:]
  return child.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
  """(wheel, sdist): from $JAXLOSS_DIST if set, else built here."""
  if DIST:
    folder = pathlib.Path(DIST)
  else:
    folder = tmp_path_factory.mktemp("dist")
    _run(
      [sys.executable, "-m", "build", "--no-isolation", "--outdir", folder],
      cwd=ROOT,
    )
  (wheel,) = folder.glob("jaxloss-*.whl")
  (sdist,) = folder.glob("jaxloss-*.tar.gz")
  return wheel, sdist


@pytest.fixture(scope="module")
def venv(dist, tmp_path_factory):
  """A fresh virtual environment with the wheel installed; its python."""
  root = tmp_path_factory.mktemp("venv")
  _run([sys.executable, "-m", "venv", "--without-pip", root / "env"])
  python = root / "env" / "bin" / "python"
  (purelib,) = _run(
    [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]
  ).split()
  (pathlib.Path(purelib) / "test_environment.pth").write_text(
    "\n".join(site.getsitepackages()) + "\n"
  )
  _run(
    [sys.executable, "-m", "pip", "--python", python, "install", "--quiet"]
    + ["--no-deps", "--no-index", dist[0]]
  )
  return python


def _package_files():
  """The checkout's package files, as paths inside the wheel."""
  files = {
    p.relative_to(ROOT).as_posix()
    for p in (ROOT / "jaxloss").rglob("*")
    if p.is_file() and (p.suffix == ".py" or p.name == "py.typed")
  }
  assert "jaxloss/py.typed" in files and "jaxloss/_core/version.py" in files
  return files


def test_wheel_holds_exactly_the_package_files(dist):
  with zipfile.ZipFile(dist[0]) as wheel:
    names = {n for n in wheel.namelist() if not n.startswith("jaxloss-")}
  assert names == _package_files()
  assert dist[0].name == f"jaxloss-{jaxloss.__version__}-py3-none-any.whl"


def test_sdist_holds_the_package_and_its_metadata(dist):
  with tarfile.open(dist[1]) as sdist:
    names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
  assert _package_files() <= names
  assert {"pyproject.toml", "README.md", "CHANGELOG.md", "PKG-INFO"} <= names
  assert not any(n.startswith("tests/") for n in names)  # MANIFEST.in


CHECK = textwrap.dedent(
  """
  import importlib, importlib.metadata, pathlib, pkgutil, sys
  import numpy as np
  import jax, jax.numpy as jnp
  from flax import nnx
  import jaxloss as jl

  env = pathlib.Path(sys.prefix).resolve()
  assert pathlib.Path(jl.__file__).resolve().is_relative_to(env), jl.__file__
  assert importlib.metadata.version("jaxloss") == jl.__version__
  modules = [m.name for m in pkgutil.walk_packages(jl.__path__, "jaxloss.")]
  for name in modules:
    importlib.import_module(name)
  assert (pathlib.Path(jl.__file__).parent / "py.typed").exists()

  logits = np.array([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]], np.float32)
  labels = np.array([0, 2])
  value = jl.softmax_cross_entropy_with_integer_labels(
      logits, labels, reduction="mean")
  shifted = logits - logits.max(1, keepdims=True)
  log_p = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
  expected = -log_p[np.arange(2), labels].mean()
  np.testing.assert_allclose(float(value), expected, rtol=1e-6)

  head = jl.nn.ArcFace(8, 5, scale=16.0, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(0), (4, 8))
  y = jnp.array([0, 1, 2, 3])
  loss = head(x, y)  # the head's mean loss over the batch
  by_hand = jl.arcface_loss(head.logits(x), y, scale=16.0, reduction="mean")
  assert loss.shape == () and bool(jnp.isfinite(loss))
  np.testing.assert_allclose(float(loss), float(by_hand), rtol=1e-6)
  print(len(modules), "modules", jl.__version__, float(value))
  """
)

SHARDED = textwrap.dedent(
  """
  import jax, jax.numpy as jnp, numpy as np
  from jax.sharding import Mesh
  import jaxloss as jl

  assert jax.device_count() == 4, jax.devices()
  mesh = Mesh(np.array(jax.devices()), ("data",))
  images = jax.random.normal(jax.random.key(0), (16, 8))
  texts = jax.random.normal(jax.random.key(1), (16, 8))
  sharded = jl.distributed.shard(jl.distributed.clip_loss, mesh, "data")
  value = jax.jit(sharded)(images, texts)
  single = jl.clip_loss(images, texts, reduction="mean")
  np.testing.assert_allclose(float(value), float(single), rtol=1e-5)
  print("sharded", float(value), "one device", float(single))
  """
)


def _child(python, script, tmp_path, **env):
  environment = dict(os.environ, JAX_PLATFORMS="cpu", **env)
  for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"):
    environment.pop(name, None)
  return _run([python, "-I", "-c", script], cwd=tmp_path, env=environment)


def test_installed_wheel_imports_and_computes(venv, tmp_path):
  out = _child(venv, CHECK, tmp_path)
  assert f"modules {jaxloss.__version__}" in out


def test_installed_wheel_shards_a_loss_over_simulated_devices(venv, tmp_path):
  flags = os.environ.get("XLA_FLAGS", "")
  out = _child(
    venv,
    SHARDED,
    tmp_path,
    XLA_FLAGS=f"{flags} --xla_force_host_platform_device_count=4".strip(),
  )
  assert "sharded" in out
