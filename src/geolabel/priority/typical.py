"""Typical picks for the cold start: TypiClust (Hacohen, Dekel & Weinshall, ICML 2022).

With few labels, a model's own uncertainty is a poor guide and random picks waste
clicks on near-duplicates of what is labelled; TypiClust instead clusters the
candidates in feature space into ``labelled + budget`` clusters and asks, for the
largest cluster that holds the fewest labels, its most *typical* member (the densest
point: smallest mean distance to its nearest neighbours in the cluster). Clusters of
fewer than ``MIN_CLUSTER`` members (outliers) come after every real cluster. Every pick
then covers a new, populous part of the data with an example that represents it,
not an outlier, which is what wins in the low-budget regime.

.. versionadded:: 0.2
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["TypicalPicker", "kmeans"]

F32 = npt.NDArray[np.float32]
#: the most candidates clustered (a seeded subsample beyond)
MAX_CLUSTERED = 4096
#: the most clusters (TypiClust's K = labelled + budget, capped)
MAX_CLUSTERS = 512
#: neighbours for the typicality density (TypiClust uses 20)
NEIGHBOURS = 20
#: clusters with fewer members hold outliers; they come last (TypiClust drops them)
MIN_CLUSTER = 5


def _sq_dist(x: F32, c: F32) -> F32:
    d2 = (x * x).sum(1)[:, None] - 2.0 * x @ c.T + (c * c).sum(1)[None, :]
    out: F32 = np.maximum(d2, 0.0).astype(np.float32)
    return out


def kmeans(
    x: F32, k: int, rng: np.random.Generator, *, iterations: int = 15
) -> tuple[F32, npt.NDArray[np.int64]]:
    """Lloyd's k-means with k-means++ seeding: ``(centroids, assignment)``."""
    n = x.shape[0]
    k = max(1, min(k, n))
    centres = np.empty((k, x.shape[1]), np.float32)
    centres[0] = x[rng.integers(n)]
    d2 = _sq_dist(x, centres[:1])[:, 0]
    for j in range(1, k):
        total = float(d2.sum())
        i = int(rng.choice(n, p=d2 / total)) if total > 0 else int(rng.integers(n))
        centres[j] = x[i]
        d2 = np.minimum(d2, _sq_dist(x, centres[j : j + 1])[:, 0])
    assign = np.zeros(n, np.int64)
    for _ in range(iterations):
        new = _sq_dist(x, centres).argmin(1)
        if _ > 0 and np.array_equal(new, assign):
            break
        assign = new
        sums = np.zeros_like(centres, dtype=np.float64)
        np.add.at(sums, assign, x)
        size = np.bincount(assign, minlength=k)
        full = size > 0
        centres[full] = (sums[full] / size[full, None]).astype(np.float32)
    return centres, assign


def _typicality(x: F32, members: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
    """1 / mean distance to the ``NEIGHBOURS`` nearest other members (TypiClust)."""
    if members.size == 1:
        return np.ones(1)
    pts = x[members]
    d = np.sqrt(_sq_dist(pts, pts))
    k = min(NEIGHBOURS, members.size - 1)
    near = np.partition(d, k, axis=1)[:, 1 : k + 1]  # column 0 is the point itself
    out: npt.NDArray[np.float64] = 1.0 / (near.mean(1).astype(np.float64) + 1e-8)
    return out


@dataclass(slots=True)
class TypicalPicker:
    """TypiClust over the open candidates of one selection.

    Built once per selection on a seeded subsample of the open candidates; each
    :meth:`pick` takes the most typical open member of the most populous cluster
    among those with the fewest labelled or picked members.
    """

    index: npt.NDArray[np.intp]
    assign: npt.NDArray[np.int64]
    covered: npt.NDArray[np.float64]
    size: npt.NDArray[np.int64]
    typical: npt.NDArray[np.float64]

    @classmethod
    def build(
        cls,
        feats: F32,
        open_: npt.NDArray[np.bool_],
        labelled: F32,
        budget: int,
        rng: np.random.Generator,
    ) -> TypicalPicker:
        """Cluster the open candidates into ``len(labelled) + budget`` clusters."""
        idx = np.flatnonzero(open_)
        if idx.size > MAX_CLUSTERED:
            idx = np.sort(rng.choice(idx, MAX_CLUSTERED, replace=False))
        if idx.size == 0:  # nothing open: every pick() answers None
            empty = np.zeros(0, np.int64)
            return cls(idx, empty, np.zeros(0), empty, np.zeros(0))
        x = feats[idx].astype(np.float32)
        k = min(MAX_CLUSTERS, labelled.shape[0] + budget, max(1, idx.size))
        centres, assign = kmeans(x, k, rng)
        covered = np.zeros(centres.shape[0], np.float64)
        if labelled.shape[0]:
            near = _sq_dist(labelled.astype(np.float32), centres).argmin(1)
            covered += np.bincount(near, minlength=centres.shape[0])
        typical = np.zeros(idx.size, np.float64)
        for c in np.unique(assign):
            members = np.flatnonzero(assign == c)
            typical[members] = _typicality(x, members)
        size = np.bincount(assign, minlength=centres.shape[0])
        return cls(idx, assign, covered, size, typical)

    def pick(self, open_: npt.NDArray[np.bool_]) -> int | None:
        """The next typical pick among ``open_`` units (``None``: none left)."""
        still = open_[self.index]
        if not still.any():
            return None
        alive = np.bincount(self.assign[still], minlength=self.size.size) > 0
        # real clusters before outlier groups, fewest labels first, then the most
        # populous
        order = np.lexsort((-self.size, self.covered, self.size < MIN_CLUSTER))
        c = int(next(c for c in order if alive[c]))
        members = np.flatnonzero((self.assign == c) & still)
        best = int(members[np.argmax(self.typical[members])])
        self.covered[c] += 1
        return int(self.index[best])
