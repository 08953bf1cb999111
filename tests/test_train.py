"""jaxloss.train: objectives log their terms and read masks from the batch;
steps train (adamw, L-BFGS to the NumPy least-squares optimum, MultiSteps ≡ a
big-batch step, NNX); GradCache's gradients equal the full-batch gradient and
its memory is set by the mini-batch; an ArcFace head learns digits and
UncertaintyWeighting learns the tasks' noise variances."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from sklearn.datasets import load_digits

import jaxloss as jl
from jaxloss import train


def _normal(seed, *shape):
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _linear(params, batch):
  return batch["x"] @ params["w"] + params["b"]


def _regression(seed=0, n=64, d=3, noise=0.1):
  x = _normal(seed, n, d)
  w = np.arange(1, d + 1, dtype=np.float32)
  y = x @ w + 0.5 + noise * _normal(seed + 1, n)
  return {"x": x, "y": y.astype(np.float32)}


PARAMS = {"w": np.zeros(3, np.float32), "b": np.zeros((), np.float32)}


# --------------------------------------------------------------------------- #
# objective and term


def test_term_with_a_missing_key_names_the_term_the_key_and_the_keys():
  ce = train.term(jl.softmax_cross_entropy_with_integer_labels, "labels")
  batch = {"x": np.zeros((2, 3)), "y": np.zeros(2, np.int32)}
  with pytest.raises(
    KeyError,
    match=r"term\(softmax_cross_entropy_with_integer_labels\): the batch has "
    r"no entry 'labels'; its keys are 'x', 'y'",
  ):
    ce(np.zeros((2, 3), np.float32), batch)
  masked = train.term(jl.l2_loss, "y", where="mask")
  with pytest.raises(KeyError, match="no entry 'mask'"):
    masked(np.zeros(2, np.float32), batch)


def test_objective_weights_terms_and_logs_each():
  batch = _regression()
  objective = train.objective(
    _linear,
    {
      "mse": train.term(jl.squared_error, "y"),
      "huber": (train.term(jl.huber_loss, "y", delta=0.5), 0.25),
    },
  )
  params = {"w": np.array([1.0, 0.0, -1.0], np.float32), "b": np.float32(0.2)}
  loss, aux = jax.jit(objective)(params, batch)
  residual = (batch["x"] @ params["w"] + 0.2 - batch["y"]).astype(np.float64)
  mse = np.mean(residual**2)
  a = np.abs(residual)
  huber = np.mean(np.where(a <= 0.5, 0.5 * a**2, 0.5 * (a - 0.25)))
  np.testing.assert_allclose(aux["mse"], mse, rtol=1e-5)
  np.testing.assert_allclose(aux["huber"], huber, rtol=1e-5)
  np.testing.assert_allclose(loss, mse + 0.25 * huber, rtol=1e-5)
  assert sorted(aux) == ["huber", "loss", "mse"] and aux["loss"] == loss


def test_masks_and_weights_come_from_the_batch():
  batch = _regression(n=8)
  objective = jax.jit(
    train.objective(
      _linear,
      {
        "mse": train.term(
          jl.squared_error, "y", where="mask", weights="weights"
        )
      },
    )
  )
  params = {"w": np.ones(3, np.float32), "b": np.float32(0.0)}
  weights = np.linspace(0.5, 2.0, 8).astype(np.float32)
  for seed in (1, 2):  # one compiled objective, two masks
    mask = np.random.default_rng(seed).random(8) < 0.6
    loss, _ = objective(params, {**batch, "mask": mask, "weights": weights})
    kept = {k: v[mask] for k, v in batch.items()}
    residual = kept["x"] @ params["w"] - kept["y"]
    np.testing.assert_allclose(
      loss,
      np.sum(weights[mask] * residual**2) / np.sum(weights[mask]),
      rtol=1e-5,
    )


def test_objective_errors():
  with pytest.raises(ValueError, match="`loss` is the name"):
    train.objective(_linear, {"loss": train.term(jl.squared_error, "y")})
  with pytest.raises(TypeError, match="must be a function"):
    train.objective(_linear, {"mse": "squared_error"})
  objective = train.objective(
    _linear, {"mse": train.term(jl.squared_error, "y", reduction="none")}
  )
  with pytest.raises(ValueError, match="must return a scalar"):
    objective(PARAMS, _regression())


# --------------------------------------------------------------------------- #
# optax steps


def _least_squares():
  batch = _regression(seed=3, n=48, noise=0.3)
  design = np.concatenate([batch["x"], np.ones((48, 1), np.float32)], axis=1)
  optimum, *_ = np.linalg.lstsq(
    design.astype(np.float64), batch["y"], rcond=None
  )
  objective = train.objective(
    _linear, {"mse": train.term(jl.squared_error, "y")}
  )
  return batch, objective, optimum


def test_lbfgs_step_reaches_the_least_squares_optimum():
  batch, _, optimum = _least_squares()
  traces = []
  objective = train.objective(
    lambda p, b: traces.append(1) or _linear(p, b),
    {"mse": train.term(jl.squared_error, "y")},
  )
  solver = optax.lbfgs()
  train_step = train.step(objective, solver)
  params, state = PARAMS, solver.init(PARAMS)
  for i in range(15):
    params, state, aux = train_step(params, state, batch)
    if i == 0:
      traced = len(traces)
  assert len(traces) == traced  # compiled once (weakly typed init handled)
  np.testing.assert_allclose(
    np.append(params["w"], params["b"]), optimum, rtol=1e-4, atol=1e-4
  )


def test_value_and_grad_from_state_reuses_the_line_search():
  batch, objective, optimum = _least_squares()
  solver = optax.lbfgs()
  value_and_grad = optax.value_and_grad_from_state(train.value(objective))

  @jax.jit
  def lbfgs_step(params, state):
    loss, grad = value_and_grad(params, batch, state=state)
    updates, state = solver.update(
      grad,
      state,
      params,
      value=loss,
      grad=grad,
      value_fn=lambda p: train.value(objective)(p, batch),
    )
    return optax.apply_updates(params, updates), state

  # optax.lbfgs's initial line-search info is weakly typed and comes back
  # strong, which would compile lbfgs_step twice (train.step handles this).
  state = jax.tree.map(lambda x: jnp.asarray(x, x.dtype), solver.init(PARAMS))
  params = PARAMS
  for _ in range(15):
    params, state = lbfgs_step(params, state)
  np.testing.assert_allclose(
    np.append(params["w"], params["b"]), optimum, rtol=1e-4, atol=1e-4
  )


def test_multisteps_accumulation_equals_one_big_batch_step():
  batch, objective, _ = _least_squares()
  big = optax.adamw(0.1)
  params, state, _ = train.step(objective, big)(PARAMS, big.init(PARAMS), batch)
  accumulate = optax.MultiSteps(optax.adamw(0.1), every_k_schedule=4)
  accumulated, acc_state = PARAMS, accumulate.init(PARAMS)
  acc_step = train.step(objective, accumulate)
  for k in range(4):  # four equal mini-batches: the mean of means
    mini = jax.tree.map(lambda x: x[12 * k : 12 * (k + 1)], batch)
    before = accumulated
    accumulated, acc_state, _ = acc_step(accumulated, acc_state, mini)
    if k < 3:
      jax.tree.map(np.testing.assert_array_equal, accumulated, before)
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
    accumulated,
    params,
  )
  assert not np.allclose(params["w"], PARAMS["w"])


def test_nnx_step_matches_the_pytree_step():
  batch, _, _ = _least_squares()
  model = nnx.Linear(3, 1, rngs=nnx.Rngs(0))
  objective = train.objective(
    lambda m, b: m(b["x"])[:, 0], {"mse": train.term(jl.squared_error, "y")}
  )
  optimizer = nnx.Optimizer(model, optax.adamw(0.05), wrt=nnx.Param)
  graphdef, params = nnx.split(model, nnx.Param)
  pure = nnx.to_pure_dict(params)
  pytree_objective = train.objective(
    lambda p, b: b["x"] @ p["kernel"][:, 0] + p["bias"][0],
    {"mse": train.term(jl.squared_error, "y")},
  )
  tx = optax.adamw(0.05)
  pytree_step, state = train.step(pytree_objective, tx), tx.init(pure)
  nnx_train_step = train.nnx_step(objective)
  for _ in range(3):
    aux = nnx_train_step(model, optimizer, batch)
    pure, state, pytree_aux = pytree_step(pure, state, batch)
    np.testing.assert_allclose(aux["mse"], pytree_aux["mse"], rtol=1e-5)
  np.testing.assert_allclose(model.kernel[...], pure["kernel"], rtol=1e-5)
  assert int(optimizer.step[...]) == 3


# --------------------------------------------------------------------------- #
# GradCache


def _mlp_params(seed, sizes, dtype=np.float32):
  """NumPy parameters (no eager JAX programs to compile)."""
  rng = np.random.default_rng(seed)
  return [
    {
      "w": (rng.normal(size=(m, n)) / np.sqrt(m)).astype(dtype),
      "b": np.zeros((1, n), dtype),
    }
    for m, n in zip(sizes[:-1], sizes[1:])
  ]


def _mlp(layers, x, key=None, rate=0.25):
  for i, layer in enumerate(layers):
    x = x @ layer["w"] + layer["b"]
    if i < len(layers) - 1:
      x = jax.nn.relu(x)
      if key is not None:  # inverted dropout
        keep = jax.random.bernoulli(
          jax.random.fold_in(key, i), 1 - rate, x.shape
        )
        x = jnp.where(keep, x / (1 - rate), 0)
  return x


def _two_towers(params, inputs, key=None):
  images, texts = inputs
  image_key, text_key = (None, None) if key is None else jax.random.split(key)
  return (
    _mlp(params["image"], images, image_key),
    _mlp(params["text"], texts, text_key),
  )


def _clip(params, embeddings):
  return jl.clip_loss(
    *embeddings, temperature=jnp.exp(-params["log_scale"]), reduction="mean"
  )


def _tower_problem(batch, sizes=(6, 16, 4), dtype=np.float32):
  params = {
    "image": _mlp_params(0, sizes, dtype),
    "text": _mlp_params(1, sizes, dtype),
    "log_scale": np.asarray(np.log(10.0), dtype),
  }
  rng = np.random.default_rng(2)
  inputs = tuple(
    rng.normal(size=(batch, sizes[0])).astype(dtype) for _ in range(2)
  )
  return params, inputs


@pytest.mark.parametrize("dropout", [False, True])
def test_grad_cache_equals_the_full_batch_gradient(dropout):
  with jax.enable_x64(True):
    params, inputs = _tower_problem(12, dtype=np.float64)
    key = jax.random.key(4) if dropout else None
    cached = train.grad_cache(_two_towers, _clip, mini_batch_size=4)
    loss, grads = jax.jit(cached)(params, inputs, key)

    def full_batch(p):  # the mini-batch keys of grad_cache, one big forward
      if key is None:
        return _clip(p, _two_towers(p, inputs))
      keys = jax.random.split(key, 3)
      parts = [
        _two_towers(
          p, jax.tree.map(lambda x: x[4 * k : 4 * k + 4], inputs), keys[k]
        )
        for k in range(3)
      ]
      return _clip(p, tuple(jnp.concatenate(e) for e in zip(*parts)))

    expected_loss, expected = jax.jit(jax.value_and_grad(full_batch))(params)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-12)
    jax.tree.map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12),
      grads,
      expected,
    )
    assert abs(float(grads["log_scale"])) > 0


def test_grad_cache_memory_is_set_by_the_mini_batch():
  params, inputs = _tower_problem(512, sizes=(16, 4096, 16))
  full = jax.value_and_grad(lambda p, x: _clip(p, _two_towers(p, x)))
  cached = train.grad_cache(_two_towers, _clip, mini_batch_size=32)
  temp = lambda f: (
    jax.jit(f)
    .lower(params, inputs)
    .compile()
    .memory_analysis()
    .temp_size_in_bytes
  )
  # Full batch: the activations of 2 towers × 512 × 4096 (8 MiB each) are
  # kept for the backward pass; GradCache keeps one 32-row mini-batch's. The
  # 512 × 512 logits (1 MiB) are in both. Measured: 35.1 MiB vs 3.2 MiB.
  assert temp(cached) < temp(full) / 4


def test_grad_cache_errors():
  inputs = (np.zeros((10, 6), np.float32), np.zeros((10, 6), np.float32))
  cached = train.grad_cache(_two_towers, _clip, mini_batch_size=4)
  with pytest.raises(ValueError, match="must divide the batch size 10"):
    cached({}, inputs)
  with pytest.raises(ValueError, match="positive int"):
    train.grad_cache(_two_towers, _clip, mini_batch_size=0)
  with pytest.raises(ValueError, match="same leading"):
    cached({}, (inputs[0], inputs[1][:8]))


# --------------------------------------------------------------------------- #
# training runs that learn


class _DigitsNet(nnx.Module):
  """A 64 → 128 → 4 MLP embedding with an ArcFace head over 10 digits."""

  def __init__(self, rngs):
    self.hidden = nnx.Linear(64, 128, rngs=rngs)
    self.out = nnx.Linear(128, 4, rngs=rngs)
    self.head = jl.nn.ArcFace(4, 10, scale=16.0, margin=0.3, rngs=rngs)

  def embed(self, x):
    return self.out(jax.nn.relu(self.hidden(x)))

  def __call__(self, batch):
    return self.head(self.embed(batch["x"]), batch["y"])


@nnx.jit
def _embed(model, x):
  return model.embed(x)


def _nearest_neighbour_accuracy(model, x, y, gallery, queries):
  e = np.asarray(_embed(model, x), np.float64)
  e /= np.linalg.norm(e, axis=1, keepdims=True)
  nearest = np.argmax(e[queries] @ e[gallery].T, axis=1)
  return float(np.mean(y[gallery][nearest] == y[queries]))


def test_arcface_head_learns_digits_embeddings():
  x, y = load_digits(return_X_y=True)
  x, y = (x / 16).astype(np.float32), y.astype(np.int32)
  order = np.random.default_rng(0).permutation(len(x))
  gallery, queries = order[:1000], order[1000:]  # held-out queries
  model = _DigitsNet(nnx.Rngs(0))
  before = _nearest_neighbour_accuracy(model, x, y, gallery, queries)
  objective = train.objective(
    lambda m, b: m(b), {"arcface": lambda loss, batch: loss}
  )
  optimizer = nnx.Optimizer(model, optax.adamw(3e-3), wrt=nnx.Param)
  train_step = train.nnx_step(objective)
  rng = np.random.default_rng(1)
  for _ in range(150):
    picked = rng.choice(gallery, 256, replace=False)
    aux = train_step(model, optimizer, {"x": x[picked], "y": y[picked]})
  after = _nearest_neighbour_accuracy(model, x, y, gallery, queries)
  # Measured: 0.35 before, 0.93 after (1-NN, cosine, 797 held-out digits).
  assert before < 0.5
  assert after > 0.85 and after > before + 0.4
  assert float(aux["arcface"]) < 1.0


class _TwoTasks(nnx.Module):
  def __init__(self, rngs):
    self.quiet = nnx.Linear(4, 1, rngs=rngs)
    self.noisy = nnx.Linear(4, 1, rngs=rngs)
    self.weighting = jl.nn.UncertaintyWeighting(["quiet", "noisy"])

  def __call__(self, x):
    return {"quiet": self.quiet(x)[:, 0], "noisy": self.noisy(x)[:, 0]}


def test_uncertainty_weighting_learns_the_noise_variances():
  x = _normal(10, 512, 4)
  batch = {
    "x": x,
    "quiet": x @ np.array([1, -2, 0, 1], np.float32) + 0.1 * _normal(11, 512),
    "noisy": x @ np.array([0, 1, 3, -1], np.float32) + 1.0 * _normal(12, 512),
  }
  model = _TwoTasks(nnx.Rngs(0))
  objective = train.objective(
    lambda m, b: m(b["x"]),
    {
      task: train.term(jl.squared_error, task, output=task)
      for task in ("quiet", "noisy")
    },
    combine=lambda m, losses: m.weighting(losses),
  )
  optimizer = nnx.Optimizer(model, optax.adam(0.05), wrt=nnx.Param)
  train_step = train.nnx_step(objective)
  for _ in range(300):
    aux = train_step(model, optimizer, batch)
  variances = {k: float(v) for k, v in model.weighting.variances().items()}
  assert variances["quiet"] < variances["noisy"] / 20  # true ratio: 100
  # At the optimum σ² equals the task's mean squared error (measured after
  # 300 Adam steps: 0.009227 vs 0.009228, 0.9433 vs 0.9435); 10 % leaves room
  # for a different random stream without accepting a wrong optimum (a
  # missing ½ would be off by 2×).
  np.testing.assert_allclose(variances["quiet"], float(aux["quiet"]), rtol=0.1)
  np.testing.assert_allclose(variances["noisy"], float(aux["noisy"]), rtol=0.1)
  # That MSE estimates noise² from 512 samples: relative standard deviation
  # sqrt(2/512) ≈ 6 %, plus the model's fit, hence 25 % of the true 0.01, 1.
  np.testing.assert_allclose(
    [variances["quiet"], variances["noisy"]], [0.01, 1.0], rtol=0.25
  )
