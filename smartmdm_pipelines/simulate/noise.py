"""Counter-based random numbers: the same (seed, stream, entity, instant) always gives the same draw.

Why not ``numpy.random.Generator``: a sequential generator makes a meter's values depend on which
meters were generated before it, so the output would change with the chunk size. Hashing the
coordinates instead (SplitMix64 finaliser) makes every draw a pure function of where it is used,
fully vectorised over (meters x intervals) matrices.
"""

from __future__ import annotations

import numpy as np

_K_ENTITY = np.uint64(0x9E3779B97F4A7C15)
_K_TIME = np.uint64(0xC2B2AE3D27D4EB4F)
_K_STREAM = np.uint64(0x165667B19E3779F9)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TWO_POW_32 = 1.0 / 4294967296.0

# Streams: one per independent use, so that e.g. the load noise and the solar clouds of a meter
# are not correlated.
LOAD = 1
APPLIANCE = 2
CLOUD = 3
WEATHER = 4
WATER_USE = 5
LOSSES = 6
REACTIVE = 7


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser, in place on a uint64 array (wrap-around arithmetic is intended)."""
    x ^= x >> np.uint64(30)
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return x


def hash64(seed: int, stream: int, entity: np.ndarray, instant: np.ndarray) -> np.ndarray:
    """Broadcast ``entity`` against ``instant`` (both integer arrays) and return uint64 hashes."""
    key = ((seed * 0x2545F4914F6CDD1D + stream * 0x632BE59BD9B4E019) * int(_K_STREAM)) & 0xFFFFFFFFFFFFFFFF
    e = np.asarray(entity).astype(np.uint64) * _K_ENTITY
    t = np.asarray(instant).astype(np.uint64) * _K_TIME
    x = e ^ t
    x ^= np.uint64(key)
    return _mix(_mix(x))


def uniform_pair(
    seed: int, stream: int, entity: np.ndarray, instant: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Two independent U[0, 1) arrays from one hash (its high and low 32 bits)."""
    h = hash64(seed, stream, entity, instant)
    hi = (h >> np.uint64(32)).astype(np.float64)
    lo = (h & np.uint64(0xFFFFFFFF)).astype(np.float64)
    hi *= _TWO_POW_32
    lo *= _TWO_POW_32
    return hi, lo


def uniform(seed: int, stream: int, entity: np.ndarray, instant: np.ndarray) -> np.ndarray:
    """One U[0, 1) array (53 bits)."""
    h = hash64(seed, stream, entity, instant)
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def triangular(seed: int, stream: int, entity: np.ndarray, instant: np.ndarray) -> np.ndarray:
    """Symmetric noise in (-1, 1) with unit-ish spread (sum of two uniforms, std ~0.41), cheap."""
    a, b = uniform_pair(seed, stream, entity, instant)
    a += b
    a -= 1.0
    return a
