"""Facts about the ICT Face Model Light's topology, from the ICT-FaceKit README (MIT licence).

Source: README.md of https://github.com/ICT-VGL/ICT-FaceKit (master), sections "Face Model Topology",
"Face Area Details", "Eyeball Details" and "Facial Landmarks". Ranges are 0-based and half-open here
(the README writes them inclusive).
"""

from __future__ import annotations

VERTEX_COUNT = 26_719
POLYGON_COUNT = 26_384
IDENTITY_COUNT = 100

# Sub-geometries: name -> (vertex range, polygon range).
GEOMETRIES: dict[str, tuple[range, range]] = {
    "face": (range(0, 9409), range(0, 9230)),
    "head_and_neck": (range(9409, 11248), range(9230, 11144)),
    "mouth_socket": (range(11248, 13294), range(11144, 13226)),
    "eye_socket_left": (range(13294, 13678), range(13226, 13630)),
    "eye_socket_right": (range(13678, 14062), range(13630, 14034)),
    "gums_and_tongue": (range(14062, 17039), range(14034, 17006)),
    "teeth": (range(17039, 21451), range(17006, 21496)),
    "eyeball_left": (range(21451, 23021), range(21496, 23094)),
    "eyeball_right": (range(23021, 24591), range(23094, 24692)),
    "lacrimal_fluid_left": (range(24591, 24795), range(24692, 24855)),
    "lacrimal_fluid_right": (range(24795, 24999), range(24855, 25018)),
    "eye_blend_left": (range(24999, 25023), range(25018, 25033)),
    "eye_blend_right": (range(25023, 25047), range(25033, 25048)),
    "eye_occlusion_left": (range(25047, 25199), range(25048, 25176)),
    "eye_occlusion_right": (range(25199, 25351), range(25176, 25304)),
    "eyelashes_left": (range(25351, 26035), range(25304, 25844)),
    "eyelashes_right": (range(26035, 26719), range(25844, 26384)),
}

# "Narrow face area" of the README's face-area table: the front of the face, brow to chin.
NARROW_FACE = (range(0, 6706), range(0, 6560))

# Named sub-meshes a user asks for; each is a prefix of the vertex and polygon lists.
#   face:        the full face area (front, ears, front of the neck), used for fitting;
#   narrow_face: the front of the face only;
#   skin:        the face and the back of the head and neck (the closed skin surface);
#   head:        everything shown and exported: skin, mouth interior, teeth, eye sockets and eyeballs
#                (without the transparent Unreal-style eye effect meshes and the eyelash strips, which
#                need alpha-blended materials that plain viewers do not have);
#   full:        every vertex of the model.
SUBMESH_PREFIXES: dict[str, tuple[int, int]] = {
    "narrow_face": (6706, 6560),
    "face": (9409, 9230),
    "skin": (11248, 11144),
    "head": (24591, 24692),
    "full": (VERTEX_COUNT, POLYGON_COUNT),
}

# Pairs of sub-geometries that mirror each other across x = 0 (a part paired with itself is symmetric).
MIRROR_PARTS: tuple[tuple[str, str], ...] = (
    ("face", "face"),
    ("head_and_neck", "head_and_neck"),
    ("mouth_socket", "mouth_socket"),
    ("eye_socket_left", "eye_socket_right"),
    ("gums_and_tongue", "gums_and_tongue"),
    ("teeth", "teeth"),
    ("eyeball_left", "eyeball_right"),
    ("lacrimal_fluid_left", "lacrimal_fluid_right"),
    ("eye_blend_left", "eye_blend_right"),
    ("eye_occlusion_left", "eye_occlusion_right"),
    ("eyelashes_left", "eyelashes_right"),
)

# The 68 Multi-PIE / iBUG landmarks (0-based vertex indices), README "Facial Landmarks".
IBUG68: tuple[int, ...] = (
    1225, 1888, 1052, 367, 1719, 1722, 2199, 1447, 966, 3661, 4390, 3927, 3924, 2608, 3272, 4088, 3443,
    268, 493, 1914, 2044, 1401, 3615, 4240, 4114, 2734, 2509, 978, 4527, 4942, 4857, 1140, 2075, 1147,
    4269, 3360, 1507, 1542, 1537, 1528, 1518, 1511, 3742, 3751, 3756, 3721, 3725, 3732, 5708, 5695,
    2081, 0, 4275, 6200, 6213, 6346, 6461, 5518, 5957, 5841, 5702, 5711, 5533, 6216, 6207, 6470, 5517,
    5966,
)  # fmt: skip

# Jawlines: "right" is the subject's right (iBUG 0-7 side, x < 0 in model space).
RIGHT_JAWLINE: tuple[int, ...] = (1278, 1272, 12, 1834, 243, 781, 2199, 1447)  # substitutes iBUG 0-7
LEFT_JAWLINE: tuple[int, ...] = (3661, 4390, 3022, 2484, 4036, 2253, 3490, 3496)  # substitutes iBUG 9-16
RIGHT_JAWLINE_EXTENDED: tuple[int, ...] = (
    1280, 1278, 1275, 1272, 1248, 12, 820, 1834, 1902, 243, 844, 781, 1673, 2199, 801, 1447, 800,
)  # fmt: skip
LEFT_JAWLINE_EXTENDED: tuple[int, ...] = (
    3041, 3661, 3042, 4390, 3880, 3022, 3085, 2484, 4102, 4036, 3061, 2253, 3466, 3490, 3493, 3496, 3498,
)  # fmt: skip

LICENSE_NAME = "MIT"
ATTRIBUTION = "ICT Face Model Light, USC Institute for Creative Technologies (ICT-FaceKit), MIT licence"
