#!/usr/bin/env bash
# test_tcp_listen.sh -- the tcp source in listen mode: several senders at once, one that
# connects and stalls mid-line, one that sends an oversize line and NUL bytes. Every word is
# counted exactly once; the stalled sender blocks no one, and its unterminated line is not
# a record when sluice stops while it is still connected (dropped and logged: it may be half
# a line).
source "$(dirname "$0")/lib.sh"
sl_setup

port=$(sl_free_port)
cat >"$SL_TMP/listen.yaml" <<YAML
app:
  name: tcp_listen
  batch_interval: 500ms
  workers: 2
sources:
  - name: lines
    type: tcp
    mode: listen
    host: 127.0.0.1
    port: $port
    max_record_size: 1KiB
streams:
  - name: counts
    from: lines
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

sl_start sluice "$SL_TMP/listen.yaml"
sluice_pid=$SL_LAST_PID
sl_wait_for_line "$SL_TMP/sluice.log" "listening on 127.0.0.1:$port" 10 || sl_fail "not listening"

# The stalled sender: half a line, then silence, connection kept open.
exec 3<>"/dev/tcp/127.0.0.1/$port" || sl_fail "cannot connect"
printf 'stalled' >&3

send() { # send ID: 400 lines "alpha beta s<ID>" in one connection
    local i
    exec 4<>"/dev/tcp/127.0.0.1/$port" || return 1
    for i in $(seq 1 400); do
        printf 'alpha beta s%s\n' "$1"
    done >&4
    exec 4>&-
}
for id in 1 2 3 4; do
    send "$id" &
done
wait_senders() { # wait for the four senders only, not for sluice
    local p
    for p in $(jobs -p); do
        [ "$p" = "$sluice_pid" ] || wait "$p"
    done
}
wait_senders

# Hostile input: a 3 KiB line (over max_record_size), NUL bytes, then a normal line.
{
    head -c 3072 /dev/zero | tr '\0' 'x'
    printf '\nnul\0byte omega\n'
} >"$SL_TMP/hostile.bin"
exec 5<>"/dev/tcp/127.0.0.1/$port" || sl_fail "cannot connect"
cat "$SL_TMP/hostile.bin" >&5
exec 5>&-

done_counting() { [ "$(sl_sum_counts "$SL_TMP/sluice.out" omega)" -ge 1 ] &&
    [ "$(sl_sum_counts "$SL_TMP/sluice.out" alpha)" -ge 1600 ]; }
sl_wait_until 20 done_counting ||
    sl_fail "counts incomplete: alpha=$(sl_sum_counts "$SL_TMP/sluice.out" alpha)"
[ "$(sl_sum_counts "$SL_TMP/sluice.out" stalled)" = 0 ] ||
    sl_fail "the unterminated line was counted before the end"

sl_stop "$sluice_pid"
rc=$?
exec 3>&-
[ "$rc" -eq 0 ] || sl_fail "sluice exited with $rc"

for kv in alpha=1600 beta=1600 s1=400 s2=400 s3=400 s4=400 omega=1 stalled=0; do
    got=$(sl_sum_counts "$SL_TMP/sluice.out" "${kv%%=*}")
    [ "$got" = "${kv#*=}" ] || sl_fail "count of ${kv%%=*}: $got, expected ${kv#*=}"
done
grep -q "longer than max_record_size" "$SL_TMP/sluice.log" || sl_fail "oversize line not reported"
grep -q "an unterminated line of .* dropped (stopping while the sender is connected)" \
    "$SL_TMP/sluice.log" || sl_fail "the stalled sender's dropped line was not logged"
grep -qa "^(nul" "$SL_TMP/sluice.out" || sl_fail "the line with a NUL byte was lost"
grep -q "xxxxxxxx" "$SL_TMP/sluice.out" && sl_fail "the oversize line was not dropped"
sl_pass
