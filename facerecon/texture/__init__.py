"""Textures: UV unwrapping of photos, the export atlas, completion and de-lighting."""
