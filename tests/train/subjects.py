"""A training subject for the tests: one flat colour, an ambient light, a random identity, a shared photo behind it."""

from __future__ import annotations

import numpy as np

from facerecon.io.image import read_image
from facerecon.render.sh import ambient_sh
from facerecon.train.corpus import SubjectAppearance


def plain_subject(model, faces_dir, name: str, colour) -> SubjectAppearance:
    """A subject named ``name`` of one RGB ``colour`` (seeded by the name's length), on a shared photo."""
    head_n = model.submesh("head").vertex_count
    rng = np.random.default_rng(len(name))
    texture = np.clip(np.asarray(colour, np.float32) + rng.normal(scale=0.05, size=(64, 64, 3)), 0, 1).astype(np.float32)
    return SubjectAppearance(name, rng.normal(size=100) * 0.5, np.zeros(53), ambient_sh(0.9, batch_size=1)[0].numpy(),
                             np.tile(np.asarray(colour, np.float32), (head_n, 1)), texture,
                             read_image(faces_dir / "3ddfa-JianzhuGuo.jpg"))  # fmt: skip
