"""Audio losses: the (multi-resolution) STFT loss of neural vocoders.

Signals are ``[..., time]`` (any leading axes: batch, channels); every loss
returns one value per signal, ``[...]``, reduced by :func:`jaxloss.reduce`
(``where`` and ``weights`` act on signals). float16/bfloat16 signals are
computed in float32.

The spectrogram is torch's ``torch.stft(x, n_fft, hop, win_length,
hann_window(win_length), center=True, pad_mode="reflect")``, which auraloss
uses: the signal is reflected by ``n_fft // 2`` samples at both ends, the
periodic Hann window of ``win_length`` is zero-padded to ``n_fft`` in the
middle of the frame, and frame ``m`` starts at sample ``m · hop`` of the
padded signal, giving ``1 + (T + 2 ⌊n_fft/2⌋ − n_fft) // hop`` frames
(``1 + T // hop`` for an even ``n_fft``). It is computed by
:func:`jax.scipy.signal.stft` with that padded window as its segment
(``nperseg = noverlap + hop = n_fft``) on the reflected signal; SciPy's
``"spectrum"`` scaling divides by the window's sum, which is multiplied back.
The reflection is done here rather than by ``boundary="even"`` (the same
``jnp.pad(mode="reflect")``) because SciPy's helper rejects a signal shorter
than its segment before it pads, while torch accepts every
``T > n_fft // 2``.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy import signal
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce

__all__ = [
  "multi_resolution_stft_loss",
  "stft_loss",
]

# auraloss's magnitude floor: sqrt(max(|X|², eps)) with eps = 1e-8.
_MIN_MAGNITUDE = math.sqrt(1e-8)


def _hann(win_length: int, fft_size: int) -> tuple[np.ndarray, float]:
  """torch's periodic ``hann_window(win_length)`` zero-padded to ``fft_size``
  with ``(fft_size − win_length) // 2`` zeros in front (``torch.stft``'s
  placement), in float64, and the window's sum."""
  n = np.arange(win_length, dtype=np.float64)
  window = 0.5 - 0.5 * np.cos(2 * np.pi * n / win_length)
  left = (fft_size - win_length) // 2
  padded = np.zeros(fft_size, np.float64)
  padded[left : left + win_length] = window
  return padded, float(window.sum())


def _frames(length: int, fft_size: int, hop_size: int) -> int:
  """torch.stft's frame count with ``center=True``."""
  return 1 + (length + 2 * (fft_size // 2) - fft_size) // hop_size


def _magnitudes(
  x: jax.Array, fft_size: int, hop_size: int, win_length: int
) -> jax.Array:
  """``sqrt(max(|STFT(x)|², 1e-8))``, ``[..., fft_size // 2 + 1, frames]``.

  ``|X|`` is XLA's complex absolute value (no overflow where ``|X|`` is
  representable); below the floor the value is the floor with a zero
  gradient, as torch's ``clamp``."""
  window, total = _hann(win_length, fft_size)
  shape = x.shape[:-1] + (
    fft_size // 2 + 1,
    _frames(x.shape[-1], fft_size, hop_size),
  )
  if x.size == 0:  # SciPy's helper returns the input's shape when empty
    return jnp.full(shape, _MIN_MAGNITUDE, x.dtype)
  half = fft_size // 2
  padded = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(half, half)], mode="reflect")
  _, _, spectrum = signal.stft(
    padded,
    # An array window is documented; the annotation says str.
    window=jnp.asarray(window, x.dtype),  # type: ignore[arg-type]
    nperseg=fft_size,
    noverlap=fft_size - hop_size,
    nfft=fft_size,
    boundary=None,
    padded=False,
  )
  spectrum = spectrum * total  # undo the "spectrum" scaling 1 / sum(window)
  magnitude = jnp.abs(spectrum)
  keep = magnitude > _MIN_MAGNITUDE
  return jnp.where(
    keep, jnp.abs(jnp.where(keep, spectrum, 1)), _MIN_MAGNITUDE
  ).astype(x.dtype)


def _stft_terms(
  x: jax.Array, y: jax.Array, fft_size: int, hop_size: int, win_length: int
) -> jax.Array:
  """Spectral convergence plus mean absolute log-magnitude error, per signal
  (one resolution)."""
  x_mag = _magnitudes(x, fft_size, hop_size, win_length)
  y_mag = _magnitudes(y, fft_size, hop_size, win_length)
  flat = x_mag.shape[:-2] + (x_mag.shape[-2] * x_mag.shape[-1],)
  x_mag, y_mag = x_mag.reshape(flat), y_mag.reshape(flat)
  # Both norms in units of the target's largest magnitude (a power of two
  # held constant: the ratio and its gradient are unchanged), so that the
  # quotient rule's squared denominator cannot overflow. The target's norm
  # is at least the floor times sqrt(bins): never 0.
  unit = numerics.magnitude_scale(y_mag, axis=-1)
  convergence = numerics.safe_norm((y_mag - x_mag) / unit) / numerics.safe_norm(
    y_mag / unit
  )
  log_magnitude = jnp.mean(
    numerics.safe_abs(jnp.log(y_mag) - jnp.log(x_mag)), axis=-1
  )
  return convergence + log_magnitude


# Jitted although it holds no loop: run op by op, jax.scipy.signal.stft and
# its gradient compile about 80 primitives per shape (docs/design.md, Audio).
@functools.partial(
  jax.jit, static_argnames=("fft_sizes", "hop_sizes", "win_lengths")
)
def _stft_losses(
  x: jax.Array,
  y: jax.Array,
  fft_sizes: tuple[int, ...],
  hop_sizes: tuple[int, ...],
  win_lengths: tuple[int, ...],
) -> jax.Array:
  """The mean over the resolutions of :func:`_stft_terms`, per signal."""
  total = _stft_terms(x, y, fft_sizes[0], hop_sizes[0], win_lengths[0])
  for fft, hop, win in zip(fft_sizes[1:], hop_sizes[1:], win_lengths[1:]):
    total = total + _stft_terms(x, y, fft, hop, win)
  return total / len(fft_sizes)


def _sizes(arg: str, value: Any) -> tuple[int, ...]:
  """A non-empty sequence of positive Python ints."""
  if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
    raise checks.fail(
      f"`{arg}` must be a non-empty sequence of positive ints, got {value!r}."
    )
  sizes = tuple(value)
  if not sizes or not all(
    isinstance(v, numbers.Integral) and not isinstance(v, bool) and int(v) > 0
    for v in sizes
  ):
    raise checks.fail(
      f"`{arg}` must be a non-empty sequence of positive ints, got {value!r}."
    )
  return tuple(int(v) for v in sizes)


def _signals(
  predictions: ArrayLike,
  targets: ArrayLike,
  fft_sizes: tuple[int, ...],
  win_lengths: tuple[int, ...],
  names: tuple[str, str],
) -> tuple[jax.Array, jax.Array]:
  """Checks shared by the STFT losses: two float signals of one shape
  ``[..., time]``, each window no longer than its FFT, and signals longer
  than half of every FFT (torch's reflection needs ``T > n_fft // 2``)."""
  x, y = checks.same_shape_floats(predictions=predictions, targets=targets)
  checks.min_rank("predictions", x, 1, "[..., time]")
  fft_arg, win_arg = names
  for fft, win in zip(fft_sizes, win_lengths):
    if win > fft:
      raise checks.fail(
        f"`{win_arg}` must not exceed `{fft_arg}` (torch.stft's rule), got "
        f"a window of {win} for an FFT of {fft}."
      )
  length = x.shape[-1]
  longest = max(fft_sizes)
  if length <= longest // 2:
    raise checks.fail(
      f"signals of `predictions` and `targets` must be longer than half of "
      f"the largest of `{fft_arg}` (the reflection padding of "
      f"torch.stft(center=True) needs T > {longest // 2}), got {length} "
      f"samples (shape {x.shape})."
    )
  return x, y


@loss
def stft_loss(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  fft_size: int = 1024,
  hop_size: int = 256,
  win_length: int = 1024,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""STFT loss: spectral convergence plus log STFT magnitude error.

  With :math:`X = |\mathrm{STFT}(\hat y)|` and :math:`Y = |\mathrm{STFT}(y)|`
  (``[freq, frames]``, :math:`K` bins, floored at :math:`10^{-4}`):

  .. math::

    \ell = \frac{\lVert Y - X \rVert_F}{\lVert Y \rVert_F}
      + \frac{1}{K} \sum_{f, m} \lvert \log Y_{fm} - \log X_{fm} \rvert

  The spectrogram is ``torch.stft(center=True, pad_mode="reflect")`` with
  a periodic Hann window of ``win_length`` centred in the ``fft_size``-point
  frame (the module docstring says how it is computed).

  Args:
    predictions: signals ``[..., time]``, floating (the model's output).
    targets: signals of the same shape.
    fft_size: FFT length (static).
    hop_size: samples between frames (static).
    win_length: Hann window length, at most ``fft_size`` (static).
    where: optional boolean mask ``[...]`` of the signals to keep.
    weights: optional per-signal weights ``[...]``.
    reduction: ``"none"`` (default), ``"sum"``, ``"mean"`` or
      ``"batchmean"``.

  Returns:
    One value per signal ``[...]``, or a scalar after reduction.

  Raises:
    ValueError: the shapes differ, ``win_length > fft_size``, or the signals
      have ``time <= fft_size // 2`` samples (torch's reflection padding).

  >>> import jax.numpy as jnp, jaxloss as jl
  >>> x = jnp.sin(0.1 * jnp.arange(4096.0))
  >>> print(f"{float(jl.stft_loss(0.5 * x, x)):.4f}")
  0.7739

  Matches ``auraloss.freq.STFTLoss()`` 0.4 (its defaults: ``w_sc = 1``,
  ``w_log_mag = 1``, ``w_lin_mag = 0``, ``eps = 1e-8``, mean log-magnitude
  L1) for one signal. auraloss takes ``[batch, channels, time]`` and computes
  the spectral convergence as one ratio of norms over every signal of the
  batch; here it is one ratio per signal (the log-magnitude term is the same
  mean either way), so for a batch ``reduction="mean"`` differs from
  auraloss's value in the first term.

  References:
    Arık, Jun and Diamos, "Fast Spectrogram Inversion using Multi-head
    Convolutional Neural Networks", 2018. https://arxiv.org/abs/1808.06719

    Yamamoto, Song and Kim, "Parallel WaveGAN: A fast waveform generation
    model based on generative adversarial networks with multi-resolution
    spectrogram", 2020. https://arxiv.org/abs/1910.11480
  """
  fft = checks.positive_int("fft_size", fft_size)
  hop = checks.positive_int("hop_size", hop_size)
  win = checks.positive_int("win_length", win_length)
  x, y = _signals(
    predictions, targets, (fft,), (win,), ("fft_size", "win_length")
  )
  values = _stft_losses(x, y, (fft,), (hop,), (win,))
  return reduce(values, reduction, weights=weights, where=where)


@loss
def multi_resolution_stft_loss(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  fft_sizes: Sequence[int] = (1024, 2048, 512),
  hop_sizes: Sequence[int] = (120, 240, 50),
  win_lengths: Sequence[int] = (600, 1200, 240),
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Multi-resolution STFT loss (Parallel WaveGAN's auxiliary loss).

  The mean over the resolutions :math:`r` (FFT size, hop, window) of the
  STFT loss of :func:`stft_loss`:

  .. math::

    \ell = \frac{1}{R} \sum_{r=1}^{R} \left(
      \frac{\lVert Y_r - X_r \rVert_F}{\lVert Y_r \rVert_F}
      + \frac{1}{K_r} \sum_{f, m}
        \lvert \log Y_{r,fm} - \log X_{r,fm} \rvert \right)

  with :math:`X_r`, :math:`Y_r` the magnitude spectrograms of predictions
  and targets at resolution :math:`r` (:math:`K_r` bins, floored at
  :math:`10^{-4}`).

  Args:
    predictions: signals ``[..., time]``, floating (the model's output).
    targets: signals of the same shape.
    fft_sizes: FFT length of each resolution (static).
    hop_sizes: hop of each resolution (static), as many as ``fft_sizes``.
    win_lengths: Hann window length of each resolution (static), each at
      most its FFT length, as many as ``fft_sizes``.
    where: optional boolean mask ``[...]`` of the signals to keep.
    weights: optional per-signal weights ``[...]``.
    reduction: ``"none"`` (default), ``"sum"``, ``"mean"`` or
      ``"batchmean"``.

  Returns:
    One value per signal ``[...]``, or a scalar after reduction.

  Raises:
    ValueError: the shapes differ, the three sequences differ in length, a
      window exceeds its FFT, or the signals have ``time <= max(fft_sizes)
      // 2`` samples (torch's reflection padding).

  >>> import jax.numpy as jnp, jaxloss as jl
  >>> x = jnp.sin(0.1 * jnp.arange(4096.0))
  >>> print(f"{float(jl.multi_resolution_stft_loss(0.5 * x, x)):.4f}")
  0.8007

  Matches ``auraloss.freq.MultiResolutionSTFTLoss()`` 0.4 with its defaults
  (the resolutions above, Hann windows, ``w_sc = w_log_mag = 1``,
  ``w_lin_mag = 0``, ``eps = 1e-8``) for one signal. auraloss takes
  ``[batch, channels, time]`` and computes each resolution's spectral
  convergence as one ratio of norms over all the signals of the batch; here
  it is one ratio per signal, so that each signal has its own loss (for a
  batch, ``reduction="mean"`` differs from auraloss's value in that term
  only).

  References:
    Yamamoto, Song and Kim, "Parallel WaveGAN: A fast waveform generation
    model based on generative adversarial networks with multi-resolution
    spectrogram", 2020. https://arxiv.org/abs/1910.11480

    Steinmetz and Reiss, "auraloss: Audio focused loss functions in
    PyTorch", 2020. https://github.com/csteinmetz1/auraloss
  """
  ffts = _sizes("fft_sizes", fft_sizes)
  hops = _sizes("hop_sizes", hop_sizes)
  wins = _sizes("win_lengths", win_lengths)
  if not len(ffts) == len(hops) == len(wins):
    raise checks.fail(
      f"`fft_sizes`, `hop_sizes` and `win_lengths` must have one entry per "
      f"resolution, got {len(ffts)}, {len(hops)} and {len(wins)} entries."
    )
  x, y = _signals(
    predictions, targets, ffts, wins, ("fft_sizes", "win_lengths")
  )
  values = _stft_losses(x, y, ffts, hops, wins)
  return reduce(values, reduction, weights=weights, where=where)
