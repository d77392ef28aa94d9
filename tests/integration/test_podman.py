"""podman drives the runtime (--runtime), with isolated storage that never touches the host's."""
import os
import shutil
import subprocess

import pytest

from helpers import RUNTIME, TIMEOUT, pid_alive, unmount_all_under, wait_for

pytestmark = [pytest.mark.podman, pytest.mark.slow]

PODMAN = shutil.which("podman")
IMAGE = "localhost/gureum-busybox:test"
# Podman's default rlimits exceed the hard limits of some machines (ENVIRONMENT.md)
ULIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]


class Podman:
    def __init__(self, base):
        self.base = base
        self.global_args = [
            PODMAN, "--root", os.path.join(base, "root"), "--runroot", os.path.join(base, "runroot"),
            "--tmpdir", os.path.join(base, "tmp"), "--storage-driver", "vfs",
            "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", RUNTIME,
        ]
        self.env = dict(os.environ)
        # no user/site containers.conf or storage.conf may redirect storage
        self.env["CONTAINERS_STORAGE_CONF"] = os.path.join(base, "storage.conf")
        with open(self.env["CONTAINERS_STORAGE_CONF"], "w") as f:
            f.write(f'[storage]\ndriver = "vfs"\nrunroot = "{base}/runroot"\n'
                    f'graphroot = "{base}/root"\n')

    def __call__(self, *args, check=True, timeout=TIMEOUT):
        p = subprocess.run(self.global_args + list(args), stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout, env=self.env)
        if check and p.returncode != 0:
            raise AssertionError(f"podman {args} failed ({p.returncode}): {p.stdout}\n{p.stderr}")
        return p


@pytest.fixture(scope="module")
def podman(runtime_bin, template, session_dir):
    if not PODMAN:
        pytest.skip("podman is not installed (apt-get install podman)")
    base = os.path.join(session_dir, "podman")
    os.makedirs(base)
    pm = Podman(base)
    tarball = os.path.join(base, "rootfs.tar")
    subprocess.run(["tar", "-C", os.path.join(template[0], "rootfs"), "-cf", tarball, "."], check=True)
    pm("import", tarball, IMAGE)
    yield pm
    pm("rm", "--all", "--force", "--time", "0", check=False)
    pm("rmi", "--all", "--force", check=False)
    # vfs layers are plain directories, but podman may leave a container's shm mount behind
    unmount_all_under(base)
    shutil.rmtree(base, ignore_errors=True)


def test_podman_run(podman):
    p = podman("run", "--rm", "--network", "none", *ULIMITS, IMAGE,
               "sh", "-c", "echo hello-$((40+2)); echo pid=$$; cat /proc/self/uid_map | wc -l")
    assert "hello-42" in p.stdout, p
    assert "pid=1" in p.stdout, p


def test_podman_run_exit_code(podman):
    p = podman("run", "--rm", "--network", "none", *ULIMITS, IMAGE, "sh", "-c", "exit 9", check=False)
    assert p.returncode == 9, p


def test_podman_detach_exec_stop_rm(podman):
    name = "grtest-" + os.urandom(3).hex()
    p = podman("run", "-d", "--name", name, "--network", "none", *ULIMITS, IMAGE, "sleep", "1000")
    ctr = p.stdout.strip()
    assert ctr
    try:
        st = podman("inspect", "--format", "{{.State.Status}} {{.State.Pid}}", name).stdout.split()
        assert st[0] == "running", st
        pid = int(st[1])
        assert pid_alive(pid)
        e = podman("exec", name, "sh", "-c", "echo exec-ok; cat /proc/1/cmdline | tr '\\0' ' '")
        assert "exec-ok" in e.stdout and "sleep 1000" in e.stdout, e
        e = podman("exec", name, "sh", "-c", "exit 4", check=False)
        assert e.returncode == 4
        podman("stop", "--time", "1", name)
        st = podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
        assert st in ("exited", "stopped"), st
        wait_for(lambda: not pid_alive(pid), what="container init to exit")
    finally:
        podman("rm", "--force", name, check=False)
    p = podman("ps", "--all", "--format", "{{.Names}}")
    assert name not in p.stdout.split()
