#!/usr/bin/env bash
# Broken model directories: every edit of a golden checkpoint that makes it wrong (a
# tensor dropped, added, re-shaped, re-typed; a file cut short; a bad config.json; a
# missing shard) must make `lockstep score` exit 2 with a message naming the tensor and
# the file, and print nothing on stdout.
set -uo pipefail
BUILD=${LS_BUILD_ROOT:?LS_BUILD_ROOT not set}
SRC=${LS_SOURCE_ROOT:?LS_SOURCE_ROOT not set}
LS="$BUILD/lockstep"
EDIT="$SRC/tests/tools/st_edit.py"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ls_cli_bad_model.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
cd "$TMP" || exit 1

fails=0
checks=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

printf '1 2 3 4\n5 6\n' >tokens.txt

# fresh NAME GOLDEN: a pristine copy of golden/GOLDEN at $TMP/NAME
fresh() { rm -rf "$TMP/$1"; cp -r "$SRC/golden/$2" "$TMP/$1" || exit 1; }

# expect_bad DESCRIPTION DIR PATTERN...: exit 2, empty stdout, each PATTERN in stderr
expect_bad() {
  local desc=$1 dir=$2; shift 2
  "$LS" score --model "$dir" --tokens tokens.txt >out.txt 2>err.txt
  local rc=$?
  checks=$((checks + 1))
  [ $rc -eq 2 ] || fail "$desc: exit code $rc, want 2 (stderr: $(head -c 300 err.txt))"
  [ -s out.txt ] && fail "$desc: stdout not empty: $(head -c 200 out.txt)"
  for p in "$@"; do
    grep -qF -- "$p" err.txt || fail "$desc: stderr does not mention '$p': $(head -c 400 err.txt)"
  done
  echo "ok  $desc: $(head -n 1 err.txt)"
}

# the pristine copies work (so every failure below is the edit's doing)
for g in jamba-tiny-a jamba-small-c; do
  fresh ok_$g $g
  "$LS" score --model "$TMP/ok_$g" --tokens tokens.txt >out.txt 2>err.txt
  rc=$?; checks=$((checks + 1))
  [ $rc -eq 0 ] && [ "$(wc -l <out.txt)" -eq 2 ] || fail "pristine copy of $g: exit $rc: $(cat err.txt)"
done
# st_edit's rewrite is faithful: drop + re-add nothing changes no byte
fresh rt jamba-tiny-a
python3 "$EDIT" rt/model.safetensors add lockstep.test.extra && python3 "$EDIT" rt/model.safetensors drop lockstep.test.extra
checks=$((checks + 1))
cmp -s rt/model.safetensors "$SRC/golden/jamba-tiny-a/model.safetensors" || fail "st_edit round trip changed the file"

# ---- single-file checkpoint (jamba-tiny-a) -------------------------------------------------
M=m
ST=$M/model.safetensors

fresh $M jamba-tiny-a
python3 "$EDIT" $ST drop model.layers.1.self_attn.k_proj.weight
expect_bad "tensor dropped" $M "model.layers.1.self_attn.k_proj.weight" "missing"

fresh $M jamba-tiny-a
python3 "$EDIT" $ST drop model.layers.3.feed_forward.experts.2.down_proj.weight
expect_bad "one expert's tensor dropped" $M "model.layers.3.feed_forward.experts.2.down_proj.weight"

fresh $M jamba-tiny-a
python3 "$EDIT" $ST drop lm_head.weight
expect_bad "untied lm_head dropped" $M "lm_head.weight"

fresh $M jamba-tiny-a
python3 "$EDIT" $ST add model.layers.0.mamba.extra_proj.weight F32 4,4
expect_bad "extra tensor" $M "model.layers.0.mamba.extra_proj.weight" "model.safetensors"

fresh $M jamba-tiny-a
python3 "$EDIT" $ST reshape model.layers.0.mamba.D 64,2
expect_bad "shape changed, same element count" $M "model.layers.0.mamba.D" "model.safetensors" "[64, 2]"

fresh $M jamba-tiny-a
python3 "$EDIT" $ST reshape model.layers.1.self_attn.q_proj.weight 64,63
expect_bad "shape changed, fewer elements" $M "model.layers.1.self_attn.q_proj.weight" "model.safetensors"

fresh $M jamba-tiny-a
python3 "$EDIT" $ST reshape model.embed_tokens.weight 129,64
expect_bad "embedding with a row too many" $M "model.embed_tokens.weight" "model.safetensors"

fresh $M jamba-tiny-a
python3 "$EDIT" $ST dtype model.layers.1.self_attn.q_proj.weight F8_E4M3
expect_bad "unsupported dtype F8_E4M3" $M "model.layers.1.self_attn.q_proj.weight" "F8_E4M3" "model.safetensors"

fresh $M jamba-tiny-a
python3 "$EDIT" $ST dtype model.layers.0.input_layernorm.weight I32
expect_bad "integer dtype for a weight" $M "model.layers.0.input_layernorm.weight" "model.safetensors"

fresh $M jamba-tiny-a
last=$(python3 "$EDIT" $ST list | tail -n 1 | cut -d' ' -f1)
python3 "$EDIT" $ST truncate 1
expect_bad "file cut by one byte" $M "model.safetensors" "$last"

fresh $M jamba-tiny-a
python3 "$EDIT" $ST truncate
expect_bad "file cut in half" $M "model.safetensors"

fresh $M jamba-tiny-a
head -c 5 "$SRC/golden/jamba-tiny-a/model.safetensors" >$ST
expect_bad "file shorter than its header length" $M "model.safetensors"

fresh $M jamba-tiny-a
rm $ST
expect_bad "no weights file" $M "model.safetensors"

# ---- config.json --------------------------------------------------------------------------
# edit_config DIR PYTHON: runs PYTHON with c = the parsed config, writes it back
edit_config() {
  python3 - "$1/config.json" "$2" <<'PY' || exit 1
import json, sys
c = json.load(open(sys.argv[1]))
exec(sys.argv[2])
json.dump(c, open(sys.argv[1], "w"), indent=2)
PY
}
fresh $M jamba-tiny-a
edit_config $M 'c["model_type"] = "llama"'
expect_bad "config: model_type llama" $M "config.json" "model_type"

fresh $M jamba-tiny-a
edit_config $M 'c["hidden_act"] = "gelu"'
expect_bad "config: hidden_act gelu" $M "config.json" "hidden_act"

fresh $M jamba-tiny-a
edit_config $M 'del c["num_hidden_layers"]'
expect_bad "config: num_hidden_layers missing" $M "config.json" "num_hidden_layers"

fresh $M jamba-tiny-a
edit_config $M 'c["hidden_size"] = "64"'
expect_bad "config: hidden_size a string" $M "config.json" "hidden_size"

fresh $M jamba-tiny-a
edit_config $M 'c["num_hidden_layers"] = 6'
expect_bad "config: more layers than the weights" $M "model.layers.4"

fresh $M jamba-tiny-a
edit_config $M 'c["num_hidden_layers"] = 2'
expect_bad "config: fewer layers than the weights" $M "model.layers.2"

fresh $M jamba-tiny-a
printf '{"model_type": "jamba",\n  "hidden_size": 64,\n  oops\n}\n' >$M/config.json
expect_bad "config: invalid JSON" $M "config.json:3:"

# ---- sharded checkpoint (jamba-small-c: 3 shards + index) ---------------------------------
S=s
fresh $S jamba-small-c
rm $S/model-00002-of-00003.safetensors
expect_bad "shard deleted" $S "model-00002-of-00003.safetensors"

fresh $S jamba-small-c
python3 "$EDIT" $S/model-00003-of-00003.safetensors drop "$(python3 "$EDIT" $S/model-00003-of-00003.safetensors list | tail -n 1 | cut -d' ' -f1)"
last3=$(python3 "$EDIT" "$SRC/golden/jamba-small-c/model-00003-of-00003.safetensors" list | tail -n 1 | cut -d' ' -f1)
expect_bad "tensor dropped from a shard the index names" $S "$last3"

fresh $S jamba-small-c
python3 "$EDIT" $S/model-00002-of-00003.safetensors reshape model.layers.3.mamba.D 255
expect_bad "shard tensor re-shaped" $S "model.layers.3.mamba.D" "model-00002-of-00003.safetensors"

fresh $S jamba-small-c
python3 "$EDIT" $S/model-00001-of-00003.safetensors dtype model.embed_tokens.weight F8_E5M2
expect_bad "shard tensor re-typed" $S "model.embed_tokens.weight" "model-00001-of-00003.safetensors"

fresh $S jamba-small-c
python3 "$EDIT" $S/model-00003-of-00003.safetensors truncate 3
expect_bad "shard truncated" $S "model-00003-of-00003.safetensors"

fresh $S jamba-small-c
rm $S/model.safetensors.index.json
expect_bad "index deleted" $S "model.safetensors"

echo "cli_bad_model: $checks checks, $fails failed"
[ $fails -eq 0 ]
