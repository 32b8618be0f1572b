"""What one storage point holds over time, and which stays took it over its limit
(storage_over_capacity), kept so that a stay arriving in any order costs O(log n) in the stays.

Never do I/O or read a clock here, and never depend on arrival order: the hits are those of a
sweep of all stays in time order (`naive_hits`), whatever order the stays were recorded in.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

# kilograms are counted exactly, as integers of 2⁻⁶⁴ kg (a float's binary fraction, truncated
# below 2⁻⁶⁴ kg): a hit then cannot depend on the order the kilograms were added in
_SCALE_BITS = 64

# a mark in time order: (time, 0 leaving | 1 entering, batch). At one time, what leaves is
# counted before what enters; what enters at one time is counted in batch order.
_Key = tuple[int, int, str]


@dataclass(frozen=True, slots=True)
class Stay:
    batch: str
    in_ns: int
    out_ns: int | None  # None: still there
    kg: float
    event_id: str  # the stored event that began it


def units(kg: float) -> int:
    """`kg` in 2⁻⁶⁴ kg, exactly for any weight a scale gives (rounded down below 2⁻⁶⁴)."""
    numerator, denominator = kg.as_integer_ratio()
    return (numerator << _SCALE_BITS) // denominator


def _marks(stay: Stay | None) -> list[tuple[_Key, int]]:
    if stay is None:
        return []
    kg = units(stay.kg)
    marks = [((stay.in_ns, 1, stay.batch), kg)]
    if stay.out_ns is not None:
        marks.append(((stay.out_ns, 0, stay.batch), -kg))
    return marks


def naive_hits(stays: list[Stay], limit_kg: float) -> dict[str, int]:
    """batch → the time its storing took the site over `limit_kg`: every stay swept in time
    order (the definition `Occupancy` keeps; O(n log n) a call, for tests)."""
    if not math.isfinite(limit_kg):
        return {}
    limit = units(limit_kg)
    marks = sorted(m for stay in stays for m in _marks(stay))
    hits: dict[str, int] = {}
    held = 0
    for (ts, entering, batch), kg in marks:
        if entering and held <= limit < held + kg:
            hits[batch] = ts
        held += kg
    return hits


class _Node:
    """A mark in a treap ordered by key, with its subtree's sum and highest and lowest
    running sums (over the subtree's marks in order)."""

    __slots__ = ("high", "key", "kg", "left", "low", "priority", "right", "total")

    def __init__(self, key: _Key, kg: int, priority: float) -> None:
        self.key = key
        self.kg = kg
        self.priority = priority
        self.left: _Node | None = None
        self.right: _Node | None = None
        self.total = self.high = self.low = kg

    def pull(self) -> None:
        left, right = self.left, self.right
        if left is None:
            total = high = low = self.kg
        else:
            total = left.total + self.kg
            high = left.high if left.high > total else total
            low = left.low if left.low < total else total
        if right is not None:
            if total + right.high > high:
                high = total + right.high
            if total + right.low < low:
                low = total + right.low
            total += right.total
        self.total, self.high, self.low = total, high, low


def _split(node: _Node | None, key: _Key) -> tuple[_Node | None, _Node | None]:
    """(marks before `key`, the rest)."""
    if node is None:
        return None, None
    if node.key < key:
        node.right, rest = _split(node.right, key)
        node.pull()
        return node, rest
    before, node.left = _split(node.left, key)
    node.pull()
    return before, node


def _merge(a: _Node | None, b: _Node | None) -> _Node | None:
    """Join two treaps, every key of `a` before every key of `b`."""
    if a is None:
        return b
    if b is None:
        return a
    if a.priority > b.priority:
        a.right = _merge(a.right, b)
        a.pull()
        return a
    b.left = _merge(a, b.left)
    b.pull()
    return b


def _insert(node: _Node | None, new: _Node) -> _Node:
    """The treap with `new` in it: down to where its priority puts it, the subtree there
    split around it."""
    if node is None:
        return new
    if new.priority > node.priority:
        new.left, new.right = _split(node, new.key)
        new.pull()
        return new
    if new.key < node.key:
        node.left = _insert(node.left, new)
    else:
        node.right = _insert(node.right, new)
    node.pull()
    return node


def _remove(node: _Node | None, key: _Key) -> _Node | None:
    if node is None:
        return None
    if node.key == key:
        return _merge(node.left, node.right)
    if key < node.key:
        node.left = _remove(node.left, key)
    else:
        node.right = _remove(node.right, key)
    node.pull()
    return node


def _crossings(
    node: _Node | None, held: int, above: bool, limit: int, found: dict[str, int]
) -> bool:
    """The entering marks of `node` at which the running sum (from `held`) goes from at most
    `limit` to over it, into `found`; whether it is over `limit` after the subtree. Subtrees
    that stay on one side are not entered: O((crossings + 1) · log n)."""
    if node is None:
        return above
    if above:
        if held + node.low > limit:
            return True
    elif held + node.high <= limit:
        return False
    left = node.left
    above = _crossings(left, held, above, limit, found)
    at = held + (left.total if left is not None else 0) + node.kg
    if not above and at > limit and node.key[1]:
        found[node.key[2]] = node.key[0]
    return _crossings(node.right, at, at > limit, limit, found)


def _scan(
    node: _Node | None,
    held: int,
    above: bool,
    span: tuple[_Key | None, _Key | None, int],
    found: dict[str, int],
    after_first: bool = False,
    before_last: bool = False,
) -> tuple[int, bool]:
    """`_crossings` of the marks from `span`'s first key to its last (None: from the start,
    to the end) under its limit, without changing the treap: (running sum, over the limit)
    after the subtree. `after_first`/`before_last`: all of the subtree is known to be."""
    if node is None:
        return held, above
    first, last, limit = span
    after_first = after_first or first is None
    before_last = before_last or last is None
    if after_first and before_last:
        return held + node.total, _crossings(node, held, above, limit, found)
    key, left = node.key, node.left
    if not after_first and key < first:  # type: ignore[operator]
        held += (left.total if left is not None else 0) + node.kg
        return _scan(node.right, held, held > limit, span, found, False, before_last)
    if not before_last and key > last:  # type: ignore[operator]
        return _scan(left, held, above, span, found, after_first, False)
    held, above = _scan(left, held, above, span, found, after_first, True)
    held += node.kg
    if not above and held > limit and key[1]:
        found[key[2]] = key[0]
    return _scan(node.right, held, held > limit, span, found, True, before_last)


class Occupancy:
    """Every stay at one storage point, its marks in a treap, and the stays whose storing took
    it over its limit (`hits`: batch → that time), as `naive_hits` would find them."""

    def __init__(self) -> None:
        self.stays: dict[str, Stay] = {}
        self.hits: dict[str, int] = {}
        self._root: _Node | None = None
        self._limit_kg = math.inf
        self._priorities = random.Random(0)  # the treap's shape only, never its answers

    def update(self, stay: Stay | None, batch: str, limit_kg: float) -> set[str]:
        """Record a batch's stay (None: it has none) under the site's limit now; returns the
        batches whose hit changed."""
        if not math.isfinite(limit_kg):
            limit_kg = math.inf  # no limit
        old = self.stays.get(batch)
        if stay is None:
            self.stays.pop(batch, None)
        else:
            self.stays[batch] = stay
        gone, made = _marks(old), _marks(stay)
        if limit_kg != self._limit_kg:  # every stay judged again under the new limit
            self._limit_kg = limit_kg
            self._move(gone, made)
            hits = self._hits_between(None, None)
            changed = {b for b in hits.keys() | self.hits.keys() if hits.get(b) != self.hits.get(b)}
            self.hits = hits
            return changed
        if gone == made:
            return set()
        keys = [key for key, _ in gone + made]
        ends = any(s is not None and s.out_ns is None for s in (old, stay))
        first, last = min(keys), None if ends else max(keys)
        # only the running sums from its first mark to its last change: the hits among them
        before = self._hits_between(first, last)
        self._move(gone, made)
        after = self._hits_between(first, last)
        for hit in before:
            del self.hits[hit]
        self.hits.update(after)
        return {b for b in before.keys() | after.keys() if before.get(b) != after.get(b)}

    def _move(self, gone: list[tuple[_Key, int]], made: list[tuple[_Key, int]]) -> None:
        for mark in gone:
            if mark not in made:
                self._root = _remove(self._root, mark[0])
        for mark in made:
            if mark not in gone:
                self._root = _insert(self._root, _Node(*mark, self._priorities.random()))

    def _hits_between(self, first: _Key | None, last: _Key | None) -> dict[str, int]:
        """The hits among the marks from `first` to `last` (None: from the start, to the end)."""
        found: dict[str, int] = {}
        root = self._root
        if root is None or not math.isfinite(self._limit_kg):
            return found
        limit = units(self._limit_kg)
        if root.high > limit:  # (never over the limit: no hit anywhere, the common case)
            _scan(root, 0, False, (first, last, limit), found)
        return found
