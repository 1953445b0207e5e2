#!/usr/bin/env bash
# test_file_sink.sh -- saveAsTextFiles end to end: lines sent to a listening tcp source are
# counted and each batch is saved as <prefix>-<batch ms>.txt/part-NNNNN with its
# _manifest.json; no temporary directory is left behind, and the saved counts add up to what
# was sent.
source "$(dirname "$0")/lib.sh"
sl_setup

port=$(sl_free_port)
out=$SL_TMP/out
cat >"$SL_TMP/sink.yaml" <<YAML
app:
  name: file_sink
  batch_interval: 500ms
sources:
  - name: lines
    type: tcp
    mode: listen
    host: 127.0.0.1
    port: $port
streams:
  - name: counts
    from: lines
    ops:
      - split: whitespace
      - key: value
      - value: 1
      - reduce_by_key: {fn: sum, partitions: 3}
sinks:
  - name: saved
    type: file
    from: counts
    prefix: $out/sub/counts
    suffix: txt
YAML

sl_start sluice "$SL_TMP/sink.yaml"
sluice_pid=$SL_LAST_PID
sl_wait_port "$port" 10 || sl_fail "sluice is not listening"
for round in 1 2 3; do
    exec 3<>"/dev/tcp/127.0.0.1/$port" || sl_fail "cannot connect"
    for i in $(seq 1 100); do
        printf 'red green red\n'
    done >&3
    exec 3>&-
    sleep 0.6
done
saved() { cat "$out"/sub/counts-*.txt/part-* 2>/dev/null; }
red_done() { [ "$(saved | sl_sum_counts /dev/stdin red)" -ge 600 ]; }
sl_wait_until 15 red_done || sl_fail "counts not saved: red=$(saved | sl_sum_counts /dev/stdin red)"
sl_stop "$sluice_pid"
rc=$?
[ "$rc" -eq 0 ] || sl_fail "sluice exited with $rc"

red=$(saved | sl_sum_counts /dev/stdin red)
green=$(saved | sl_sum_counts /dev/stdin green)
[ "$red" = 600 ] && [ "$green" = 300 ] || sl_fail "saved counts: red=$red green=$green"
ls -A "$out/sub" | grep -v -E '^counts-[0-9]+\.txt$' && sl_fail "unexpected entries in $out/sub"
for d in "$out"/sub/counts-*.txt; do
    [ "$(ls "$d")" = "$(printf '_manifest.json\npart-00000\npart-00001\npart-00002')" ] ||
        sl_fail "$d holds $(ls "$d" | tr '\n' ' ')"
done
n=$(ls -d "$out"/sub/counts-*.txt | wc -l)
[ "$n" -ge 3 ] || sl_fail "only $n batch directories"
sl_pass
