#!/usr/bin/env bash
# test_file_formats.sh -- the file sink's formats end to end: lines with commas, quotes,
# tabs, CR, NUL, backslashes, multi-byte UTF-8, invalid UTF-8 and JSON documents are read by
# the file source and written by four file sinks: JSON lines, JSON lines with value_json,
# CSV with a header, and CSV word counts. They are read back with tools independent of
# sluice: jq for the JSON lines and the manifests, Miller (mlr) for the CSV (RFC 4180), od
# and awk for the bytes. Every line's bytes come back exactly, with its file name and line
# number; the counts equal an independent count; every batch directory's manifest lists its
# parts with their records and sizes.
source "$(dirname "$0")/lib.sh"
sl_setup
for tool in jq mlr od; do
    command -v "$tool" >/dev/null || sl_fail "$tool is needed (tests/infra/deps.sh installs it)"
done

mkdir -p "$SL_TMP/in" "$SL_TMP/stage"
# Two files of generated lines: the first is there at start, the second is moved in later.
# Every tenth line is one of these (printf %b escapes), the others 0 to 6 random words.
special=('comma, separated, words' 'say "hi" and "bye"' 'tab\there\tand\tthere'
    'carriage\rreturn inside' 'nul\x00byte' 'back\\slash \\n not a newline'
    'caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80' 'bad \xff\xfe utf8' 'truncated \xe2\x82'
    '' '   ' '{"a": [1, 2], "b": "x y"}' '["list", {"k": null}]' '"a json string"'
    '{"broken": ' 'ctl \x01\x1f\x7f chars' 'quote at end"' '"' ',' 'x,"y",z')
words=(alpha beta gamma 'd\xc3\xa9lta' 'e,ps' '"zeta"' '\xffbad')
RANDOM=11
for spec in a.txt:300 b.txt:200; do
    for ((i = 0; i < ${spec#*:}; i++)); do
        if ((i % 10 == 0)); then
            line=${special[(i / 10) % ${#special[@]}]}
        else
            line=""
            for ((k = RANDOM % 7; k > 0; k--)); do
                line+="${line:+ }${words[RANDOM % ${#words[@]}]}"
            done
        fi
        printf '%b\n' "$line"
    done >"$SL_TMP/stage/${spec%%:*}" || sl_fail "cannot generate the input"
done
[ "$(od -An -v -tx1 "$SL_TMP/stage/a.txt" | grep -c ' 00')" -ge 1 ] ||
    sl_fail "the generated input has no NUL byte"
mv "$SL_TMP/stage/a.txt" "$SL_TMP/in/a.txt"

out=$SL_TMP/out
cat >"$SL_TMP/formats.yaml" <<YAML
app:
  name: formats
  batch_interval: 200ms
sources:
  - name: lines
    type: file
    path: $SL_TMP/in
    include_existing: true
    poll_interval: 50ms
streams:
  - name: words
    from: lines
    ops:
      - split: whitespace
      - key: value
      - value: 1
      - reduce_by_key: {fn: sum, partitions: 3}
sinks:
  - name: as_json
    type: file
    from: lines
    prefix: $out/json/b
    format: json
  - name: as_json_docs
    type: file
    from: lines
    prefix: $out/docs/b
    format: json
    value_json: true
  - name: as_csv
    type: file
    from: lines
    prefix: $out/csv/b
    format: csv
    header: true
    columns: [value, topic, offset, batch_time]
  - name: counts
    type: file
    from: words
    prefix: $out/counts/b
    format: csv
    columns: key,value,num
YAML

sl_start sluice "$SL_TMP/formats.yaml"
sluice_pid=$SL_LAST_PID
# Lines written so far by a sink (its JSON or CSV parts, header lines excluded).
written() { find "$out/$1" -path '*/b-*/part-*' -exec cat {} + 2>/dev/null | wc -l; }
sl_wait_until 15 bash -c "[ \$(find '$out/json' -path '*/b-*/part-*' -exec cat {} + 2>/dev/null |
    wc -l) -ge 300 ]" || sl_fail "a.txt not written: $(written json) lines"
mv "$SL_TMP/stage/b.txt" "$SL_TMP/in/b.txt"
sl_wait_until 15 bash -c "[ \$(find '$out/json' -path '*/b-*/part-*' -exec cat {} + 2>/dev/null |
    wc -l) -ge 500 ]" || sl_fail "b.txt not written: $(written json) lines"
sleep 0.5 # the other sinks write the same batches at the same time
sl_stop "$sluice_pid"
rc=$?
[ "$rc" -eq 0 ] || sl_fail "sluice exited with $rc"

# ---- Reading back, without sluice's code ----
# hexlines N FILE...: every line of the files (split at LF only), as its first N
# space-separated fields as text, then "x" and the hex of the rest of its bytes.
hexlines() {
    local n=$1
    shift
    cat -- "$@" | od -An -v -tx1 | awk -v n="$n" '
        BEGIN { for (i = 32; i < 127; i++) chr[sprintf("%02x", i)] = sprintf("%c", i) }
        {
            for (i = 1; i <= NF; i++) {
                if ($i == "0a") { print head "x" rest; head = ""; rest = ""; f = 0 }
                else if (f >= n) rest = rest $i
                else if ($i == "20") { head = head " "; f++ }
                else head = head ($i in chr ? chr[$i] : "?")
            }
        }
        END { if (head != "" || rest != "") print head "x" rest "-without-newline" }'
}
# b64hex: lines "A B KIND PAYLOAD [REST]": the PAYLOAD of KIND "bytes" (base64, RFC 4648
# with its padding) becomes "x" and the hex of its bytes; other lines stay as they are.
b64hex() {
    awk '
        BEGIN {
            a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
            for (i = 0; i < 64; i++) v[substr(a, i + 1, 1)] = i
        }
        function hex(s, i, c, bits, nb, p, pad, out) {
            if (length(s) % 4) return "bad-base64:" s
            for (i = 1; i <= length(s); i++) {
                c = substr(s, i, 1)
                if (c == "=" && i > length(s) - 2) { pad++; continue }
                if (pad || !(c in v)) return "bad-base64:" s
                bits = bits * 64 + v[c]
                nb += 6
                if (nb >= 8) {
                    nb -= 8
                    p = 2 ^ nb
                    out = out sprintf("%02x", int(bits / p))
                    bits %= p
                }
            }
            return "x" out
        }
        $3 != "bytes" { print; next }
        {
            head = $1 " " $2 " " $3 " "
            print head hex($4) substr($0, length(head) + length($4) + 1)
        }'
}
# parts DIR: the part files of a batch directory, in byte order of their names.
parts() {
    find "$1" -maxdepth 1 -type f -name 'part-*' -printf '%f\n' | LC_ALL=C sort
}
# The records of a part, as the manifest counts them: lines of JSON, rows of CSV (Miller's
# count, the header excluded).
json_records() { wc -l <"$1" | tr -d ' '; }
csv_records() { mlr --icsv --infer-none --onidx count "$1" | grep -x '[0-9]*'; }
csv_records_headless() {
    mlr --icsv --implicit-csv-header --infer-none --onidx count "$1" | grep -x '[0-9]*'
}
# batches DIR SINK FORMAT RECORDS: sets BATCHES to the batch directories of the sink's
# output (in $out/DIR); checks that there is one, that no temporary directory is left, and
# every manifest: it names the pipeline, sink, format, batch time (the directory's), the
# window's bounds (a batch interval of 200 ms ending at the batch time) and the source, lists the part files in order with their bytes and records (counted by the
# function RECORDS) and their total.
batches() {
    local dir=$out/$1 sink=$2 fmt=$3 records_of=$4 d m name records bytes n
    BATCHES=()
    ls -d "$dir"/b-* >/dev/null 2>&1 || sl_fail "$sink: no batch directory"
    [ -z "$(find "$dir" -mindepth 1 -maxdepth 1 -name '.*')" ] ||
        sl_fail "$sink: a temporary directory is left"
    for d in "$dir"/b-*; do
        m=$d/_manifest.json
        jq -e --arg s "$sink" --arg f "$fmt" --argjson t "${d##*-}" '
            .pipeline == "formats" and .sink == $s and .format == $f and .batch_time == $t
            and .window_end == $t and .window_start == $t - 200 and (.inputs | has("lines")) and .records == ([.parts[].records] | add // 0)' \
            "$m" >/dev/null || sl_fail "$d: manifest $(jq -c 'del(.parts)' "$m" 2>&1)"
        [ "$(jq -r '.parts[].name' "$m")" = "$(parts "$d")" ] ||
            sl_fail "$d: manifest parts $(jq -c '[.parts[].name]' "$m") vs" \
                "$(parts "$d" | tr '\n' ' ')"
        while IFS=$'\t' read -r name records bytes; do
            n=$("$records_of" "$d/$name")
            [ "$records" = "$n" ] && [ "$bytes" = "$(stat -c %s "$d/$name")" ] ||
                sl_fail "$d/$name: manifest says $records records, $bytes bytes; the file has" \
                    "$n records, $(stat -c %s "$d/$name") bytes"
        done < <(jq -r '.parts[] | "\(.name)\t\(.records)\t\(.bytes)"' "$m")
        BATCHES+=("$d")
    done
}
# same WHAT GOT WANT: the two files hold the same lines (in any order), each once.
same() {
    local dup
    dup=$(cut -d' ' -f1,2 "$2" | LC_ALL=C sort | uniq -d | head -n 3 | tr '\n' ',')
    [ -z "$dup" ] || sl_fail "$1: written twice: $dup"
    cmp -s <(LC_ALL=C sort "$2") <(LC_ALL=C sort "$3") ||
        sl_fail "$1: $(wc -l <"$2") lines vs $(wc -l <"$3"); first differences (< written," \
            "> input): $(diff <(LC_ALL=C sort "$2") <(LC_ALL=C sort "$3") | grep '^[<>]' |
                head -n 6 | tr '\n' ' ')"
}
chk=$SL_TMP/check
mkdir -p "$chk"

# The input: "file line x<hex>" of every line, read with od; and which lines are JSON
# documents, as jq reads them (one value, nothing else): "file line base64 json". A line
# whose bytes jq could not read as they are (invalid UTF-8) is no document.
for f in a.txt b.txt; do
    hexlines 0 "$SL_TMP/in/$f" | awk -v f="$f" '{ print f, NR, "bytes", $0 }'
done >"$chk/want.txt"
for f in a.txt b.txt; do
    jq -nrR --arg f "$f" '[inputs] | to_entries[] | (try (.value | fromjson | tojson) catch "")
        as $doc | select($doc != "") | "\($f) \(.key + 1) bytes \(.value | @base64) \($doc)"' \
        "$SL_TMP/in/$f" || sl_fail "jq cannot read $f"
done >"$chk/docs-jq.b64"
b64hex <"$chk/docs-jq.b64" >"$chk/docs-jq.txt"
[ "$(wc -l <"$chk/want.txt")" = 500 ] || sl_fail "the input has $(wc -l <"$chk/want.txt") lines"

# JSON lines: every input line once, bytes exact, with its file and line number. A value is
# text, or base64 with "value_encoding":"base64" when it is not UTF-8 (jq's @base64d does
# not give it back unchanged); no key, partition or num.
jq_bytes='def bytes($f): if has($f + "_encoding") then
        if .[$f + "_encoding"] != "base64" then error("\($f)_encoding \(.[$f + "_encoding"])")
        elif (.[$f] | @base64d | @base64) == .[$f] then error("UTF-8 written as base64: \(.)")
        else .[$f] end
    elif (.[$f] | type) != "string" then error("\($f) is not a string: \(.)")
    else .[$f] | @base64 end;
    def where: "\(.topic | split("/") | last) \(.offset)";'
batches json as_json json json_records
for d in "${BATCHES[@]}"; do
    for p in $(parts "$d"); do
        jq -r "$jq_bytes"'
            if .key != null or .partition != null or has("num") then
                error("unexpected fields in \(tojson)")
            else "\(where) bytes \(bytes("value"))" end' \
            "$d/$p" || sl_fail "json: $d/$p"
    done
done >"$chk/json.b64"
b64hex <"$chk/json.b64" >"$chk/json.txt"
same json "$chk/json.txt" "$chk/want.txt"

# JSON lines with value_json: a line that is a JSON document is written as that document
# with "value_encoding":"json" (compared as jq prints both), the other lines as in JSON lines.
awk 'NR == FNR {
        doc[$1 " " $2] = substr($0, length($1 " " $2 " " $3 " " $4 " ") + 1)
        lossless[$1 " " $2] = $4
        next
    }
    ($1 " " $2) in doc && lossless[$1 " " $2] == $4 { print $1, $2, "json", doc[$1 " " $2]; next }
    { print }' "$chk/docs-jq.txt" "$chk/want.txt" >"$chk/want-docs.txt"
batches docs as_json_docs json json_records
for d in "${BATCHES[@]}"; do
    for p in $(parts "$d"); do
        jq -r "$jq_bytes"'
            if .value_encoding == "json" then "\(where) json \(.value | tojson)"
            else "\(where) bytes \(bytes("value"))" end' "$d/$p" || sl_fail "docs: $d/$p"
    done
done >"$chk/docs.b64"
b64hex <"$chk/docs.b64" >"$chk/docs.txt"
same docs "$chk/docs.txt" "$chk/want-docs.txt"
docs=$(awk '$3 == "json"' "$chk/docs.txt" | wc -l)
[ "$docs" -ge 3 ] || sl_fail "docs: only $docs JSON documents seen"

# CSV with a header: Miller reads every row back, bytes exact, with the batch's time.
batches csv as_csv csv csv_records
for d in "${BATCHES[@]}"; do
    for p in $(parts "$d"); do
        [ "$(head -n 1 "$d/$p")" = "value,topic,offset,batch_time" ] ||
            sl_fail "csv: header $(head -n 1 "$d/$p") in $d/$p"
        mlr --icsv --infer-none --onidx --ofs ' ' put -q '
            print sub($topic, ".*/", "") . " " . $offset . " " . $batch_time . " " . $value' \
            "$d/$p" >"$chk/rows.txt" || sl_fail "csv: Miller cannot read $d/$p"
        hexlines 3 "$chk/rows.txt" | awk -v t="${d##*-}" -v p="$d/$p" '
            $3 != t { print "batch_time " $3 " in " p; exit 1 }
            { print $1, $2, "bytes", $4 }' || sl_fail "csv: a row of another batch"
    done
done >"$chk/csv.txt"
same csv "$chk/csv.txt" "$chk/want.txt"

# CSV word counts: summed over the batches, equal to the words of the input counted by awk
# on its bytes (separated by space, tab, LF, CR, VT and FF).
cat "$SL_TMP/in/a.txt" "$SL_TMP/in/b.txt" | od -An -v -tx1 | awk '
    BEGIN { split("20 09 0a 0d 0b 0c", s, " "); for (i in s) space[s[i]] = 1 }
    { for (i = 1; i <= NF; i++) if ($i in space) { if (w != "") n["x" w]++; w = "" } else w = w $i }
    END { if (w != "") n["x" w]++; for (w in n) print w, n[w] }' |
    LC_ALL=C sort >"$chk/want-counts.txt"
batches counts counts csv csv_records_headless
for d in "${BATCHES[@]}"; do
    for p in $(parts "$d"); do
        mlr --icsv --implicit-csv-header --infer-none --onidx --ofs ' ' put -q '
            print $2 . " " . $3 . " " . $1' "$d/$p" || sl_fail "counts: Miller cannot read $d/$p"
    done
done >"$chk/rows.txt"
hexlines 2 "$chk/rows.txt" | awk '
    $1 != $2 || $2 !~ /^[0-9]+$/ { print "value " $1 " != num " $2 " for " $3; bad = 1 }
    { n[$3] += $2 }
    END { for (w in n) print w, n[w]; exit bad }' >"$chk/counts.txt" ||
    sl_fail "counts: $(grep '^value' "$chk/counts.txt" | head -n 3)"
LC_ALL=C sort -o "$chk/counts.txt" "$chk/counts.txt"
cmp -s "$chk/counts.txt" "$chk/want-counts.txt" ||
    sl_fail "counts (word as hex, count; < written, > input): $(diff "$chk/counts.txt" \
        "$chk/want-counts.txt" | grep '^[<>]' | head -n 8 | tr '\n' ' ')"
nwords=$(wc -l <"$chk/want-counts.txt")
sl_log "500 lines, $docs JSON documents, $nwords words checked"

# The manifests of the JSON lines add up to the 500 lines written, each a JSON value.
m=$(cat "$out"/json/b-*/_manifest.json | jq -s 'map(.records) | add')
[ "$m" = 500 ] || sl_fail "jq: the manifests count $m records, not 500"
n=$(cat "$out"/json/b-*/part-* | jq -c . | wc -l)
[ "$n" = 500 ] || sl_fail "jq: $n JSON lines, not 500"
sl_pass
