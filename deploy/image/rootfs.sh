#!/bin/sh
# Lays out the image's whole filesystem in DIR: the meshid binary (debug
# info stripped), the shared libraries `ldd` says it loads, and an
# /etc/passwd and /etc/group naming the non-root user 65532. Nothing else:
# no shell, no package manager. Used by Containerfile (inside the builder)
# and by scripts/image-build-local (on this machine).
#
#   rootfs.sh BINARY DIR
set -eu
bin=$1
dir=$2
if [ -e "$dir" ]; then
  echo "rootfs.sh: $dir exists; give a new directory" >&2
  exit 1
fi
mkdir -p "$dir/usr/local/bin" "$dir/etc" "$dir/tmp"
chmod 1777 "$dir/tmp"
cp "$bin" "$dir/usr/local/bin/meshid"
if command -v strip >/dev/null 2>&1; then
  strip --strip-debug "$dir/usr/local/bin/meshid"
fi
chmod 0755 "$dir/usr/local/bin/meshid"
# `ldd` prints "name => /path (addr)" or "/path (addr)"; the vDSO has no path.
for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
  mkdir -p "$dir$(dirname "$lib")"
  cp -L "$lib" "$dir$lib"
done
echo 'meshid:x:65532:65532:meshid:/nonexistent:/sbin/nologin' > "$dir/etc/passwd"
echo 'meshid:x:65532:' > "$dir/etc/group"
