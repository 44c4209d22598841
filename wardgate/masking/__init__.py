"""Masking: find sensitive values in result bytes and mask them. Pure: no I/O, no store, no asyncio.

``detectors`` says what sensitive values look like (one combined regex per :class:`Scanner`, validators for the
checksums); ``maskers`` says what they become in each :class:`Style`. docs/masking.md describes both.
"""

from .detectors import BUILTIN_DETECTORS, Detector, Match, Scanner, custom
from .maskers import Style, full_token, hash_token, mask, mask_matches, mask_text

__all__ = [
    "BUILTIN_DETECTORS",
    "Detector",
    "Match",
    "Scanner",
    "Style",
    "custom",
    "full_token",
    "hash_token",
    "mask",
    "mask_matches",
    "mask_text",
]
