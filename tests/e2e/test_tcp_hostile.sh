#!/usr/bin/env bash
# test_tcp_hostile.sh -- hostile senders against `sluice run` in listen mode: a 64 MiB line
# with no newline, NUL bytes and invalid UTF-8, a sender that connects and stalls, and a
# sender that floods. sluice neither crashes nor grows without bound (peak RSS read from
# /proc), counts and reports the oversize record, and loses none of the flood's lines.
source "$(dirname "$0")/lib.sh"
sl_setup

port=$(sl_free_port)
cat >"$SL_TMP/hostile.yaml" <<YAML
app:
  name: hostile
  batch_interval: 200ms
  workers: 2
sources:
  - name: lines
    type: tcp
    mode: listen
    host: 127.0.0.1
    port: $port
    max_record_size: 1MiB
    max_buffered: 16MiB
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
    num: 100
YAML

sl_start sluice "$SL_TMP/hostile.yaml"
pid=$SL_LAST_PID
sl_wait_port "$port" 10 || sl_fail "sluice did not listen"

# A sender that connects and stalls for the whole test (the shell holds the socket).
exec {stalled}<>"/dev/tcp/127.0.0.1/$port" || sl_fail "cannot connect the stalled sender"

# 64 MiB without a newline, then a normal line on the same connection.
{ head -c $((64 * 1024 * 1024)) /dev/zero | tr '\0' 'x'; printf '\nafter_big 1\n'; } |
    nc -N 127.0.0.1 "$port" || sl_fail "sending the big line failed"

# NUL bytes and invalid UTF-8 inside words: they are bytes like any other.
printf 'nul\0byte \xff\xfe\xc3 ok\n' | nc -N 127.0.0.1 "$port"

# A flood: 2 million lines as fast as the socket takes them.
awk 'BEGIN { for (i = 0; i < 2000000; i++) print "flood flood" }' | nc -N 127.0.0.1 "$port" || sl_fail "flood failed"

flood_done() { [ "$(sl_sum_counts "$SL_TMP/sluice.out" flood)" -ge 4000000 ]; }
sl_wait_until 60 flood_done || sl_fail "flood incomplete: $(sl_sum_counts "$SL_TMP/sluice.out" flood)"
kill -0 "$pid" 2>/dev/null || sl_fail "sluice died"
hwm_kib=$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status")
exec {stalled}>&-
sl_stop "$pid" || sl_fail "sluice did not exit cleanly"

[ "$(sl_sum_counts "$SL_TMP/sluice.out" flood)" = 4000000 ] || sl_fail "flood lines lost or doubled"
[ "$(sl_sum_counts "$SL_TMP/sluice.out" after_big)" = 1 ] || sl_fail "the line after the big one was lost"
[ "$(sl_sum_counts "$SL_TMP/sluice.out" ok)" = 1 ] || sl_fail "the line with NUL bytes was lost"
grep -qaP '^\(nul\x00byte,1\)$' "$SL_TMP/sluice.out" || sl_fail "NUL byte not kept in the word"
grep -q "1 skipped for exceeding max_record_size" "$SL_TMP/sluice.log" ||
    sl_fail "the oversize record was not counted at stop"
grep -Eq "(longer|exceed|over).*(max_record_size|limit)" "$SL_TMP/sluice.log" ||
    sl_fail "the oversize record was not reported when it came"
# 64 MiB line and a flood through a 16 MiB buffer: well under the big line's size.
sl_log "peak RSS ${hwm_kib} KiB"
if ldd "$SLUICE_BIN" | grep -q libasan; then
    # AddressSanitizer keeps up to 256 MiB of freed memory in quarantine: RSS says nothing.
    sl_log "peak RSS not checked: the binary is built with AddressSanitizer"
else
    [ "$hwm_kib" -lt $((60 * 1024)) ] || sl_fail "peak RSS ${hwm_kib} KiB: memory grew with the input"
fi
sl_pass
