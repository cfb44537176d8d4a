"""Identifiers derived from integer keys, formatted without a Python loop.

Every id is a keyed hash of a counter, so it is deterministic for a seed,
independent of how rows are chunked, and unique wherever the hash is a
bijection. Strings are assembled as fixed-width byte matrices and handed to
Arrow as one buffer, which is what makes ten million ids cost well under a
second.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

__all__ = [
    "base62_strings",
    "derive_key",
    "digit_strings",
    "hex_strings",
    "mix64",
    "uuid_strings",
]

U64 = NDArray[np.uint64]
U8 = NDArray[np.uint8]

_BASE62 = np.frombuffer(
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8
)
_DASH = ord("-")
#: Odd constant separating the hashes of successive parts of one id.
_PART = 0x2545F4914F6CDD1D


def derive_key(seed: int, purpose: int) -> int:
    """A 64-bit key for one purpose, drawn from the seed."""
    state = np.random.SeedSequence([seed, purpose]).generate_state(1, dtype=np.uint64)
    return int(state[0])


def mix64(values: U64, key: int) -> U64:
    """SplitMix64's finaliser applied to ``values + key`` (mod 2**64).

    Each step (adding a constant, xor-shifting, multiplying by an odd constant)
    is invertible, so distinct inputs always give distinct outputs.
    """
    z = values + np.uint64(key)
    shifted = z >> np.uint64(30)
    z ^= shifted
    z *= np.uint64(0xBF58476D1CE4E5B9)
    np.right_shift(z, np.uint64(27), out=shifted)
    z ^= shifted
    z *= np.uint64(0x94D049BB133111EB)
    np.right_shift(z, np.uint64(31), out=shifted)
    z ^= shifted
    return z


def _strings(chars: U8) -> pa.StringArray:
    """One Arrow string per row of a ``(n, width)`` ASCII byte matrix."""
    n, width = chars.shape
    data = np.ascontiguousarray(chars)
    offsets = np.arange(n + 1, dtype=np.int32) * np.int32(width)
    array = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))
    assert isinstance(array, pa.StringArray)
    return array


def _with_prefix(prefix: str, body: U8) -> U8:
    head = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    out = np.empty((body.shape[0], head.size + body.shape[1]), dtype=np.uint8)
    out[:, : head.size] = head
    out[:, head.size :] = body
    return out


def _hex8(half: U64) -> U64:
    """Eight ASCII hex digits of the low 32 bits, packed in one word (SWAR).

    The shifts move each nibble into its own byte; adding 0x30 makes the digit
    and a carry-derived 0x27 lifts 10-15 to ``a``-``f``. The byte swap puts the
    most significant digit first in memory.
    """
    x = (half | (half << np.uint64(16))) & np.uint64(0x0000FFFF0000FFFF)
    x = (x | (x << np.uint64(8))) & np.uint64(0x00FF00FF00FF00FF)
    x = (x | (x << np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    letters = ((x + np.uint64(0x0606060606060606)) >> np.uint64(4)) & np.uint64(0x0101010101010101)
    x += np.uint64(0x3030303030303030)
    x += letters * np.uint64(0x27)
    return x.byteswap()


def _hex_bytes(values: U64) -> U8:
    """``(n, 16)`` lower-case hex characters of 64-bit values, most significant first."""
    words = np.empty((values.size, 2), dtype=np.uint64)
    words[:, 0] = _hex8(values >> np.uint64(32))
    words[:, 1] = _hex8(values & np.uint64(0xFFFFFFFF))
    return words.view(np.uint8).reshape(-1, 16)


def hex_strings(prefix: str, keys: U64, key: int) -> pa.StringArray:
    """``prefix`` + 16 hex digits of the hashed keys, e.g. ``ses_3f9c...``."""
    return _strings(_with_prefix(prefix, _hex_bytes(mix64(keys, key))))


def uuid_strings(keys: U64, key: int) -> pa.StringArray:
    """Canonical lower-case version-4 UUIDs (8-4-4-4-12) derived from the keys.

    The low half is a bijection of the key except for the two variant bits and
    the high half is an independent hash, so two keys share a UUID with
    probability about 2**-122.
    """
    high = mix64(keys, key ^ 0x5851F42D4C957F2D)
    high &= np.uint64(0xFFFFFFFFFFFF0FFF)
    high |= np.uint64(0x0000000000004000)
    low = mix64(keys, key)
    low &= np.uint64(0x3FFFFFFFFFFFFFFF)
    low |= np.uint64(0x8000000000000000)
    hexes = np.concatenate([_hex_bytes(high), _hex_bytes(low)], axis=1)
    out = np.full((keys.size, 36), _DASH, dtype=np.uint8)
    out[:, 0:8] = hexes[:, 0:8]
    out[:, 9:13] = hexes[:, 8:12]
    out[:, 14:18] = hexes[:, 12:16]
    out[:, 19:23] = hexes[:, 16:20]
    out[:, 24:36] = hexes[:, 20:32]
    return _strings(out)


def _digits(values: U64, alphabet: U8, width: int) -> U8:
    """The last ``width`` digits of the values in the alphabet's base."""
    base = np.uint64(alphabet.size)
    out = np.empty((values.size, width), dtype=np.uint8)
    rest = values.copy()
    for position in range(width - 1, -1, -1):
        out[:, position] = alphabet[(rest % base).astype(np.intp)]
        rest //= base
    return out


def base62_strings(prefix: str, keys: U64, key: int, width: int) -> pa.StringArray:
    """``prefix`` + ``width`` base-62 characters (Stripe- and Plaid-style ids).

    Every ten characters draw on a fresh hash, because 62**11 exceeds 2**64.
    """
    body = [
        _digits(mix64(keys, (key + _PART * part) % 2**64), _BASE62, min(10, width - 10 * part))
        for part in range(-(-width // 10))
    ]
    return _strings(_with_prefix(prefix, np.concatenate(body, axis=1)))


def digit_strings(prefix: str, keys: U64, key: int, width: int) -> pa.StringArray:
    """``prefix`` + ``width`` decimal digits, the first never zero."""
    body = _digits(mix64(keys, key), np.frombuffer(b"0123456789", dtype=np.uint8), width)
    body[:, 0] = np.frombuffer(b"123456789", dtype=np.uint8)[
        (mix64(keys, key ^ 0x9E3779B97F4A7C15) % np.uint64(9)).astype(np.intp)
    ]
    return _strings(_with_prefix(prefix, body))
