#!/usr/bin/env bash
# Fetches the guest kernel for gureum's VM instances: the kernel package that
# Debian's linux-image-cloud-amd64 metapackage currently depends on, unpacked
# (not installed: as a package it would pull in initramfs-tools and udev and
# build an initramfs on the host) into
#
#   $GUREUM_KERNEL_DIR/VERSION/boot/vmlinuz-VERSION
#   $GUREUM_KERNEL_DIR/VERSION/lib/modules/VERSION/...
#   $GUREUM_KERNEL_DIR/current -> VERSION   (a relative symlink, replaced atomically)
#
# GUREUM_KERNEL_DIR defaults to /var/cache/gureum/kernel. gureumd builds each
# VM's initramfs from this tree (src/daemon/vm/initrd.c).
#
# Idempotent: when current already names the version the metapackage wants and
# that tree is whole (its package stamp matches and every file passes the
# package's md5sums), it does nothing. Needs the Debian archive (run
# `apt-get update` first) and write access to GUREUM_KERNEL_DIR (root for the
# default). Older versions are kept (a VM may still use one); remove them by
# hand when no VM does.
set -euo pipefail

meta=linux-image-cloud-amd64
cache=${GUREUM_KERNEL_DIR:-/var/cache/gureum/kernel}

say() { printf 'fetch-kernel: %s\n' "$*"; }
die() { printf 'fetch-kernel: error: %s\n' "$*" >&2; exit 1; }

PATH=$PATH:/usr/sbin:/sbin  # depmod, for users whose PATH lacks sbin
for tool in apt-cache apt-get dpkg-deb md5sum; do
  command -v "$tool" >/dev/null || die "$tool not found (this script needs a Debian system with apt and dpkg)"
done
command -v depmod >/dev/null || die "depmod not found: install kmod (apt-get install kmod)"

# The metapackage's candidate and the kernel package it depends on, with the
# exact version it pins ("linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)").
if ! meta_info=$(apt-cache show --no-all-versions "$meta" 2>/dev/null) || [ -z "$meta_info" ]; then
  die "apt does not know $meta: run 'apt-get update' (as root) and try again"
fi
depends=$(sed -n 's/^Depends: //p' <<<"$meta_info" | head -n 1)
pkg='' pkg_version=''
dep_re='^(linux-image-[0-9][A-Za-z0-9.+~-]*)[[:space:]]*(\(=[[:space:]]*([^[:space:])]+)\))?[[:space:]]*$'
IFS=',' read -r -a alternatives <<<"$depends"
for dep in "${alternatives[@]}"; do
  dep=${dep#"${dep%%[![:space:]]*}"}  # strip leading blanks
  if [[ $dep =~ $dep_re ]]; then
    pkg=${BASH_REMATCH[1]}
    pkg_version=${BASH_REMATCH[3]}
    break
  fi
done
[ -n "$pkg" ] || die "$meta does not depend on a linux-image-VERSION package (Depends: $depends)"
if [ -z "$pkg_version" ]; then
  pkg_version=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null | sed -n 's/^Version: //p' | head -n 1)
  [ -n "$pkg_version" ] || die "apt has no candidate for $pkg: run 'apt-get update' and try again"
fi
# The kernel release (the modules directory's name) is the package name's tail.
version=${pkg#linux-image-}
stamp="$pkg $pkg_version"

# Is the tree at $1 whole for this package? Its stamp (written last) names it,
# the kernel and modules.dep (made by depmod) are there and every file matches
# the package's md5sums.
tree_whole() {
  local dir=$1
  [ -f "$dir/.gureum-package" ] && [ "$(cat "$dir/.gureum-package")" = "$stamp" ] || return 1
  [ -s "$dir/boot/vmlinuz-$version" ] && [ -s "$dir/lib/modules/$version/modules.dep" ] || return 1
  [ -s "$dir/.gureum-md5sums" ] || return 1
  (cd "$dir" && md5sum --quiet --strict -c .gureum-md5sums >/dev/null 2>&1)
}

if [ "$(readlink "$cache/current" 2>/dev/null || true)" = "$version" ] && tree_whole "$cache/$version"; then
  say "kernel $version ($pkg $pkg_version) already in $cache/current"
  exit 0
fi

if ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
  die "cannot write to $cache: run as root (or set GUREUM_KERNEL_DIR to a writable directory)"
fi

tmp=$(mktemp -d "$cache/.fetch-XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT

if tree_whole "$cache/$version"; then
  say "kernel $version already unpacked in $cache/$version"
else
  say "downloading $pkg $pkg_version from the Debian archive"
  mkdir "$tmp/deb"
  # apt downloads as the _apt user when it can: give it the directory.
  if [ "$(id -u)" -eq 0 ] && id _apt >/dev/null 2>&1; then
    chown _apt "$tmp/deb"
  fi
  if ! (cd "$tmp/deb" && apt-get download -q "$pkg=$pkg_version" >"$tmp/apt.log" 2>&1); then
    cat "$tmp/apt.log" >&2
    die "could not download $pkg=$pkg_version (is the Debian mirror reachable? has 'apt-get update' run?)"
  fi
  debs=("$tmp"/deb/*.deb)
  if [ ${#debs[@]} -ne 1 ] || [ ! -f "${debs[0]}" ]; then
    die "apt-get download of $pkg left no single .deb in $tmp/deb"
  fi
  deb=${debs[0]}
  got=$(dpkg-deb -f "$deb" Package Version | sed 's/^[^:]*: //' | paste -sd ' ')
  [ "$got" = "$stamp" ] || die "downloaded $deb is '$got', expected '$stamp'"

  say "unpacking into $cache/$version"
  dpkg-deb -x "$deb" "$tmp/tree"
  dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./md5sums >"$tmp/tree/.gureum-md5sums" \
    || die "$deb has no md5sums control file"
  [ -s "$tmp/tree/boot/vmlinuz-$version" ] || die "$pkg has no boot/vmlinuz-$version"
  [ -d "$tmp/tree/lib/modules/$version" ] || die "$pkg has no lib/modules/$version"
  (cd "$tmp/tree" && md5sum --quiet --strict -c .gureum-md5sums) \
    || die "the files unpacked from $deb do not match its md5sums"
  # The package ships no modules.dep (its postinst runs depmod): make it here.
  depmod -b "$tmp/tree" "$version" || die "depmod failed on $tmp/tree/lib/modules/$version"
  [ -s "$tmp/tree/lib/modules/$version/modules.dep" ] || die "depmod made no modules.dep for $version"
  printf '%s\n' "$stamp" >"$tmp/tree/.gureum-package"
  chmod 0755 "$tmp/tree"

  # A stale or partial tree of the same version goes aside first, then the
  # new one takes its name (a rename: readers never see a partial tree).
  if [ -e "$cache/$version" ] || [ -L "$cache/$version" ]; then
    mv -T -- "$cache/$version" "$tmp/old"
  fi
  mv -T -- "$tmp/tree" "$cache/$version"
fi

ln -s -- "$version" "$tmp/current"
mv -T -- "$tmp/current" "$cache/current"
say "kernel $version ($pkg $pkg_version) ready: $cache/current/boot/vmlinuz-$version"
