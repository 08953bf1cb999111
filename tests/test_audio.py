"""Value tests for jaxloss.audio.

References, called in float64: auraloss 0.4.0's ``auraloss.freq.STFTLoss``
and ``MultiResolutionSTFTLoss`` (inputs ``[batch, channels, time]``) with
their defaults, and ``torch.stft`` for the spectrogram recipe. auraloss
builds its Hann window with torch's default dtype, so the modules are built
with float64 as the default (otherwise the float32 window alone differs from
the float64 one by about 1e-8 relative).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from auraloss.freq import MultiResolutionSTFTLoss, STFTLoss

import jaxloss as jl
from jaxloss.testing import assert_close

RTOL = 1e-10  # float64 against float64
# A small configuration with odd FFT and window lengths (the window's place
# in the frame is torch's), cheap to compile.
ODD = {"fft_sizes": (64, 31), "hop_sizes": (16, 5), "win_lengths": (33, 31)}


def _float64(module, **kwargs):
  previous = torch.get_default_dtype()
  torch.set_default_dtype(torch.float64)
  try:
    return module(**kwargs)
  finally:
    torch.set_default_dtype(previous)


def _torch(module, predictions, targets):
  """auraloss's value and its gradients (torch autograd) for ``[B, C, T]``
  float64 arrays."""
  x = torch.tensor(predictions, requires_grad=True)
  y = torch.tensor(targets, requires_grad=True)
  value = module(x, y)
  value.backward()
  return value.item(), x.grad.numpy(), y.grad.numpy()


def _jax(fn, predictions, targets, **kwargs):
  """jaxloss's value and its gradients, float64 (summed over signals)."""
  with jax.enable_x64(True):
    value, grads = jax.value_and_grad(
      lambda x, y: jnp.sum(fn(x, y, **kwargs)), argnums=(0, 1)
    )(jnp.asarray(predictions), jnp.asarray(targets))
    return float(value), np.asarray(grads[0]), np.asarray(grads[1])


def _signals(rng, *shape):
  return rng.normal(size=shape), rng.normal(size=shape)


# --------------------------------------------------------------------------- #
# the spectrogram recipe


def _torch_stft(x, fft, hop, win):
  """auraloss's STFTLoss.stft: torch.stft(center=True, pad_mode="reflect")
  with torch.hann_window(win) (periodic), unnormalised, one-sided."""
  return torch.stft(
    torch.tensor(x),
    fft,
    hop,
    win,
    torch.hann_window(win, dtype=torch.float64),
    return_complex=True,
  ).numpy()


def _centred_hann(fft, win):
  n = np.arange(win)
  window = 0.5 - 0.5 * np.cos(2 * np.pi * n / win)  # periodic Hann
  padded = np.zeros(fft)
  left = (fft - win) // 2  # torch.stft's placement
  padded[left : left + win] = window
  return padded, window.sum()


@functools.partial(jax.jit, static_argnames=("fft", "hop", "nperseg", "pad"))
def _scipy_stft(x, window, *, fft, hop, nperseg, pad):
  """jax.scipy.signal.stft, jitted (run op by op it compiles about 80
  primitives per shape). ``pad``: reflect ``fft // 2`` samples here and
  call with ``boundary=None``, else ``boundary="even"``."""
  if pad:
    half = fft // 2
    x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(half, half)], mode="reflect")
  return jax.scipy.signal.stft(
    x,
    window=window,
    nperseg=nperseg,
    noverlap=nperseg - hop,
    nfft=fft,
    boundary=None if pad else "even",
    padded=not pad,
  )[2]


def _complex_close(got, want, what):
  """assert_close on real and imaginary parts (it compares in float64)."""
  got, want = np.asarray(got), np.asarray(want)
  assert got.shape == want.shape, what
  both = np.stack([got.real, got.imag]), np.stack([want.real, want.imag])
  assert_close(*both, 1e-12, 1e-12 * np.max(np.abs(want)), what=what)


def test_the_issues_recipe_reproduces_torch_stft():
  """jax.scipy.signal.stft with the Hann window of ``win`` centred in an
  ``fft``-point segment (``nperseg = fft``, ``noverlap = fft - hop``),
  reflected ends, times ``sum(window)``, equals torch.stft (complex values,
  every frame), for even and odd sizes. ``boundary="even"`` is
  ``jnp.pad(mode="reflect")``, but SciPy's helper rejects a signal shorter
  than the segment that torch accepts (``fft // 2 < T < fft``): jaxloss pads
  first. The issue's other form (``nperseg = win``, window at the start of
  the segment) gives the same magnitudes only when ``fft - win`` is even."""
  rng = np.random.default_rng(0)
  configs = [  # fft, hop, win, T
    (1024, 120, 600, 1500),
    (64, 7, 33, 200),
    (63, 5, 31, 101),
    (16, 4, 16, 9),  # T < fft
    (15, 4, 9, 8),  # odd fft, T = fft // 2 + 1
  ]
  with jax.enable_x64(True):
    for fft, hop, win, length in configs:
      x = rng.normal(size=(2, length))
      expected = _torch_stft(x, fft, hop, win)
      window, total = _centred_hann(fft, win)
      options = {"fft": fft, "hop": hop, "nperseg": fft}
      got = _scipy_stft(jnp.asarray(x), window, pad=True, **options) * total
      _complex_close(got, expected, f"{fft, hop, win, length}")
      if length >= fft:  # the helper's own boundary="even" is the same
        even = _scipy_stft(jnp.asarray(x), window, pad=False, **options)
        frames = expected.shape[-1]  # padded=True may add frames at the end
        _complex_close(even[..., :frames] * total, expected, "even")
      else:
        with pytest.raises(ValueError, match="longer than input"):
          _scipy_stft(jnp.asarray(x), window, pad=False, **options)

    # nperseg = win: equal magnitudes for fft - win even, not for odd.
    for fft, win, equal in ((64, 32, True), (64, 33, False)):
      x = rng.normal(size=(300,))
      expected = np.abs(_torch_stft(x, fft, 8, win))
      window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
      z = _scipy_stft(
        jnp.asarray(x), window, fft=fft, hop=8, nperseg=win, pad=False
      )
      got = np.abs(np.asarray(z))[:, : expected.shape[-1]] * window.sum()
      assert np.allclose(got, expected, 1e-12, 1e-12) == equal, (fft, win)


# --------------------------------------------------------------------------- #
# auraloss


def test_multi_resolution_matches_auraloss_for_one_signal():
  """Value and gradients (predictions and targets) of auraloss's
  MultiResolutionSTFTLoss() defaults and STFTLoss() defaults for one signal,
  the shortest the largest FFT allows (1025 > 2048 // 2) and a longer one;
  and a configuration with odd sizes."""
  rng = np.random.default_rng(1)
  checks = [
    (MultiResolutionSTFTLoss, {}, jl.multi_resolution_stft_loss, {}, 1025),
    (STFTLoss, {}, jl.stft_loss, {}, 700),
    (
      MultiResolutionSTFTLoss,
      {k: list(v) for k, v in ODD.items()},
      jl.multi_resolution_stft_loss,
      ODD,
      100,
    ),
  ]
  for module, options, fn, kwargs, length in checks:
    x, y = _signals(rng, length)
    want = _torch(_float64(module, **options), x[None, None], y[None, None])
    got = _jax(fn, x, y, **kwargs)
    what = f"{fn.__name__} T={length} {kwargs}"
    assert_close(got[0], want[0], RTOL, 0, what=what)
    scale = np.max(np.abs(want[1]))  # gradients relative to the largest
    assert_close(got[1], want[1][0, 0], RTOL, RTOL * scale, what=what)
    assert_close(got[2], want[2][0, 0], RTOL, RTOL * scale, what=what)


def test_per_signal_values_and_auralosss_batch_ratio():
  """``[batch, channels, time]``: each signal's value (and gradient) is
  auraloss's for that signal alone. auraloss's value for the whole batch
  differs only in the spectral convergence, one ratio of norms over the
  batch: it equals jaxloss's mean minus the mean per-signal spectral
  convergence plus auraloss's pooled one (output="full" gives them)."""
  rng = np.random.default_rng(2)
  x, y = _signals(rng, 2, 2, 1100)
  x[1, 0] *= 30  # loud and quiet signals: the pooled ratio differs
  value, gx, gy = _jax(jl.multi_resolution_stft_loss, x, y)
  with jax.enable_x64(True):
    per_signal = np.asarray(
      jl.multi_resolution_stft_loss(jnp.asarray(x), jnp.asarray(y))
    )
  assert per_signal.shape == (2, 2)
  assert_close(value, per_signal.sum(), RTOL, 0)
  full = _float64(MultiResolutionSTFTLoss, output="full")
  sc_single = np.zeros((2, 2))
  for b in range(2):
    for c in range(2):
      one = (x[b, c][None, None], y[b, c][None, None])
      want, want_gx, want_gy = _torch(_float64(MultiResolutionSTFTLoss), *one)
      assert_close(per_signal[b, c], want, RTOL, 0, what=f"signal {b, c}")
      scale = np.max(np.abs(want_gx))
      assert_close(gx[b, c], want_gx[0, 0], RTOL, RTOL * scale)
      assert_close(gy[b, c], want_gy[0, 0], RTOL, RTOL * scale)
      _, sc, *_ = full(*(torch.tensor(a) for a in one))
      sc_single[b, c] = np.mean([s.item() for s in sc])
  batch, sc_batch, *_ = full(torch.tensor(x), torch.tensor(y))
  pooled = np.mean([s.item() for s in sc_batch])
  assert abs(pooled - sc_single.mean()) > 1e-3  # the two conventions differ
  assert_close(
    per_signal.mean() - sc_single.mean() + pooled, batch.item(), 1e-10
  )


def test_silence_is_finite_and_matches_auraloss():
  """All-zero signals: every magnitude sits at the 1e-4 floor. Silence
  against silence is 0 with zero gradients; silence against a signal (either
  way) equals auraloss, with finite gradients that equal torch's."""
  rng = np.random.default_rng(3)
  noise = rng.normal(size=1025)
  zeros = np.zeros(1025)
  reference = _float64(MultiResolutionSTFTLoss)
  for x, y in ((zeros, zeros), (zeros, noise), (noise, zeros)):
    got = _jax(jl.multi_resolution_stft_loss, x, y)
    want = _torch(reference, x[None, None], y[None, None])
    for g in got[1:]:
      assert np.all(np.isfinite(g))
    assert_close(got[0], want[0], RTOL, 1e-14)
    for g, w in zip(got[1:], want[1:]):
      assert_close(g, w[0, 0], RTOL, RTOL * max(np.max(np.abs(w)), 1e-300))
  silent = _jax(jl.multi_resolution_stft_loss, zeros, zeros)
  assert silent[0] == 0
  assert not np.any(silent[1]) and not np.any(silent[2])


def test_bfloat16_is_computed_in_float32():
  rng = np.random.default_rng(4)
  x, y = (jnp.asarray(a, jnp.bfloat16) for a in _signals(rng, 3, 100))
  got = jl.multi_resolution_stft_loss(x, y, **ODD)
  want = jl.multi_resolution_stft_loss(
    x.astype(jnp.float32), y.astype(jnp.float32), **ODD
  )
  assert got.dtype == jnp.float32
  assert_close(got, want, 1e-6, 1e-6)


# --------------------------------------------------------------------------- #
# errors


@pytest.mark.parametrize(
  "fn,args,kwargs,match",
  [
    # torch.stft(center=True) needs T > n_fft // 2 (its reflection).
    (
      jl.multi_resolution_stft_loss,
      (np.zeros((2, 1024)), np.zeros((2, 1024))),
      {},
      r"multi_resolution_stft_loss: .*`fft_sizes`.*T > 1024.*got 1024",
    ),
    (
      jl.stft_loss,
      (np.zeros(512), np.zeros(512)),
      {},
      r"stft_loss: .*`fft_size`.*T > 512",
    ),
    (
      jl.multi_resolution_stft_loss,
      (np.zeros((2, 100)), np.zeros((2, 99))),
      ODD,
      r"multi_resolution_stft_loss: .*same shape.*`predictions` \(2, 100\)",
    ),
    (
      jl.multi_resolution_stft_loss,
      (np.zeros(100), np.zeros(100)),
      {**ODD, "hop_sizes": (16,)},
      r"multi_resolution_stft_loss: `fft_sizes`, `hop_sizes` and "
      r"`win_lengths` must have one entry per resolution, got 2, 1 and 2",
    ),
    (
      jl.multi_resolution_stft_loss,
      (np.zeros(100), np.zeros(100)),
      {**ODD, "win_lengths": (33, 32)},
      r"multi_resolution_stft_loss: `win_lengths` must not exceed "
      r"`fft_sizes`.*window of 32 for an FFT of 31",
    ),
    (
      jl.multi_resolution_stft_loss,
      (np.zeros(100), np.zeros(100)),
      {**ODD, "fft_sizes": 64},
      r"`fft_sizes` must be a non-empty sequence of positive ints",
    ),
    (
      jl.multi_resolution_stft_loss,
      (np.zeros(100), np.zeros(100)),
      {**ODD, "hop_sizes": (16, 0)},
      r"`hop_sizes` must be a non-empty sequence of positive ints",
    ),
    (
      jl.stft_loss,
      (np.zeros(100), np.zeros(100)),
      {"fft_size": 64, "hop_size": 8.0, "win_length": 64},
      r"stft_loss: `hop_size` must be a positive int, got 8.0",
    ),
    (
      jl.stft_loss,
      (np.zeros(()), np.zeros(())),
      {},
      r"stft_loss: argument `predictions` must have rank >= 1",
    ),
  ],
)
def test_errors_name_the_loss_and_the_argument(fn, args, kwargs, match):
  with pytest.raises(ValueError, match=match):
    jax.eval_shape(lambda x, y: fn(x, y, **kwargs), *args)
