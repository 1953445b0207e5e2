#!/bin/sh
# backpressure.sh -- builds and runs bench/backpressure, then plots its CSV files with
# gnuplot (installs gnuplot-nox with apt-get when gnuplot is missing).
#
#     bench/backpressure.sh [COST_US] [BATCH_MS]     defaults: 50 us, 1000 ms
#
# Output: bench/out/backpressure_{a,b,c}.csv, bench/out/backpressure.png, and the tables on
# stdout (also in bench/out/backpressure.txt). About 90 s.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-bench}
OUT=bench/out
mkdir -p "$OUT"

if ! command -v gnuplot >/dev/null 2>&1; then
    SUDO=
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq gnuplot-nox >/dev/null ||
        echo "warning: could not install gnuplot-nox; no plot" >&2
fi

cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSLUICE_WERROR=OFF >/dev/null
cmake --build "$BUILD" -j2 --target backpressure >/dev/null

rc=0
"$BUILD/backpressure" "${1:-50}" "${2:-1000}" "$OUT" | tee "$OUT/backpressure.txt" || rc=$?

if command -v gnuplot >/dev/null 2>&1; then
    gnuplot <<EOF
set terminal pngcairo size 1200,1300 font ",10"
set output "$OUT/backpressure.png"
set datafile separator ","
set key autotitle columnhead top left
set multiplot layout 3,1 title "sluice backpressure: burn ${1:-50} us/record, 1 worker, batch ${2:-1000} ms, fed at 3C"
set xlabel "batch time (s)"
set ylabel "records/s"
set y2label "ms"
set y2tics
set ytics nomirror
set grid
do for [r in "a b c"] {
    f = sprintf("$OUT/backpressure_%s.csv", r)
    set title (r eq "a" ? "a) no backpressure" : r eq "b" ? "b) backpressure, initial rate C/2" : "c) backpressure, capacity C -> C/2 -> C")
    plot f using 2:4 with linespoints pt 7 ps 0.5 lw 2 title "ingest rate", \
         f using 2:5 with steps lw 1 dt 2 title "rate limit", \
         f using 2:6 with steps lw 1 lc rgb "black" title "capacity C", \
         f using 2:7 axes x1y2 with lines lw 1 title "processing (ms)", \
         f using 2:8 axes x1y2 with lines lw 2 title "scheduling delay (ms)"
}
unset multiplot
EOF
    echo "plot: $OUT/backpressure.png"
fi
exit $rc
