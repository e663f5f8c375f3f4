"""Files in and out: images, meshes, parameters, downloads, atomic writes. Imports only ``core``."""
