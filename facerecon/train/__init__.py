"""Training of facerecon's networks: the self-augmented corpus, losses and loops (``facerecon train ...``).

This room may import core, io, geometry, models, render, nets, fit, texture and pipeline; the library never imports it.
"""
