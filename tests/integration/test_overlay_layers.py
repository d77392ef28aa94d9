"""Containers from layered images (the image store's layout: STATE/images/<fp>/image.json listing
STATE/images/layers/<diffid>/): the overlay stacks every layer with whiteouts and opaque
directories honoured, the image's config (Env, Cmd/Entrypoint, WorkingDir, User) reaches the
container, and 40 layers mount (more than mount(2)'s one page of options would take with
absolute paths). The images are made by hand here, so this does not depend on the importers.

Run: /usr/bin/python3 -m pytest -q tests/integration/test_overlay_layers.py
"""
import os

import pytest

from daemon import gureumd  # noqa: F401 (fixture)
from storage import busybox_layer, create, error, make_image, make_layer, op_error, sh, whiteout

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")

PREFIX = f"ol{os.getpid() % 100000}-"


def n(short):
    return PREFIX + short


def three_layers(state):
    base = busybox_layer(state)

    def middle(d):
        os.makedirs(os.path.join(d, "data"))
        os.makedirs(os.path.join(d, "opq"))
        os.makedirs(os.path.join(d, "work"))
        for name, text in (("a", "A1"), ("b", "B1"), ("c", "C1")):
            with open(os.path.join(d, "data", name), "w") as f:
                f.write(text)
        with open(os.path.join(d, "opq", "old"), "w") as f:
            f.write("old")
        return "middle"

    def top(d):
        os.makedirs(os.path.join(d, "data"))
        os.makedirs(os.path.join(d, "opq"))
        whiteout(os.path.join(d, "data", "a"))                     # a deleted
        with open(os.path.join(d, "data", "b"), "w") as f:         # b replaced
            f.write("B2")
        os.setxattr(os.path.join(d, "opq"), "trusted.overlay.opaque", b"y")
        with open(os.path.join(d, "opq", "new"), "w") as f:
            f.write("new")
        return "top"

    return [base, make_layer(state, middle), make_layer(state, top)]


def test_three_layers_whiteouts_and_config(gureumd):
    d = gureumd
    layers = three_layers(d.state_dir)
    fp = make_image(d.state_dir, layers, {
        "Env": ["PATH=/bin", "FROM_IMAGE=yes", "OVERRIDDEN=image"],
        "Entrypoint": ["sh", "-c"], "Cmd": ["pwd > /tmp/ran; exec sleep 100000"],
        "WorkingDir": "/work", "User": "app:staff"})
    create(d, n("l3"), source={"type": "image", "alias": fp}, command=None,
           config={"environment.OVERRIDDEN": "instance"})
    assert sh(d, n("l3"), "ls /data | tr '\\n' ' '") == "b c "
    assert sh(d, n("l3"), "cat /data/b /data/c") == "B2C1"
    assert sh(d, n("l3"), "ls /opq") == "new\n"
    # The image's config: the default command ran as the image's user in its WorkingDir.
    assert sh(d, n("l3"), "cat /tmp/ran; stat -c %u:%g /tmp/ran") == "/work\n1234:50\n"
    env = sh(d, n("l3"), "echo $FROM_IMAGE $OVERRIDDEN $PATH")
    assert env == "yes instance /bin\n"
    # exec's own defaults (cwd /, root) apply to exec; the init got the image's
    assert sh(d, n("l3"), "cat /proc/1/status | grep -E '^(Uid|Gid)' | awk '{print $2}' | tr '\\n' ' '") == "1234 50 "
    # Writes go to the instance's upper directory, never into a layer.
    sh(d, n("l3"), "echo changed > /data/c; rm /data/b")
    layer_dir = os.path.join(d.state_dir, "images", "layers")
    with open(os.path.join(layer_dir, layers[1], "data", "c")) as f:
        assert f.read() == "C1"
    assert os.path.exists(os.path.join(layer_dir, layers[2], "data", "b"))
    upper = os.path.join(d.state_dir, "instances", n("l3"), "upper")
    with open(os.path.join(upper, "data", "c")) as f:
        assert f.read() == "changed\n"


def test_forty_layers(gureumd):
    d = gureumd
    layers = [busybox_layer(d.state_dir)]
    for i in range(40):
        def build(dd, i=i):
            os.makedirs(os.path.join(dd, "l"))
            with open(os.path.join(dd, "l", str(i)), "w") as f:
                f.write(str(i))
            with open(os.path.join(dd, "l", "last"), "w") as f:
                f.write(str(i))
            return ("forty", i)
        layers.append(make_layer(d.state_dir, build))
    fp = make_image(d.state_dir, layers)
    create(d, n("l40"), source={"type": "image", "alias": fp})
    assert sh(d, n("l40"), "ls /l | wc -l") == "41\n"
    assert sh(d, n("l40"), "cat /l/last") == "39"


def test_image_errors(gureumd):
    d = gureumd
    base = busybox_layer(d.state_dir)
    missing = "f" * 64
    fp = make_image(d.state_dir, [base, missing])
    error(d, "POST", "/1.0/instances", {"name": n("bad"), "source": {"type": "image", "alias": fp}}, 404,
          "layer ffffffffffff is missing")
    error(d, "POST", "/1.0/instances", {"name": n("bad"), "source": {"type": "image", "alias": "e" * 64}}, 404,
          "image eeeeeeeeeeee")
    fp = make_image(d.state_dir, [base], {"User": "nobody-here"})
    error(d, "POST", "/1.0/instances", {"name": n("bad"), "source": {"type": "image", "alias": fp}}, 400,
          "no such user")
    # A layer removed after create: start fails with the reason, nothing is left running.
    fp2 = make_image(d.state_dir, [base, make_layer(d.state_dir, lambda x: "extra")])
    create(d, n("gone"), source={"type": "image", "alias": fp2}, start=False)
    import shutil
    layers = os.path.join(d.state_dir, "images", "layers")
    victim = [x for x in os.listdir(layers) if x != base and not x.startswith(".")]
    for v in victim:
        shutil.rmtree(os.path.join(layers, v))
    op_error(d, "PUT", f"/1.0/instances/{n('gone')}/state", {"action": "start"}, "is missing")
