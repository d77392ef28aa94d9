"""Snapshots through the real daemon and CLI: the round trip on a stopped and on a running
container (write files, snapshot, change and delete files, restore: exactly that state is back,
a deleted file included and a new file gone; modes, owners, xattrs, hard links, symlinks,
FIFOs, whiteouts of image files), a running container frozen for the copy and thawed after,
restore refused while running, names validated, errors clear, snapshots going with the instance.

Run: /usr/bin/python3 -m pytest -q tests/integration/test_snapshots.py
"""
import json
import os

import pytest

from daemon import gureumd  # noqa: F401 (fixture)
from storage import Cli, action, create, error, run_op, sh

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")

PREFIX = f"s{os.getpid() % 100000}-"


def n(short):
    return PREFIX + short


# Everything about the files under a few directories: type, mode, owner, size, content, link
# target, hard link groups (by inode), as the container sees them. /data/tick is left out: the
# running test's writer rewrites it all the time (its presence in the snapshot is checked apart).
STATE = r"""
for f in $(find /data /etc/hostname /bin/vi /root -xdev 2>/dev/null | grep -v '^/data/tick$' | sort); do
  echo "$f $(stat -c '%F %a %u:%g %s %h' "$f") $( [ -f "$f" ] && md5sum < "$f" | cut -c1-8 ) \
$( [ -L "$f" ] && readlink "$f" )"
done
ls -i /data/hard1 /data/hard2 2>/dev/null | awk '{print $1}' | uniq | wc -l
"""

WRITE = r"""
mkdir -p /data/sub/deep && echo one > /data/keep && echo two > /data/sub/deep/f
chmod 640 /data/keep && chown 12:34 /data/sub/deep/f && chmod 4755 /data/sub
echo hard > /data/hard1 && ln /data/hard1 /data/hard2 && ln -s ../keep /data/sub/link
mkfifo /data/fifo && chmod 600 /data/fifo
dd if=/dev/zero of=/data/big bs=1k count=300 2>/dev/null
rm /bin/vi && echo myhost > /etc/hostname
"""

CHANGE = r"""
rm -r /data/sub /data/hard2 && echo changed > /data/keep && chmod 600 /data/keep
echo new > /data/new && ln -s /nowhere /bin/vi && echo other > /etc/hostname
"""


def upper(d, name):
    return os.path.join(d.state_dir, "instances", name, "upper")


def test_round_trip_stopped(gureumd):
    d = gureumd
    cli = Cli(d)
    create(d, n("a"))
    sh(d, n("a"), WRITE)
    os.setxattr(os.path.join(upper(d, n("a")), "data", "keep"), "user.colour", b"blue")
    before = sh(d, n("a"), STATE)
    action(d, n("a"), "stop", force=True)
    out = cli.run("snapshot", "create", n("a"), "first").stdout
    assert out == "first\n"
    action(d, n("a"), "start")
    sh(d, n("a"), CHANGE)
    assert sh(d, n("a"), STATE) != before
    # Restore needs it stopped.
    r = cli.run("snapshot", "restore", n("a"), "first", expect=1)
    assert "stop it first" in r.stderr
    action(d, n("a"), "stop", force=True)
    cli.run("snapshot", "restore", n("a"), "first")
    action(d, n("a"), "start")
    after = sh(d, n("a"), STATE)
    assert after == before
    assert sh(d, n("a"), "cat /data/keep; ls /data/new 2>&1; test -e /bin/vi || echo vi-gone",
              expect=None) == "one\nls: /data/new: No such file or directory\nvi-gone\n"
    assert os.getxattr(os.path.join(upper(d, n("a")), "data", "keep"), "user.colour") == b"blue"
    # The whiteout of the image's /bin/vi came back as a whiteout (a 0/0 character device).
    st = os.lstat(os.path.join(upper(d, n("a")), "bin", "vi"))
    assert (st.st_mode & 0o170000) == 0o020000 and st.st_rdev == 0
    # The big file's contents are right and it is still one file with its size.
    assert sh(d, n("a"), "stat -c %s /data/big") == "307200\n"


def test_round_trip_running_and_frozen(gureumd):
    d = gureumd
    cli = Cli(d)
    create(d, n("r"), command=["sh", "-c", "while :; do date > /data/tick 2>/dev/null; sleep 0.01; done"])
    sh(d, n("r"), WRITE)
    sh(d, n("r"), "while [ ! -s /data/tick ]; do sleep 0.01; done")  # /data exists now: the writer's first file
    out = cli.run("snapshot", "create", n("r")).stdout
    assert out == "snap0\n"
    snap_upper = os.path.join(d.state_dir, "instances", n("r"), "snapshots", "snap0", "upper")
    assert os.path.exists(os.path.join(snap_upper, "data", "tick"))   # the running writer's file
    # It runs again (thawed) after the copy.
    assert d.get(f"/1.0/instances/{n('r')}/state", expect=200)["metadata"]["status"] == "Running"
    before = sh(d, n("r"), STATE)
    sh(d, n("r"), CHANGE)
    action(d, n("r"), "stop", force=True)
    cli.run("snapshot", "restore", n("r"), "snap0")
    action(d, n("r"), "start")
    assert sh(d, n("r"), STATE) == before
    # A paused instance stays paused after a snapshot.
    action(d, n("r"), "pause")
    cli.run("snapshot", "create", n("r"), "paused")
    assert d.get(f"/1.0/instances/{n('r')}/state", expect=200)["metadata"]["status"] == "Frozen"
    action(d, n("r"), "resume")
    snaps = json.loads(cli.run("snapshot", "list", n("r"), "--format", "json").stdout)
    assert [s["name"] for s in snaps] == ["snap0", "paused"]
    assert snaps[0]["instance_status"] == "Running" and snaps[1]["instance_status"] == "Frozen"
    assert snaps[0]["size"] >= 307200 and snaps[0]["stateful"] is False


def test_snapshot_api_and_errors(gureumd):
    d = gureumd
    cli = Cli(d)
    create(d, n("e"), start=False)
    base = f"/1.0/instances/{n('e')}/snapshots"
    assert d.get(base, expect=200)["metadata"] == []
    for bad in ("", "Bad", "a" * 64, "../x", "x-", "a b"):
        error(d, "POST", base, {"name": bad}, 400, "invalid snapshot name")
    error(d, "POST", base, {"nom": "x"}, 400, 'unknown key "nom"')
    error(d, "POST", "/1.0/instances/nope/snapshots", {"name": "x"}, 404, "nope")
    error(d, "GET", f"{base}/nope", code=404, contains="has no snapshot nope")
    error(d, "DELETE", f"{base}/nope", code=404, contains="has no snapshot nope")
    error(d, "POST", f"{base}/nope/restore", code=404, contains="has no snapshot nope")
    run_op(d, "POST", base, {"name": "one"})
    error(d, "POST", base, {"name": "one"}, 409, "already has a snapshot one")
    run_op(d, "POST", base, {})
    assert d.get(base, expect=200)["metadata"] == [f"{base}/one", f"{base}/snap0"]
    one = d.get(f"{base}/one", expect=200)["metadata"]
    assert one["name"] == "one" and one["instance_status"] == "Stopped" and one["created_at"]
    table = cli.run("snapshot", "list", n("e")).stdout
    assert "one" in table and "snap0" in table
    cli.run("snapshot", "delete", n("e"), "snap0")
    assert d.get(base, expect=200)["metadata"] == [f"{base}/one"]
    r = cli.run("snapshot", "restore", n("e"), "gone", expect=1)
    assert "has no snapshot gone" in r.stderr
    r = cli.run("snapshot", "create", expect=2)
    assert "INSTANCE" in r.stderr
    # No leftovers of the temporary copies.
    snaps_dir = os.path.join(d.state_dir, "instances", n("e"), "snapshots")
    assert sorted(os.listdir(snaps_dir)) == ["one"]
    # Deleting the instance deletes its snapshots.
    run_op(d, "DELETE", f"/1.0/instances/{n('e')}")
    assert not os.path.exists(snaps_dir)
