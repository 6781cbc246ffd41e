#!/usr/bin/env bash
# Installs lockstep's build dependencies (Debian 12 packages) if any is missing, then
# configures and builds ./build. Safe to run again: it only does what is not done yet.
#   tools/setup.sh            deps + build/
#   tools/setup.sh --deps     deps only
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(meson ninja-build pkg-config gcc libjansson-dev libyaml-dev libhdf5-dev
      python3 python3-numpy python3-h5py python3-matplotlib clang libclang-rt-14-dev)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
[ "${1:-}" = "--deps" ] && exit 0

if [ ! -f build/build.ninja ]; then
  meson setup build -Dwerror=true >&2
fi
ninja -C build >&2
