"""Optimisation-based reconstruction: stages, energies, solvers."""
