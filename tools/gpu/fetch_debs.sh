#!/usr/bin/env bash
# Run ONCE on a machine with apt and network (not the GPU machine): downloads the Debian
# packages the GPU machine lacks into .carry/debs/ (ignored by git; travels with
# `carry: [".carry"]`). tools/gpu/run.sh unpacks them there with dpkg -x into /tmp/carry.
#   tools/gpu/fetch_debs.sh           libyaml, libjansson (runtime + headers), pkgconf
# Safe to run again: packages already downloaded are kept.
set -euo pipefail
cd "$(dirname "$0")/../.."
PKGS=(libyaml-0-2 libyaml-dev libjansson4 libjansson-dev pkgconf pkgconf-bin libpkgconf3)
mkdir -p .carry/debs
cd .carry/debs
need=()
for p in "${PKGS[@]}"; do
  ls "${p}"_*.deb >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get download "${need[@]}" 2>/dev/null || {
    # package lists may be stale or absent (fresh container): refresh once and retry
    apt-get update -qq
    apt-get download "${need[@]}"
  }
fi
ls -l ./*.deb
