"""Values of jaxloss.contrastive against float64 NumPy references and optax;
the chunked path against the dense one (the online log-sum-exp machinery
itself is tested in tests/test_core_online_softmax.py).

The shared properties (jit, vmap, where ≡ slicing, dtypes, edge cases, …) run
over tests/cases/contrastive.py in tests/test_properties.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax import test_util

import jaxloss
from jaxloss import contrastive as jc
from jaxloss.testing import assert_close
from tests.assertions import checked_rejects, scan_lengths

F32 = dict(rtol=1e-5, atol=1e-6)


def _rng(seed):
  return np.random.default_rng(seed)


def _normal(seed, *shape):
  return _rng(seed).normal(size=shape).astype(np.float32)


# --------------------------------------------------------------------------- #
# float64 NumPy references, each written from the named implementation


def _lse(x, axis):
  peak = np.max(x, axis=axis, keepdims=True)
  return np.squeeze(peak, axis) + np.log(np.sum(np.exp(x - peak), axis=axis))


def _unit(x):
  norm = np.linalg.norm(x, axis=-1, keepdims=True)
  return np.where(norm > 0, x / np.where(norm > 0, norm, 1), 0)


def _cross_entropy_arange(logits):
  """torch.nn.functional.cross_entropy(logits, arange(n), reduction="none")."""
  return _lse(logits, 1) - np.diag(logits[:, : logits.shape[0]])


def infonce_reference(a, p, negatives=None, temperature=0.07, cosine=True):
  """info-nce-pytorch's ``info_nce(query, positive_key)`` (in-batch: logits
  ``q pᵀ / τ``, labels ``arange``), with the explicit negatives' logits
  appended to each row."""
  a, p = np.float64(a), np.float64(p)
  if cosine:
    a, p = _unit(a), _unit(p)
  logits = a @ p.T
  if negatives is not None:
    n = _unit(np.float64(negatives)) if cosine else np.float64(negatives)
    extra = np.einsum("bd,bkd->bk", a, n) if n.ndim == 3 else a @ n.T
    logits = np.concatenate([logits, extra], axis=1)
  return _cross_entropy_arange(logits / temperature)


def clip_reference(x, y, temperature=0.07, normalize=True):
  """open_clip ``ClipLoss`` on one device, per pair before the mean:
  ``(CE(s x yᵀ, arange) + CE(s y xᵀ, arange)) / 2``, ``s = 1/τ``."""
  x, y = np.float64(x), np.float64(y)
  if normalize:
    x, y = _unit(x), _unit(y)
  logits_per_image = x @ y.T / temperature
  return (
    _cross_entropy_arange(logits_per_image)
    + _cross_entropy_arange(logits_per_image.T)
  ) / 2


def siglip_reference(x, y, scale=10.0, bias=-10.0, normalize=True):
  """big_vision ``sigmoid`` loss, per image row before the mean:
  ``-Σ_j log σ(z_ij (t x yᵀ + b))`` with ``z = 2·eye - 1``."""
  x, y = np.float64(x), np.float64(y)
  if normalize:
    x, y = _unit(x), _unit(y)
  logits = x @ y.T * scale + bias
  z = 2 * np.eye(len(x)) - 1
  return np.sum(np.logaddexp(0, -z * logits), axis=-1)


def supcon_reference(features, labels, temperature=0.07, base_temperature=0.07):
  """Khosla et al.'s ``SupConLoss.forward`` (contrast_mode="all"), written
  out in NumPy; returns the per-anchor loss shaped ``[batch, views]`` (the
  reference's ``loss.view(anchor_count, batch_size)``, transposed)."""
  features = np.float64(features)
  if features.ndim == 2:
    features = features[:, None, :]
  bsz, n_views = features.shape[:2]
  mask = (labels[:, None] == labels[None, :]).astype(np.float64)
  contrast_feature = np.concatenate([features[:, v] for v in range(n_views)], 0)
  anchor_dot_contrast = contrast_feature @ contrast_feature.T / temperature
  logits = anchor_dot_contrast - anchor_dot_contrast.max(1, keepdims=True)
  mask = np.tile(mask, (n_views, n_views))
  logits_mask = 1 - np.eye(bsz * n_views)
  mask = mask * logits_mask
  exp_logits = np.exp(logits) * logits_mask
  log_prob = logits - np.log(exp_logits.sum(1, keepdims=True))
  mask_pos_pairs = mask.sum(1)
  mask_pos_pairs = np.where(mask_pos_pairs < 1e-6, 1, mask_pos_pairs)
  mean_log_prob_pos = (mask * log_prob).sum(1) / mask_pos_pairs
  loss = -(temperature / base_temperature) * mean_log_prob_pos
  return loss.reshape(n_views, bsz).T


def ntxent_reference(embeddings, labels, temperature=0.07):
  """pytorch-metric-learning ``NTXentLoss``: for each positive pair (a, p),
  ``-log(e^{s_ap} / (e^{s_ap} + Σ_{n: y_n ≠ y_a} e^{s_an}))``, averaged over
  all positive pairs; cosine similarities over ``τ``."""
  x = _unit(np.float64(embeddings))
  s = x @ x.T / temperature
  losses = []
  for a in range(len(x)):
    negatives = s[a][labels != labels[a]]
    for p in range(len(x)):
      if p != a and labels[p] == labels[a]:
        losses.append(
          -s[a, p] + np.logaddexp.reduce(np.append(negatives, s[a, p]))
        )
  return np.mean(losses) if losses else 0.0


# --------------------------------------------------------------------------- #
# values


@pytest.mark.parametrize("similarity", ["cosine", "dot"])
@pytest.mark.parametrize("negatives", [None, "per_anchor", "shared"])
def test_infonce_against_numpy(similarity, negatives):
  a, p = _normal(0, 6, 8), _normal(1, 6, 8)
  n = {
    None: None,
    "per_anchor": _normal(2, 6, 3, 8),
    "shared": _normal(2, 4, 8),
  }[negatives]
  temperature = 0.07 if similarity == "cosine" else 2.0
  got = jc.infonce_loss(a, p, n, temperature=temperature, similarity=similarity)
  assert_close(
    got, infonce_reference(a, p, n, temperature, similarity == "cosine"), **F32
  )


def test_infonce_where_drops_anchor_and_candidate_but_not_shared_negatives():
  a, p, n = _normal(0, 5, 4), _normal(1, 5, 4), _normal(2, 3, 4)
  keep = np.array([True, False, True, True, False])
  got = jc.infonce_loss(a, p, n, where=keep, reduction="none")
  expected = np.zeros(5)
  expected[keep] = infonce_reference(a[keep], p[keep], n)
  assert_close(got, expected, **F32)


@pytest.mark.parametrize("normalize", [True, False])
def test_clip_against_open_clip_formula(normalize):
  x, y = _normal(3, 7, 16), _normal(4, 7, 16)
  temperature = 0.07 if normalize else 3.0
  reference = clip_reference(x, y, temperature, normalize)
  kw = dict(temperature=temperature, normalize=normalize)
  assert_close(jc.clip_loss(x, y, **kw), reference, **F32)
  assert_close(
    jc.clip_loss(x, y, reduction="mean", **kw), reference.mean(), **F32
  )


@pytest.mark.parametrize("normalize", [True, False])
def test_siglip_against_big_vision_formula(normalize):
  x, y = _normal(5, 7, 16), _normal(6, 7, 16)
  kw = (
    dict(logit_scale=10.0, logit_bias=-10.0)
    if normalize
    else dict(logit_scale=0.5, logit_bias=1.5)
  )
  reference = siglip_reference(
    x, y, kw["logit_scale"], kw["logit_bias"], normalize
  )
  assert_close(
    jc.siglip_loss(x, y, normalize=normalize, **kw), reference, **F32
  )
  assert_close(
    jc.siglip_loss(x, y, normalize=normalize, reduction="mean", **kw),
    reference.mean(),
    **F32,
  )


def test_siglip_learned_log_scale_as_big_vision():
  """big_vision learns t' with scale exp(t'); pass jnp.exp(t')."""
  x, y = _normal(5, 4, 8), _normal(6, 4, 8)
  t_prime = np.log(10.0)
  got = jax.jit(
    lambda t: jc.siglip_loss(x, y, logit_scale=jnp.exp(t), reduction="mean")
  )(t_prime)
  assert_close(got, siglip_reference(x, y).mean(), **F32)


@pytest.mark.parametrize("views", [None, 2, 3])
def test_supcon_against_khosla_reference(views):
  shape = (8, 6) if views is None else (8, views, 6)
  features = np.float32(_unit(_normal(7, *shape)))
  labels = np.array([0, 1, 2, 0, 1, 2, 0, 1], np.int32)
  reference = supcon_reference(features, labels, 0.1, 0.07)
  got = jc.supervised_contrastive_loss(features, labels, temperature=0.1)
  assert_close(got, reference.reshape(got.shape), **F32)
  assert_close(
    jc.supervised_contrastive_loss(
      features, labels, temperature=0.1, reduction="mean"
    ),
    reference.mean(),
    **F32,
  )


def test_supcon_excludes_anchors_without_positives():
  features = np.float32(_unit(_normal(8, 6, 4)))
  labels = np.array([0, 0, 1, 1, 2, 3], np.int32)  # examples 4, 5: no positive
  reference = supcon_reference(features, labels)[:, 0]
  got = jc.supervised_contrastive_loss(features, labels)
  assert_close(got, reference, **F32)
  assert np.all(np.asarray(got)[4:] == 0)
  # The reference averages them in as 0; jaxloss leaves them out of "mean".
  assert_close(
    jc.supervised_contrastive_loss(features, labels, reduction="mean"),
    reference[:4].mean(),
    **F32,
  )


def test_supcon_without_labels_is_simclr_over_views():
  features = np.float32(_unit(_normal(9, 5, 2, 4)))
  got = jc.supervised_contrastive_loss(features, None, temperature=0.5)
  assert_close(got, supcon_reference(features, np.arange(5), 0.5, 0.07), **F32)


@pytest.mark.parametrize("temperature", [0.07, 1.0])
def test_ntxent_equals_optax(temperature):
  x = _normal(10, 8, 5)
  labels = np.array([0, 0, 1, 1, 1, 2, 3, 3], np.int32)  # 2: no positive
  ours = jc.ntxent(x, labels, temperature)
  assert_close(
    ours,
    optax.losses.ntxent(jnp.asarray(x), jnp.asarray(labels), temperature),
    **F32,
  )
  assert_close(ours, ntxent_reference(x, labels, temperature), **F32)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(
  seed=st.integers(0, 2**16),
  batch=st.sampled_from([2, 5, 8]),
  classes=st.integers(1, 4),
  scale=st.sampled_from([1e-3, 1.0, 100.0]),
)
def test_ntxent_equals_optax_on_random_inputs(seed, batch, classes, scale):
  rng = _rng(seed)
  x = (scale * rng.normal(size=(batch, 3))).astype(np.float32)
  labels = rng.integers(0, classes, size=batch).astype(np.int32)
  expected = optax.losses.ntxent(jnp.asarray(x), jnp.asarray(labels))
  if np.isnan(expected):  # optax divides by zero positive pairs
    assert float(jc.ntxent(x, labels)) == 0.0
  else:
    assert_close(jc.ntxent(x, labels), expected, rtol=1e-5, atol=1e-5)


def test_ntxent_none_sums_pairs_and_mean_counts_pairs():
  x = _normal(11, 5, 3)
  labels = np.array([0, 0, 0, 1, 2], np.int32)
  per_anchor = jc.ntxent(x, labels, reduction="none")
  assert_close(np.sum(per_anchor) / 6, ntxent_reference(x, labels), **F32)
  assert np.all(np.asarray(per_anchor)[3:] == 0)


# --------------------------------------------------------------------------- #
# edge cases with known values


def test_identical_and_zero_embeddings_give_log_batch():
  n = 4
  for x in (np.ones((n, 3), np.float32), np.zeros((n, 3), np.float32)):
    for fn in (jc.infonce_loss, jc.clip_loss):
      for chunk_size in (None, 3):
        assert_close(
          fn(x, x, chunk_size=chunk_size), np.full(n, np.log(n)), **F32
        )


def test_zero_vectors_gradient_is_torchs_under_cosine():
  # x / max(‖x‖, 1e-12), torch's normalize: at the zero vector the gradient
  # is that of the normalised vector (here: of the unnormalised loss, as the
  # other side is already of norm 1) divided by 1e-12; finite, like torch's.
  x = np.zeros((3, 4), np.float32)
  y = np.float32(_unit(_normal(12, 3, 4)))
  plain = dict(similarity="dot"), dict(normalize=False), dict(normalize=False)
  for fn, raw in zip((jc.infonce_loss, jc.clip_loss, jc.siglip_loss), plain):
    for chunk_size in (None, 2):
      kw = dict(chunk_size=chunk_size, reduction="mean")
      grad = jax.grad(lambda v: fn(v, y, **kw))(x)
      assert np.all(np.isfinite(grad))
      expected = jax.grad(lambda v: fn(v, y, **kw, **raw))(x) / 1e-12
      assert_close(grad, expected, **F32)


def test_batch_of_one():
  x = _normal(13, 1, 4)
  assert_close(jc.infonce_loss(x, x), [0.0], atol=1e-6)
  assert_close(jc.clip_loss(x, x), [0.0], atol=1e-6)
  assert_close(jc.siglip_loss(x, x), siglip_reference(x, x), **F32)
  assert (
    float(jc.supervised_contrastive_loss(x, np.array([0]), reduction="mean"))
    == 0.0
  )


def test_supcon_all_labels_equal():
  x = np.float32(_unit(_normal(14, 5, 2, 3)))
  labels = np.zeros(5, np.int32)
  for chunk_size in (None, 4):
    assert_close(
      jc.supervised_contrastive_loss(x, labels, chunk_size=chunk_size),
      supcon_reference(x, labels),
      **F32,
    )


# --------------------------------------------------------------------------- #
# chunked ≡ dense: values and gradients (embeddings and hyper-parameters)


def _chunk_cases(dtype):
  """(name, loss(x, y, hyper, chunk_size, **kw), hyper-parameter value)."""
  labels = np.array([0, 1, 2, 0, 1, 2, 0, 3, 3, 1, 0], np.int32)

  def supcon(x, y, t, chunk_size, **kw):
    views = jnp.stack([x, y], axis=1)
    return jc.supervised_contrastive_loss(
      views, labels[: x.shape[0]], temperature=t, chunk_size=chunk_size, **kw
    )

  def siglip(x, y, scale_bias, chunk_size, **kw):
    return jc.siglip_loss(
      x,
      y,
      logit_scale=scale_bias[0],
      logit_bias=scale_bias[1],
      chunk_size=chunk_size,
      **kw,
    )

  def infonce_shared(x, y, t, chunk_size, **kw):
    return jc.infonce_loss(
      x, y, y[:3] + 1.0, temperature=t, chunk_size=chunk_size, **kw
    )

  return [
    (
      "infonce",
      lambda x, y, t, c, **kw: jc.infonce_loss(
        x, y, temperature=t, chunk_size=c, **kw
      ),
      np.asarray(0.1, dtype),
    ),
    ("infonce[shared]", infonce_shared, np.asarray(0.3, dtype)),
    (
      "clip",
      lambda x, y, t, c, **kw: jc.clip_loss(
        x, y, temperature=t, chunk_size=c, **kw
      ),
      np.asarray(0.07, dtype),
    ),
    ("siglip", siglip, np.asarray([5.0, -3.0], dtype)),
    ("supcon", supcon, np.asarray(0.2, dtype)),
  ]


def _value_and_grads(loss, x, y, hyper, chunk_size, where, weights):
  def total(x, y, hyper):
    values = loss(
      x, y, hyper, chunk_size, where=where, weights=weights, reduction="none"
    )
    return jnp.sum(
      values * jnp.arange(1, values.size + 1).reshape(values.shape)
    )

  return jax.jit(jax.value_and_grad(total, argnums=(0, 1, 2)))(x, y, hyper)


@pytest.mark.parametrize("batch,chunk_size", [(8, 4), (11, 3), (5, 8)])
def test_chunked_equals_dense_float64(batch, chunk_size):
  with jax.enable_x64(True):
    x = np.float64(_normal(20, batch, 6))
    y = np.float64(_normal(21, batch, 6))
    where = _rng(22).random(batch) < 0.8
    weights = _rng(23).uniform(0.5, 2.0, batch)
    for name, loss, hyper in _chunk_cases(np.float64):
      # SupCon's per-example output is [batch, views]: per-example masks are
      # [batch, 1].
      m, w = (
        (where, weights)
        if name != "supcon"
        else (where[:, None], weights[:, None])
      )
      dense = _value_and_grads(loss, x, y, hyper, None, m, w)
      chunked = _value_and_grads(loss, x, y, hyper, chunk_size, m, w)
      for a, b in zip(jax.tree.leaves(chunked), jax.tree.leaves(dense)):
        assert_close(a, b, rtol=1e-10, atol=1e-12, what=name)


def test_chunked_equals_dense_float32():
  x, y = _normal(24, 9, 8), _normal(25, 9, 8)
  for name, loss, hyper in _chunk_cases(np.float32):
    where = np.array([True] * 7 + [False, True])
    where = where[:, None] if name == "supcon" else where
    for reduction in ("none", "mean"):

      def f(x, y, hyper, chunk_size):
        values = loss(x, y, hyper, chunk_size, where=where, reduction=reduction)
        return jnp.sum(
          values * jnp.arange(1.0, values.size + 1).reshape(values.shape)
        )

      dense = jax.value_and_grad(f, argnums=(0, 1, 2))(x, y, hyper, None)
      chunked = jax.value_and_grad(f, argnums=(0, 1, 2))(x, y, hyper, 4)
      what = f"{name} {reduction}"
      assert_close(chunked[0], dense[0], **F32, what=what)
      for a, b in zip(chunked[1][:2], dense[1][:2]):
        # An embedding's gradient adds its row and column contributions,
        # which can cancel: the tolerance is relative to the gradient's scale.
        assert_close(a, b, rtol=1e-5, atol=1e-5 * np.max(np.abs(b)), what=what)
      # The hyper-parameter gradient sums ~100 terms of either sign, each of
      # the loss's size (the terms of d/dτ of τ·f(x/τ) nearly cancel): float32
      # rounding alone moves it by ~1e-4 relative (the float64 test holds both
      # paths to 1e-10).
      assert_close(chunked[1][2], dense[1][2], rtol=3e-4, atol=1e-5, what=what)


@pytest.mark.parametrize("chunk_size", [None, 3])
def test_hyperparameter_gradients_match_finite_differences(chunk_size):
  modes = ("rev",) if chunk_size else ("fwd", "rev")
  with jax.enable_x64(True):
    x, y = np.float64(_normal(26, 5, 4)), np.float64(_normal(27, 5, 4))
    for _, loss, hyper in _chunk_cases(np.float64):

      def f(hyper):
        return loss(x, y, hyper, chunk_size, reduction="mean")

      test_util.check_grads(f, (hyper,), order=1, modes=modes, eps=1e-6)


def test_temperature_gradient_against_numpy_finite_difference():
  x, y = _normal(28, 6, 5), _normal(29, 6, 5)
  for chunk_size in (None, 4):
    grad = jax.grad(
      lambda t: jc.clip_loss(
        x, y, temperature=t, chunk_size=chunk_size, reduction="mean"
      )
    )(0.2)
    h = 1e-6
    numeric = (
      clip_reference(x, y, 0.2 + h).mean()
      - clip_reference(x, y, 0.2 - h).mean()
    ) / (2 * h)
    assert_close(grad, numeric, rtol=1e-4, atol=0)


def test_chunked_never_holds_the_batch_by_batch_matrix():
  """Compiled temporary memory of forward + backward, dense vs chunked."""
  x = jax.ShapeDtypeStruct((2048, 32), jnp.float32)
  temperature = jax.ShapeDtypeStruct((), jnp.float32)

  def temp_bytes(loss, chunk_size):
    step = jax.jit(
      jax.grad(
        lambda x, y, t: loss(x, y, t, chunk_size, reduction="mean"),
        argnums=(0, 1, 2),
      )
    )
    return (
      step.lower(x, x, temperature)
      .compile()
      .memory_analysis()
      .temp_size_in_bytes
    )

  matrix = 2048 * 2048 * 4
  for name, loss, _ in _chunk_cases(np.float32):
    if name in ("siglip", "supcon"):
      continue  # their hyper-parameters are not scalar temperatures here
    dense, chunked = temp_bytes(loss, None), temp_bytes(loss, 128)
    assert dense >= matrix, name
    assert chunked * 8 < dense, (name, dense, chunked)
    assert chunked < matrix / 4, (name, chunked)


# --------------------------------------------------------------------------- #
# errors and value checks


def test_shape_errors_name_the_loss_and_argument():
  x, y = _normal(30, 4, 3), _normal(31, 5, 3)
  with pytest.raises(
    ValueError,
    match=r"clip_loss.*image_embeddings.*\(4, 3\)"
    r".*text_embeddings.*\(5, 3\)",
  ):
    jc.clip_loss(x, y)
  with pytest.raises(ValueError, match=r"infonce_loss: argument `negatives`"):
    jc.infonce_loss(x, x, _normal(32, 4, 2, 5))
  with pytest.raises(ValueError, match=r"infonce_loss: argument `negatives`"):
    jc.infonce_loss(x, x, _normal(32, 3, 2, 3))
  with pytest.raises(
    ValueError,
    match=r"supervised_contrastive_loss: argument "
    r"`labels` must have shape \(4,\)",
  ):
    jc.supervised_contrastive_loss(x, np.zeros(3, np.int32))
  with pytest.raises(
    ValueError,
    match=r"supervised_contrastive_loss: argument "
    r"`embeddings` must have rank",
  ):
    jc.supervised_contrastive_loss(
      np.zeros((2, 2, 2, 2), np.float32), np.zeros(2, np.int32)
    )
  with pytest.raises(ValueError, match=r"ntxent: argument `labels`"):
    jc.ntxent(x, np.zeros(5, np.int32))
  with pytest.raises(ValueError, match=r"siglip_loss: argument `where`"):
    jc.siglip_loss(x, x, where=np.ones(3, bool))
  with pytest.raises(
    ValueError,
    match=r"supervised_contrastive_loss: argument "
    r"`where`.*\[batch, 1\]",
  ):  # multi-view: [batch, 1]
    jc.supervised_contrastive_loss(
      np.zeros((4, 2, 3), np.float32),
      np.zeros(4, np.int32),
      where=np.ones(4, bool),
    )
  with pytest.raises(
    ValueError,
    match=r"clip_loss: argument `temperature` must "
    r"have rank 0",
  ):
    jc.clip_loss(x, x, temperature=jnp.ones(2))


def test_dtype_errors():
  x = _normal(33, 4, 3)
  with pytest.raises(TypeError, match="infonce_loss: argument `anchors`"):
    jc.infonce_loss(x.astype(np.int32), x)
  with pytest.raises(TypeError, match="ntxent: argument `labels`"):
    jc.ntxent(x, np.zeros(4, np.float32))
  with pytest.raises(TypeError, match="clip_loss: argument `where`"):
    jc.clip_loss(x, x, where=np.ones(4, np.int32))


def test_option_errors_list_valid_values():
  x = _normal(34, 4, 3)
  with pytest.raises(
    ValueError,
    match="infonce_loss: unknown similarity='l2'; "
    "valid values are 'cosine', 'dot'",
  ):
    jc.infonce_loss(x, x, similarity="l2")
  with pytest.raises(ValueError, match="clip_loss: `temperature` must be > 0"):
    jc.clip_loss(x, x, temperature=0.0)
  with pytest.raises(
    ValueError, match="siglip_loss: `logit_scale` must be > 0"
  ):
    jc.siglip_loss(x, x, logit_scale=-1.0)
  with pytest.raises(ValueError, match="base_temperature"):
    jc.supervised_contrastive_loss(
      x, np.zeros(4, np.int32), base_temperature=-0.1
    )
  for bad in (0, 2.5, True):
    with pytest.raises(
      ValueError,
      match="clip_loss: `chunk_size` must be 'auto', None or a positive int",
    ):
      jc.clip_loss(x, x, chunk_size=bad)
  with pytest.raises(ValueError, match="ntxent: unknown reduction"):
    jc.ntxent(x, np.zeros(4, np.int32), reduction="average")


def test_checked_catches_bad_values():
  x = _normal(35, 4, 3)
  checked_rejects(
    jc.clip_loss,
    x,
    x,
    temperature=jnp.asarray(-0.5),
    arg="temperature",
    what="must be > 0",
  )
  checked_rejects(
    jc.siglip_loss,
    x,
    x,
    logit_scale=jnp.asarray(0.0),
    arg="logit_scale",
    what="must be > 0",
  )
  checked_rejects(
    jc.infonce_loss,
    np.full((4, 3), np.nan, np.float32),
    x,
    arg="anchors",
    what="contains NaN",
  )
  checked = jaxloss.checked(jc.supervised_contrastive_loss)
  assert_close(
    checked(x, np.zeros(4, np.int32), temperature=jnp.asarray(0.5)),
    jc.supervised_contrastive_loss(x, np.zeros(4, np.int32), temperature=0.5),
    rtol=1e-7,
    atol=0,
  )


# --------------------------------------------------------------------------- #
# chunk_size="auto", the default


DEFAULT_CALLS = {  # each in-batch loss with its defaults, on [batch, 8]
  "infonce_loss": lambda x, y: jc.infonce_loss(x, y),
  "clip_loss": lambda x, y: jc.clip_loss(x, y),
  "siglip_loss": lambda x, y: jc.siglip_loss(x, y),
  "supervised_contrastive_loss": lambda x, y: jc.supervised_contrastive_loss(
    x, None
  ),
  "multiple_negatives_ranking_loss": lambda x, y: (
    jaxloss.multiple_negatives_ranking_loss(x, y, symmetric=True)
  ),
}


@pytest.mark.parametrize("name", DEFAULT_CALLS)
def test_default_chunking_is_dense_while_small(name):
  """The rule of jaxloss._core.chunking, worked by hand: a float32 batch ×
  batch matrix is dense while batch² × 16 bytes fit 16 MiB (1,024: 16 MiB,
  no scan); at 2,048 (64 MiB) the chunk is 16 MiB / (2,048 × 16 bytes) =
  512 columns, four per scan (traced on shapes only)."""
  call = DEFAULT_CALLS[name]
  small, large = (
    jax.ShapeDtypeStruct((n, 8), jnp.float32) for n in (1024, 2048)
  )
  assert scan_lengths(call, small, small) == []
  assert scan_lengths(call, large, large) == [4]


def test_default_chunked_clip_equals_dense():
  """Where "auto" chunks (batch 2,048), value and gradients are the dense
  path's."""
  rng = np.random.default_rng(0)
  x, y = (jnp.asarray(rng.normal(size=(2048, 8)), jnp.float32) for _ in "xy")

  def step(chunk_size):
    return jax.value_and_grad(
      lambda x, y, t: jc.clip_loss(
        x, y, temperature=t, chunk_size=chunk_size, reduction="mean"
      ),
      argnums=(0, 1, 2),
    )(x, y, jnp.float32(0.1))

  for got, want in zip(
    jax.tree.leaves(step("auto")), jax.tree.leaves(step(None)), strict=True
  ):
    assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_default_clip_at_batch_65536_needs_under_1_gib():
  """Issue 18's one-device target, compiled and not run: forward + backward
  of clip_loss with its defaults at batch 65,536, dim 256, float32, holds at
  most 1 GiB of temporary memory (the dense path would need about 48 GiB)."""
  embeddings = jax.ShapeDtypeStruct((65536, 256), jnp.float32)
  step = jax.value_and_grad(
    lambda x, y, t: jc.clip_loss(x, y, temperature=t, reduction="mean"),
    argnums=(0, 1, 2),
  )
  compiled = (
    jax.jit(step)
    .lower(embeddings, embeddings, jax.ShapeDtypeStruct((), jnp.float32))
    .compile()
  )
  assert compiled.memory_analysis().temp_size_in_bytes <= 2**30


# --------------------------------------------------------------------------- #
# issue 19: empty batches and huge magnitudes


@pytest.mark.parametrize(
  "loss",
  [
    lambda x, y: jc.infonce_loss(x, y, reduction="mean"),
    lambda x, y: jc.clip_loss(x, y, reduction="mean"),
    lambda x, y: jc.siglip_loss(x, y, reduction="mean"),
    lambda x, y: jc.ntxent(x, jnp.zeros(0, jnp.int32)),
    lambda x, y: jc.supervised_contrastive_loss(
      x, jnp.zeros(0, jnp.int32), reduction="mean"
    ),
  ],
  ids=["infonce", "clip", "siglip", "ntxent", "supcon"],
)
def test_empty_batch_is_zero_with_zero_gradient(loss):
  # Before issue 19: NumPy's "zero-size array to reduction operation max"
  # (SupCon: ZeroDivisionError).
  x = jnp.zeros((0, 4))
  value, grad = jax.value_and_grad(loss)(x, x)
  assert float(value) == 0.0
  assert grad.shape == (0, 4)


def _scaled(seed, scale, *shape):
  """float32 inputs of magnitude ``scale`` (exactly representable), and the
  same numbers in float64 for the reference."""
  x32 = np.float32(_normal(seed, *shape) * scale)
  return x32, np.float64(x32)


@pytest.mark.parametrize("scale", [1e19, 1e30])
def test_normalised_losses_at_huge_magnitudes_equal_float64(scale):
  # Before issue 19, ‖x‖² overflowed float32 from |x| ≈ 1.8e19: at 1e19 the
  # issue saw ntxent 4.26 instead of 13.47 and clip_loss 6.13 instead of 8.28
  # (here: NaN or wrong at 1e30). Normalised losses are scale-invariant.
  x32, x64 = _scaled(0, scale, 8, 16)
  y32, y64 = _scaled(1, scale, 8, 16)
  labels = np.arange(8) // 2
  assert_close(jc.ntxent(x32, labels), ntxent_reference(x64, labels), rtol=1e-5)
  assert_close(
    jc.clip_loss(x32, y32), clip_reference(x64, y64), rtol=1e-5, atol=1e-5
  )
  assert_close(
    jc.infonce_loss(x32, y32),
    infonce_reference(x64, y64),
    rtol=1e-5,
    atol=1e-5,
  )
  assert_close(
    jc.siglip_loss(x32, y32), siglip_reference(x64, y64), rtol=1e-5, atol=1e-5
  )
  grads = jax.grad(lambda x, y: jc.clip_loss(x, y, reduction="sum"), (0, 1))(
    x32, y32
  )
  assert all(np.all(np.isfinite(g)) for g in grads)
  # The value and gradient equal those at scale 1 (the gradient divided by
  # the scale: the loss is 0-homogeneous).
  unit = jax.grad(lambda x: jc.clip_loss(x, y32 / scale, reduction="sum"))(
    x32 / np.float32(scale)
  )
  assert_close(grads[0] * np.float32(scale), unit, rtol=1e-4, atol=1e-6)


def test_dot_product_logits_within_the_documented_range():
  # infonce_loss(similarity="dot") at 1e15 (the documented range): equal to
  # the float64 reference (the issue saw 1.1e16 instead of 6.0e16).
  x32, x64 = _scaled(2, 1e15, 6, 8)
  y32, y64 = _scaled(3, 1e15, 6, 8)
  assert_close(
    jc.infonce_loss(x32, y32, similarity="dot", temperature=0.5),
    infonce_reference(x64, y64, temperature=0.5, cosine=False),
    rtol=1e-5,
    atol=1e-5 * 1e30,  # float32 logits ~1e30/τ round at ~1e23
  )
  assert_close(
    jc.clip_loss(x32, y32, normalize=False, temperature=0.5),
    clip_reference(x64, y64, temperature=0.5, normalize=False),
    rtol=1e-5,
    atol=1e-5 * 1e30,
  )


# --------------------------------------------------------------------------- #
# Issue 22: infonce_loss(in_batch_negatives=False) against info-nce-pytorch,
# multi-hot SupCon labels against Khosla's SupConLoss with its `mask`.


def info_nce_reference(query, positive_key, negative_keys, temperature, mode):
  """info-nce-pytorch's ``info_nce`` (RElbers/info-nce-pytorch,
  ``info_nce/__init__.py``, commit a2a9c12) with ``reduction="none"``, in
  torch float64: unit vectors; logits ``[q·k⁺, q·k⁻ …] / τ`` with the
  negatives shared (``"unpaired"``, ``[m, dim]``) or per query
  (``"paired"``, ``[batch, k, dim]``); cross-entropy with label 0. Returns
  the values and the gradients of ``Σ_i (i + 1) ℓ_i`` (torch autograd)."""
  import torch

  q, p, n = (
    torch.tensor(np.float64(v), requires_grad=True)
    for v in (query, positive_key, negative_keys)
  )
  qn, pn, nn = (torch.nn.functional.normalize(v, dim=-1) for v in (q, p, n))
  positive_logit = torch.sum(qn * pn, dim=1, keepdim=True)
  if mode == "unpaired":
    negative_logits = qn @ nn.transpose(-2, -1)
  else:
    negative_logits = (qn.unsqueeze(1) @ nn.transpose(-2, -1)).squeeze(1)
  logits = torch.cat([positive_logit, negative_logits], dim=1)
  labels = torch.zeros(len(logits), dtype=torch.long)
  values = torch.nn.functional.cross_entropy(
    logits / temperature, labels, reduction="none"
  )
  weights = torch.arange(1, len(values) + 1, dtype=values.dtype)
  grads = torch.autograd.grad((weights * values).sum(), (q, p, n))
  return values.detach().numpy(), [g.numpy() for g in grads]


def test_infonce_without_in_batch_negatives_equals_info_nce_pytorch():
  rng = _rng(40)
  q, p = rng.normal(size=(2, 5, 4))
  shared, paired = rng.normal(size=(6, 4)), rng.normal(size=(5, 3, 4))
  weights = np.arange(1, 6, dtype=np.float64)
  with jax.enable_x64(True):
    for mode, negatives, chunk_size in [
      ("unpaired", shared, None),
      ("unpaired", shared, 4),
      ("paired", paired, None),
    ]:

      def total(q, p, n, chunk_size=chunk_size):
        values = jc.infonce_loss(
          q,
          p,
          n,
          temperature=0.3,
          in_batch_negatives=False,
          chunk_size=chunk_size,
        )
        return jnp.sum(weights * values), values

      grads, values = jax.grad(total, argnums=(0, 1, 2), has_aux=True)(
        q, p, negatives
      )
      want, want_grads = info_nce_reference(q, p, negatives, 0.3, mode)
      assert_close(values, want, rtol=1e-10, atol=1e-12, what=mode)
      for got, ref in zip(grads, want_grads):
        assert_close(got, ref, rtol=1e-10, atol=1e-12, what=mode)
    # The default keeps the in-batch candidates: q @ [p, shared]ᵀ, label i.
    logits = _unit(q) @ np.concatenate([_unit(p), _unit(shared)]).T / 0.3
    assert_close(
      jc.infonce_loss(q, p, shared, temperature=0.3),
      np_ce(logits, np.arange(5)),
      rtol=1e-10,
      atol=1e-12,
    )


def np_ce(logits, labels):
  m = logits.max(-1, keepdims=True)
  lse = m[:, 0] + np.log(np.exp(logits - m).sum(-1))
  return lse - logits[np.arange(len(labels)), labels]


def supcon_mask_reference(features, mask, temperature, base_temperature):
  """Khosla et al.'s ``SupConLoss.forward`` (HobbitLong/SupContrast,
  ``losses.py``) called with its ``mask`` argument (``[bsz, bsz]``,
  ``mask_ij = 1`` if j is a positive of i) instead of ``labels``, in
  NumPy: per anchor ``[batch, views]``."""
  features = np.float64(features)
  bsz, n_views = features.shape[:2]
  contrast = np.concatenate([features[:, v] for v in range(n_views)], 0)
  dots = contrast @ contrast.T / temperature
  logits = dots - dots.max(1, keepdims=True)
  logits_mask = 1 - np.eye(bsz * n_views)
  mask = np.tile(np.float64(mask), (n_views, n_views)) * logits_mask
  log_prob = logits - np.log((np.exp(logits) * logits_mask).sum(1))[:, None]
  pairs = mask.sum(1)
  mean_log_prob_pos = (mask * log_prob).sum(1) / np.where(
    pairs < 1e-6, 1, pairs
  )
  loss = -(temperature / base_temperature) * mean_log_prob_pos
  return loss.reshape(n_views, bsz).T, pairs.reshape(n_views, bsz).T > 0


def test_supcon_multi_hot_labels():
  rng = _rng(41)
  x = rng.normal(size=(7, 2, 4))
  labels = np.array([0, 1, 2, 0, 1, 3, 2], np.int32)
  multi_hot = np.array(
    [
      [1, 0, 0, 0],
      [1, 1, 0, 0],
      [0, 1, 0, 0],
      [0, 0, 1, 0],
      [0, 0, 1, 1],
      [0, 0, 0, 0],  # no class: no positive, not even its other view
      [1, 0, 0, 1],
    ],
    np.int32,
  )
  with jax.enable_x64(True):
    one_hot = np.eye(4, dtype=bool)[labels]
    for chunk_size in (None, 5):
      for views in (slice(0, 1), slice(0, 2)):  # [batch, 1, dim] and 2 views
        kw = dict(temperature=0.5, base_temperature=0.7, chunk_size=chunk_size)
        # A one-hot batch is today's integer-label loss, bit for bit.
        np.testing.assert_array_equal(
          jc.supervised_contrastive_loss(x[:, views], one_hot, **kw),
          jc.supervised_contrastive_loss(x[:, views], labels, **kw),
        )
        got = jc.supervised_contrastive_loss(x[:, views], multi_hot, **kw)
        mask = (multi_hot @ multi_hot.T) > 0
        want, has_positive = supcon_mask_reference(x[:, views], mask, 0.5, 0.7)
        assert_close(got, np.where(has_positive, want, 0), rtol=1e-10)
        mean = jc.supervised_contrastive_loss(
          x[:, views], multi_hot.astype(bool), reduction="mean", **kw
        )
        assert_close(mean, want[has_positive].mean(), rtol=1e-10)
    with pytest.raises(ValueError, match="supervised_contrastive_loss.*labels"):
      jc.supervised_contrastive_loss(x, multi_hot[:6])
