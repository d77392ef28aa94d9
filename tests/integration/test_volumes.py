"""Volumes through the real daemon and CLI: create (dir, block: a sparse file of its size),
list, info, attach to a stopped container (mounted at its next start), read-only attach,
attach/detach refused while running, delete refused while attached (naming the instances),
data surviving the instance's deletion (which detaches it), names, paths and sizes validated.

Run: /usr/bin/python3 -m pytest -q tests/integration/test_volumes.py
"""
import json
import os

import pytest

from daemon import gureumd  # noqa: F401 (fixture)
from storage import Cli, action, create, error, run_op, sh

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")

PREFIX = f"v{os.getpid() % 100000}-"


def n(short):
    return PREFIX + short


def test_volume_data_outlives_instances(gureumd):
    d = gureumd
    cli = Cli(d)
    cli.run("volume", "create", "data")
    assert os.path.isdir(os.path.join(d.state_dir, "volumes", "data"))
    create(d, n("a"), start=False)
    cli.run("volume", "attach", "data", n("a"), "/srv/data")
    info = d.get("/1.0/volumes/data", expect=200)["metadata"]
    assert info["type"] == "dir" and info["used_by"] == [f"/1.0/instances/{n('a')}"]
    assert info["attachments"] == [{"instance": n("a"), "path": "/srv/data", "readonly": False}]
    action(d, n("a"), "start")
    sh(d, n("a"), "echo kept > /srv/data/file; mkdir /srv/data/sub; echo deep > /srv/data/sub/x")
    # Attached: delete refused, naming the instance (API 409 and CLI).
    err = error(d, "DELETE", "/1.0/volumes/data", code=409, contains=n("a"))
    assert "detach it first" in err
    r = cli.run("volume", "delete", "data", expect=1)
    assert n("a") in r.stderr and "attached" in r.stderr
    # Running: attach/detach refused with the reason.
    cli.run("volume", "create", "other")
    r = cli.run("volume", "detach", "data", n("a"), expect=1)
    assert "stop it first" in r.stderr
    r = cli.run("volume", "attach", "other", n("a"), "/x", expect=1)
    assert "stop it first" in r.stderr
    # The instance goes (force): the volume is detached and keeps its data.
    run_op(d, "DELETE", f"/1.0/instances/{n('a')}?force=1")
    info = d.get("/1.0/volumes/data", expect=200)["metadata"]
    assert info["used_by"] == [] and info["attachments"] == []
    with open(os.path.join(d.state_dir, "volumes", "data", "sub", "x")) as f:
        assert f.read() == "deep\n"
    # A new instance sees it, read-only this time.
    create(d, n("b"), start=False)
    cli.run("volume", "attach", "--readonly", "data", n("b"), "/mnt/ro")
    action(d, n("b"), "start")
    assert sh(d, n("b"), "cat /mnt/ro/file") == "kept\n"
    out = sh(d, n("b"), "(echo no > /mnt/ro/new) 2>&1", expect=None)
    assert "Read-only file system" in out
    assert not os.path.exists(os.path.join(d.state_dir, "volumes", "data", "new"))
    action(d, n("b"), "stop", force=True)
    cli.run("volume", "detach", "data", n("b"))
    cli.run("volume", "delete", "data", "other")
    assert not os.path.exists(os.path.join(d.state_dir, "volumes", "data"))
    assert d.get("/1.0/volumes", expect=200)["metadata"] == []


def test_block_volume_and_listing(gureumd):
    d = gureumd
    cli = Cli(d)
    cli.run("volume", "create", "disk", "--type", "block", "--size", "64MiB")
    img = os.path.join(d.state_dir, "volumes", "disk.img")
    st = os.stat(img)
    assert st.st_size == 64 << 20 and st.st_blocks == 0      # sparse
    cli.run("volume", "create", "plain")
    out = cli.run("volume", "list", "--format", "json").stdout
    vols = {v["name"]: v for v in json.loads(out)}
    assert vols["disk"]["type"] == "block" and vols["disk"]["size"] == 64 << 20
    assert vols["plain"]["type"] == "dir" and vols["plain"]["size"] == 0
    table = cli.run("volume", "list").stdout
    assert "disk" in table and "64" in table and "plain" in table
    info = cli.run("volume", "info", "disk").stdout
    assert "Type: block" in info and "Attached to: (none)" in info
    assert d.get("/1.0/volumes", expect=200)["metadata"] == ["/1.0/volumes/disk", "/1.0/volumes/plain"]
    # Block volumes are for VMs.
    create(d, n("c"), start=False)
    r = cli.run("volume", "attach", "disk", n("c"), "/d", expect=1)
    assert "block volume" in r.stderr
    cli.run("volume", "delete", "disk")
    assert not os.path.exists(img)


def test_volume_errors(gureumd):
    d = gureumd
    cli = Cli(d)
    for name, why in (("", "invalid volume name"), ("Bad", "invalid volume name"), ("a" * 64, "invalid volume name"),
                      ("../x", "invalid volume name"), ("-x", "invalid volume name")):
        error(d, "POST", "/1.0/volumes", {"name": name}, 400, why)
    error(d, "POST", "/1.0/volumes", {}, 400, "name: required")
    error(d, "POST", "/1.0/volumes", {"name": "x", "colour": 1}, 400, 'unknown key "colour"')
    error(d, "POST", "/1.0/volumes", {"name": "x", "type": "nfs"}, 400, "expected dir or block")
    error(d, "POST", "/1.0/volumes", {"name": "x", "type": "block"}, 400, "size: required")
    error(d, "POST", "/1.0/volumes", {"name": "x", "type": "block", "size": "10parsecs"}, 400, "size")
    error(d, "POST", "/1.0/volumes", {"name": "x", "type": "block", "size": "1KiB"}, 400, "1MiB to 64TiB")
    error(d, "POST", "/1.0/volumes", {"name": "x", "type": "block", "size": "1000000B"}, 400, "multiple of 512")
    error(d, "POST", "/1.0/volumes", {"name": "x", "size": "1GiB"}, 400, "only block volumes have a size")
    d.post("/1.0/volumes", body=json.dumps({"name": "x"}).encode(), expect=200)
    error(d, "POST", "/1.0/volumes", {"name": "x"}, 409, "already exists")
    error(d, "GET", "/1.0/volumes/nope", code=404, contains="volume nope not found")
    error(d, "DELETE", "/1.0/volumes/nope", code=404, contains="not found")
    create(d, n("e"), start=False)
    for path, why in (("rel", "absolute"), ("/", "root directory"), ("/a/../b", '".."'), ("/a//b", "empty"),
                      ("/a/", "trailing"), ("/proc/x", "kernel"), ("/dev", "kernel"), ("/a\nb", "control")):
        error(d, "POST", "/1.0/volumes/x/attachments", {"instance": n("e"), "path": path}, 400, why)
    error(d, "POST", "/1.0/volumes/x/attachments", {"instance": "nope", "path": "/m"}, 404, "nope")
    error(d, "POST", "/1.0/volumes/x/attachments", {"path": "/m"}, 400, "instance: required")
    error(d, "POST", "/1.0/volumes/nope/attachments", {"instance": n("e"), "path": "/m"}, 404, "volume nope")
    run_op(d, "POST", "/1.0/volumes/x/attachments", {"instance": n("e"), "path": "/m"})
    op = run_op(d, "POST", "/1.0/volumes/x/attachments", {"instance": n("e"), "path": "/m2"}, expect_status=None)
    assert op["status"] == "Failure" and "already attached" in op["err"]
    d.post("/1.0/volumes", body=json.dumps({"name": "y"}).encode(), expect=200)
    op = run_op(d, "POST", "/1.0/volumes/y/attachments", {"instance": n("e"), "path": "/m"}, expect_status=None)
    assert op["status"] == "Failure" and "already has volume x at /m" in op["err"]
    error(d, "DELETE", f"/1.0/volumes/y/attachments/{n('e')}", code=404, contains="not attached")
    r = cli.run("volume", "frobnicate", expect=2)
    assert "unknown subcommand" in r.stderr
    r = cli.run("volume", "create", "z", "--type", "block", expect=2)
    assert "--size" in r.stderr
