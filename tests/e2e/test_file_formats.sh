#!/usr/bin/env bash
# test_file_formats.sh -- the file sink's formats end to end: lines with commas, quotes,
# tabs, CR, NUL, backslashes, multi-byte UTF-8, invalid UTF-8 and JSON documents are read by
# the file source and written by four file sinks: JSON lines, JSON lines with value_json,
# CSV with a header, and CSV word counts. Python's json and csv modules (and jq for the
# manifests) read them back: every line's bytes come back exactly, with its file name and
# line number; the counts equal an independent count; every batch directory's manifest
# lists its parts with their records and sizes.
source "$(dirname "$0")/lib.sh"
sl_setup
command -v python3 >/dev/null || sl_fail "python3 is needed"

mkdir -p "$SL_TMP/in" "$SL_TMP/stage"
# Two files of generated lines: the first is there at start, the second is moved in later.
python3 - "$SL_TMP/stage" <<'PY' || sl_fail "cannot generate the input"
import random, sys
random.seed(11)
special = [b'comma, separated, words', b'say "hi" and "bye"', b'tab\there\tand\tthere',
           b'carriage\rreturn inside', b'nul\x00byte', b'back\\slash \\n not a newline',
           b'caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80', b'bad \xff\xfe utf8', b'truncated \xe2\x82',
           b'', b'   ', b'{"a": [1, 2], "b": "x y"}', b'["list", {"k": null}]', b'"a json string"',
           b'{"broken": ', b'ctl \x01\x1f\x7f chars', b'quote at end"', b'"', b',', b'x,"y",z']
words = [b'alpha', b'beta', b'gamma', b'd\xc3\xa9lta', b'e,ps', b'"zeta"', b'\xffbad']
for name, n in (('a.txt', 300), ('b.txt', 200)):
    lines = []
    for i in range(n):
        if i % 10 == 0:
            lines.append(special[(i // 10) % len(special)])
        else:
            k = random.randint(0, 6)
            lines.append(b' '.join(random.choice(words) for _ in range(k)))
    with open(f'{sys.argv[1]}/{name}', 'wb') as f:
        f.write(b'\n'.join(lines) + b'\n')
PY
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

python3 - "$SL_TMP" <<'PY' || sl_fail "the written files differ from the input"
import base64, collections, csv, glob, json, os, sys

tmp = sys.argv[1]
want = {}  # (file name, line number) -> bytes
for name in ('a.txt', 'b.txt'):
    with open(f'{tmp}/in/{name}', 'rb') as f:
        for no, line in enumerate(f.read().split(b'\n')[:-1], 1):
            want[(name, no)] = line

def fail(msg):
    print('FAIL:', msg, file=sys.stderr)
    sys.exit(1)

def dirs(sink):
    ds = sorted(glob.glob(f'{tmp}/out/{sink}/b-*'), key=lambda d: int(d.rsplit('-', 1)[1]))
    if not ds:
        fail(f'{sink}: no batch directory')
    if glob.glob(f'{tmp}/out/{sink}/.*'):
        fail(f'{sink}: a temporary directory is left')
    return ds

def parts(d):
    return sorted(p for p in os.listdir(d) if p.startswith('part-'))

def check_manifest(d, sink, fmt, records_of):
    with open(f'{d}/_manifest.json') as f:
        m = json.load(f)
    if m['pipeline'] != 'formats' or m['sink'] != sink or m['format'] != fmt:
        fail(f'{d}: manifest names {m["pipeline"]}/{m["sink"]}/{m["format"]}')
    if m['batch_time'] != int(d.rsplit('-', 1)[1]):
        fail(f'{d}: manifest batch_time {m["batch_time"]}')
    if [p['name'] for p in m['parts']] != parts(d):
        fail(f'{d}: manifest parts {m["parts"]} vs {parts(d)}')
    total = 0
    for p in m['parts']:
        path = f'{d}/{p["name"]}'
        if p['bytes'] != os.path.getsize(path) or p['records'] != records_of(path):
            fail(f'{path}: manifest says {p}')
        total += p['records']
    if m['records'] != total or 'lines' not in m['inputs']:
        fail(f'{d}: manifest records {m["records"]} vs {total}, inputs {m["inputs"]}')

def json_bytes(obj, field):
    enc = obj.get(field + '_encoding')
    v = obj[field]
    if enc == 'base64':
        return base64.b64decode(v, validate=True)
    if enc is not None:
        fail(f'unexpected {field}_encoding {enc}')
    return v.encode('utf-8')

def count_lines(path):
    with open(path, 'rb') as f:
        return f.read().count(b'\n')

# JSON lines: every input line once, bytes exact, with its file and line number.
got = {}
for d in dirs('json'):
    check_manifest(d, 'as_json', 'json', count_lines)
    for p in parts(d):
        with open(f'{d}/{p}', 'rb') as f:
            for raw in f.read().split(b'\n')[:-1]:
                o = json.loads(raw)
                if o['key'] is not None or o['partition'] is not None or 'num' in o:
                    fail(f'json: unexpected fields in {raw!r}')
                k = (os.path.basename(o['topic']), o['offset'])
                if k in got:
                    fail(f'json: {k} written twice')
                got[k] = json_bytes(o, 'value')
if got != want:
    diff = [k for k in want if got.get(k) != want[k]][:5]
    fail(f'json: {len(got)} lines vs {len(want)}; first differences: '
         + ', '.join(f'{k}: {got.get(k)!r} != {want[k]!r}' for k in diff))

# JSON lines with value_json: JSON documents embedded, other lines as text.
def as_doc(b):
    try:
        return json.loads(b.decode('utf-8'), parse_constant=lambda c: 1 / 0)
    except Exception:
        return None
docs = 0
for d in dirs('docs'):
    check_manifest(d, 'as_json_docs', 'json', count_lines)
    for p in parts(d):
        with open(f'{d}/{p}', 'rb') as f:
            for raw in f.read().split(b'\n')[:-1]:
                o = json.loads(raw)
                line = want[(os.path.basename(o['topic']), o['offset'])]
                doc = as_doc(line) if line.strip() else None
                if doc is not None:
                    docs += 1
                    if o.get('value_encoding') != 'json' or o['value'] != doc:
                        fail(f'docs: {line!r} written as {raw!r}')
                elif json_bytes(o, 'value') != line:
                    fail(f'docs: {line!r} written as {raw!r}')
if docs < 3:
    fail(f'docs: only {docs} JSON documents seen')

# CSV with a header: Python's csv module reads every line back, bytes exact.
got = {}
def csv_rows(path):
    with open(path, newline='', encoding='utf-8', errors='surrogateescape') as f:
        return list(csv.reader(f))
for d in dirs('csv'):
    check_manifest(d, 'as_csv', 'csv', lambda path: len(csv_rows(path)) - 1)
    t = d.rsplit('-', 1)[1]
    for p in parts(d):
        rows = csv_rows(f'{d}/{p}')
        if rows[0] != ['value', 'topic', 'offset', 'batch_time']:
            fail(f'csv: header {rows[0]}')
        for value, topic, offset, bt in rows[1:]:
            if bt != t:
                fail(f'csv: batch_time {bt} in {d}')
            got[(os.path.basename(topic), int(offset))] = value.encode('utf-8', 'surrogateescape')
if got != want:
    diff = [k for k in want if got.get(k) != want[k]][:5]
    fail(f'csv: {len(got)} lines vs {len(want)}; first differences: '
         + ', '.join(f'{k}: {got.get(k)!r} != {want[k]!r}' for k in diff))

# CSV word counts: summed over the batches, equal to Python's count of the words.
expected = collections.Counter(w for line in want.values() for w in line.split())
counted = collections.Counter()
for d in dirs('counts'):
    for p in parts(d):
        for key, value, num in csv_rows(f'{d}/{p}'):
            if value != num:
                fail(f'counts: value {value} != num {num}')
            counted[key.encode('utf-8', 'surrogateescape')] += int(num)
if counted != expected:
    fail(f'counts: {dict(counted)} != {dict(expected)}')
print(f'{len(want)} lines, {docs} JSON documents, {len(expected)} words checked')
PY

# jq, independently of Python: every manifest's records add up to the JSON lines written.
if command -v jq >/dev/null; then
    m=$(cat "$out"/json/b-*/_manifest.json | jq -s 'map(.records) | add')
    [ "$m" = 500 ] || sl_fail "jq: the manifests count $m records, not 500"
    n=$(cat "$out"/json/b-*/part-* | jq -c . | wc -l)
    [ "$n" = 500 ] || sl_fail "jq: $n JSON lines, not 500"
fi
sl_pass
