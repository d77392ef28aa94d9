"""gureum-vmm's virtio-net over a tap, end to end: tests/guest/net.c sends an Ethernet frame from
inside the guest and waits for the host's answer. Every test that needs a tap runs in a network
namespace of its own (ip netns add gureum-test-...), with the tap created there; gureum-vmm and the
host side (an AF_PACKET socket on the tap, a small python helper) run in it through `ip netns exec`.
The machine's own namespace is never touched; the namespace is deleted after each test, always."""
import json
import os
import secrets
import shutil
import subprocess
import sys

import pytest

from vmmtest import VMM, guest

NET_ELF = guest("net.elf")
TIMEOUT = 60 * (2 if os.environ.get("GUREUM_ASAN") else 1)

pytestmark = [
    pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK), reason="/dev/kvm is not available"),
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces and taps need root"),
    pytest.mark.skipif(not os.path.exists("/dev/net/tun"), reason="no /dev/net/tun"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 (ip) is not installed"),
]

MAC = "02:00:00:aa:bb:cc"
ETHERTYPE = b"\x88\xb5"
PATTERN = bytes((i * 5 + 1) & 0xFF for i in range(64))

# The host side, run inside the namespace: waits for the guest's frame on the tap (ethertype
# 0x88b5, not one of our own outgoing frames), prints it as JSON, answers "pong" + the pattern
# XOR 0xff to the sender's MAC (with its last byte flipped when told "corrupt").
HELPER = r"""
import json, select, socket, sys, time
ifname, timeout, corrupt = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "corrupt"
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))  # ETH_P_ALL
s.bind((ifname, 0))
print("ready", flush=True)
deadline = time.monotonic() + timeout
while True:
    left = deadline - time.monotonic()
    if left <= 0:
        print(json.dumps({"error": "no frame from the guest"}), flush=True)
        sys.exit(1)
    if not select.select([s], [], [], left)[0]:
        continue
    data, addr = s.recvfrom(65536)
    if addr[2] == socket.PACKET_OUTGOING or len(data) < 14 or data[12:14] != b"\x88\xb5":
        continue
    break
reply = data[6:12] + bytes.fromhex("020000000001") + b"\x88\xb5" + b"gureum-net pong " + \
    bytes(b ^ 0xFF for b in data[30:94])
if corrupt:
    reply = reply[:-1] + bytes([reply[-1] ^ 1])
s.send(reply)
print(json.dumps({"frame": data.hex()}), flush=True)
"""


def run(*args, check=True, **kw):
    return subprocess.run(list(map(str, args)), capture_output=True, text=True, check=check, timeout=TIMEOUT, **kw)


def links(ns):
    out = run("ip", "-n", ns, "-o", "link", "show").stdout
    return sorted(l.split(":")[1].strip().split("@")[0] for l in out.splitlines())


@pytest.fixture
def netns():
    """A fresh network namespace with tap0 (up, IPv6 off so the host stays quiet), deleted after."""
    name = f"gureum-test-{secrets.token_hex(4)}"
    run("ip", "netns", "add", name)
    try:
        run("ip", "-n", name, "link", "set", "lo", "up")
        run("ip", "-n", name, "tuntap", "add", "dev", "tap0", "mode", "tap")
        run("ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.tap0.disable_ipv6=1")
        run("ip", "-n", name, "link", "set", "tap0", "up")
        yield name
    finally:
        run("ip", "netns", "del", name, check=False)
        assert name not in run("ip", "netns", "list").stdout


def vmm_in(ns, *args):
    return run("ip", "netns", "exec", ns, VMM, *args, check=False)


def round_trip(ns, *vmm_args, cmdline="", answer="good"):
    """Starts the host helper on tap0, runs the net payload, returns (vmm result, frame the host saw)."""
    helper = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", HELPER, "tap0", str(TIMEOUT), answer],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert helper.stdout.readline().strip() == "ready", helper.stderr.read()
        r = vmm_in(ns, "--kernel", NET_ELF, "--memory", "64M", "--serial", "stdio", *vmm_args,
                   "--cmdline", cmdline)
        # The VMM has exited: a frame the guest sent is already on the helper's socket.
        try:
            out, err = helper.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            out = ""
    finally:
        if helper.poll() is None:
            helper.kill()
            helper.wait()
    frame = None
    for line in out.splitlines():
        msg = json.loads(line)
        assert "error" not in msg, (msg, r)
        frame = bytes.fromhex(msg["frame"])
    return r, frame


def expected_frame(mac):
    return b"\xff" * 6 + bytes.fromhex(mac.replace(":", "")) + ETHERTYPE + b"gureum-net ping " + PATTERN


def test_frame_out_and_answer_in(netns):
    """The guest's frame reaches the host byte for byte (its source is --net mac=), the host's
    answer reaches the guest (checked there), and the payload reports success: exit status 0."""
    r, frame = round_trip(netns, "--net", f"tap=tap0,mac={MAC}", cmdline="mac=" + MAC.replace(":", ""))
    assert r.returncode == 0, r
    assert "net: answer received" in r.stdout and "net: ok" in r.stdout, r
    assert frame == expected_frame(MAC), frame.hex()


def test_corrupted_answer_is_detected(netns):
    """The guest really checks what it receives: one flipped bit in the answer's last byte is
    its check 58 (exit status 64 + 58)."""
    r, frame = round_trip(netns, "--net", f"tap=tap0,mac={MAC}", answer="corrupt")
    assert r.returncode == 64 + 58, r
    assert "answer's payload differs at byte 0x0000003f" in r.stdout, r.stdout
    assert frame == expected_frame(MAC)


def test_offloads_negotiated_under_the_sandbox(netns):
    """With CSUM/GUEST_CSUM negotiated, the sandboxed VMM sets the tap's offloads at DRIVER_OK
    (TUNSETOFFLOAD is allowed at run time, with the bits it uses) and the round trip still works."""
    r, frame = round_trip(netns, "--net", f"tap=tap0,mac={MAC}", cmdline="offload=1")
    assert r.returncode == 0, r
    assert frame == expected_frame(MAC)


def default_mac(tap, index):
    h = 2166136261
    for b in tap.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    h ^= h >> 16
    return "02:67:72:%02x:%02x:%02x" % ((h >> 8) & 0xFF, h & 0xFF, index)


def test_default_mac_is_deterministic(netns):
    r, frame = round_trip(netns, "--net", "tap=tap0")
    assert r.returncode == 0, r
    mac = default_mac("tap0", 0)
    assert f"mac {mac}" in r.stdout, r.stdout
    assert frame == expected_frame(mac)


def test_nets_in_config_file(netns, tmp_path):
    cfg = tmp_path / "vm.json"
    cfg.write_text(json.dumps({"kernel": NET_ELF, "memory": "64M", "nets": [f"tap=tap0,mac={MAC}"]}))
    r, frame = round_trip(netns, "--config", cfg)
    assert r.returncode == 0, r
    assert frame == expected_frame(MAC)


def test_missing_tap_is_a_configuration_error(netns):
    before = links(netns)
    r = vmm_in(netns, "--kernel", NET_ELF, "--net", "tap=nosuch0")
    assert r.returncode == 1, r
    assert "--net tap=nosuch0" in r.stderr and "nosuch0: no such network interface" in r.stderr, r.stderr
    assert links(netns) == before            # nothing created, nothing left behind
    assert run("ip", "-n", netns, "link", "show", "nosuch0", check=False).returncode != 0


def test_tun_or_busy_tap_is_refused(netns):
    run("ip", "-n", netns, "tuntap", "add", "dev", "tun0", "mode", "tun")
    r = vmm_in(netns, "--kernel", NET_ELF, "--net", "tap=tun0")
    assert r.returncode == 1 and "not a tap interface" in r.stderr, r
    r = vmm_in(netns, "--kernel", NET_ELF, "--net", "tap=tap0", "--net", "tap=tap0")
    assert r.returncode == 1 and "tap0: already in use" in r.stderr, r
    assert links(netns) == ["lo", "tap0", "tun0"]


@pytest.mark.parametrize("spec, message", [
    ("tap=tap0,mac=zz", '--net tap=tap0,mac=zz: bad MAC "zz"'),
    ("tap=tap0,mac=01:00:5e:00:00:01", "bad MAC"),
    ("tap0", '--net tap0: "tap0" is not key=value (expected tap=IF[,mac=MAC])'),
    ("mac=02:00:00:00:00:01", "no tap="),
    ("tap=tap0,foo=1", 'unknown option "foo"'),
    ("tap=", "tap= needs an interface name"),
    ("tap=a/b", "not a valid interface name"),
    ("tap=" + "x" * 16, "longer than 15 bytes"),
])
def test_bad_net_spec_is_a_clear_error(spec, message):
    """Parse errors come before anything is opened (so no namespace is needed)."""
    r = run(VMM, "--kernel", NET_ELF, "--net", spec, check=False)
    assert r.returncode == 1, r
    assert message in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1, r.stderr


def test_bad_nets_in_config_file(tmp_path):
    cfg = tmp_path / "vm.json"
    cfg.write_text(json.dumps({"kernel": NET_ELF, "nets": [7]}))
    r = run(VMM, "--config", cfg, check=False)
    assert r.returncode == 1 and "nets[0]" in r.stderr, r
    cfg.write_text(json.dumps({"kernel": NET_ELF, "nets": ["tap=t0", "tap=t1,mac=zz"]}))
    r = run(VMM, "--config", cfg, check=False)
    assert r.returncode == 1 and "nets[1] tap=t1,mac=zz: bad MAC" in r.stderr, r
