#!/usr/bin/env bash
# mkbundle.sh DIR [ARGS...] -- build an OCI bundle at DIR from Debian's busybox-static.
#
#   DIR/rootfs       /bin/busybox, one symlink per applet in bin/ (sbin applets also in sbin/),
#                    /etc/passwd and /etc/group (root, nobody), empty dev proc sys tmp
#   DIR/config.json  the config `runc spec` writes (hostname "gureum", not a terminal, cgroup
#                    namespace added), process.args = ARGS or ["sh"]
#
# Idempotent (running it again rebuilds the same bundle), silent on success.
# Environment: BUSYBOX=path overrides /bin/busybox (must be statically linked).
set -euo pipefail

die() { echo "mkbundle: $*" >&2; exit 1; }

[ $# -ge 1 ] || die "usage: mkbundle.sh DIR [ARGS...]"
dir=$1
shift
[ -n "$dir" ] || die "usage: mkbundle.sh DIR [ARGS...]"

bb=${BUSYBOX:-/bin/busybox}
if [ ! -x "$bb" ]; then
  die "$bb not found: install Debian's busybox-static (apt-get install busybox-static)"
fi
# The rootfs has no libc, so busybox must be static: Debian's 'busybox' package is dynamic.
# ELF64 little-endian: a dynamically linked binary has a PT_INTERP (3) program header.
elf_has_interp() {
  local f=$1 phoff phentsize phnum i type
  [ "$(od -An -c -N4 "$f" | tr -d ' ')" = '177ELF' ] || return 2
  phoff=$(od -An -t u8 -j 32 -N 8 "$f" | tr -d ' ')
  phentsize=$(od -An -t u2 -j 54 -N 2 "$f" | tr -d ' ')
  phnum=$(od -An -t u2 -j 56 -N 2 "$f" | tr -d ' ')
  for ((i = 0; i < phnum; i++)); do
    type=$(od -An -t u4 -j $((phoff + i * phentsize)) -N 4 "$f" | tr -d ' ')
    [ "$type" != 3 ] || return 0
  done
  return 1
}
rc=0
elf_has_interp "$bb" || rc=$?
case $rc in
  0) die "$bb is dynamically linked: install busybox-static (apt-get install busybox-static)" ;;
  2) die "$bb is not an ELF binary: install busybox-static (apt-get install busybox-static)" ;;
esac

mkdir -p "$dir"
rootfs=$dir/rootfs
mkdir -p "$rootfs"/{bin,sbin,etc,dev,proc,sys,tmp,root}
chmod 1777 "$rootfs/tmp"
chmod 0700 "$rootfs/root"

# Replace the binary atomically (a running container may hold the old one open).
cp -f "$bb" "$rootfs/bin/.busybox.tmp"
chmod 0755 "$rootfs/bin/.busybox.tmp"
mv -f "$rootfs/bin/.busybox.tmp" "$rootfs/bin/busybox"

# Every applet in bin/ so that any PATH finds it; applets that busybox installs in
# sbin or usr/sbin also get a link in sbin/.
while IFS= read -r full; do
  name=${full##*/}
  case $name in ''|busybox|linuxrc) continue ;; esac
  ln -sfn busybox "$rootfs/bin/$name"
  case $full in
    sbin/*|usr/sbin/*) ln -sfn ../bin/busybox "$rootfs/sbin/$name" ;;
  esac
done < <("$bb" --list-full)
[ -L "$rootfs/bin/sh" ] || die "$bb --list-full did not list 'sh'"

cat > "$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat > "$rootfs/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
EOF

json_escape() {
  local s=$1 out='' c i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case $c in
      '"') out+='\"' ;;
      '\') out+='\\' ;;
      $'\n') out+='\n' ;;
      $'\t') out+='\t' ;;
      $'\r') out+='\r' ;;
      [[:cntrl:]]) out+=$(printf '\\u%04x' "'$c") ;;
      *) out+=$c ;;
    esac
  done
  printf '"%s"' "$out"
}

[ $# -gt 0 ] || set -- sh
args=''
for a in "$@"; do
  [ -z "$args" ] || args+=', '
  args+=$(json_escape "$a")
done

caps='"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"'

cat > "$dir/config.json.tmp" <<EOF
{
  "ociVersion": "1.0.2",
  "process": {
    "terminal": false,
    "user": { "uid": 0, "gid": 0 },
    "args": [ $args ],
    "env": [
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      "TERM=xterm"
    ],
    "cwd": "/",
    "capabilities": {
      "bounding": [ $caps ],
      "effective": [ $caps ],
      "inheritable": [ $caps ],
      "permitted": [ $caps ],
      "ambient": [ $caps ]
    },
    "rlimits": [
      { "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }
    ],
    "noNewPrivileges": true
  },
  "root": { "path": "rootfs", "readonly": true },
  "hostname": "gureum",
  "mounts": [
    { "destination": "/proc", "type": "proc", "source": "proc" },
    { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
      "options": [ "nosuid", "strictatime", "mode=755", "size=65536k" ] },
    { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
      "options": [ "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5" ] },
    { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
      "options": [ "nosuid", "noexec", "nodev", "mode=1777", "size=65536k" ] },
    { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
      "options": [ "nosuid", "noexec", "nodev" ] },
    { "destination": "/sys", "type": "sysfs", "source": "sysfs",
      "options": [ "nosuid", "noexec", "nodev", "ro" ] },
    { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
      "options": [ "nosuid", "noexec", "nodev", "relatime", "ro" ] }
  ],
  "linux": {
    "resources": {
      "devices": [ { "allow": false, "access": "rwm" } ]
    },
    "namespaces": [
      { "type": "pid" },
      { "type": "network" },
      { "type": "ipc" },
      { "type": "uts" },
      { "type": "mount" },
      { "type": "cgroup" }
    ],
    "maskedPaths": [
      "/proc/acpi",
      "/proc/asound",
      "/proc/kcore",
      "/proc/keys",
      "/proc/latency_stats",
      "/proc/timer_list",
      "/proc/timer_stats",
      "/proc/sched_debug",
      "/sys/firmware",
      "/proc/scsi"
    ],
    "readonlyPaths": [
      "/proc/bus",
      "/proc/fs",
      "/proc/irq",
      "/proc/sys",
      "/proc/sysrq-trigger"
    ]
  }
}
EOF
mv -f "$dir/config.json.tmp" "$dir/config.json"
