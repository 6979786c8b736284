"""
``NewestPerProject`` (``csvc.agents.bounds``): at most ``per_project`` keys
of a project and ``total`` in all, the oldest dropped, and beyond the total
only from the project holding the most.
"""

from hypothesis import given, settings, strategies as st

from csvc.agents.bounds import NewestPerProject


@settings(max_examples=300, deadline=None)
@given(
    per_project=st.integers(1, 5),
    total=st.integers(1, 8),
    adds=st.lists(st.tuples(st.integers(0, 12), st.sampled_from(["a", "b", "c", None])), max_size=60),
)
def test_bounds_hold_and_the_oldest_of_the_fullest_go(per_project, total, adds):
    bound = NewestPerProject()
    model = []  # (key, project), oldest first
    for key, project in adds:
        model = [(k, p) for k, p in model if k != key]
        before = {p: sum(1 for _, q in model if q == p) for _, p in model}
        model.append((key, project))
        dropped = bound.add(key, project, per_project, total)
        for old in dropped:
            (old_project,) = [p for k, p in model if k == old]
            mine = [k for k, p in model if p == old_project]
            # The oldest of its project goes.
            assert mine[0] == old
            model = [(k, p) for k, p in model if k != old]
            if old_project != project:
                # Another's go only beyond the total, from a project that
                # held at least as many as the one adding.
                assert before[old_project] >= sum(1 for _, q in model if q == project)
        counts = {}
        for _, p in model:
            counts[p] = counts.get(p, 0) + 1
        assert all(n <= per_project for n in counts.values())
        assert len(bound) == len(model) <= total
        assert all(k in bound for k, _ in model)


def test_a_project_adding_drops_only_its_own_on_a_tie():
    bound = NewestPerProject()
    assert bound.add(1, "a", 2, 4) == []
    assert bound.add(2, "a", 2, 4) == []
    assert bound.add(3, "b", 2, 4) == []
    assert bound.add(4, "b", 2, 4) == []
    # Four in all: a fifth of "b"'s drops "b"'s own oldest, not "a"'s.
    assert bound.add(5, "b", 3, 4) == [3]
    assert bound.add(6, "c", 3, 4) == [1]  # "a" and "b" tie at two: the first found
