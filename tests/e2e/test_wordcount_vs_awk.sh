#!/usr/bin/env bash
# test_wordcount_vs_awk.sh -- the network word count, three ways (the YAML pipeline in
# connect mode, in listen mode, and the C example examples/network_word_count.c), each fed
# the same generated text over TCP: the per-batch counts printed, summed over the batches,
# equal an independent count of the text by tr | sort | uniq -c, word for word.
source "$(dirname "$0")/lib.sh"
sl_setup

# 20000 lines of 0 to 12 words from an 8-word vocabulary (so that every batch's counts fit
# in the 10 records the C example prints), separated by runs of spaces and tabs.
awk 'BEGIN {
    srand(7); split("spark streaming sluice kafka batch window state offset", v, " ")
    for (i = 0; i < 20000; i++) {
        n = int(rand() * 13); line = ""
        for (j = 0; j < n; j++) {
            sep = (rand() < 0.2) ? "\t  " : " "
            line = line (j ? sep : (rand() < 0.1 ? "  " : "")) v[1 + int(rand() * 8)]
        }
        print line
    }
}' >"$SL_TMP/text.txt"
tr -s ' \t' '\n\n' <"$SL_TMP/text.txt" | grep -v '^$' | sort | uniq -c |
    awk '{ print $2, $1 }' >"$SL_TMP/expected.txt"
[ "$(wc -l <"$SL_TMP/expected.txt")" -eq 8 ] || sl_fail "the generated text lacks words"
rm -f "$SL_TMP/fifo.in"
mkfifo "$SL_TMP/fifo.in"

# The text in 10 chunks, 0.3 s apart, so that it spans several batches.
paced() {
    local i
    for i in 0 1 2 3 4 5 6 7 8 9; do
        sed -n "$((i * 2000 + 1)),$((i * 2000 + 2000))p" "$SL_TMP/text.txt"
        sleep 0.3
    done
}

# Sums the "(word,n)" lines of all batches: "word total" per line, sorted.
sum_printed() {
    awk '/^\(.*,[0-9]+\)$/ { s = substr($0, 2, length($0) - 2); i = index(s, ",");
                             c[substr(s, 1, i - 1)] += substr(s, i + 1) }
         END { for (w in c) print w, c[w] }' "$1" | sort
}

check_counts() { # NAME OUTFILE
    local got
    got=$(sum_printed "$2")
    if [ "$got" != "$(cat "$SL_TMP/expected.txt")" ]; then
        diff <(echo "$got") "$SL_TMP/expected.txt" >&2 || true
        sl_fail "$1: counts differ from the independent count"
    fi
    [ "$(sl_batches "$2")" -ge 1 ] || sl_fail "$1: no batch printed"
    sl_log "$1: counts equal the independent count over $(sl_batches "$2") batches"
}

total=$(awk '{ s += $2 } END { print s }' "$SL_TMP/expected.txt")
all_counted() { [ "$(sum_printed "$1" | awk '{ s += $2 } END { print s + 0 }')" -ge "$total" ]; }

# 1. YAML, connect mode: a server (nc) sends the text.
port=$(sl_free_port)
paced >"$SL_TMP/fifo.in" &
sl_bg nc -N -l 127.0.0.1 "$port" <"$SL_TMP/fifo.in" # serves one connection: no probe
PORT=$port HOST=127.0.0.1 sl_start connect "$SLUICE_SRC/config/network_wordcount.yaml"
pid=$SL_LAST_PID
sl_wait_until 30 all_counted "$SL_TMP/connect.out" || sl_fail "connect: not all words counted"
sl_stop "$pid" || sl_fail "connect: sluice exited with an error"
check_counts "yaml connect" "$SL_TMP/connect.out"

# 2. YAML, listen mode: two senders send half of the text each.
port=$(sl_free_port)
PORT=$port sl_start listen "$SLUICE_SRC/config/network_wordcount_listen.yaml"
pid=$SL_LAST_PID
sl_wait_port "$port" 10 || sl_fail "listen: sluice did not listen"
paced | head -n 10000 | nc -N 127.0.0.1 "$port" &
first=$!
paced | tail -n 10000 | nc -N 127.0.0.1 "$port"
wait "$first"
sl_wait_until 30 all_counted "$SL_TMP/listen.out" || sl_fail "listen: not all words counted"
sl_stop "$pid" || sl_fail "listen: sluice exited with an error"
check_counts "yaml listen" "$SL_TMP/listen.out"

# 3. The C example, connect mode.
example="$SLUICE_BUILD/network_word_count"
[ -x "$example" ] || sl_fail "the C example was not built: $example"
port=$(sl_free_port)
paced >"$SL_TMP/fifo.in" &
sl_bg nc -N -l 127.0.0.1 "$port" <"$SL_TMP/fifo.in" # serves one connection: no probe
"$example" 127.0.0.1 "$port" >"$SL_TMP/example.out" 2>"$SL_TMP/example.log" &
pid=$!
SL_PIDS+=("$pid")
sl_wait_until 30 all_counted "$SL_TMP/example.out" || sl_fail "example: not all words counted"
sl_stop "$pid" || sl_fail "example: exited with an error"
check_counts "C example" "$SL_TMP/example.out"
sl_pass
