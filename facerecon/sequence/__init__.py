"""One person over many images: the frames of a video or a set of photos of the same face.

``video`` reads videos (frames as ``(H, W, 3)`` uint8 RGB with their index and time; it imports only ``core`` and
``io``, so the command line can tell videos from photos without torch) and ``video_writer`` writes them;
``tracking`` follows the faces; ``track_fit`` fits a track (one identity, every frame, the smoother); ``person``
holds what a person's images share (keyframe reconstructions, the fused texture, the files); ``run`` reconstructs a
video and ``photo_set`` a photo set. Nothing is imported here, so importing one module does not load the others.
"""
