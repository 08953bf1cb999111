"""Suite-wide set-up that must happen before JAX is imported.

The suite is dominated by XLA:CPU compiling thousands of small programs.
Optimisation level 0 without the fusion emitters compiles them about twice as
fast; it changes no numerics the tests depend on (XLA:CPU does not use
fast-math at any level). Benchmarks and the demo keep the default flags.
"""

import os

_FAST_COMPILE = (
  "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"
)
os.environ["XLA_FLAGS"] = (
  os.environ.get("XLA_FLAGS", "") + " " + _FAST_COMPILE
).strip()
