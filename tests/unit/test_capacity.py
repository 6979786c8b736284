"""
The arithmetic of an instance's room (``csvc.store.capacity``): containers
against capacity, the live containers' memory and cpu against its size.
"""

from hypothesis import given, strategies as st

from csvc.store.capacity import ContainerTooLarge, empty_usage, never_fits, shortfall, usage_of, wanted

SIZE = {"containers": 10, "memory": 4096, "cpus": 2.0}


def used(containers=0, memory=0, cpus=0.0):
    return dict(empty_usage(), containers=containers, memory=memory, cpus=cpus)


def test_a_container_fits_up_to_the_last_mib_and_core():
    assert shortfall(SIZE, used(1, 3072, 1.5), wanted({"memory": 1024, "cpu": 0.5})) is None
    short = shortfall(SIZE, used(1, 3072, 1.5), wanted({"memory": 1025}))
    assert short == "memory: 3072 of 4096 MiB in use, 1025 asked"
    short = shortfall(SIZE, used(1, 0, 1.5), wanted({"cpu": 0.6}))
    assert short == "cpu: 1.5 of 2 cores in use, 0.6 asked"
    assert shortfall(SIZE, used(10), wanted({})) == "containers: 10 of 10 placed"


def test_cores_summed_as_floats_still_fill_an_instance_exactly():
    # 0.1 * 20 is 2.0000000000000004 in floats: the twentieth still fits.
    total = 0.0
    for _ in range(19):
        total += 0.1
    assert shortfall(SIZE | {"containers": 100}, used(19, 0, total), wanted({"cpu": 0.1})) is None


def test_a_container_without_limits_counts_nothing_but_a_slot():
    full = used(3, 4096, 2.0)
    assert shortfall(SIZE, full, wanted({})) is None
    assert shortfall(SIZE, full, wanted({"memory": None, "cpu": None})) is None


def test_an_instance_of_unknown_size_limits_only_the_count():
    unknown = {"containers": 2, "memory": None, "cpus": None}
    assert shortfall(unknown, used(1, 10**6, 500.0), wanted({"memory": 10**6, "cpu": 64})) is None
    assert shortfall(unknown, used(2), wanted({})) is not None


def test_too_large_names_the_resource_and_the_largest_size():
    small, large = dict(SIZE, memory=1024), dict(SIZE, memory=2048)
    error = never_fits([small, large], wanted({"memory": 4096}), "any active instance")
    assert isinstance(error, ContainerTooLarge)
    assert error.resource == "memory"
    assert str(error) == "the container asks for 4096 MiB of memory, more than any active instance has (2048 MiB)"
    error = never_fits([SIZE], wanted({"cpu": 2.5}), "instance local-1")
    assert str(error) == "the container asks for 2.5 cores of cpu, more than instance local-1 has (2 cores)"
    assert never_fits([small, large], wanted({"memory": 2048}), "x") is None
    # One instance not limited in memory could take anything.
    assert never_fits([small, dict(SIZE, memory=None)], wanted({"memory": 10**6}), "x") is None


def test_usage_counts_every_container_but_only_the_live_ones_resources():
    rows = [
        {"status": "running", "memory": 512, "cpu": 0.5},
        {"status": "created", "memory": None, "cpu": None},
        {"status": "exited", "memory": 1024, "cpu": 1.0},
        {"status": "error", "memory": 2048, "cpu": 1.0},
    ]
    assert usage_of(rows) == {"containers": 4, "live": 2, "memory": 512, "cpus": 0.5}


requests = st.lists(
    st.fixed_dictionaries(
        {"memory": st.one_of(st.none(), st.integers(6, 5000)), "cpu": st.one_of(st.none(), st.sampled_from(
            [0.1, 0.25, 0.5, 1.0, 1.5, 3.0]))}
    ),
    max_size=60,
)


@given(requests, st.integers(1, 8), st.integers(64, 8192), st.sampled_from([0.5, 1.0, 2.0, 4.0]))
def test_fill_first_never_overfills_and_refuses_only_what_cannot_fit(containers, capacity, memory, cpus):
    sizes = [{"containers": capacity, "memory": memory, "cpus": cpus} for _ in range(3)]
    usage = [empty_usage() for _ in sizes]
    for values in containers:
        want = wanted(values)
        for size, use in zip(sizes, usage):
            if shortfall(size, use, want) is None:
                for resource in ("containers", "memory", "cpus"):
                    use[resource] += want[resource]
                break
        else:
            too_large = never_fits(sizes, want, "any instance")
            fits_empty = shortfall(sizes[0], empty_usage(), want) is None
            # Refused for good exactly when it would not fit even alone.
            assert (too_large is None) == fits_empty
    for size, use in zip(sizes, usage):
        assert use["containers"] <= size["containers"]
        assert use["memory"] <= size["memory"]
        assert use["cpus"] <= size["cpus"] + 1e-6
