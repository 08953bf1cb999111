"""Suite-wide set-up that must happen before JAX is imported.

The suite is dominated by XLA:CPU compiling thousands of small programs.
Optimisation level 0 without the fusion emitters compiles them about twice as
fast; it changes no numerics the tests depend on (XLA:CPU does not use
fast-math at any level). Code generation in one LLVM module instead of split
into parallel parts takes about 15% less CPU time for these small programs
(the 2 cores are busy with 2 workers anyway); it changes no generated code's
numerics. Benchmarks and the demo keep the default flags.
"""

import os

_FAST_COMPILE = (
  "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false "
  "--xla_cpu_parallel_codegen_split_count=1"
)
os.environ["XLA_FLAGS"] = (
  os.environ.get("XLA_FLAGS", "") + " " + _FAST_COMPILE
).strip()
