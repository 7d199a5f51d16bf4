"""The measuring programs of *Cross-Entropy, Executed*: not part of celib, not in its wheel.

Run from a checkout (``make bench``, ``make accuracy``), with celib installed in it:

* ``python -m benchmarks.speed`` times celib against torch, scipy and scikit-learn and
  measures their memory (:mod:`benchmarks.speed`, with the linear cross-entropy section in
  :mod:`benchmarks.speed_linear`);
* ``python -m benchmarks.accuracy`` measures each method's error in ulps against an exact
  reference (:mod:`benchmarks.accuracy`);
* ``python -m benchmarks.machine`` says what machine a measurement ran on, and with
  ``--expect ISA`` whether the SIMD forcing of ``make test-portable`` took
  (:mod:`benchmarks.machine`).

:mod:`benchmarks.measure` holds what the two benchmarks share: timings that refuse noise,
peak memory in a fresh process, the same threads for every contender.
"""
