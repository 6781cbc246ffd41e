#!/usr/bin/env bash
# The one-call GPU runner. Run ON the GPU machine, in the repository root:
#
#   bash tools/gpu/run.sh 'COMMAND'
#
# It (1) records the machine (GPU, nvcc, gcc, meson, which -dev packages exist),
# (2) unpacks the Debian packages that tools/gpu/fetch_debs.sh put in .carry/debs/ into
# /tmp/carry and points pkg-config / the compiler / the linker at them (plus HDF5's serial
# headers), (3) configures and builds build-gpu/ (meson + ninja, -Dwerror=false: the
# machine's newer gcc may warn where gcc 12 does not), then (4) runs COMMAND with bash.
# Every step's output goes to the terminal and to logs under $OUT (./out when OUT is
# unset): env.log, build.log, command.log. Exit status: COMMAND's, or 2 if the build
# failed (COMMAND then does not run).
#
# From the session's `run` tool (see docs/gpu.md):
#   command: bash tools/gpu/run.sh 'meson test -C build-gpu --suite cuda --print-errorlogs'
#   carry:   [".carry"]
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
CMD=${1:-"meson test -C build-gpu --suite cuda --print-errorlogs"}
OUT=${OUT:-$ROOT/out}
mkdir -p "$OUT"
BUILD=${LS_GPU_BUILD:-build-gpu}
CARRY=/tmp/carry
say() { printf '== %s\n' "$*"; }

# ---- 1. the machine -------------------------------------------------------------------
{
  say "machine"
  date -u
  uname -a
  nvidia-smi -L 2>&1 || echo "nvidia-smi: not available"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || true
  command -v nvcc && nvcc --version | tail -2
  command -v gcc && gcc --version | head -1
  command -v compute-sanitizer || echo "compute-sanitizer: not on PATH"
  python3 --version 2>&1
  say "dev packages installed here (yaml, jansson, hdf5, pkg-config)"
  dpkg -l 2>/dev/null | awk '$1 == "ii" {print $2, $3}' | grep -E 'yaml|jansson|hdf5|pkgconf|pkg-config' || true
  ls -d /usr/include/hdf5/serial 2>/dev/null || echo "no /usr/include/hdf5/serial"
} 2>&1 | tee "$OUT/env.log"

# ---- 2. carried packages ----------------------------------------------------------------
mkdir -p "$CARRY"
n_debs=0
for f in "$ROOT"/.carry/debs/*.deb; do
  [ -e "$f" ] || continue
  dpkg -x "$f" "$CARRY" && n_debs=$((n_debs + 1))
done
say "unpacked $n_debs carried .deb files into $CARRY" | tee -a "$OUT/env.log"
PCDIR=$CARRY/usr/lib/x86_64-linux-gnu/pkgconfig
mkdir -p "$PCDIR"
# the .pc files say prefix=/usr: point them at the unpacked tree
for pc in "$PCDIR"/*.pc; do
  [ -e "$pc" ] && sed -i "s|^prefix=/usr\$|prefix=$CARRY/usr|" "$pc"
done
export PKG_CONFIG_PATH=$PCDIR${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
export CPATH=$CARRY/usr/include:/usr/include/hdf5/serial${CPATH:+:$CPATH}
export LIBRARY_PATH=$CARRY/usr/lib/x86_64-linux-gnu${LIBRARY_PATH:+:$LIBRARY_PATH}
export LD_LIBRARY_PATH=$CARRY/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# the machine's own tools first; the carried pkgconf only if it has none
export PATH=$PATH:$CARRY/usr/bin
# meson / ninja: the pip packages of the machine's python3 if not on PATH
if ! command -v meson >/dev/null; then
  mkdir -p "$CARRY/bin"
  printf '#!/bin/sh\nexec python3 -m mesonbuild.mesonmain "$@"\n' > "$CARRY/bin/meson"
  chmod +x "$CARRY/bin/meson"
  export PATH=$CARRY/bin:$PATH
fi
if ! command -v ninja >/dev/null; then
  nb=$(python3 -c 'import ninja, os; print(ninja.BIN_DIR)' 2>/dev/null) && export PATH=$PATH:$nb
fi
# HDF5: Ubuntu's libhdf5-dev ships hdf5.pc; if it is missing, write one for the serial
# library (its headers are under /usr/include/hdf5/serial)
if ! pkg-config --exists hdf5 2>/dev/null; then
  h5lib=$(ls -d /usr/lib/x86_64-linux-gnu/hdf5/serial 2>/dev/null || true)
  if [ -n "$h5lib" ] && [ -e "$h5lib/libhdf5.so" ]; then
    cat > "$PCDIR/hdf5.pc" <<EOF
Name: hdf5
Description: HDF5 (serial), written by tools/gpu/run.sh
Version: 1.10.0
Cflags: -I/usr/include/hdf5/serial
Libs: -L$h5lib -lhdf5
EOF
    say "wrote $PCDIR/hdf5.pc for $h5lib" | tee -a "$OUT/env.log"
  else
    say "WARNING: no pkg-config hdf5 and no serial libhdf5.so found" | tee -a "$OUT/env.log"
  fi
fi
{
  say "build tools"
  echo "meson $(meson --version 2>&1)"; echo "ninja $(ninja --version 2>&1)"
  echo "pkg-config $(command -v pkg-config) $(pkg-config --version 2>&1)"
  for p in jansson yaml-0.1 hdf5; do
    echo "pkg-config $p: $(pkg-config --modversion $p 2>&1)"
  done
} 2>&1 | tee -a "$OUT/env.log"

# ---- 3. build --------------------------------------------------------------------------
say "build ($BUILD)"
t0=$(date +%s)
{
  if [ ! -f "$BUILD/build.ninja" ]; then
    meson setup "$BUILD" -Dwerror=false -Dbuildtype=debugoptimized || exit 1
  fi
  ninja -C "$BUILD"
} > "$OUT/build.log" 2>&1
build_rc=$?
grep -E 'Cuda compiler|Dependency|Run-time dependency|nvcc|warning:' "$OUT/build.log" | head -40
if [ $build_rc -ne 0 ]; then
  say "BUILD FAILED (exit $build_rc); the end of $OUT/build.log:"
  tail -60 "$OUT/build.log"
  exit 2
fi
say "build ok in $(( $(date +%s) - t0 )) s"

# ---- 4. the command --------------------------------------------------------------------
say "command: $CMD"
t0=$(date +%s)
bash -c "$CMD" 2>&1 | tee "$OUT/command.log"
rc=${PIPESTATUS[0]}
say "command exit $rc after $(( $(date +%s) - t0 )) s; logs in $OUT: env.log build.log command.log"
exit "$rc"
