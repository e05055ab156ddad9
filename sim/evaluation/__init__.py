"""Evaluation: decisions joined with outcomes, the offline optimum, and the bounds of docs/theory.md.

- :mod:`sim.evaluation.metrics`: per-request rows, the true virtual queue, the per-policy summary;
- :mod:`sim.evaluation.optimum`: the offline LP optimum and the hindsight oracle;
- :mod:`sim.evaluation.bounds`: the checkable MESS+ bounds; :mod:`sim.evaluation.guarantees` maps a run onto them;
- :mod:`sim.evaluation.numerics`: compensated and row-chunked sums.
"""
