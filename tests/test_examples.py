"""The flagship demo runs end to end and learns something."""

import re

import jax

from examples import demo


def test_demo_writes_a_table_of_recalls(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  # The demo is user code (a bias added by broadcasting), run with JAX's
  # default rank promotion rather than the suite's strict setting.
  with jax.numpy_rank_promotion("allow"):
    demo.main()
  report = (tmp_path / "out" / "imbalanced_digits.md").read_text()
  balanced = [float(x) for x in re.findall(r"\| (0\.\d+) \|$", report, re.M)]
  assert len(balanced) == 5
  # A linear model on digits: every loss should reach a balanced accuracy
  # well above chance (0.1) even on the long-tailed split.
  assert min(balanced) > 0.7
