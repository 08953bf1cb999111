"""Registry entries for jaxloss.audio: short signals and small FFTs, so that
each program compiles quickly (tests/test_audio.py checks auraloss's
defaults)."""

import numpy as np

import jaxloss as jl
from jaxloss.testing import LossCase
from tests.cases import _inputs as I

_TIME = 48
_STFT = {"fft_size": 16, "hop_size": 4, "win_length": 12}
# Two resolutions, one with odd sizes (the window centred as torch.stft).
_MULTI = {"fft_sizes": (16, 9), "hop_sizes": (4, 3), "win_lengths": (12, 7)}


def _signals(options):
  def make(rng, n):
    predictions = rng.normal(size=(n, _TIME)).astype(I.F32)
    targets = rng.normal(size=(n, _TIME)).astype(I.F32)
    return (predictions, targets), dict(options)

  return make


def _edges(options):
  """One batch whose rows are the edge cases (each row is its own signal, so
  one program covers them): silence against silence, silence against a
  signal and the reverse (magnitudes at the 1e-4 floor), identical signals
  (zero spectral distance) and a signal against a copy 1000 times louder."""

  def edges():
    tone = np.sin(0.3 * np.arange(_TIME, dtype=I.F32))
    zeros = np.zeros_like(tone)
    predictions = np.stack([zeros, zeros, tone, tone, 1e-3 * tone])
    targets = np.stack([zeros, tone, zeros, tone, tone])
    return [((predictions, targets), options)]

  return edges


CASES = [
  LossCase(
    jl.stft_loss,
    _signals(_STFT),
    name="stft_loss[fft_size=16]",
    float_args=(0, 1),
    edge_inputs=_edges(_STFT),
  ),
  LossCase(
    jl.multi_resolution_stft_loss,
    _signals(_MULTI),
    name="multi_resolution_stft_loss[fft_sizes=(16,9)]",
    float_args=(0, 1),
    edge_inputs=_edges(_MULTI),
  ),
]
