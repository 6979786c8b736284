"""
Instances from the local provider, for real: capacity 2, a grace period of
2 s.  Five containers land on three instances in order (the shared first one,
then two created for the project); a killed agent's instance is marked down
and its containers ``error``; the created instances go once empty.

The local provider restarts a dead agent (``ProcessMonitor``), and a restarted
agent registers again within a second or two, sooner than three missed
heartbeats.  So the service runs with ``--agent-restart-delay 120``: the
killed agent stays dead for the rest of the test, as a crashed host would.
"""

import os
import signal
import subprocess
import time

from tests.integration.conftest import IMAGE, ControlPlane, remove_project_containers

PROJECT = "instances-alpha"


def eventually(check, timeout=30, what="the condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout}s")
        time.sleep(0.2)


def agent_pid(plane, name):
    out = subprocess.run(
        ["pgrep", "-f", f"csvc-agent --connect tcp:127.0.0.1:{plane.agents_port} .*--hostname {name}$"],
        capture_output=True,
        text=True,
    ).stdout.split()
    assert len(out) == 1, out
    return int(out[0])


def test_fill_first_new_instances_down_and_reaped(tmp_path):
    plane = ControlPlane(
        tmp_path, instances=1, capacity=2, extra_args=["--instance-grace", "2", "--agent-restart-delay", "120"]
    )
    admin = plane.client("admin-project", admin=True)
    alpha = plane.client(PROJECT)
    plane.start()
    try:
        plane.wait_active(admin)
        views = [alpha.create(image=IMAGE, command=["sleep", "300"], run=True) for _ in range(5)]
        listed = admin.get("/v1/instances").json()["instances"]
        assert len(listed) == 3, listed
        shared, first, second = listed
        assert shared["shared"] is True and shared["project_id"] is None
        for created in (first, second):
            assert created["project_id"] == PROJECT and created["shared"] is False
            assert created["status"] == "active"
        assert [v["instance"] for v in views] == [shared["uuid"]] * 2 + [first["uuid"]] * 2 + [second["uuid"]]
        shown = admin.get(f"/v1/instances/{first['uuid']}").json()
        assert sorted(c["uuid"] for c in shown["container_list"]) == sorted(v["uuid"] for v in views[2:4])
        for view in views:
            alpha.wait_status(view["uuid"], ("running",))

        # The agent of the second created instance dies for good.
        os.kill(agent_pid(plane, second["name"]), signal.SIGKILL)
        errored = eventually(
            lambda: (lambda c: c if c["status"] == "error" else None)(alpha.show(views[4]["uuid"])),
            what="the container of the killed instance turning error",
        )
        assert f"instance {second['name']} is down" in errored["status_reason"]
        state = admin.get(f"/v1/instances/{second['uuid']}").json()
        assert state["status"] == "down"
        # Nothing is placed there; asking for it is a 503 that names it.
        refused = alpha.post("/v1/containers", json={"image": IMAGE, "instance": second["uuid"]})
        assert refused.status_code == 503, refused.text
        assert second["name"] in refused.json()["error"]["message"]
        # The others are untouched.
        for view in views[:4]:
            assert alpha.show(view["uuid"])["status"] == "running"

        for view in views[:4]:
            response = alpha.delete(f"/v1/containers/{view['uuid']}", params={"force": "true"})
            assert response.status_code == 204, response.text
        # The dead instance's engine cannot be told: its container is left
        # deleting (not forgotten while the engine may still hold it), and
        # it keeps its instance from being reaped.
        response = alpha.delete(f"/v1/containers/{views[4]['uuid']}", params={"force": "true"})
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "deleting"
        assert f"instance {second['name']} is not connected" in response.json()["status_reason"]
        remaining = eventually(
            lambda: (lambda xs: xs if len(xs) == 2 else None)(admin.get("/v1/instances").json()["instances"]),
            timeout=30,
            what="the emptied instance being removed",
        )
        assert [i["uuid"] for i in remaining] == [shared["uuid"], second["uuid"]]
        # The operator removes the dead instance: its containers go with it.
        removed = admin.delete(f"/v1/instances/{second['uuid']}", params={"force": "true"})
        assert removed.status_code == 204, removed.text
        assert alpha.get(f"/v1/containers/{views[4]['uuid']}").status_code == 404
        assert [i["uuid"] for i in admin.get("/v1/instances").json()["instances"]] == [shared["uuid"]]
        # Their agents are gone; the shared instance's runs on.
        eventually(lambda: len(plane.agent_pids()) == 1, timeout=20, what="the removed agents exiting")
        assert admin.get(f"/v1/instances/{first['uuid']}").status_code == 404
    finally:
        plane.close()
        remove_project_containers(PROJECT)


def test_placement_counts_memory_and_cpu(tmp_path):
    """
    Local instances of 64 MiB and one core, ten containers each: two of 32
    MiB fill the first by memory, the third goes on a new instance, one
    without limits still fits beside them, and one of 128 MiB is refused
    (400 naming memory) without a new instance.
    """
    plane = ControlPlane(
        tmp_path, instances=1, capacity=10,
        # (containers created without a limit get none: no default memory)
        extra_args=["--instance-memory", "64", "--instance-cpus", "1", "--default-memory", "0"]
    )
    admin = plane.client("admin-project", admin=True)
    alpha = plane.client(PROJECT + "-size")
    plane.start()
    try:
        (shared,) = plane.wait_active(admin)
        assert (shared["capacity"], shared["memory"], shared["cpus"]) == (10, 64, 1.0)
        sleep = dict(image=IMAGE, command=["sleep", "300"], run=True)
        views = [alpha.create(memory=32, cpu=0.5, **sleep) for _ in range(2)]
        assert [v["instance"] for v in views] == [shared["uuid"]] * 2
        third = alpha.create(memory=32, **sleep)
        assert third["instance"] != shared["uuid"]
        unlimited = alpha.create(**sleep)
        assert unlimited["instance"] == shared["uuid"]
        refused = alpha.post("/v1/containers", json={"image": IMAGE, "memory": 128})
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["message"] == (
            "the container asks for 128 MiB of memory, more than an instance of provider local has (64 MiB)"
        )
        for view in views + [third, unlimited]:
            alpha.wait_status(view["uuid"], ("running",))
        listed = {i["uuid"]: i for i in admin.get("/v1/instances").json()["instances"]}
        assert len(listed) == 2
        assert listed[shared["uuid"]]["usage"] == {"containers": 3, "live": 3, "memory": 64, "cpus": 1.0}
        created = listed[third["instance"]]
        assert (created["memory"], created["cpus"], created["project_id"]) == (64, 1.0, PROJECT + "-size")
        assert created["usage"] == {"containers": 1, "live": 1, "memory": 32, "cpus": 0.0}
        for view in views + [third, unlimited]:
            assert alpha.delete(f"/v1/containers/{view['uuid']}", params={"force": "true"}).status_code == 204
    finally:
        plane.close()
        remove_project_containers(PROJECT + "-size")


def test_local_agents_in_their_own_network_namespaces(tmp_path):
    """
    ``--instance-netns``: each local agent runs in a namespace of its own,
    with its own address on the instance network, and dials the service's
    gateway address over a veth; containers run through it as usual, and
    the namespaces and the bridge go when the service stops.
    """
    import hashlib
    import ipaddress
    import random

    network = ipaddress.ip_network(f"10.{random.randint(200, 250)}.{random.randint(0, 255)}.0/28")
    gateway = str(network.network_address + 1)
    bridge = "csvcin" + hashlib.sha1(str(network).encode()).hexdigest()[:6]
    plane = ControlPlane(tmp_path, instances=2)
    plane.extra_args += ["--instance-netns", str(network), "--agents", f"tcp:{plane.agents_port}:interface={gateway}"]
    admin = plane.client("admin-project", admin=True)
    alpha = plane.client(PROJECT + "-netns")
    plane.start()
    namespaces = []
    try:
        active = plane.wait_active(admin)
        assert len(active) == 2
        own = os.readlink("/proc/self/ns/net")
        addresses = set()
        for instance in active:
            pattern = f"csvc-agent --connect tcp:{gateway}:{plane.agents_port} .*--hostname {instance['name']}$"
            pid = int(subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()[0])
            assert os.readlink(f"/proc/{pid}/ns/net") != own
            namespace = subprocess.run(["ip", "netns", "identify", str(pid)], capture_output=True,
                                       text=True).stdout.strip()
            assert namespace.endswith(f"-{instance['name']}")
            namespaces.append(namespace)
            shown = subprocess.run(["ip", "-n", namespace, "-4", "-o", "addr", "show", "dev", "eth0"],
                                   capture_output=True, text=True).stdout.split()
            address = ipaddress.ip_interface(shown[shown.index("inet") + 1]).ip
            assert address in network and str(address) != gateway
            addresses.add(address)
            # Its link to the service goes from that address to the gateway.
            links = subprocess.run(["ip", "netns", "exec", namespace, "ss", "-tnH", "state", "established"],
                                   capture_output=True, text=True).stdout
            assert f"{address}:" in links and f"{gateway}:{plane.agents_port}" in links, links
        assert len(addresses) == 2
        container, exit = alpha.run(["sh", "-c", "echo from-netns"], image=IMAGE)
        assert exit["exit_code"] == 0
        assert alpha.logs(container["uuid"]) == b"from-netns\n"
        assert alpha.delete(f"/v1/containers/{container['uuid']}").status_code == 204
    finally:
        plane.close()
        remove_project_containers(PROJECT + "-netns")
    assert len(namespaces) == 2
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert [n for n in namespaces if n in listed] == []
    assert subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode != 0
