"""
Image references as the engine lists them (``csvc.compute.images.familiar``)
and public-image patterns, which are matched against them.
"""

import pytest

from csvc.compute.images import PublicImages, familiar


@pytest.mark.parametrize("reference, name", [
    ("busybox", "busybox:latest"),
    (" alpine ", "alpine:latest"),
    ("docker.io/library/busybox", "busybox:latest"),
    ("index.docker.io/library/busybox:1", "busybox:1"),
    ("registry-1.docker.io/u/r@sha256:ab", "u/r@sha256:ab"),
    ("library/a/b", "library/a/b:latest"),
    ("host:5000/a/b", "host:5000/a/b:latest"),
    ("host:5000/a/b:2", "host:5000/a/b:2"),
])
def test_familiar(reference, name):
    assert familiar(reference) == name


def test_patterns_drop_docker_hubs_names_as_references_do():
    public = PublicImages.parse("docker.io/library/busybox, docker.io/team/*, quay.io/x")
    assert public.patterns == ("busybox:latest", "team/*", "quay.io/x:latest")
    assert public.matches(familiar("index.docker.io/team/app:1"))
    assert not public.matches("teamx/app:1")


def test_a_project_has_at_most_two_pulls_running_and_others_are_not_held():
    from csvc.compute.images import ProjectImages, TooManyPulls

    images = ProjectImages(store=None, hub=None)
    first, second = images.admit_pull("p1"), images.admit_pull("p1")
    with pytest.raises(TooManyPulls, match="2 image pulls running"):
        images.admit_pull("p1")
    images.admit_pull("p2")()  # another project is not held back
    first()
    third = images.admit_pull("p1")  # one ended: room again
    second(), third()
    assert images._pulls == {}
