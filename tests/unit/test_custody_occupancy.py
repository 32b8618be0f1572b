"""A storage point's occupancy kept stay by stay, in any order, against a sweep of all its stays
in time order (issue #19, item 8): the same hits, and the batches whose hit changed named."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hazwatch.streams.custody.occupancy import Occupancy, Stay, naive_hits

S = 1_000_000_000


def test_the_stay_that_takes_the_site_over_is_the_hit() -> None:
    room = Occupancy()
    assert room.update(Stay("A", 10 * S, 50 * S, 1600.0, "a"), "A", 3000.0) == set()
    assert room.update(Stay("B", 20 * S, 60 * S, 1600.0, "b"), "B", 3000.0) == {"B"}
    assert room.hits == {"B": 20 * S}
    # a late stay before both: now A is the one that crosses, B's arrival no longer does
    changed = room.update(Stay("C", 5 * S, 30 * S, 1500.0, "c"), "C", 3000.0)
    assert room.hits == {"A": 10 * S} and changed == {"A", "B"}
    # C left before A came: back as it was
    assert room.update(Stay("C", 5 * S, 8 * S, 1500.0, "c"), "C", 3000.0) == {"A", "B"}
    assert room.hits == {"B": 20 * S}


def test_leaving_is_counted_before_entering_at_the_same_time() -> None:
    room = Occupancy()
    room.update(Stay("A", 0, 10 * S, 2000.0, "a"), "A", 3000.0)
    assert room.update(Stay("B", 10 * S, None, 2000.0, "b"), "B", 3000.0) == set()
    assert room.hits == {}


def test_kilograms_add_up_exactly() -> None:
    # in floats 0.3 + 0.2 + 0.1 == 0.6 but 0.1 + 0.2 + 0.3 > 0.6: counted exactly, the same
    # three weights take a 0.6 kg site over its limit in whichever order they were stored
    for weights in ((0.3, 0.2, 0.1), (0.1, 0.2, 0.3)):
        room = Occupancy()
        for i, kg in enumerate(weights):
            room.update(Stay("ABC"[i], i * S, None, kg, "abc"[i]), "ABC"[i], 0.6)
        assert room.hits == {"C": 2 * S}


def test_a_new_limit_judges_every_stay_again() -> None:
    room = Occupancy()
    room.update(Stay("A", 0, None, 100.0, "a"), "A", 3000.0)
    room.update(Stay("B", S, None, 100.0, "b"), "B", 3000.0)
    assert room.update(Stay("B", S, None, 100.0, "b"), "B", 150.0) == {"B"}
    assert room.hits == {"B": S}
    assert room.update(Stay("B", S, None, 100.0, "b"), "B", float("inf")) == {"B"}
    assert room.hits == {}


times = st.integers(min_value=0, max_value=40)
stays = st.builds(
    lambda batch, in_s, length, kg: (batch, in_s, length, kg),
    st.sampled_from("ABCDEFGHIJ"),
    times,
    st.one_of(st.none(), st.integers(min_value=-2, max_value=20)),
    st.sampled_from([0.0, 0.1, 0.2, 0.5, 1.0, 1.5, 2.5, 3.0]),
)


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(st.one_of(stays, st.sampled_from("ABCDEFGHIJ")), max_size=40))
def test_occupancy_matches_a_sweep_of_all_stays(
    steps: list[tuple[str, int, int | None, float] | str],
) -> None:
    room = Occupancy()
    held: dict[str, Stay] = {}
    for step in steps:
        if isinstance(step, str):  # the batch has no stay now
            batch, stay = step, None
            held.pop(batch, None)
        else:
            batch, in_s, length, kg = step
            out = None if length is None else (in_s + length) * S
            stay = held[batch] = Stay(batch, in_s * S, out, kg, batch.lower())
        before = naive_hits(list(room.stays.values()), 3.0)
        changed = room.update(stay, batch, 3.0)
        want = naive_hits(list(held.values()), 3.0)
        assert room.hits == want
        assert changed == {b for b in before.keys() | want.keys() if before.get(b) != want.get(b)}
