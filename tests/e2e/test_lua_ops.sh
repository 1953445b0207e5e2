#!/usr/bin/env bash
# test_lua_ops.sh -- Lua functions in a YAML pipeline run by the binary: filter, map from a
# file (lua_file + function), flat_map, a Lua reducer and update_state, on two workers. A
# runaway loop, a Lua error and a script that allocates without bound each reject their
# records with the reason, the script's line and the record's coordinates, and lose nothing
# else; the update_state state (a table, checkpointed as JSON) goes on after a restart.
# sluice check reports a syntax error at the YAML file's line; the sandbox has no io.
source "$(dirname "$0")/lib.sh"
sl_setup

mkdir -p "$SL_TMP/scripts"
cat >"$SL_TMP/scripts/guard.lua" <<'LUA'
-- passes records on; misbehaves on purpose for three values
function guard(r)
  if r.value == "loop" then while true do end end
  if r.value == "err" then error("bad record") end
  if r.value == "big" then
    local t = {}
    for i = 1, 1e6 do t[i] = string.rep("x", 1e6) .. i end
  end
  return r
end
LUA

cat >"$SL_TMP/lua.yaml" <<YAML
app:
  name: lua_ops
  batch_interval: 200ms
  workers: 2
  checkpoint_dir: $SL_TMP/ckpt
sources:
  - name: lines
    type: generate
    text: "a b\nb c c\nd\nloop\nerr\nbig"
    rate: 600
    count: 600            # 100 times the 6 lines, in about 1 s
streams:
  - name: words
    from: lines
    ops:
      - filter: {lua: "function(r) return r.value ~= 'd' end"}
      - map: {lua_file: scripts/guard.lua, function: guard, instructions: 200000, memory_mb: 16}
      - flat_map:
          lua: |
            function(r)
              local out = {}
              for w in r.value:gmatch("%S+") do
                out[#out + 1] = {key = w, value = w, num = 1}
              end
              return out
            end
  - name: totals
    from: words
    ops:
      - update_state:
          lua: |
            function(key, values, state)
              local s = state or {n = 0, key = key}
              s.n = s.n + #values
              return s
            end
          partitions: 3
  - name: sums
    from: words
    ops:
      - reduce_by_key: {lua: "function(a, b) return a + b end"}
sinks:
  - name: out
    type: stdout
    from: totals
    num: 1000
  - name: batch_sums
    type: file
    from: sums
    prefix: $SL_TMP/sums/s
YAML
mkdir -p "$SL_TMP/sums"

# last FILE KEY: the last state printed for KEY (its n).
last() {
    grep -o "\"n\":[0-9]*,\"key\":\"$2\"\|\"key\":\"$2\",\"n\":[0-9]*" "$1" | tail -n 1 |
        grep -o '"n":[0-9]*' | cut -d: -f2
}

run_once() {
    sl_start "run$1" "$SL_TMP/lua.yaml" --seconds 4
    local pid=$SL_LAST_PID rc=0
    sl_wait_until 40 sh -c "! kill -0 $pid 2>/dev/null" || sl_fail "run $1 did not stop by itself"
    wait "$pid" || rc=$?
    [ "$rc" -eq 0 ] || sl_fail "run $1 exited with $rc"
}

run_once 1
for kv in a=100 b=200 c=200; do
    got=$(last "$SL_TMP/run1.out" "${kv%%=*}")
    [ "$got" = "${kv#*=}" ] || sl_fail "run 1: state of ${kv%%=*}: '$got', expected ${kv#*=}"
done
for w in d loop err big; do
    ! grep -q "\"key\":\"$w\"" "$SL_TMP/run1.out" || sl_fail "run 1: '$w' went through"
done
log=$SL_TMP/run1.log
grep -q "rejected a record (lua error: $SL_TMP/scripts/guard.lua:3: instruction budget of 200000 exceeded (a runaway loop?)) from lines .*\"loop\"" "$log" ||
    sl_fail "no reason for the runaway loop"
grep -q "rejected a record (lua error: $SL_TMP/scripts/guard.lua:4: bad record) from lines .*offset [0-9]*: \"err\"" "$log" ||
    sl_fail "no reason for the Lua error"
grep -q "rejected a record (lua map at .*memory limit of 16777216 bytes exceeded) from lines .*\"big\"" "$log" ||
    sl_fail "no reason for the memory limit"
# The Lua reducer's sums of a batch add up to the words of the run.
total=$(cat "$SL_TMP"/sums/s-*/part-* | sed -n 's/^(\(a\|b\|c\),\([0-9]*\))$/\2/p' | paste -sd+ | bc)
[ "$total" = 500 ] || sl_fail "the batch sums add up to '$total', expected 500"

run_once 2
grep -q "state restored as of batch" "$SL_TMP/run2.log" || sl_fail "run 2 did not restore the state"
for kv in a=200 b=400 c=400; do
    got=$(last "$SL_TMP/run2.out" "${kv%%=*}")
    [ "$got" = "${kv#*=}" ] || sl_fail "run 2: state of ${kv%%=*}: '$got', expected ${kv#*=}"
done

# sluice check: a syntax error in inline code, at its line in the YAML file.
cat >"$SL_TMP/bad.yaml" <<'YAML'
app: {name: bad, batch_interval: 1s}
sources:
  - {name: lines, type: generate, text: "x"}
streams:
  - name: s
    from: lines
    ops:
      - map:
          lua: |
            function(r)
              local v = = r.value
              return r
            end
sinks:
  - {name: out, type: stdout, from: s}
YAML
out=$("$SLUICE_BIN" check "$SL_TMP/bad.yaml" 2>&1)
rc=$?
[ "$rc" -eq 2 ] || sl_fail "check of a syntax error exited with $rc: $out"
echo "$out" | grep -q "bad.yaml:9:.*error: lua: $SL_TMP/bad.yaml:11: unexpected symbol near '='" ||
    sl_fail "check does not name line 11: $out"

# The sandbox: no io (the record is rejected), unless allowed.
cat >"$SL_TMP/io.yaml" <<YAML
app: {name: io, batch_interval: 200ms}
sources:
  - {name: lines, type: generate, text: "x", rate: 20, count: 2}
streams:
  - name: s
    from: lines
    ops:
      - map: {lua: "function(r) return io.open('/etc/hostname'):read('*l') end"}
  - name: t
    from: lines
    ops:
      - map: {lua: "function(r) return type(io) .. type(os.execute) end", allow: [io, os]}
sinks:
  - {name: out, type: stdout, from: s}
  - {name: out2, type: stdout, from: t}
YAML
sl_start io "$SL_TMP/io.yaml" --seconds 1
wait "$SL_LAST_PID"
grep -q "attempt to index global 'io' (a nil value)) from lines" "$SL_TMP/io.log" ||
    sl_fail "io was reachable"
grep -q "^tablefunction$" "$SL_TMP/io.out" || sl_fail "allow: [io, os] did not give io and os"
sl_pass
