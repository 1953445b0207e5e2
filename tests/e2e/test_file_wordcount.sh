#!/usr/bin/env bash
# test_file_wordcount.sh -- Spark's HdfsWordCount end to end: files moved into a watched
# directory are counted once each; dot-files, subdirectories, files already there at start
# and files older than `remember` are not read.
source "$(dirname "$0")/lib.sh"
sl_setup

in=$SL_TMP/in
mkdir -p "$in" "$SL_TMP/stage"
echo "present at start" >"$in/existing.txt"
cat >"$SL_TMP/files.yaml" <<YAML
app:
  name: file_wordcount
  batch_interval: 500ms
sources:
  - name: files
    type: file
    path: \${WATCH_DIR}
    remember: 60s
    poll_interval: 100ms
streams:
  - name: counts
    from: files
    ops:
      - split: whitespace
      - key: value
      - value: 1
      - reduce_by_key: sum
sinks:
  - name: out
    type: stdout
    from: counts
    num: 1000
YAML

# move_in NAME TEXT [TOUCH_DATE]: writes the file elsewhere, then renames it into the
# watched directory (a file must appear whole).
move_in() {
    printf '%b' "$2" >"$SL_TMP/stage/$1"
    [ $# -lt 3 ] || touch -d "$3" "$SL_TMP/stage/$1"
    mv "$SL_TMP/stage/$1" "$in/$1"
}

WATCH_DIR=$in sl_start sluice "$SL_TMP/files.yaml"
sluice_pid=$SL_LAST_PID
sl_wait_for_line "$SL_TMP/sluice.log" "started" 10 || sl_fail "sluice did not start"

move_in a.txt 'apple banana\napple\r\ncherry'
move_in b.txt 'banana apple\n'
move_in .hidden 'hidden apple\n'
move_in old.txt 'ancient apple\n' '2 hours ago'
mkdir "$in/sub" && printf 'nested apple\n' >"$in/sub/c.txt"
sleep 0.5
move_in last.txt 'sentinel\n'

sl_wait_until 15 grep -q '^(sentinel,1)$' "$SL_TMP/sluice.out" || sl_fail "last.txt not read"
sleep 1 # more polls: nothing is read twice
sl_stop "$sluice_pid"
rc=$?
[ "$rc" -eq 0 ] || sl_fail "sluice exited with $rc"

for kv in apple=3 banana=2 cherry=1 sentinel=1 present=0 hidden=0 ancient=0 nested=0; do
    got=$(sl_sum_counts "$SL_TMP/sluice.out" "${kv%%=*}")
    [ "$got" = "${kv#*=}" ] || sl_fail "count of ${kv%%=*}: $got, expected ${kv#*=}"
done
sl_pass
