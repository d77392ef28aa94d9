"""Namespaces really separate the container from the host."""
import os
import secrets
import socket
import subprocess

import pytest

from helpers import ns_inode, proc_status, read_text, wait_file

NS_FILES = {"pid": "pid", "network": "net", "ipc": "ipc", "uts": "uts", "mount": "mnt",
            "cgroup": "cgroup", "user": "user", "time": "time"}


def test_pid_namespace_init_is_pid_1(rt, bundle, cid):
    b = bundle("sh", "-c", "echo $$; ls -d /proc/[0-9]* | wc -l")
    r = rt.run(b, cid)
    assert r.returncode == 0, r
    pid, nprocs = r.stdout.split()
    assert pid == "1"
    assert int(nprocs) <= 3, "the container sees host processes"  # sh, ls, wc at most


def test_namespaces_differ_from_host(rt, bundle, cid):
    b = bundle("sleep", "1000")
    _, pid = rt.start_detached(b, cid)
    configured = set(b.namespaces())
    for ns, f in NS_FILES.items():
        host, cont = ns_inode("self", f), ns_inode(pid, f)
        if host is None:
            continue
        if ns in configured:
            assert host != cont, f"{ns} namespace not separated"
        else:
            assert host == cont, f"{ns} namespace unexpectedly unshared"


def test_unshared_namespace_is_shared_with_host(rt, bundle, cid):
    b = bundle("sleep", "1000")
    b.remove_namespace("ipc")
    b.remove_namespace("cgroup")
    _, pid = rt.start_detached(b, cid)
    assert ns_inode(pid, "ipc") == ns_inode("self", "ipc")
    assert ns_inode(pid, "cgroup") == ns_inode("self", "cgroup")
    assert ns_inode(pid, "net") != ns_inode("self", "net")


def test_uts_hostname_from_config(rt, bundle, cid):
    b = bundle("hostname")
    b.config["hostname"] = "box-" + cid[-5:]
    r = rt.run(b, cid)
    assert r.stdout.strip() == "box-" + cid[-5:], r
    assert socket.gethostname() != "box-" + cid[-5:]


def test_network_namespace_only_lo(rt, bundle, cid):
    b = bundle("sh", "-c", "ls /sys/class/net; echo ---; ip -o link")
    r = rt.run(b, cid)
    assert r.returncode == 0, r
    names, _, links = r.stdout.partition("---")
    assert names.split() == ["lo"]
    assert len([l for l in links.splitlines() if l.strip()]) == 1


def test_mount_namespace_private(rt, bundle, cid, workdir):
    """A mount made inside the container is invisible on the host, and the host's mounts
    (e.g. this test's directory) are invisible inside."""
    b = bundle()
    b.add_caps("CAP_SYS_ADMIN")
    shared = b.shared_dir()
    b.sh("mkdir -p /shared/m && mount -t tmpfs none /shared/m && touch /shared/m/inside && "
         "grep -c . /proc/self/mountinfo > /shared/count; cat /proc/self/mountinfo > /shared/mi; "
         "echo ready > /shared/ready; sleep 1000")
    rt.start_detached(b, cid)
    wait_file(f"{shared}/ready")
    assert os.path.isdir(f"{shared}/m")
    assert not os.path.exists(f"{shared}/m/inside"), "container mount leaked to the host"
    mi = read_text(f"{shared}/mi")
    for line in mi.splitlines():
        mp = line.split()[4]
        assert not mp.startswith(workdir), f"host path visible as mount point inside: {line}"


def test_ipc_namespace(rt, bundle, cid):
    b = bundle("sleep", "1000")
    _, pid = rt.start_detached(b, cid)
    assert ns_inode(pid, "ipc") != ns_inode("self", "ipc")
    # SysV IPC objects of the host are not visible: the container's table is empty
    r = rt.exec_(cid, "sh", "-c", "cat /proc/sysvipc/shm | wc -l; cat /proc/sysvipc/msg | wc -l")
    assert r.stdout.split() == ["1", "1"], r  # only the header lines


def test_cgroup_namespace_root(rt, bundle, cid):
    b = bundle("cat", "/proc/self/cgroup")
    assert "cgroup" in b.namespaces()
    r = rt.run(b, cid)
    assert r.returncode == 0, r
    lines = [l for l in r.stdout.splitlines() if l.strip()]
    assert lines
    for line in lines:
        assert line.split(":", 2)[2] == "/", f"cgroup path not / inside a cgroup namespace: {line}"


def test_user_namespace_mappings(rt, bundle, cid):
    b = bundle("sleep", "1000")
    b.add_namespace("user")
    b.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.linux["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    _, pid = rt.start_detached(b, cid)
    st = proc_status(pid)
    assert st["Uid"].split()[0] == "100000", st["Uid"]
    assert st["Gid"].split()[0] == "200000", st["Gid"]
    r = rt.exec_(cid, "sh", "-c", "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map")
    assert r.returncode == 0, r
    lines = r.stdout.split("\n")
    assert lines[0] == "0" and lines[1] == "0"
    assert lines[2].split() == ["0", "100000", "65536"]
    assert lines[3].split() == ["0", "200000", "65536"]
    # an exec'd process is mapped too
    r = rt.exec_(cid, "id", "-u", opts=("--user", "1000:1000"))
    assert r.stdout.strip() == "1000"


@pytest.mark.not_runc("runc 1.1.5 has no time namespace support (added in runc 1.2)")
def test_time_namespace_offsets(rt, bundle, cid):
    if not os.path.exists("/proc/self/ns/time"):
        pytest.skip("kernel without time namespaces")
    offset = 10 * 86400
    b = bundle("cat", "/proc/uptime")
    b.add_namespace("time")
    b.linux["timeOffsets"] = {"boottime": {"secs": offset, "nanosecs": 0},
                              "monotonic": {"secs": offset // 2, "nanosecs": 0}}
    host_before = float(read_text("/proc/uptime").split()[0])
    r = rt.run(b, cid)
    host_after = float(read_text("/proc/uptime").split()[0])
    assert r.returncode == 0, r
    inside = float(r.stdout.split()[0])
    assert host_before + offset - 1 <= inside <= host_after + offset + 1, (host_before, inside, host_after)


def test_join_network_namespace_by_path(rt, bundle, cid):
    name = "gr-" + secrets.token_hex(4)
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "add", "grbr0", "type", "bridge"], check=True)
        b = bundle("ls", "/sys/class/net")
        b.add_namespace("network", path=f"/var/run/netns/{name}")
        r = rt.run(b, cid)
        assert r.returncode == 0, r
        assert sorted(r.stdout.split()) == ["grbr0", "lo"]
    finally:
        subprocess.run(["ip", "netns", "del", name])


def test_join_uts_namespace_of_other_container(rt, bundle):
    b1 = bundle("sleep", "1000")
    b1.config["hostname"] = "first"
    c1, pid1 = rt.start_detached(b1, rt.new_id())
    b2 = bundle("hostname")
    b2.config.pop("hostname")  # joining a uts namespace: hostname may not be set
    b2.add_namespace("uts", path=f"/proc/{pid1}/ns/uts")
    r = rt.run(b2, rt.new_id())
    assert r.returncode == 0, r
    assert r.stdout.strip() == "first"
