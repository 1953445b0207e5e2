#!/usr/bin/env bash
# test_kafka_changelog.sh -- the kafka sink as a changelog against the real broker, driven
# through its connector by the helper kafka_changelog (tests/integration/kafka_changelog.c):
# two batches of state changes (a tombstone in the second) with their input ranges, another
# producer's aborted transaction between them; restore_state gives each task's records in
# the order written without the aborted ones, and the position of the last marker; the
# group holds the ranges' offsets; a transaction left open ends a restore at the last stable
# offset at once (its records come once it commits); a task past the topic's partitions
# and a missing topic are errors that say so.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

it_setup 180
kafka_up
H="$SLUICE_BUILD/kafka_changelog"
[ -x "$H" ] || it_abort "no helper at $H"
CL=$(it_unique cl)
IN=$(it_unique cl-in)
G=$(it_unique gcl)
kafka_topic "$CL" 2 --config cleanup.policy=compact
kafka_topic "$IN" 2

# helper ARGS...: the helper's output without the logs (stderr goes to helper.log).
helper() {
    "$H" "$@" 2>>"$IT_TMP/helper.log" || true
}

it_eq "batch 1 written" "write: success" \
    "$(helper write "$KAFKA_BOOTSTRAP" "$CL" "$G" 0:k1=v1 1:k2=v2 0:k3=v3 \
        "@feed:$IN:0:0:10" "@feed:$IN:1:0:5")"
it_eq "another producer's transaction aborted" "aborted: success" \
    "$(helper aborted "$KAFKA_BOOTSTRAP" "$CL" 0 k1=ABORTED k4=ABORTED "@feed:$IN:99")"
it_eq "batch 2 written (a tombstone)" "write: success" \
    "$(helper write "$KAFKA_BOOTSTRAP" "$CL" "$G" 0:k1=v1b 0:k3~ "@feed:$IN:0:10:20")"

got=$(helper restore "$KAFKA_BOOTSTRAP" "$CL" 0 feed "$IN" | tr '\n' ' ')
it_eq "task 0 restored in order, nothing aborted, at the last marker" \
    "k1=v1 k3=v3 k1=v1b k3~ next: 20 restore: success " "$got"
got=$(helper restore "$KAFKA_BOOTSTRAP" "$CL" 1 feed "$IN" | tr '\n' ' ')
it_eq "task 1 restored" "k2=v2 next: 5 restore: success " "$got"
got=$(helper restore "$KAFKA_BOOTSTRAP" "$CL" 1 other "$IN" | tr '\n' ' ')
it_eq "another source's position is not that source's" "k2=v2 next: -1 restore: success " "$got"
it_check "the log says what a restore read" \
    grep -q "restored $CL \[0\]: 4 records, .* bytes in .* ms" "$IT_TMP/helper.log"

# The tombstone is a null value; the markers are keyed "\0sluice.position\0feed\0IN".
dump=$(kcat -C -b "$KAFKA_BOOTSTRAP" -t "$CL" -p 0 -e -q -f '%k|%S|%s\n' | tr '\0' '^')
it_check "the tombstone is a null message" grep -qxF 'k3|-1|' <<<"$dump"
it_check "the position marker's key and value" \
    grep -qxF "^sluice.position^feed^$IN|2|20" <<<"$dump"

# The group holds the ranges' offsets, committed with the changes.
offsets=$(kafka_group "$G" | awk '{ printf "%s:%s ", $2, $3 }')
it_eq "the group's offsets of the input" "0:20 1:5 " "$offsets"

# A transaction left open: the restore ends at the last stable offset without waiting for
# it, and sees its records once it commits.
got=$(helper open "$KAFKA_BOOTSTRAP" "$CL" 1 feed "$IN" k2=OPEN k9=nine "@feed:$IN:42" |
    tr '\n' ' ')
it_eq "open transaction: restored up to it, then with it" \
    "open: k2=v2 open: next: 5 open: restore: success committed: success committed: k2=v2 committed: k2=OPEN committed: k9=nine committed: next: 42 committed: restore: success " \
    "$got"

got=$(helper write "$KAFKA_BOOTSTRAP" "$CL" "$G" 5:x=1 "@feed:$IN:0:20:21" | tr '\n' ' ')
it_eq "a task past the topic's partitions" \
    "write: invalid argument why: changelog topic $CL has 2 partitions; task 5 needs at least 6: create it with as many partitions as the input topic (key 'x') " \
    "$got"
got=$(helper restore "$KAFKA_BOOTSTRAP" "$CL" 7 feed "$IN" | tr '\n' ' ')
it_eq "restoring a task the topic lacks" \
    "next: -1 restore: invalid argument why: changelog topic $CL has 2 partitions; task 7 needs at least 8: create it with as many partitions as the input topic " \
    "$got"
got=$(helper restore "$KAFKA_BOOTSTRAP" "$CL-none" 0 feed "$IN" | tr '\n' ' ')
it_eq "restoring from a topic that does not exist" \
    "next: -1 restore: invalid argument why: changelog topic $CL-none does not exist (task 0) " \
    "$got"

it_finish
