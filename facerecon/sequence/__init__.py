"""One person over many images: the frames of a video or a set of photos of the same face.

This room reads and writes videos (``video``: frames as ``(H, W, 3)`` uint8 RGB with their index and time in the
source, ``VideoWriter`` for results such as ``overlay.mp4``; it imports only ``core`` and ``io``) and holds what works
across frames. Nothing is imported here, so importing one module does not load the others.
"""
