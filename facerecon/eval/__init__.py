"""Evaluation: metrics, dataset readers, reconstruction methods and the protocols that tie them together.

* Metrics: :mod:`~facerecon.eval.landmark_metrics` (NME, yaw bins, CED), :mod:`~facerecon.eval.mesh_metrics`
  (NoW alignment and exact scan-to-mesh distance), :mod:`~facerecon.eval.image_metrics` (photometric error,
  PSNR, SSIM, L1 over a mask), :mod:`~facerecon.eval.identity` (dlib embedding cosine).
* Readers: :mod:`~facerecon.eval.datasets` (AFLW2000-3D, NoW, a folder of photos).
* Methods: :mod:`~facerecon.eval.methods` (``MethodOutput``, the registry).
* Protocols: :mod:`~facerecon.eval.protocols` (one row per image, failures counted, markdown and JSON).

Example:
    >>> from facerecon.eval import create_method, evaluate_aflw2000, read_aflw2000
    >>> with create_method("dlib") as method:                                         # doctest: +SKIP
    ...     report = evaluate_aflw2000(read_aflw2000("AFLW2000"), method, method_name="dlib")
    >>> report.to_json()["nme_mean"]                                                  # doctest: +SKIP
"""

from facerecon.eval.datasets import (
    AFLW2000Annotation,
    AFLW2000Sample,
    DatasetFileError,
    NoWSample,
    PhotoSample,
    read_aflw2000,
    read_aflw2000_mat,
    read_now,
    read_photos,
    read_pp,
    write_pp,
)
from facerecon.eval.image_metrics import (
    l1_error,
    overlay,
    photometric_error,
    psnr,
    ssim,
    ssim_map,
)
from facerecon.eval.landmark_metrics import (
    YAW_BIN_LABELS,
    box_size,
    ced_curve,
    nme,
    yaw_bin,
)
from facerecon.eval.mesh_metrics import (
    NOW_LANDMARKS_IBUG68,
    AlignmentResult,
    ScanError,
    align_mesh_to_scan,
    now_face_crop,
    now_landmark_vertices,
    now_scan_error,
    point_mesh_distance,
)
from facerecon.eval.methods import (
    CAPABILITIES,
    Method,
    MethodInfo,
    MethodOutput,
    available_methods,
    create_method,
    method_info,
    register_method,
    unregister_method,
)
from facerecon.eval.protocols import (
    AFLW2000Report,
    AFLW2000Row,
    NoWReport,
    NoWRow,
    PhotoRow,
    PhotosReport,
    Status,
    evaluate_aflw2000,
    evaluate_now,
    evaluate_photos,
)

__all__ = [
    "CAPABILITIES",
    "NOW_LANDMARKS_IBUG68",
    "YAW_BIN_LABELS",
    "AFLW2000Annotation",
    "AFLW2000Report",
    "AFLW2000Row",
    "AFLW2000Sample",
    "AlignmentResult",
    "DatasetFileError",
    "Method",
    "MethodInfo",
    "MethodOutput",
    "NoWReport",
    "NoWRow",
    "NoWSample",
    "PhotoRow",
    "PhotoSample",
    "PhotosReport",
    "ScanError",
    "Status",
    "align_mesh_to_scan",
    "available_methods",
    "box_size",
    "ced_curve",
    "create_method",
    "evaluate_aflw2000",
    "evaluate_now",
    "evaluate_photos",
    "l1_error",
    "method_info",
    "nme",
    "now_face_crop",
    "now_landmark_vertices",
    "now_scan_error",
    "overlay",
    "photometric_error",
    "point_mesh_distance",
    "psnr",
    "read_aflw2000",
    "read_aflw2000_mat",
    "read_now",
    "read_photos",
    "read_pp",
    "register_method",
    "ssim",
    "ssim_map",
    "unregister_method",
    "write_pp",
    "yaw_bin",
]
