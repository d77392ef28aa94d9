#!/usr/bin/env bash
# Installs every build, test and benchmark dependency of gureum from Debian packages.
# Idempotent: safe to run again; does nothing when everything is present.
set -euo pipefail

packages=(
  # build
  build-essential meson ninja-build pkg-config
  libjansson-dev libseccomp-dev libcap-dev libmicrohttpd-dev
  libwebsockets-dev libsqlite3-dev libssl-dev  # gureumd
  libarchive-dev  # gureumd's image layers (tar, gzip, xz, zstd)
  libmnl-dev libnftables-dev nftables dnsmasq-base  # gureumd's networks (netlink, NAT, DHCP/DNS)
  # tests
  libcmocka-dev python3 python3-pytest
  python3-websocket python3-yaml  # gureumd's WebSocket and OpenAPI tests
  zstd xz-utils  # compressed layer fixtures
  # built-in busybox bundle, integration tests
  busybox-static iproute2 util-linux procps
  # peers for side-by-side tests and benchmarks
  crun runc podman hyperfine time
  iperf3  # bench/network.py
  acpica-tools  # iasl: decodes the ACPI tables gureum-vmm builds (unit test acpi)
  # qemu-system-x86: bench/vmm.sh's side-by-side. (Debian's cloud kernel for the Linux boot test
  # is not installed here: as a package it pulls in initramfs-tools and udev and rebuilds an
  # initramfs; the test skips without it, and on PVM hosts anyway.)
  qemu-system-x86
  kmod  # depmod: scripts/fetch-kernel.sh makes the guest kernel's modules.dep
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exec "$(dirname "$0")/fetch-kernel.sh"  # the VM guest kernel (idempotent)
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages (${missing[*]}); run this script as root" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
"$(dirname "$0")/fetch-kernel.sh"  # the VM guest kernel (Debian cloud kernel, unpacked)
