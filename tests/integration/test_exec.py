"""exec: output and exit code pass through, options, process.json, detach, namespaces joined."""
import json
import os

from helpers import ns_inode, pid_alive, read_text, wait_for

CAP_NET_ADMIN = 12


def _running(rt, bundle, cid, userns=False):
    b = bundle("sleep", "1000")
    if userns:
        b.add_namespace("user")
        b.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        b.linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    _, pid = rt.start_detached(b, cid)
    return b, pid


def test_exec_output_and_exit_code(rt, bundle, cid):
    _running(rt, bundle, cid)
    r = rt.exec_(cid, "sh", "-c", "echo hello; echo oops >&2; exit 7")
    assert r.returncode == 7, r
    assert r.stdout.strip() == "hello"
    assert "oops" in r.stderr
    r = rt.exec_(cid, "true")
    assert r.returncode == 0, r


def test_exec_stdin(rt, bundle, cid):
    _running(rt, bundle, cid)
    r = rt.exec_(cid, "sh", "-c", "read x; echo [$x]", input="abc\n")
    assert r.stdout.strip() == "[abc]", r


def test_exec_env(rt, bundle, cid):
    _running(rt, bundle, cid)
    r = rt.exec_(cid, "sh", "-c", 'echo "$FOO|${EMPTY-unset}|$PATH"', opts=("--env", "FOO=bar", "--env", "EMPTY="))
    assert r.returncode == 0, r
    foo, empty, path = r.stdout.strip().split("|")
    assert foo == "bar" and empty == ""
    assert "/bin" in path  # process.env of the config is inherited


def test_exec_cwd(rt, bundle, cid):
    _running(rt, bundle, cid)
    r = rt.exec_(cid, "pwd", opts=("--cwd", "/tmp"))
    assert r.returncode == 0, r
    assert r.stdout.strip() == "/tmp"


def test_exec_user(rt, bundle, cid):
    _running(rt, bundle, cid)
    r = rt.exec_(cid, "id", opts=("--user", "1000:1000"))
    assert r.returncode == 0, r
    out = r.stdout
    assert "uid=1000" in out and "gid=1000" in out, out
    r = rt.exec_(cid, "cat", "/proc/self/status", opts=("--user", "1000:1000"))
    st = dict(l.split(":", 1) for l in r.stdout.splitlines() if ":" in l)
    assert st["Uid"].split() == ["1000"] * 4 and st["Gid"].split() == ["1000"] * 4


def test_exec_cap(rt, bundle, cid):
    _running(rt, bundle, cid)
    r = rt.exec_(cid, "grep", "CapBnd", "/proc/self/status")
    without = int(r.stdout.split()[1], 16)
    assert not without & (1 << CAP_NET_ADMIN)
    r = rt.exec_(cid, "grep", "CapBnd", "/proc/self/status", opts=("--cap", "CAP_NET_ADMIN"))
    assert r.returncode == 0, r
    with_ = int(r.stdout.split()[1], 16)
    assert with_ & (1 << CAP_NET_ADMIN), hex(with_)
    # and it really works: CAP_NET_ADMIN in the container's own network namespace
    r = rt.exec_(cid, "ip", "link", "set", "lo", "up", opts=("--cap", "CAP_NET_ADMIN"))
    assert r.returncode == 0, r
    r = rt.exec_(cid, "ip", "link", "set", "lo", "down")
    assert r.returncode != 0


def test_exec_process_file(rt, bundle, cid, workdir):
    b, _ = _running(rt, bundle, cid)
    proc = dict(b.config["process"])
    proc.update({"args": ["sh", "-c", 'echo "from-file $GREETING $(pwd) $(id -u)"; exit 4'],
                 "env": ["PATH=/bin:/sbin", "GREETING=hi"], "cwd": "/tmp",
                 "user": {"uid": 1234, "gid": 1234}, "terminal": False})
    path = os.path.join(workdir, "process.json")
    with open(path, "w") as f:
        json.dump(proc, f)
    r = rt.exec_(cid, opts=("--process", path))
    assert r.returncode == 4, r
    assert r.stdout.strip() == "from-file hi /tmp 1234"


def test_exec_detach_pid_file(rt, bundle, cid, workdir):
    _, init = _running(rt, bundle, cid)
    pidfile = os.path.join(workdir, "exec.pid")
    r = rt("exec", "--detach", "--pid-file", pidfile, cid, "sleep", "999")
    assert r.returncode == 0
    pid = int(read_text(pidfile).strip())
    assert pid != init
    wait_for(lambda: pid_alive(pid), what="exec'd process")
    assert b"999" in open(f"/proc/{pid}/cmdline", "rb").read()
    for ns in ("pid", "mnt", "net", "ipc", "uts"):
        assert ns_inode(pid, ns) == ns_inode(init, ns), ns
    ps = json.loads(rt("ps", "--format", "json", cid).stdout)
    assert pid in ps


def test_exec_in_stopped_container_fails(rt, bundle, cid):
    b = bundle("true")
    rt.start_detached(b, cid)
    rt.wait_status(cid, "stopped")
    r = rt.exec_(cid, "true")
    assert r.returncode != 0


def _ns_map(text):
    out = {}
    for line in text.strip().splitlines():
        name, _, link = line.partition(" ")
        out[os.path.basename(name)] = link.strip()
    return out


NS_SCRIPT = ("for n in /proc/$1/ns/*; do echo \"$n $(readlink $n)\"; done")


def _check_exec_joins_all(rt, cid, init):
    r = rt.exec_(cid, "sh", "-c", NS_SCRIPT, "sh", "self")
    assert r.returncode == 0, r
    mine = _ns_map(r.stdout)
    r = rt.exec_(cid, "sh", "-c", NS_SCRIPT, "sh", "1")
    assert r.returncode == 0, r
    pid1 = _ns_map(r.stdout)
    assert set(pid1) >= {"pid", "mnt", "net", "ipc", "uts", "user", "cgroup"}, pid1
    for ns, link in pid1.items():
        assert mine.get(ns) == link, f"exec is not in the container's {ns} namespace: {mine.get(ns)} != {link}"
    # also from the host, against the init's host pid
    for ns in ("pid", "mnt", "net", "ipc", "uts", "user", "cgroup"):
        assert ns_inode(init, ns) == pid1[ns], ns


def test_exec_joins_every_namespace(rt, bundle, cid):
    _, init = _running(rt, bundle, cid)
    _check_exec_joins_all(rt, cid, init)


def test_exec_joins_every_namespace_userns(rt, bundle, cid):
    _, init = _running(rt, bundle, cid, userns=True)
    assert ns_inode(init, "user") != ns_inode("self", "user")
    _check_exec_joins_all(rt, cid, init)
    r = rt.exec_(cid, "id", "-u")
    assert r.stdout.strip() == "0", r
