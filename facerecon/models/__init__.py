"""Face models: the linear FaceModel, installers per source (ICT-FaceKit), landmarks, regions."""
