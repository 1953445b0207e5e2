#!/usr/bin/env bash
# test_example_json_enrich_kafka.sh -- config/examples/json-enrich-kafka.yaml as it ships,
# against the real Kafka: 1500 JSON orders (prices integer or not, four currencies, emails in
# mixed case, nested personal and debug fields) on a topic of 3 partitions, among them a few
# that cannot be reshaped (no qty, a currency without a rate, no email). The topic the
# pipeline writes, read with kcat, holds exactly one message per good order, keyed by its
# customer, whose JSON equals the reshaping Python does on the same input (numbers to 1e-9),
# each customer's orders in one partition; the others are rejected with their reason.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
it_setup 90

kafka_up
in="orders_$$_$RANDOM"
out="${in}_enriched"
kafka_topic "$in" 3
kafka_topic "$out" 3

python3 - "$IT_TMP/orders.tsv" <<'PY'
import json, random, sys
random.seed(16)
with open(sys.argv[1], "w") as f:
    for i in range(1500):
        c = random.randrange(40)
        order = {
            "order_id": "o-%d" % i,
            "price": random.choice([random.randrange(1, 500), round(random.uniform(0.1, 99), 2)]),
            "qty": random.randrange(1, 9),
            "currency": random.choice(["EUR", "USD", "GBP", "CHF"]),
            "customer": {"id": "c-%d" % c, "email": "User%d@Mail%d.Example.COM" % (c, c % 3),
                         "address": {"street": "%d Main St" % i, "city": "Lyon", "zip": "69001"}},
            "debug": {"trace": "%08x" % random.getrandbits(32), "sampled": i % 2 == 0},
        }
        if i % 300 == 7:
            del order["qty"]
        elif i % 300 == 8:
            order["currency"] = "JPY"
        elif i % 300 == 9:
            del order["customer"]["email"]
        print("%s\t%s" % (order["order_id"], json.dumps(order)), file=f)
PY

# The independent reshaping, in Python: "customer_id<TAB>order" per good order.
python3 - "$IT_TMP/orders.tsv" >"$IT_TMP/expected.tsv" <<'PY'
import json, math, re, sys
EUR = {"EUR": 1, "USD": 0.92, "GBP": 1.17, "CHF": 1.06}
for line in open(sys.argv[1]):
    o = json.loads(line.split("\t", 1)[1])
    m = re.search(r"@([^@\s]+)$", o["customer"].get("email", ""))
    if not m or "qty" not in o or o["currency"] not in EUR:
        continue
    o["email_domain"] = m.group(1).lower()
    o["total"] = o["price"] * o["qty"]
    o["customer_id"] = o["customer"].pop("id")
    del o["customer"]["email"], o["customer"]["address"]["street"], o["debug"]
    o["total_eur"] = math.floor(o["total"] * EUR[o["currency"]] * 100 + 0.5) / 100
    print("%s\t%s" % (o["customer_id"], json.dumps(o)))
PY
want=$(wc -l <"$IT_TMP/expected.tsv")
kafka_produce "$in" "$IT_TMP/orders.tsv"

export KAFKA_BROKERS=$KAFKA_BOOTSTRAP ORDERS_TOPIC=$in OUTPUT_TOPIC=$out \
    KAFKA_GROUP="enrich_$$_$RANDOM" CHECKPOINT_DIR=$IT_TMP/ckpt
it_sluice enrich "$SLUICE_SRC/config/examples/json-enrich-kafka.yaml"
pid=$IT_LAST_PID

dump() { kcat -C -b "$KAFKA_BOOTSTRAP" -t "$out" -e -q -f '%p\t%k\t%s\n' >"$IT_TMP/out.tsv"; }
all_there() { dump && [ "$(wc -l <"$IT_TMP/out.tsv")" -ge "$want" ]; }
it_check "the output topic gets $want messages" it_wait_until "$(it_left)" all_there
sleep 1.5 # a batch more: nothing else may come
dump
it_eq "one message per good order, no more" "$want" "$(wc -l <"$IT_TMP/out.tsv")"
it_check "every message is Python's reshaping of its order (numbers to 1e-9), keyed by customer" \
    python3 - "$IT_TMP/expected.tsv" "$IT_TMP/out.tsv" <<'PY'
import json, sys
def same(a, b):
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and type(a) is not bool:
        return abs(a - b) <= 1e-9 * max(1, abs(a))
    return a == b
want = {}
for line in open(sys.argv[1]):
    key, o = line.rstrip("\n").split("\t", 1)
    o = json.loads(o)
    want[o["order_id"]] = (key, o)
bad = 0
for line in open(sys.argv[2]):
    _, key, o = line.rstrip("\n").split("\t", 2)
    o = json.loads(o)
    k, w = want.pop(o["order_id"], (None, None))
    if key != k or not same(w, o):
        bad += 1
        if bad <= 3:
            print("got  %s %s\nwant %s %s" % (key, o, k, w), file=sys.stderr)
sys.exit(1 if bad or want else 0)
PY
# "partition key" pairs: a key in two partitions shows twice.
split_keys() { cut -f1,2 "$IT_TMP/out.tsv" | sort -u | cut -f2 | sort | uniq -d; }
it_check "each customer's orders are in one partition" test -z "$(split_keys)"
it_check "the order without qty is rejected, saying why" \
    it_grep_log enrich "rejected a record \(set total: missing JSON field 'qty'\)"
it_check "the order in JPY is rejected with the Lua error" \
    it_grep_log enrich "rejected a record \(lua error: .*no rate for currency JPY\)"
it_check "the order without email is rejected, saying why" \
    it_grep_log enrich "rejected a record \(missing JSON field 'customer.email'\)"
it_check "sluice stops cleanly" it_stop "$pid"
it_finish
