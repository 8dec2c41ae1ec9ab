"""P x K identity batch sampler (rank-aware).

Every batch holds ``P`` distinct identities with ``K`` tracklets each (a list of ``P * K``
dataset indices, grouped by identity). Per epoch, each identity's tracklets are shuffled and
cut into groups of ``K`` (an identity with fewer than ``K`` tracklets uses each of them once and
fills the group with draws with replacement; a last incomplete group is dropped), and batches are formed by repeatedly
taking one group from each of ``P`` random identities that still have groups. All ranks build
the same batch list from ``(seed, epoch)``; rank ``r`` of ``world_size`` takes batches
``r, r + world_size, ...`` truncated so that every rank gets the same number.

What an epoch is (``epoch_mode``):

* ``"groups"``: the every-group epoch above -- each identity appears once per group of ``K`` of
  its tracklets, so identities with many tracklets appear many times (MARS: 108-110 batches of
  16 x 4 per epoch);
* ``"identities"``: the epoch of the common video re-ID samplers -- each identity appears once,
  with ``K`` of its tracklets drawn without replacement (fewer than ``K``: every tracklet once and
  the rest drawn with replacement); the identities are shuffled and cut into batches of ``P``, a
  last incomplete batch dropped: ``num_identities // P`` batches (MARS: 625 // 16 = 39).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterator, Sequence

import numpy as np

from fgra_core.utils.errors import ConfigError

EPOCH_MODES = ("groups", "identities")


class RandomIdentitySampler:
    def __init__(self, pids: Sequence[int], P: int = 16, K: int = 4, seed: int = 0, rank: int = 0, world_size: int = 1,
                 epoch_mode: str = "groups"):
        if epoch_mode not in EPOCH_MODES:
            raise ConfigError(f"epoch_mode must be one of {', '.join(repr(m) for m in EPOCH_MODES)}, got {epoch_mode!r}")
        self.epoch_mode = epoch_mode
        if P < 1 or K < 1:
            raise ConfigError(f"P and K must be >= 1, got P={P}, K={K}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is not in 0..world_size-1 (world_size {world_size})")
        self.pids = [int(p) for p in pids]
        groups: dict[int, list[int]] = defaultdict(list)
        for i, p in enumerate(self.pids):
            groups[p].append(i)
        self.index_of_pid = {p: np.asarray(v, dtype=np.int64) for p, v in sorted(groups.items())}
        if len(self.index_of_pid) < P:
            raise ConfigError(
                f"P={P} identities per batch but the training set has only {len(self.index_of_pid)} identities"
            )
        self.P, self.K, self.seed, self.rank, self.world_size = int(P), int(K), int(seed), int(rank), int(world_size)
        self.epoch = 0
        self._cache: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def batch_size(self) -> int:
        return self.P * self.K

    def all_batches(self, epoch: int | None = None) -> list[list[int]]:
        """The batches of every rank for ``epoch`` (default: the current one)."""
        epoch = self.epoch if epoch is None else int(epoch)
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        rng = np.random.default_rng([self.seed, epoch])
        if self.epoch_mode == "identities":
            batches = self._identity_batches(rng)
            self._cache = (epoch, batches)
            return batches
        pending: dict[int, list[np.ndarray]] = {}
        for pid, idx in self.index_of_pid.items():
            if len(idx) < self.K:  # every tracklet once, the rest drawn with replacement
                idx = rng.permutation(np.concatenate([idx, rng.choice(idx, size=self.K - len(idx), replace=True)]))
            else:
                idx = rng.permutation(idx)
            n = len(idx) // self.K
            pending[pid] = [idx[j * self.K:(j + 1) * self.K] for j in range(n)]
        available = [p for p in self.index_of_pid if pending[p]]
        batches: list[list[int]] = []
        while len(available) >= self.P:
            chosen = rng.choice(len(available), size=self.P, replace=False)
            batch: list[int] = []
            for c in chosen:
                batch.extend(pending[available[c]].pop().tolist())
            batches.append(batch)
            available = [p for p in available if pending[p]]
        self._cache = (epoch, batches)
        return batches

    def _identity_batches(self, rng: np.random.Generator) -> list[list[int]]:
        """Each identity once, with ``K`` of its tracklets; ``num_identities // P`` batches."""
        groups = []
        for idx in self.index_of_pid.values():
            if len(idx) < self.K:
                pick = np.concatenate([idx, rng.choice(idx, size=self.K - len(idx), replace=True)])
            else:
                pick = rng.choice(idx, size=self.K, replace=False)
            groups.append(rng.permutation(pick))
        order = rng.permutation(len(groups))
        n = len(order) // self.P
        return [np.concatenate([groups[g] for g in order[b * self.P:(b + 1) * self.P]]).tolist() for b in range(n)]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.all_batches()
        n = len(batches) // self.world_size
        yield from batches[self.rank::self.world_size][:n]

    def __len__(self) -> int:
        return len(self.all_batches()) // self.world_size
