"""Face models: the linear FaceModel, installers per source (ICT-FaceKit), landmarks, regions."""

from facerecon.models.face_model import FaceModel, LandmarkPoseTable, LandmarkScheme, SubMesh
from facerecon.models.loading import load_model, model_summary
from facerecon.models.regions import Region

__all__ = ["FaceModel", "LandmarkPoseTable", "LandmarkScheme", "Region", "SubMesh", "load_model", "model_summary"]
