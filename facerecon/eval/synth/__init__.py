"""A large-pose benchmark with ground truth: fitted photos re-rendered at new yaws, expressions and lights.

The self-augmentation of paper 000 ("Implementation details": every training face is re-rendered at 26 large
yaw angles, 60 to 90 degrees each way): fit each photo (:class:`~facerecon.pipeline.run.Reconstructor`), then
turn the fitted head about its own vertical axis and render it with its photo texture, so that every synthetic
image comes with exact ground truth. The files follow the AFLW2000-3D and NoW layouts that
:func:`facerecon.eval.datasets.read_aflw2000` and :func:`~facerecon.eval.datasets.read_now` read, so
``facerecon eval aflw2000|now`` measures any method on them.

How a view is made (:func:`render_view`):

* **Geometry**: the fitted identity with the fitted expression or a preset (:data:`EXPRESSION_PRESETS`), the
  ``"head"`` sub-mesh. The head turns about the vertical model axis (y) through its *pivot*: x and z the centre
  of the neutral head's bounding box (the skull), y the mean height of its 68 iBUG landmarks. The camera
  rotation is ``head_angles_to_camera_rotation((pitch, yaw, roll))`` (docs/conventions.md: positive yaw turns
  the nose to the viewer's right), and the pivot sits on the optical axis at a distance that makes the frontal
  neutral face's landmark box ``face_fraction`` of the image height; so the face stays centred and in front of
  the camera at every yaw.
* **Colour**: the photo unwrapped into the face UV tile (:func:`facerecon.render.uv.unwrap_texture`, the
  pipeline's texture baker's weight, stricter at grazing angles, none on the neck) where the photo saw the
  surface, the fitted per-vertex albedo elsewhere (the hidden side, the back of the head, the mouth interior,
  the eyes, with painted irises), so a 90 degree view is not black. Face vertices the photo does not show take
  their mirror vertex's albedo (or, when that is hidden too, and on the neck, the median seen skin albedo). The photo texels carry the photo's light;
  they are de-lit by the fitted SH shading at the fitted pose (ratio-image relighting:
  ``albedo = photo / S_fit(n_fit)``) and every pixel is shaded ``albedo * S(n)`` with the new light
  (:data:`LIGHTING_PRESETS`; ``"fitted"`` keeps the photo's SH light, fixed to the camera).
* **Image**: ``image_size`` square (450, AFLW2000-3D's size), 2x2 supersampled, over the photo resized to
  cover the frame and blurred (``background="blur"``) or its mean border colour (``"plain"``).

Ground truth per view:

* ``pt3d_68``: the model's 68 fixed iBUG vertices, projected (x, y px) with z = (pivot depth - depth) x scale,
  px, positive towards the camera; occluded points are projected too. This is the "3D landmark" convention of
  AFLW2000-3D's ``pt3d_68`` (Zhu et al. 2016: the 68 vertices of the fitted 3DMM, whether visible or not), so
  at large yaw the far jaw lies inside the face, not on the silhouette; the visible jaw contour of the ICT
  ``*_jawline_extended`` schemes is not used.
* ``Pose_Para``: ``[pitch, yaw, roll, tx, ty, tz, scale]``: head angles in radians in facerecon's convention
  (docs/conventions.md; the reader bins ``|yaw|``), the model-to-camera translation in mm, and the
  weak-perspective scale ``fx / pivot depth`` (px per mm at the pivot).
* the ground-truth mesh (``"face"`` sub-mesh, camera space, mm) as OBJ beside each AFLW2000 image; for NoW,
  the subject's neutral ``"face"`` mesh in model space as its scan with the 7 NoW landmarks
  (:data:`~facerecon.eval.mesh_metrics.NOW_LANDMARKS_IBUG68`) as a MeshLab ``.pp`` file.

The steps, one module each: :mod:`~facerecon.eval.synth.presets` (yaws, expression and lighting presets,
:class:`SynthConfig`), :mod:`~facerecon.pipeline.subject` (:func:`fit_subject`, moved there so training shares it),
:mod:`~facerecon.eval.synth.views` (:func:`render_view`; the image itself is
:func:`facerecon.render.head.render_head`, which training-data generators use without importing ``eval``),
:mod:`~facerecon.eval.synth.writers` (the AFLW2000-3D / NoW files) and :mod:`~facerecon.eval.synth.batch`
(:func:`synthesize`).

Example:
    >>> report = synthesize(["a.jpg", "b.jpg"], "synth", yaws_deg=(-90, -45, 0, 45, 90))   # doctest: +SKIP
    >>> # then: facerecon eval aflw2000 synth/aflw2000 --method mediapipe
"""

from facerecon.eval.synth.batch import SynthFailure, SynthItem, SynthReport, synthesize
from facerecon.eval.synth.presets import (
    BACKGROUNDS,
    DEFAULT_YAWS_DEG,
    EXPRESSION_PRESETS,
    LAYOUTS,
    LIGHTING_PRESETS,
    SynthConfig,
    check_names,
    check_yaws,
    expression_weights,
    lighting_sh,
)
from facerecon.eval.synth.views import SynthView, render_subject, render_view, view_pose
from facerecon.pipeline.subject import FittedSubject, fit_options, fit_subject, lighting_level_default
from facerecon.eval.synth.writers import (
    view_name,
    write_aflw2000_view,
    write_now_scan,
    write_now_view,
)

__all__ = [
    "BACKGROUNDS",
    "DEFAULT_YAWS_DEG",
    "EXPRESSION_PRESETS",
    "LAYOUTS",
    "LIGHTING_PRESETS",
    "FittedSubject",
    "SynthConfig",
    "SynthFailure",
    "SynthItem",
    "SynthReport",
    "SynthView",
    "check_names",
    "check_yaws",
    "expression_weights",
    "fit_options",
    "fit_subject",
    "lighting_level_default",
    "lighting_sh",
    "render_subject",
    "render_view",
    "synthesize",
    "view_name",
    "view_pose",
    "write_aflw2000_view",
    "write_now_scan",
    "write_now_view",
]
