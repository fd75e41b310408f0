"""Counter-based random draws: each number is a function of (campaign key, step, stream, channel).

A campaign's randomness therefore does not depend on which other campaigns share its batch, nor
on the actions a policy takes (common random numbers: every policy evaluated on a seed meets the
same traffic, prices and conversion luck). This is the idea behind JAX's threefry and numpy's
Philox, implemented here with the SplitMix64 finalizer, which vectorizes over uint64 arrays.

These numpy functions sample campaigns at reset; the compiled dynamics in ``core.py`` draw the
same uniforms cell by cell. Shapes: ``keys`` is ``(n_envs,)`` uint64; the draws of one step are
``(n_envs, n_streams, n_channels)``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)
#: Spacing of the counters of successive steps: ``step * COUNTER_STRIDE + stream * k + channel``.
COUNTER_STRIDE = 4096
_TWO_POW_M53 = 2.0**-53


def splitmix64_mix(z):
    """The SplitMix64 finalizer in wrapping uint64 arithmetic: the one definition, for a numpy
    uint64 array (through :func:`splitmix64`) and, compiled by numba, for a uint64 scalar
    (``core.py`` inlines it into the kernels; its builds carry a digest of this file)."""
    z = z + GOLDEN
    z = (z ^ (z >> np.uint64(30))) * MIX1
    z = (z ^ (z >> np.uint64(27))) * MIX2
    return z ^ (z >> np.uint64(31))


def bits_to_uniform(bits):
    """The uniform in the open interval (0, 1) of 64 random bits: their top 53 bits, centered
    (numpy arrays and, compiled, numba scalars)."""
    return ((bits >> np.uint64(11)) + 0.5) * _TWO_POW_M53


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer on a uint64 array (wrapping arithmetic, returns a new array)."""
    with np.errstate(over="ignore"):
        return splitmix64_mix(np.asarray(x, dtype=np.uint64))


def campaign_keys(seeds: np.ndarray, domain: int) -> np.ndarray:
    """Per-campaign uint64 keys from integer seeds; ``domain`` separates independent uses of a seed.

    Args:
        seeds: ``(n_envs,)`` non-negative integers.
        domain: small integer naming the use (campaign sampling, dynamics, ...).
    """
    seeds = np.asarray(seeds, dtype=np.uint64)
    return splitmix64(splitmix64(seeds) ^ splitmix64(np.uint64(domain) + np.uint64(0x51ED)))


def counters(step: int, n_streams: int, n_channels: int) -> np.ndarray:
    """Mixed counters for one step: ``(n_streams, n_channels)`` uint64, shared by all campaigns."""
    flat = np.arange(n_streams * n_channels, dtype=np.uint64) + np.uint64(step * COUNTER_STRIDE)
    return splitmix64(flat).reshape(n_streams, n_channels)


def uniforms(keys: np.ndarray, counter_table: np.ndarray) -> np.ndarray:
    """Uniforms in the open interval (0, 1): ``(n_envs, *counter_table.shape)`` float64."""
    bits = splitmix64(keys.reshape((-1,) + (1,) * counter_table.ndim) ^ counter_table)
    return bits_to_uniform(bits)


def normals(u: np.ndarray) -> np.ndarray:
    """Standard normals by inverting the CDF of uniforms (one uniform per normal)."""
    return ndtri(u)
