#!/usr/bin/env bash
# Runs every test: the normal build (warnings are errors) and an ASan+UBSan build.
# Ends with the plain line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh --deps || exit 2

fail_build=0
configure() {  # dir, extra meson args...
  local dir=$1; shift
  [ -f "$dir/build.ninja" ] || meson setup "$dir" -Dwerror=true "$@" >/dev/null || return 1
  ninja -C "$dir" >/dev/null || ninja -C "$dir"
}
configure build || fail_build=1
configure build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug \
  -Dc_args=-fno-sanitize-recover=all || fail_build=1

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
if [ $fail_build -eq 0 ]; then
  meson test -C build --print-errorlogs --num-processes 2 || status=1
  LS_QUICK=1 meson test -C build-asan --print-errorlogs --num-processes 2 || status=1
fi

python3 - "$fail_build" <<'PY'
import json, sys, os
passed = failed = skipped = 0
for log in ("build/meson-logs/testlog.json", "build-asan/meson-logs/testlog.json"):
    if not os.path.exists(log):
        continue
    for line in open(log):
        r = json.loads(line).get("result")
        if r in ("OK", "EXPECTEDFAIL"): passed += 1
        elif r == "SKIP": skipped += 1
        else: failed += 1
if sys.argv[1] != "0":
    failed += 1  # the build itself failed
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
sys.exit(1 if failed else 0)
PY
rc=$?
[ $status -ne 0 ] && rc=1
exit $rc
