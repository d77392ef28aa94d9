"""Hostile image archives imported through the real daemon (POST /1.0/images, source type file) and
the CLI (`gureum image import`): absolute paths, '..' components, symlinks and hard links pointing
outside, a directory replaced by a symlink and written through, device nodes, trusted.* xattrs,
huge and truncated entries, broken compression; as plain rootfs tarballs and inside a
docker-archive. Each import fails with a clear error naming the entry (absolute paths are
contained: taken relative to the layer), the image list and the layer store are unchanged, nothing
is written outside (a sentinel directory next to the daemon's state, and the host's /etc), and
STATE/images/tmp is empty afterwards. The archives are built here with python's tarfile.

Run: /usr/bin/python3 -m pytest -q tests/integration/test_image_hostile.py
     (GUREUM_BUILD=/work/.../build-asan GUREUM_ASAN=1 for the sanitized binaries)
"""
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile

import pytest

import daemon
from daemon import Gureumd, TIMEOUT

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the image store needs root")

GUREUM = os.environ.get("GUREUM_CLI", os.path.join(daemon.BUILD, "src", "cli", "gureum"))


# --- archives ---------------------------------------------------------------------------------

def _info(name, type_=tarfile.REGTYPE, **kw):
    ti = tarfile.TarInfo(name)
    ti.type = type_
    ti.mtime = 1600000000
    ti.mode = kw.pop("mode", 0o644)
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


def tar_of(*entries, fmt=tarfile.PAX_FORMAT):
    """entries: (name, kind, arg): kind file (arg: bytes), dir, symlink/hardlink (arg: target),
    chr/blk (arg: (major, minor)), xattr-dir (arg: {name: value})."""
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w", format=fmt) as tf:
        for name, kind, arg in entries:
            if kind == "file":
                tf.addfile(_info(name, size=len(arg)), io.BytesIO(arg))
            elif kind == "dir":
                tf.addfile(_info(name, tarfile.DIRTYPE, mode=0o755))
            elif kind == "symlink":
                tf.addfile(_info(name, tarfile.SYMTYPE, linkname=arg, mode=0o777))
            elif kind == "hardlink":
                tf.addfile(_info(name, tarfile.LNKTYPE, linkname=arg))
            elif kind in ("chr", "blk"):
                tf.addfile(_info(name, tarfile.CHRTYPE if kind == "chr" else tarfile.BLKTYPE,
                                 devmajor=arg[0], devminor=arg[1], mode=0o666))
            elif kind == "xattr-dir":
                ti = _info(name, tarfile.DIRTYPE, mode=0o755)
                ti.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in arg.items()}
                tf.addfile(ti)
            else:
                raise ValueError(kind)
    return bio.getvalue()


def huge_entry_tar(size):
    """A GNU tar whose one header claims `size` bytes (base-256), with 1 KiB of data after it."""
    ti = _info("usr/bin/huge", size=size)
    return ti.tobuf(format=tarfile.GNU_FORMAT) + b"\0" * 1024


def truncated_tar():
    data = tar_of(("ok", "file", b"fine"), ("usr/bin/x", "file", os.urandom(200000)))
    return data[:len(data) // 2]


def docker_archive(layer):
    """A docker-archive (docker save) holding one layer, its diff_id right."""
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": ["hostile:latest"],
                            "Layers": ["layer0/layer.tar"]}]).encode()
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in (("layer0/layer.tar", layer), (config_name, config), ("manifest.json", manifest)):
            tf.addfile(_info(name, size=len(data)), io.BytesIO(data))
    return bio.getvalue()


def cases(sentinel):
    """(id, archive bytes, the error's expected words): each must be refused."""
    S = sentinel
    return [
        ("dotdot", tar_of(("ok", "file", b"fine"), ("../../../../../../" + S.lstrip("/") + "/evil", "file", b"x")),
         ["'..' component"]),
        ("dotdot-inner", tar_of(("a/../../evil", "file", b"x")), ["entry a/../../evil", "'..' component"]),
        ("symlink-then-write", tar_of(("a", "symlink", S), ("a/evil", "file", b"x")),
         ["entry a/evil", "a is a symbolic link"]),
        ("symlink-etc", tar_of(("etc", "symlink", "/etc"), ("etc/gureum-hostile", "file", b"x")),
         ["entry etc/gureum-hostile", "symbolic link"]),
        ("symlink-relative", tar_of(("a/", "dir", None), ("a/up", "symlink", "../../../../../../../../"),
                                    ("a/up" + S + "/evil", "file", b"x")),
         ["a/up is a symbolic link"]),
        ("dir-replaced-by-symlink", tar_of(("d/", "dir", None), ("d/x", "file", b"inside"), ("d", "symlink", S),
                                           ("d/evil", "file", b"x")),
         ["entry d/evil", "d is a symbolic link"]),
        ("hardlink-dotdot", tar_of(("h", "hardlink", "../../../../../../" + S.lstrip("/") + "/file")),
         ["entry h", "'..' component"]),
        ("hardlink-absolute", tar_of(("h", "hardlink", S + "/file")),
         ["entry h", "not a file of this layer"]),
        ("hardlink-etc", tar_of(("passwd", "hardlink", "/etc/passwd")), ["not a file of this layer"]),
        ("hardlink-via-symlink", tar_of(("s", "symlink", S), ("h", "hardlink", "s/file")),
         ["entry h", "not a file of this layer"]),
        ("device-chr", tar_of(("dev/mem", "chr", (1, 1))), ["entry dev/mem", "character device 1:1 refused"]),
        ("device-blk", tar_of(("dev/sda", "blk", (8, 0))), ["entry dev/sda", "block device 8:0 refused"]),
        ("trusted-xattr", tar_of(("d", "xattr-dir", {"trusted.overlay.opaque": "y"})),
         ["trusted.overlay.opaque refused"]),
        ("huge-entry", huge_entry_tar(1 << 62), ["entry usr/bin/huge", "over the limit"]),
        ("huge-truncated", huge_entry_tar(8 << 30), ["entry usr/bin/huge", "truncated"]),
        ("truncated", truncated_tar(), ["entry usr/bin/x", "truncated"]),
        ("truncated-gzip", gzip.compress(tar_of(("usr/bin/y", "file", os.urandom(100000))))[:30000], []),
        ("docker-archive-symlink", docker_archive(tar_of(("a", "symlink", S), ("a/evil", "file", b"x"))),
         ["a/evil", "symbolic link"]),
    ]


# --- the daemon -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def env():
    """One daemon for the module, a sentinel directory beside its state, the archives."""
    d = Gureumd()
    top = tempfile.mkdtemp(prefix="hostile-", dir="/tmp")
    try:
        d.start()
        st, _, body = d.request("POST", "/1.0/images", {"source": {"type": "file", "path": "/nonexistent"}})
        if st in (404, 405):
            pytest.skip(f"no image import route in this gureumd (POST /1.0/images: HTTP {st})")
        sentinel = os.path.join(top, "sentinel")
        os.mkdir(sentinel)
        with open(os.path.join(sentinel, "file"), "w") as f:
            f.write("keep\n")
        arch = os.path.join(top, "archives")
        os.mkdir(arch)
        yield d, sentinel, arch
        d.finish()
    finally:
        d.cleanup()
        shutil.rmtree(top, ignore_errors=True)


def images(d):
    return sorted(i if isinstance(i, str) else i.get("fingerprint") for i in
                  d.get("/1.0/images?recursion=1", expect=200)["metadata"])


def listing(path):
    out = []
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            out.append(os.path.relpath(os.path.join(root, n), path))
    return sorted(out)


def store_state(d):
    layers = os.path.join(d.state_dir, "images", "layers")
    return images(d), sorted(os.listdir(layers)) if os.path.isdir(layers) else []


def assert_untouched(d, sentinel, before):
    assert listing(sentinel) == ["file"], listing(sentinel)
    with open(os.path.join(sentinel, "file")) as f:
        assert f.read() == "keep\n"
    assert not os.path.lexists("/etc/gureum-hostile")
    assert store_state(d) == before
    tmp = os.path.join(d.state_dir, "images", "tmp")
    assert not os.path.isdir(tmp) or os.listdir(tmp) == [], f"left in {tmp}: {listing(tmp)}"


def import_file(d, path):
    st, _, env = d.request("POST", "/1.0/images", {"source": {"type": "file", "path": path}})
    assert st == 202, f"POST /1.0/images: HTTP {st}: {env}"
    return d.wait_operation(env["operation"])


def write(arch, name, data):
    path = os.path.join(arch, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


@pytest.mark.parametrize("case", [c[0] for c in cases("/x")])
def test_hostile_archive_refused(env, case):
    d, sentinel, arch = env
    _, data, words = next(c for c in cases(sentinel) if c[0] == case)
    path = write(arch, case + ".tar", data)
    before = store_state(d)
    op = import_file(d, path)
    assert op["status"] == "Failure", f"{case}: imported: {op}"
    err = op.get("err", "")
    for w in words:
        assert w in err, f"{case}: {w!r} not in the error: {err!r}"
    assert err, f"{case}: no error message"
    assert_untouched(d, sentinel, before)


def test_absolute_paths_contained(env):
    """Absolute names are taken relative to the layer (as tar does): the file lands inside the
    image, never at that path on the host."""
    d, sentinel, arch = env
    data = tar_of(("bin/", "dir", None), (sentinel + "/evil", "file", b"contained\n"),
                  ("/etc/gureum-hostile", "file", b"contained\n"))
    path = write(arch, "absolute.tar", data)
    before = store_state(d)
    op = import_file(d, path)
    assert op["status"] == "Success", op
    assert listing(sentinel) == ["file"]
    assert not os.path.lexists("/etc/gureum-hostile")
    fps = [fp for fp in images(d) if fp not in before[0]]
    assert len(fps) == 1
    layers = os.path.join(d.state_dir, "images", "layers")
    new = [l for l in os.listdir(layers) if l not in before[1]]
    assert len(new) == 1
    with open(os.path.join(layers, new[0], sentinel.lstrip("/"), "evil")) as f:
        assert f.read() == "contained\n"
    assert os.path.isfile(os.path.join(layers, new[0], "etc", "gureum-hostile"))
    env_ = d.delete(f"/1.0/images/{fps[0]}")
    if env_.get("type") == "async":   # the delete runs as an operation: its end, not its start
        assert d.wait_operation(env_["operation"])["status"] == "Success"
    tmp = os.path.join(d.state_dir, "images", "tmp")
    assert not os.path.isdir(tmp) or os.listdir(tmp) == []


def test_cli_reports_the_entry(env):
    """`gureum image import` of a hostile archive: non-zero exit, one line naming the entry."""
    d, sentinel, arch = env
    r = subprocess.run([GUREUM, "--socket", d.socket_path, "image", "--help"], capture_output=True,
                       timeout=TIMEOUT)
    if r.returncode != 0 or b"import" not in r.stdout + r.stderr:
        pytest.skip("this gureum has no `image import`")
    path = write(arch, "cli.tar", tar_of(("d/", "dir", None), ("d", "symlink", sentinel),
                                         ("d/evil", "file", b"x")))
    before = store_state(d)
    r = subprocess.run([GUREUM, "--socket", d.socket_path, "image", "import", path], capture_output=True,
                       timeout=TIMEOUT)
    err = r.stderr.decode()
    assert r.returncode != 0, r.stdout.decode()
    assert "entry d/evil" in err and "symbolic link" in err, err
    assert_untouched(d, sentinel, before)
