"""Losses of the face regressor's supervised stage: parameter errors measured by the vertex errors they cause.

Paper 004's supplement trains its regressor first on synthetic ground truth; paper 000 adds a parameter loss.
Errors of the 177 predicted numbers do not weigh the same (a yaw error of 5 degrees moves the face more than a
small identity mode), so the main terms compare the *meshes* the parameters make:

    L = w_lmk  * mean |P(pred)_lmk  - P(gt)_lmk|  / S        68 landmarks projected into the crop (S = crop side)
      + w_dense * mean |P(pred)_dense - P(gt)_dense| / S      a fixed subset of the face's vertices, projected
      + w_shape * mean ||X(pred) - X(gt)||_2 / 100 mm         the same vertices in model space (pose-free shape)
      + w_pose  * (||R - R_gt||_F^2 + ||c - c_gt||^2 + (log s - log s_gt)^2)   the crop pose, directly
      + w_sh * mean (L - L_gt)^2 + w_exp * mean (b - b_gt)^2  light and expression, directly
      + w_conf * BCE(confidence, is_face)

Crops without a face (``is_face`` False) count only in the confidence term. All image terms are L1-like
(smooth L1 with a small beta), which keeps the rare large errors at profile from dominating.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from facerecon.geometry.camera import PerspectiveCamera
from facerecon.models.face_model import FaceModel
from facerecon.nets.crop import CropPose, pose_from_crop
from facerecon.nets.regressor import RegressorOutput

#: The regressor's pivot: the model's origin (inside the head, on its symmetry plane), model space mm.
PIVOT = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class LossWeights:
    """Weights of :func:`supervised_loss` (see the module docstring)."""

    landmarks: float = 4.0
    dense: float = 2.0
    shape: float = 1.0
    pose: float = 0.5
    sh: float = 0.5
    expression: float = 0.2
    confidence: float = 0.1


class VertexSubset(nn.Module):
    """The model restricted to the 68 iBUG landmark vertices and an evenly spread subset of the face's vertices.

    Args:
        model: the face model.
        dense_count: how many face vertices (every k-th of the ``face`` sub-mesh).
    """

    def __init__(self, model: FaceModel, dense_count: int = 400) -> None:
        super().__init__()
        face_n = model.submesh("face").vertex_count
        dense = torch.linspace(0, face_n - 1, dense_count).round().long()
        landmarks = model.landmarks("ibug68").vertex_indices.long().cpu()
        index = torch.cat([landmarks, dense])
        self.landmark_count = len(landmarks)
        mean = model.mean.detach().cpu()
        self.register_buffer("mean", mean[index].clone())  # (n, 3)
        self.register_buffer("identity_basis", model.identity_basis.detach().cpu().reshape(-1, mean.shape[0], 3)[:, index].clone())
        self.register_buffer("expression_basis", model.expression_basis.detach().cpu().reshape(-1, mean.shape[0], 3)[:, index].clone())

    def forward(self, identity: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """``(B, n, 3)`` model-space mm: ``mean + sum_k a_k U_k + sum_j b_j E_j`` at the subset's vertices."""
        return (self.mean + torch.einsum("bk,knc->bnc", identity, self.identity_basis)
                + torch.einsum("bk,knc->bnc", expression, self.expression_basis))  # fmt: skip


@dataclass(frozen=True, eq=False)
class Targets:
    """A batch's ground truth (batch first): ``identity (B, K_id)``, ``expression (B, K_exp)``, ``sh (B, 9, 3)``,
    the crop pose, the crop cameras, and ``is_face (B,)`` bool."""

    identity: torch.Tensor
    expression: torch.Tensor
    sh: torch.Tensor
    pose: CropPose
    camera: PerspectiveCamera
    is_face: torch.Tensor

    def to(self, device: torch.device | str) -> Targets:
        """The same targets on ``device``."""
        pose = CropPose(*(x.to(device) for x in (self.pose.rotation, self.pose.centre, self.pose.log_scale)))
        return Targets(self.identity.to(device), self.expression.to(device), self.sh.to(device), pose,
                       self.camera.to(device), self.is_face.to(device))  # fmt: skip


def _project(subset: VertexSubset, identity, expression, pose: CropPose, camera: PerspectiveCamera):
    pivot = torch.tensor(PIVOT, dtype=identity.dtype)
    rotation, translation = pose_from_crop(pose, camera, pivot)
    model_pts = subset(identity, expression)
    cam = model_pts @ rotation.transpose(1, 2) + translation[:, None]
    return model_pts, camera.project(cam)


def supervised_loss(pred: RegressorOutput, target: Targets, subset: VertexSubset,
                    weights: LossWeights = LossWeights()) -> tuple[torch.Tensor, dict[str, float]]:  # fmt: skip
    """The supervised loss of a batch and its terms (floats, for logging)."""
    face = target.is_face
    terms: dict[str, torch.Tensor] = {}
    terms["confidence"] = nn.functional.binary_cross_entropy_with_logits(pred.confidence_logit, face.to(pred.confidence_logit.dtype))
    if bool(face.any()):
        f = face
        camera = PerspectiveCamera(target.camera.fx[f], target.camera.fy[f], target.camera.cx[f], target.camera.cy[f],
                                   target.camera.width, target.camera.height)  # fmt: skip
        pred_pose = CropPose(pred.rotation[f], pred.centre[f], pred.log_scale[f])
        gt_pose = CropPose(target.pose.rotation[f], target.pose.centre[f], target.pose.log_scale[f])
        size = float(camera.width)
        x_pred, uv_pred = _project(subset, pred.identity[f], pred.expression[f], pred_pose, camera)
        with torch.no_grad():
            x_gt, uv_gt = _project(subset, target.identity[f], target.expression[f], gt_pose, camera)
        n = subset.landmark_count
        d2 = nn.functional.smooth_l1_loss(uv_pred / size, uv_gt / size, beta=0.01, reduction="none").sum(-1)
        terms["landmarks"] = d2[:, :n].mean()
        terms["dense"] = d2[:, n:].mean()
        terms["shape"] = torch.linalg.norm(x_pred - x_gt, dim=-1).mean() / 100.0
        terms["pose"] = ((pred_pose.rotation - gt_pose.rotation).square().sum((1, 2))
                         + (pred_pose.centre - gt_pose.centre).square().sum(1)
                         + (pred_pose.log_scale - gt_pose.log_scale).square()).mean()  # fmt: skip
        terms["sh"] = (pred.sh[f] - target.sh[f]).square().mean()
        terms["expression"] = (pred.expression[f] - target.expression[f]).square().mean()
    total = sum(getattr(weights, name) * value for name, value in terms.items())
    return total, {name: float(value.detach()) for name, value in terms.items()}
