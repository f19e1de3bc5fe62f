"""Judge a probed image against one provider's input rules.

Pure functions over records: nothing here reads a file. Every problem has a stable code
(listed in :data:`PROBLEM_CODES`) and a sentence a user understands.
"""

from __future__ import annotations

import dataclasses
import functools
from fractions import Fraction
from types import MappingProxyType
from typing import Mapping

from .models import Constraints, Problem, ProbedImage, is_valid  # noqa: F401  (is_valid: this module's API too)
from .probe import format_label

#: Every problem code, file-intrinsic ones first, with a short label for filters and docs.
PROBLEM_CODES: Mapping[str, str] = MappingProxyType(
    {
        "empty": "Empty file",
        "unreadable": "Cannot be read",
        "not_an_image": "Not an image",
        "corrupt": "Damaged",
        "truncated": "Cut short",
        "decompression_bomb": "Too many pixels",
        "extension_mismatch": "Name does not match content",
        "unsupported_format": "Format not accepted",
        "too_large": "File too large",
        "too_small": "Too small",
        "too_wide": "Too wide",
        "too_tall": "Too tall",
        "animated": "Animated (first frame used)",
    }
)

#: The rules ``kling-preflight fix`` can repair in a copy (core/fix.py). The format rule only
#: when this Pillow can decode the format (its pixel size is then known); a photo too small
#: only with ``--upscale``, which the fix says when it is not given.
FIXABLE_CODES: frozenset[str] = frozenset({"unsupported_format", "too_large", "too_small", "too_wide", "too_tall"})

_MB = 1024 * 1024


def validate(image: ProbedImage, constraints: Constraints) -> tuple[Problem, ...]:
    """List everything that stops ``image`` being sent to a provider with ``constraints``.

    A file that is already unusable by itself (empty, unreadable, damaged...) gets only
    its own problems: measuring a broken file against the rules would add noise. Rules
    that need the pixel size are skipped when the size is unknown (e.g. HEIC).

    :param image: the probed file.
    :param constraints: the provider's input rules.
    :returns: the image's own problems, then the rules it breaks, in a stable order.
    """
    if not is_valid(image.problems):
        return image.problems
    broken: list[Problem] = []
    if image.format is not None and image.format not in constraints.formats:
        allowed = _or_list(sorted(format_label(f) for f in constraints.formats))
        message = f"{format_label(image.format)} is not supported: use {allowed}."
        broken.append(Problem("unsupported_format", message))
    if image.size > constraints.max_bytes:
        broken.append(Problem("too_large", _too_large_message(image.size, constraints.max_bytes)))
    if image.width is not None and image.height is not None:
        broken.extend(_dimension_problems(image.width, image.height, constraints))
    # A fix needs the pixels: a format this Pillow cannot read (its size unknown) has none.
    decodable = image.width is not None
    return image.problems + tuple(
        dataclasses.replace(p, fixable=True) if decodable and p.code in FIXABLE_CODES else p for p in broken
    )


def _dimension_problems(width: int, height: int, constraints: Constraints) -> list[Problem]:
    found = []
    size = f"{width:,} × {height:,}"
    if min(width, height) < constraints.min_side:
        found.append(Problem("too_small", f"{size} is under {constraints.min_side:,} px on its shorter side."))
    # Exact integer arithmetic: width / height > p / q  <=>  width * q > height * p.
    p, q = constraints.max_ratio.numerator, constraints.max_ratio.denominator
    wide, tall = _ratio_words(constraints.max_ratio)
    if width * q > height * p:
        found.append(Problem("too_wide", f"{size} is wider than {wide}."))
    elif height * q > width * p:
        found.append(Problem("too_tall", f"{size} is taller than {tall}."))
    return found


def _or_list(words: list[str]) -> str:
    """'JPG', 'JPG or PNG', 'JPG, PNG or WebP'."""
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} or {words[-1]}"


@functools.lru_cache(maxsize=8)  # one per set of rules in practice; validate runs per image
def _ratio_words(ratio: Fraction) -> tuple[str, str]:
    """The wide and tall bounds in words: ('2.5:1', '1:2.5'), or ('16:9', '9:16')."""
    decimal = f"{float(ratio):.2f}".rstrip("0").rstrip(".")
    if Fraction(decimal) == ratio:
        return f"{decimal}:1", f"1:{decimal}"
    return f"{ratio.numerator}:{ratio.denominator}", f"{ratio.denominator}:{ratio.numerator}"


def _too_large_message(size: int, limit: int) -> str:
    """'12.4 MB is over the 10 MB limit.', or exact bytes where rounding would hide it."""
    size_mb, limit_mb = round(size / _MB, 1), round(limit / _MB, 1)
    if limit >= _MB and size_mb > limit_mb:
        return f"{size_mb:.1f} MB is over the {limit_mb:g} MB limit."
    return f"{size:,} bytes is over the limit of {limit:,} bytes."
