"""Rotations, cameras, projection, normals, Laplacians, alignment. Imports only ``core``."""
