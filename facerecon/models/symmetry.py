"""Left/right symmetry of a template mesh: each vertex's mirror counterpart across the plane x = 0."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse
from scipy.sparse.csgraph import min_weight_full_bipartite_matching
from scipy.spatial import cKDTree

# How far a vertex may be from the plane x = 0 to count as lying on it (mm).
MIDLINE_TOLERANCE_MM = 0.01
# Candidate partners per vertex for the matching.
CANDIDATES = 8


def _match(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost one-to-one matching of mirrored ``source`` points to ``target`` points.

    Returns index pairs ``(i_source, i_target)`` for the matched points (all of the smaller set).
    """
    if len(source) == 0 or len(target) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    mirrored = source * np.array([-1.0, 1.0, 1.0])
    k = min(CANDIDATES, len(target))
    dist, idx = cKDTree(target).query(mirrored, k=k)
    dist = np.asarray(dist).reshape(len(source), k)
    idx = np.asarray(idx).reshape(len(source), k)
    rows = np.repeat(np.arange(len(source)), k)
    # Zero-cost edges would vanish from a sparse matrix: offset all costs by a tiny constant.
    graph = scipy.sparse.csr_matrix(
        (dist.ravel() + 1e-9, (rows, idx.ravel())), shape=(len(source), len(target))
    )
    try:
        row_of, col_of = _full_matching(graph)
    except ValueError:
        # No full matching among the nearest candidates: fall back to all pairs (parts are small).
        dense = np.linalg.norm(mirrored[:, None, :] - target[None, :, :], axis=-1) + 1e-9
        row_of, col_of = _full_matching(scipy.sparse.csr_matrix(dense))
    return row_of, col_of


def _full_matching(graph: scipy.sparse.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = min_weight_full_bipartite_matching(graph)
    return rows.astype(np.int64), cols.astype(np.int64)


def mirror_map(vertices: np.ndarray, parts: Sequence[tuple[range, range]]) -> np.ndarray:
    """Each vertex's mirror counterpart across x = 0, as an involution (``m[m[i]] == i``).

    Args:
        vertices: ``(V, 3)`` positions of a left/right symmetric template (x across the face).
        parts: pairs ``(part, partner)`` of vertex ranges: a part mirrored onto itself (``partner is part``,
            e.g. the face) or onto another part (e.g. the left eyeball onto the right one; list such a pair once).
            Vertices in no part map to themselves.

    Returns:
        ``(V,)`` int64 indices. Within a self-symmetric part, vertices on the midline (|x| <= 0.01 mm), and
        any left over when the two sides have different counts, map to themselves.
    """
    mirror = np.arange(len(vertices), dtype=np.int64)
    for part, partner in parts:
        part_idx = np.arange(part.start, part.stop)
        if part == partner:
            x = vertices[part_idx, 0]
            left = part_idx[x < -MIDLINE_TOLERANCE_MM]
            right = part_idx[x > MIDLINE_TOLERANCE_MM]
            i, j = _match(vertices[left], vertices[right])
            mirror[left[i]] = right[j]
            mirror[right[j]] = left[i]
        else:
            partner_idx = np.arange(partner.start, partner.stop)
            i, j = _match(vertices[part_idx], vertices[partner_idx])
            mirror[part_idx[i]] = partner_idx[j]
            mirror[partner_idx[j]] = part_idx[i]
    return mirror
