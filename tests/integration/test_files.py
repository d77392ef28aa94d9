"""Files in containers: GET/POST /1.0/instances/NAME/files?path=... and `gureum file push|pull`.

The container's files are reached from gureumd through /proc/PID/root with openat2
RESOLVE_IN_ROOT (and no magic links): symlinks and ".." inside the container never lead out to
the host, and a push replaces its file atomically (a temporary file renamed over it). The VM
side of the same API is in test_vm.py (through the guest agent).
"""
import os
import secrets
import subprocess

import pytest

from daemon import TIMEOUT, gureumd  # noqa: F401 (the fixture)
from storage import Cli, action, create, sh

FILE_MAX = 64 << 20


def push(d, name, path, data, mode=None, uid=None, gid=None, extra=None):
    headers = {"Content-Type": "application/octet-stream"}
    if mode is not None:
        headers["X-Gureum-Mode"] = mode
    if uid is not None:
        headers["X-Gureum-Uid"] = str(uid)
    if gid is not None:
        headers["X-Gureum-Gid"] = str(gid)
    headers.update(extra or {})
    return d.request("POST", f"/1.0/instances/{name}/files?path={path}", body=data, headers=headers)


def pull(d, name, path):
    return d.request("GET", f"/1.0/instances/{name}/files?path={path}")


def test_files_push_pull_round_trip(gureumd):
    d = gureumd
    create(d, "f1")
    data = bytes(range(256)) * 17 + os.urandom(3 << 20)  # every byte value, and more than 1 MiB
    st, _, env = push(d, "f1", "/tmp/blob", data, mode="0640", uid=1234, gid=4321)
    assert st == 200 and env["type"] == "sync", env
    assert sh(d, "f1", "stat -c '%a %u %g %s' /tmp/blob") == f"640 1234 4321 {len(data)}\n"
    st, hdrs, body = pull(d, "f1", "/tmp/blob")
    assert st == 200 and body == data
    assert hdrs["content-type"] == "application/octet-stream"
    assert (hdrs["x-gureum-type"], hdrs["x-gureum-mode"], hdrs["x-gureum-uid"], hdrs["x-gureum-gid"]) == \
        ("file", "0640", "1234", "4321")
    # The defaults: 0644, root; an empty file; an existing file is replaced whole.
    assert push(d, "f1", "/tmp/blob", b"short\n")[0] == 200
    assert sh(d, "f1", "stat -c '%a %u %g' /tmp/blob; cat /tmp/blob") == "644 0 0\nshort\n"
    assert push(d, "f1", "/tmp/empty", b"")[0] == 200
    st, hdrs, body = pull(d, "f1", "/tmp/empty")
    assert st == 200 and body == b""
    # The image's own files, and a path needing escapes.
    st, _, body = pull(d, "f1", "/etc/passwd")
    assert st == 200 and body.startswith(b"root:")
    assert push(d, "f1", "/tmp/a%20b%2Bc", b"odd name")[0] == 200
    assert sh(d, "f1", "cat '/tmp/a b+c'") == "odd name"
    # No temporary file left behind.
    assert ".gureum-push" not in sh(d, "f1", "ls -a /tmp")
    # Each transfer is an event.
    ops = d.get("/1.0/operations?recursion=1")["metadata"]
    assert any(o["description"] == "Pushing a file" and o["status"] == "Success" for o in ops), ops


def test_files_limit_is_64_mib_both_ways(gureumd):
    d = gureumd
    create(d, "f2")
    data = os.urandom(FILE_MAX)
    assert push(d, "f2", "/tmp/big", data)[0] == 200
    st, _, body = pull(d, "f2", "/tmp/big")
    assert st == 200 and len(body) == FILE_MAX and body == data
    # One byte more (grown in the container, without being sent): refused.
    sh(d, "f2", "echo -n x >> /tmp/big")
    st, _, env = pull(d, "f2", "/tmp/big")
    assert st == 413 and "limit" in env["error"], env


def test_files_symlinks_stay_inside_the_container(gureumd):
    d = gureumd
    create(d, "f3")
    secret = f"/tmp/gr-files-host-{secrets.token_hex(4)}"
    pushed = f"/tmp/gr-files-pushed-{secrets.token_hex(4)}"
    with open(secret, "w") as f:
        f.write("host secret\n")
    try:
        # Absolute and relative links to the host's file name, and a link to "/" climbed out
        # of with "..": all resolve in the container, where that file does not exist.
        sh(d, "f3", f"ln -s {secret} /tmp/abs; ln -s ../../../../../../..{secret} /tmp/rel; "
                    "ln -s / /tmp/root; ln -s ../../../../.. /tmp/up; mkdir /tmp/d; "
                    "ln -s ../../../../../../../tmp /tmp/d/up")
        for path in ("/tmp/abs", "/tmp/rel", f"/tmp/root{secret}", f"/tmp/up{secret}",
                     f"/tmp/d/up/{os.path.basename(secret)}"):
            st, _, env = pull(d, "f3", path)
            assert st == 404, (path, st, env)
        # A magic link (/proc/self/root would be gureumd's root): refused.
        st, _, env = pull(d, "f3", f"/proc/self/root{secret}")
        assert st in (400, 404) and b"host secret" not in repr(env).encode(), (st, env)
        st, _, env = pull(d, "f3", "/proc/1/root/etc/passwd")
        assert st in (400, 404), (st, env)
        # A push through a directory symlink lands in the container.
        assert push(d, "f3", f"/tmp/d/up/{os.path.basename(pushed)}", b"inside\n")[0] == 200
        assert not os.path.exists(pushed)
        assert sh(d, "f3", f"cat {pushed}") == "inside\n"
        # A symlink at the path is replaced, not followed.
        sh(d, "f3", "ln -s /etc/passwd /tmp/link")
        assert push(d, "f3", "/tmp/link", b"replaced\n")[0] == 200
        assert sh(d, "f3", "test -L /tmp/link || echo regular; cat /tmp/link; head -c 5 /etc/passwd") == \
            "regular\nreplaced\nroot:"
        # Pulls follow symlinks inside it.
        st, _, body = pull(d, "f3", "/tmp/root/etc/passwd")
        assert st == 200 and body.startswith(b"root:")
    finally:
        os.unlink(secret)
        if os.path.exists(pushed):
            os.unlink(pushed)


def test_files_errors(gureumd):
    d = gureumd
    create(d, "f4")
    cases = [
        ("GET", "/1.0/instances/f4/files", 400, "path"),
        ("GET", "/1.0/instances/f4/files?path=etc/passwd", 400, "absolute"),
        ("GET", "/1.0/instances/f4/files?path=/", 400, "root directory"),
        ("GET", "/1.0/instances/f4/files?path=/etc/", 400, "end with"),
        ("GET", "/1.0/instances/f4/files?path=/etc/../etc/passwd", 400, ".."),
        ("GET", "/1.0/instances/f4/files?path=/nonexistent", 404, "No such file"),
        ("GET", "/1.0/instances/f4/files?path=/etc", 400, "is a directory"),
        ("GET", "/1.0/instances/f4/files?path=/dev/null", 400, "not a regular file"),
        ("GET", "/1.0/instances/nope/files?path=/etc/passwd", 404, "nope"),
        ("POST", "/1.0/instances/f4/files?path=/no/such/dir/file", 404, "/no/such/dir"),
        ("POST", "/1.0/instances/f4/files?path=/etc", 400, "is a directory"),
    ]
    for method, url, code, text in cases:
        st, _, env = d.request(method, url, body=b"x" if method == "POST" else None)
        assert st == code and text in env["error"], (method, url, st, env)
    for hdrs, text in (({"X-Gureum-Mode": "0999"}, "octal"), ({"X-Gureum-Mode": "-1"}, "octal"),
                       ({"X-Gureum-Uid": "4294967295"}, "number"), ({"X-Gureum-Gid": "x"}, "number"),
                       ({"X-Gureum-Type": "directory"}, "only")):
        st, _, env = push(d, "f4", "/tmp/x", b"x", extra=hdrs)
        assert st == 400 and text in env["error"], (hdrs, st, env)
    # A frozen container's files are there; a stopped one's are not reachable.
    action(d, "f4", "pause")
    st, _, body = pull(d, "f4", "/etc/passwd")
    assert st == 200 and body.startswith(b"root:")
    action(d, "f4", "resume")
    action(d, "f4", "stop", force=True)
    st, _, env = pull(d, "f4", "/etc/passwd")
    assert st == 409 and "running" in env["error"], env


def test_files_cli(gureumd, tmp_path):
    d = gureumd
    cli = Cli(d)
    create(d, "f5")
    local = tmp_path / "app.conf"
    local.write_bytes(b"key=value\n")
    os.chmod(local, 0o600)
    # The local file's mode by default; PATH ending in / takes its name.
    cli.run("file", "push", local, "f5/tmp/")
    assert sh(d, "f5", "stat -c '%a %u' /tmp/app.conf; cat /tmp/app.conf") == "600 0\nkey=value\n"
    cli.run("file", "push", "--mode", "0755", "--uid", "1000", "--gid", "50", local, "f5/tmp/run.sh")
    assert sh(d, "f5", "stat -c '%a %u %g' /tmp/run.sh") == "755 1000 50\n"
    # stdin and stdout.
    r = subprocess.run(cli.base + ["file", "push", "-", "f5/tmp/from-stdin"], input=b"\x00\x01binary\xff",
                       capture_output=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(cli.base + ["file", "pull", "f5/tmp/from-stdin", "-"], capture_output=True, timeout=TIMEOUT)
    assert r.returncode == 0 and r.stdout == b"\x00\x01binary\xff", r
    # Into a directory: the file's name; a new file gets the instance file's permissions.
    cli.run("file", "pull", "f5/tmp/run.sh", tmp_path)
    assert (tmp_path / "run.sh").read_bytes() == b"key=value\n"
    assert os.stat(tmp_path / "run.sh").st_mode & 0o777 == 0o755 & ~current_umask()
    cli.run("file", "pull", "f5/etc/passwd", tmp_path / "passwd.copy")
    assert (tmp_path / "passwd.copy").read_bytes().startswith(b"root:")
    # Errors: the daemon's message, the instance named; usage errors.
    r = cli.run("file", "pull", "f5/nonexistent", tmp_path / "x", expect=1)
    assert "f5" in r.stderr and "No such file" in r.stderr, r.stderr
    r = cli.run("file", "push", local, "f5", expect=2)
    assert "INSTANCE/PATH" in r.stderr, r.stderr
    r = cli.run("file", "push", "--mode", "9", local, "f5/tmp/x", expect=2)
    assert "octal" in r.stderr, r.stderr
    r = cli.run("file", "copy", expect=2)
    assert "push, pull" in r.stderr, r.stderr
    assert "push" in cli.run("file", "--help").stdout


def test_files_bash_completion(gureumd, tmp_path):
    from test_cli import complete

    d = gureumd
    create(d, "f6")
    env = {"GUREUM_SOCKET": d.socket_path}
    assert "file" in complete("gureum fi", env)
    assert complete("gureum file p", env) == ["pull", "push"]
    assert complete("gureum file push --m", env) == ["--mode"]
    # The instance part of INSTANCE/PATH comes from the daemon, with its '/'.
    assert complete("gureum file pull f", env) == ["f6/"]
    (tmp_path / "local.txt").write_text("x")
    assert complete(f"gureum file push {tmp_path}/loc", env) == [f"{tmp_path}/local.txt"]
    assert complete(f"gureum file push {tmp_path}/local.txt f", env) == ["f6/"]


def current_umask():
    old = os.umask(0)
    os.umask(old)
    return old


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q"]))
