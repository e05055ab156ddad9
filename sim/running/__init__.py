"""Running: one scenario (:mod:`sim.running.runner`), a grid of them (:mod:`sim.running.sweep`), and the benchmark."""
