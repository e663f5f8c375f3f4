"""The named outputs of a reconstructed face (``--outputs``) and the files each writes; no torch, no OpenCV."""

from __future__ import annotations

__all__ = ["DEFAULT_OUTPUTS", "OUTPUTS", "OUTPUT_FILES", "output_files", "parse_outputs"]

#: What :meth:`Reconstruction.save` can write, by name, with the files of each (``params.json`` is always written,
#: last: its presence means the folder is complete). ``albedo`` needs texture completion and ``details`` /
#: ``details-obj`` the details stage; a face without them has none of their files.
OUTPUTS: dict[str, tuple[str, ...]] = {
    "glb": ("face.glb",),  # textured, with the 53 expression morph targets (Blender, Unity, three.js)
    "obj": ("texture.png", "mesh.mtl", "mesh.obj"),
    "ply": ("mesh.ply",),  # vertex colours
    "params": ("params.json",),
    "albedo": ("albedo.png",),
    "details": ("displacement.png", "normal_map.png", "mesh_detailed.glb"),
    "details-obj": ("mesh_detailed.obj", "mesh_detailed.mtl", "texture.png"),  # the detailed mesh as text: ~36 MB
    "pictures": ("overlay.png", "landmarks.png", "depth.png", "normals.png"),
    "depth": ("depth.npy",),  # float32 mm over the whole photo, 0 = background: 4 bytes per photo pixel
}
#: What is written unless asked otherwise: everything but the two large raw forms (``details-obj``, ``depth``).
DEFAULT_OUTPUTS: tuple[str, ...] = ("glb", "obj", "ply", "params", "albedo", "details", "pictures")


def parse_outputs(text: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Output names from ``"glb,obj,params"`` (or a sequence), checked against :data:`OUTPUTS`; ``"all"`` is every one
    and ``"default"`` :data:`DEFAULT_OUTPUTS`. ``params`` is always included.

    Raises:
        ValueError: an unknown name, naming the known ones.
    """
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    chosen: list[str] = []
    for name in names:
        expanded = tuple(OUTPUTS) if name == "all" else DEFAULT_OUTPUTS if name == "default" else (name,)
        for item in expanded:
            if item not in OUTPUTS:
                raise ValueError(f"outputs: unknown output {item!r}; expected a comma-separated list of "
                                 f"{', '.join(OUTPUTS)} (or all, default)")  # fmt: skip
            if item not in chosen:
                chosen.append(item)
    if "params" not in chosen:
        chosen.append("params")
    return tuple(chosen)


def output_files(outputs: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The file names the outputs ``outputs`` (checked) name, each once, in :data:`OUTPUTS` order."""
    chosen = parse_outputs(list(outputs))
    files: list[str] = []
    for name, names in OUTPUTS.items():
        if name in chosen:
            files += [f for f in names if f not in files]
    return tuple(files)


#: Every file :meth:`Reconstruction.save` can write.
OUTPUT_FILES = output_files(tuple(OUTPUTS))
