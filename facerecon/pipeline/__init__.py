"""The reconstruction pipeline: detect, fit, texture, outputs. May import every room except cli."""
