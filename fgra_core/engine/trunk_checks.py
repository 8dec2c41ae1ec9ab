"""Checks of cached trunk maps: per-chunk SHA-256 checksums and finiteness.

:func:`checksums` is stored with the maps when they are built; :func:`verify` recomputes it on
load and returns one phrase saying what is wrong (``""`` when nothing is). A chunk is a run of
rows of about :data:`CHUNK_BYTES`, so a damaged file is located to a range of rows. Non-finite
values in stored maps are a corrupt cache; non-finite values in maps just computed by the trunk
are the trunk's fault (:func:`check_finite_build`, an error, nothing is stored).
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch

from fgra_core.utils.errors import WeightsError

CHUNK_BYTES = 64 * 2**20
SETS = ("train", "query", "gallery")


def _chunk_rows(maps: torch.Tensor) -> int:
    row = max(1, int(maps[0].numel() * maps.element_size())) if maps.shape[0] else 1
    return max(1, CHUNK_BYTES // row)


def _bytes(t: torch.Tensor) -> memoryview:
    t = t.contiguous()
    return memoryview(t.view(torch.uint8).numpy() if t.numel() else np.zeros(0, np.uint8))


def _index_digest(offsets: dict, lengths: dict) -> str:
    h = hashlib.sha256()
    for w in SETS:
        for arr in (offsets[w], lengths[w]):
            a = np.ascontiguousarray(np.asarray(arr, dtype=np.int64))
            h.update(f"|{w}{a.shape}".encode())
            h.update(a.tobytes())
    return h.hexdigest()


def chunk_digests(maps: torch.Tensor, chunk_rows: int) -> list[str]:
    flat = maps.reshape(maps.shape[0], -1) if maps.dim() else maps
    return [hashlib.sha256(_bytes(flat[s:s + chunk_rows])).hexdigest() for s in range(0, maps.shape[0], chunk_rows)]


def checksums(maps: torch.Tensor, offsets: dict, lengths: dict) -> dict:
    """``{"algorithm", "chunk_rows", "maps": [hex per chunk], "index": hex}`` of the cache's content."""
    rows = _chunk_rows(maps)
    return {"algorithm": "sha256", "chunk_rows": rows, "maps": chunk_digests(maps, rows),
            "index": _index_digest(offsets, lengths)}


def verify(maps: torch.Tensor, offsets: dict, lengths: dict, stored) -> str:
    """What is wrong with the cached content (a phrase after the file's name), ``""`` if nothing."""
    if not isinstance(stored, dict) or stored.get("algorithm") != "sha256" or not isinstance(stored.get("maps"), list):
        return "holds no checksums of its content (expected a 'checksums' entry with sha256 per chunk)"
    rows = int(stored.get("chunk_rows") or 0)
    if rows <= 0:
        return "holds no checksums of its content (chunk_rows missing)"
    if stored.get("index") != _index_digest(offsets, lengths):
        return "fails its checksum of the row index (offsets, lengths)"
    n = maps.shape[0]
    chunks = -(-n // rows)
    if chunks != len(stored["maps"]):
        return f"fails its checksums: {chunks} chunks of maps, {len(stored['maps'])} checksums stored"
    flat = maps.reshape(n, -1)
    bad = 0
    for i, want in enumerate(stored["maps"]):
        part = flat[i * rows:(i + 1) * rows]
        if hashlib.sha256(_bytes(part)).hexdigest() != want:
            return f"fails its checksum in rows {i * rows}..{min(n, (i + 1) * rows) - 1} of the maps (a damaged file)"
        bad += count_nonfinite(part)
    if bad:
        return f"holds {bad} non-finite values in its maps (a corrupt cache)"
    return ""


def count_nonfinite(maps: torch.Tensor) -> int:
    """Non-finite values of ``maps``. float16: the exponent bits of 512 KiB at a time (numpy, in cache)."""
    if maps.numel() == 0:
        return 0
    if maps.dtype != torch.float16:
        return int((~torch.isfinite(maps)).sum())
    bits = maps.contiguous().view(torch.int16).numpy().reshape(-1).view(np.uint16)
    bad, step = 0, 1 << 18
    for s in range(0, bits.size, step):
        exp = np.bitwise_and(bits[s:s + step], 0x7C00)
        if int(exp.max()) == 0x7C00:   # exponent all ones: inf or NaN
            bad += int(np.count_nonzero(exp == 0x7C00))
    return bad


def check_finite_build(maps: torch.Tensor, trunk: str) -> None:
    bad = count_nonfinite(maps)
    if bad:
        raise WeightsError(f"the trunk {trunk} computed {bad} non-finite values in its feature maps "
                           f"({maps.shape[0]} frames); expected finite maps: check model.weights and the frames; "
                           "nothing was cached")
