"""Compare two generated texts (tables, csv, json, markdown) number by number, at a stated tolerance.

A leaderboard is regenerated from committed records and compared with the committed tables to tell
whether they are stale. The records are the same bytes everywhere, but the arithmetic on them is not:
numpy sums in an order that depends on the CPU's vector width, so a sum of tiny probabilities can
come out ``2.23073e-11`` on one machine and ``2.23075e-11`` on another. Such a difference says nothing
about the records, so it must not make a table stale; a change a reader could see must.

The rule: the texts must be equal once every number in them is taken out, and each pair of numbers
must agree to ``RELATIVE`` (1e-4) of the larger, or to ``ULPS`` (2) units in the last digit either text
printed (``0.123`` against ``0.124`` is a rounding boundary crossed by last-bit noise; ``0.123``
against ``0.126`` is a change). Every leaderboard prints at most three decimals for a reader and six
significant digits in its csv and json, so a change that matters to anyone moves a number by far more.
"""

from __future__ import annotations

import math
import re

RELATIVE = 1e-4
ULPS = 2

# a number as the tables print it: sign, digits, a fraction, an exponent (not part of a word: `e2`, `s0`)
NUMBER = re.compile(r"(?<![\w.])[-+−]?(?:\d+(?:,\d{3})*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?(?![\w.])")


def _value(token: str) -> float:
    return float(token.replace("−", "-").replace(",", ""))


def _last_digit(token: str) -> float:
    """The value of one unit in the last digit the token printed (``0.123`` -> 1e-3, ``2.2e-11`` -> 1e-12)."""
    mantissa, _, exponent = token.replace("−", "-").lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (int(exponent or 0) - decimals)


def numbers_close(a: str, b: str) -> bool:
    if a == b:
        return True
    x, y = _value(a), _value(b)
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    allowed = max(RELATIVE * max(abs(x), abs(y)), ULPS * max(_last_digit(a), _last_digit(b)))
    return abs(x - y) <= allowed


def same_up_to_rounding(committed: str, regenerated: str) -> bool:
    """True when the texts differ at most by numbers that agree within the tolerance above."""
    if committed == regenerated:
        return True
    if NUMBER.sub("#", committed) != NUMBER.sub("#", regenerated):
        return False
    return all(numbers_close(a, b) for a, b in zip(NUMBER.findall(committed), NUMBER.findall(regenerated)))
