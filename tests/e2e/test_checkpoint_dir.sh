#!/usr/bin/env bash
# test_checkpoint_dir.sh -- `sluice run` with app.checkpoint_dir: a missing directory is
# created and checkpoints appear in it; one that cannot be created or written (read-only)
# is a clear error (exit 1); a corrupt newest checkpoint is skipped for the one before it; a checkpoint written by
# a different pipeline is refused with what differs and how to start fresh.
source "$(dirname "$0")/lib.sh"
sl_setup

write_config() { # FILE CKPT_DIR OPS...
    local file=$1 dir=$2
    shift 2
    {
        printf 'app:\n  name: ckpt\n  batch_interval: 100ms\n  checkpoint_dir: %s\n' "$dir"
        printf 'sources:\n  - name: lines\n    type: generate\n    rate: 50\n'
        printf 'streams:\n  - name: counts\n    from: lines\n    ops:\n'
        for op in "$@"; do printf '      - %s\n' "$op"; done
        printf 'sinks:\n  - name: out\n    type: stdout\n    from: counts\n'
    } >"$file"
}

# 1. A missing directory is created; checkpoint files appear, at most 3 kept.
write_config "$SL_TMP/a.yaml" "$SL_TMP/ckpt/nested" "split: whitespace" "key: value" \
    "value: 1" "reduce_by_key: sum"
"$SLUICE_BIN" run "$SL_TMP/a.yaml" --seconds 1.5 >"$SL_TMP/a.out" 2>"$SL_TMP/a.log" ||
    sl_fail "run with a new checkpoint dir failed"
n=$(ls "$SL_TMP/ckpt/nested/metadata" | grep -c '^checkpoint-.*\.json$' || true)
[ "$n" -ge 1 ] && [ "$n" -le 3 ] || sl_fail "expected 1..3 checkpoint files, found $n"
head -c 18 "$(ls -d "$SL_TMP"/ckpt/nested/metadata/checkpoint-* | tail -1)" |
    grep -q "SLUICE-CHECKPOINT" || sl_fail "checkpoint file without its header"
sl_log "new dir: $n checkpoint files"

# 2. Restart on the same directory: recovery is logged.
"$SLUICE_BIN" run "$SL_TMP/a.yaml" --seconds 1 >/dev/null 2>"$SL_TMP/b.log" ||
    sl_fail "restart failed"
grep -q "recovering from the checkpoint" "$SL_TMP/b.log" || sl_fail "no recovery on restart"

# 3. The newest file corrupt: the one before it is used, with a warning.
newest=$(ls -d "$SL_TMP"/ckpt/nested/metadata/checkpoint-* | tail -1)
printf 'garbage' | dd of="$newest" bs=1 seek=40 conv=notrunc status=none
"$SLUICE_BIN" run "$SL_TMP/a.yaml" --seconds 1 >/dev/null 2>"$SL_TMP/c.log" ||
    sl_fail "run after a corrupt checkpoint failed"
grep -q "is unusable (checksum mismatch" "$SL_TMP/c.log" || sl_fail "corruption not reported"
grep -q "recovering from the checkpoint" "$SL_TMP/c.log" || sl_fail "previous checkpoint not used"

# 4. Another pipeline on the same directory: refused, exit 1, with the difference.
write_config "$SL_TMP/d.yaml" "$SL_TMP/ckpt/nested" "split: whitespace" "key: value" \
    "value: 1" "count_by_value: {}"
set +e
"$SLUICE_BIN" run "$SL_TMP/d.yaml" --seconds 1 >/dev/null 2>"$SL_TMP/d.log"
rc=$?
set -e
[ "$rc" -eq 1 ] || sl_fail "a different pipeline: exit $rc, expected 1"
grep -q "written by a different pipeline" "$SL_TMP/d.log" || sl_fail "no explanation"
grep -q "was: " "$SL_TMP/d.log" && grep -q "now: " "$SL_TMP/d.log" || sl_fail "no difference shown"
grep -q "delete" "$SL_TMP/d.log" || sl_fail "how to start fresh is not said"

# 5. A directory that cannot be created (below a regular file): clear error, exit 1.
touch "$SL_TMP/file"
write_config "$SL_TMP/e.yaml" "$SL_TMP/file/ckpt" "split: whitespace"
set +e
"$SLUICE_BIN" run "$SL_TMP/e.yaml" --seconds 1 >/dev/null 2>"$SL_TMP/e.log"
rc=$?
set -e
[ "$rc" -eq 1 ] || sl_fail "unusable dir: exit $rc, expected 1"
grep -q "$SL_TMP/file/ckpt/metadata cannot be created" "$SL_TMP/e.log" ||
    sl_fail "the unusable directory is not named"
# 6. A directory that exists but cannot be written (procfs: read-only even for root, who
#    passes any chmod): clear error naming it, exit 1.
write_config "$SL_TMP/f.yaml" /proc/self "split: whitespace"
set +e
"$SLUICE_BIN" run "$SL_TMP/f.yaml" --seconds 1 >/dev/null 2>"$SL_TMP/f.log"
rc=$?
set -e
[ "$rc" -eq 1 ] || sl_fail "read-only dir: exit $rc, expected 1"
grep -q "checkpoint directory /proc/self/metadata cannot be created" "$SL_TMP/f.log" ||
    sl_fail "the read-only directory is not named"
sl_pass
