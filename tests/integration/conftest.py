"""Fixtures for the gureum-runtime integration tests.

Run:  /usr/bin/python3 -m pytest -q tests/integration
      GUREUM_RUNTIME=$(command -v runc) /usr/bin/python3 -m pytest -q -m "not gureum_only" tests/integration

Fixtures:
  runtime_bin   absolute path of the runtime under test (env GUREUM_RUNTIME, default
                <repo>/build/src/runtime/gureum-runtime)
  workdir       a per-test directory (world-traversable, short path) for bundles, sockets, files
  rt            Runtime: rt(*args, check=True, input=None, timeout=...) with a per-test --root,
                plus rt.new_id(), rt.state(), rt.wait_status(), rt.create(), rt.run(), rt.exec_()
  cid           a unique container id, force-deleted after the test
  bundle        factory: bundle(*args) -> Bundle (a copy of the busybox bundle; edit .config)
"""
import os
import shutil
import tempfile
import warnings

import pytest

import helpers
from helpers import RUNTIME, IS_RUNC, IS_GUREUM


def pytest_configure(config):
    config.addinivalue_line("markers", "gureum_only: needs gureum-specific behaviour")
    config.addinivalue_line("markers", "not_runc(reason): unsupported by runc")
    config.addinivalue_line("markers", "podman: drives the runtime through podman")
    config.addinivalue_line("markers", "slow: takes seconds; deselected by the ASan run")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if not IS_GUREUM and item.get_closest_marker("gureum_only"):
            item.add_marker(pytest.mark.skip(reason=f"gureum-specific behaviour; runtime is {RUNTIME}"))
        m = item.get_closest_marker("not_runc")
        if IS_RUNC and m:
            reason = m.args[0] if m.args else m.kwargs.get("reason", "unsupported by runc")
            item.add_marker(pytest.mark.skip(reason=f"runc: {reason}"))


def pytest_report_header(config):
    return f"runtime under test: {RUNTIME}"


@pytest.fixture(scope="session")
def runtime_bin():
    if not (os.path.isfile(RUNTIME) and os.access(RUNTIME, os.X_OK)):
        pytest.fail(f"runtime {RUNTIME} not found or not executable: build it (meson setup build && "
                    f"ninja -C build) or set GUREUM_RUNTIME to an OCI runtime such as $(command -v runc)",
                    pytrace=False)
    if os.geteuid() != 0:
        pytest.skip("integration tests need root")
    return RUNTIME


@pytest.fixture(scope="session")
def session_dir():
    # Not under /tmp/pytest-of-root (mode 0700): a container in a user namespace must be able
    # to traverse to its bundle; and short, for unix socket paths.
    d = tempfile.mkdtemp(prefix="gr-it-", dir="/tmp")
    os.chmod(d, 0o755)
    helpers.become_subreaper()
    yield d
    helpers.reap_orphans()
    leaked = helpers.unmount_all_under(d)
    shutil.rmtree(d, ignore_errors=True)
    assert not leaked, f"mounts left under {d}: {leaked}"


@pytest.fixture(scope="session")
def template(session_dir):
    path = os.path.join(session_dir, "template")
    config = helpers.build_template(path)
    return path, config


_counter = [0]


@pytest.fixture
def workdir(session_dir, request):
    _counter[0] += 1
    name = request.node.name.replace("test_", "", 1)
    for ch in "[]/:, ":
        name = name.replace(ch, "_")
    d = os.path.join(session_dir, f"{_counter[0]:03d}-{name[:40]}")
    os.makedirs(d)
    os.chmod(d, 0o755)
    yield d


@pytest.fixture
def rt(runtime_bin, workdir):
    root = os.path.join(workdir, "state")
    os.makedirs(root)
    r = helpers.Runtime(runtime_bin, root, workdir)
    yield r
    r.cleanup()
    leaked = [d for c in r.ids for d in helpers.cgroup_dirs_named(c)]
    for d in sorted(leaked, key=len, reverse=True):
        try:
            os.rmdir(d)
        except OSError:
            pass
    if leaked:
        warnings.warn(f"cgroups left behind by the runtime (removed by the test): {leaked}")
    # Anything still running from this test's bundles is a leak of the runtime or the test:
    # kill it so the next tests start clean (the test that leaked has already been judged).
    helpers.kill_processes(helpers.processes_under(workdir))
    helpers.reap_orphans()
    leaked = helpers.unmount_all_under(workdir)
    if not leaked:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def cid(rt):
    return rt.new_id()


@pytest.fixture
def bundle(template, workdir):
    tdir, tconfig = template
    n = [0]

    def make(*args, name=None):
        n[0] += 1
        dest = os.path.join(workdir, name or ("bundle" if n[0] == 1 else f"bundle{n[0]}"))
        b = helpers.copy_bundle(tdir, tconfig, dest)
        if args:
            b.set_args(*args)
        return b
    return make
