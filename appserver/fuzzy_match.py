"""Fuzzy matching of a query against file paths, scored as the Codex 0.171 reference
scores them (its `codex-file-search` crate uses the `nucleo` matcher, fzf's algorithm,
configured for paths), so results come in the reference's order with its scores.

The score of one atom (a whitespace-separated word of the query) is the best alignment
of its characters, in order, in the path (a Smith-Waterman-like dynamic programme):
each matched character scores 16; a character starting a word scores a bonus (9 after
`/` or at the start, 8 after another non-word character or space, 7 for camelCase or a
digit after a non-digit), the first character of the atom twice its bonus; a run of
consecutive matches keeps the bonus of the run's start (at least 4); a gap costs 3 plus
1 per further skipped character. Matching ignores case and accents (`é` matches `e`).
A query's score is the sum of its atoms'; `indices` are the matched character positions
(not bytes) in the path, ascending; among equal alignments the rightmost wins.

No PyPI package reproduces nucleo's scoring: rapidfuzz and the fzy ports (pfzy) give
other scores (pfzy: floats, infinite for a whole-string match) and frizbee needs Python
3.12; hence this small implementation of the published algorithm.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

__all__ = ["Atom", "atoms", "fold", "match_atom"]

SCORE_MATCH = 16
PENALTY_GAP_START = 3
PENALTY_GAP_EXTENSION = 1
BONUS_BOUNDARY = 8
BONUS_BOUNDARY_DELIMITER = 9  # after `/` (and at the start of a path)
BONUS_NON_WORD = 8
BONUS_CAMEL123 = BONUS_BOUNDARY - PENALTY_GAP_EXTENSION
BONUS_CONSECUTIVE = PENALTY_GAP_START + PENALTY_GAP_EXTENSION
BONUS_FIRST_CHAR_MULTIPLIER = 2
_NONE = -(1 << 30)

# Character classes, ordered as nucleo's: the word classes come after DELIMITER.
WHITESPACE, NON_WORD, DELIMITER, LOWER, UPPER, LETTER, NUMBER = range(7)


@lru_cache(maxsize=4096)
def _class(c: str) -> int:
    if c == "/":
        return DELIMITER
    if c.islower():
        return LOWER
    if c.isupper():
        return UPPER
    if c.isnumeric():
        return NUMBER
    if c.isalpha():
        return LETTER
    if c.isspace():
        return WHITESPACE
    return NON_WORD


def _bonus_for(prev: int, cur: int) -> int:
    if cur > DELIMITER:
        if prev == DELIMITER:
            return BONUS_BOUNDARY_DELIMITER
        if prev in (WHITESPACE, NON_WORD):
            return BONUS_BOUNDARY
    if (prev == LOWER and cur == UPPER) or (prev != NUMBER and cur == NUMBER):
        return BONUS_CAMEL123
    if cur in (WHITESPACE, NON_WORD):
        return BONUS_NON_WORD
    return 0


@lru_cache(maxsize=4096)
def _fold_char(c: str) -> str:
    if c.isascii():
        return c.lower()
    base = unicodedata.normalize("NFD", c)[0]
    folded = (base if base.isascii() else c).lower()
    return folded if len(folded) == 1 else c  # one character per character


def fold(text: str) -> str:
    """``text`` lowercased, with accents dropped (one character per character)."""
    return "".join(_fold_char(c) for c in text)


def bonuses(text: str) -> list[int]:
    out, prev = [], DELIMITER
    for c in text:
        cur = _class(c)
        out.append(_bonus_for(prev, cur))
        prev = cur
    return out


Atom = str  # a folded atom of the query


def atoms(query: str) -> list[Atom]:
    """The query's atoms: its whitespace-separated words, folded."""
    return [fold(word) for word in query.split()]


def _span(atom: Atom, text: str) -> tuple[list[int], list[int]] | None:
    """For each atom character, the leftmost and rightmost positions any alignment can
    use; None if the atom is not a subsequence of ``text``."""
    first, at = [], 0
    for c in atom:
        at = text.find(c, at)
        if at < 0:
            return None
        first.append(at)
        at += 1
    last, at = [0] * len(atom), len(text)
    for i in range(len(atom) - 1, -1, -1):
        at = text.rfind(atom[i], 0, at)
        last[i] = at
    return first, last


def match_atom(atom: Atom, text: str, bonus: list[int]) -> tuple[int, list[int]] | None:
    """(score, matched positions) of the best alignment of ``atom`` in the folded
    ``text`` whose bonuses are ``bonus``; None if it does not match."""
    span = _span(atom, text)
    if span is None:
        return None
    first, last = span
    n, m = len(atom), len(text)
    scores: list[list[int]] = []  # per atom char: score of an alignment ending at j
    chunk: list[list[int]] = []  # the bonus of the run of consecutive matches ending at j
    back: list[list[int]] = []  # the position the previous atom char used
    row, run, came = [_NONE] * m, [0] * m, [-1] * m
    c0 = atom[0]
    for j in range(first[0], last[0] + 1):
        if text[j] == c0:
            row[j] = SCORE_MATCH + bonus[j] * BONUS_FIRST_CHAR_MULTIPLIER
            run[j] = bonus[j]
    scores.append(row)
    chunk.append(run)
    back.append(came)
    for i in range(1, n):
        prev_row, prev_run = row, run
        row, run, came = [_NONE] * m, [0] * m, [-1] * m
        c = atom[i]
        gap, gap_from = _NONE, -1  # best prev_row[k] - gap penalty, k <= j - 2
        for j in range(first[i - 1] + 1, last[i] + 1):
            if gap > _NONE:
                gap -= PENALTY_GAP_EXTENSION
            k = j - 2
            if k >= 0 and prev_row[k] > _NONE and prev_row[k] - PENALTY_GAP_START >= gap:
                gap, gap_from = prev_row[k] - PENALTY_GAP_START, k
            if text[j] != c:
                continue
            best, frm, carried = _NONE, -1, bonus[j]
            if prev_row[j - 1] > _NONE:
                carried = prev_run[j - 1]
                if bonus[j] >= BONUS_BOUNDARY and bonus[j] > carried:
                    carried = bonus[j]
                best = prev_row[j - 1] + SCORE_MATCH + max(carried, bonus[j], BONUS_CONSECUTIVE)
                frm = j - 1
            if gap > _NONE and gap + SCORE_MATCH + bonus[j] > best:
                best, frm, carried = gap + SCORE_MATCH + bonus[j], gap_from, bonus[j]
            if frm >= 0:
                row[j], run[j], came[j] = best, carried, frm
        scores.append(row)
        chunk.append(run)
        back.append(came)
    end, score = -1, _NONE
    for j in range(first[-1], last[-1] + 1):
        if row[j] > _NONE and row[j] >= score:
            end, score = j, row[j]
    if end < 0:
        return None
    positions = [end]
    for i in range(n - 1, 0, -1):
        end = back[i][end]
        positions.append(end)
    positions.reverse()
    return score, positions
