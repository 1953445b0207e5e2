#!/usr/bin/env bash
# backpressure.sh -- builds and runs bench/backpressure (TCP receiver and Kafka direct, each
# without backpressure, with it, and with the capacity halved then restored), then plots its
# CSV files with gnuplot; batches processed after the measured phases (the drain) are left
# out of the plot (installs gnuplot-nox with apt-get when gnuplot is missing).
#
#     bench/backpressure.sh [backpressure options]     e.g. --variants tcp --cost-us 100
#
# The Kafka variant uses the broker of tests/infra/kafka.sh (started if it is not running,
# stopped again if this script started it). Build directory: $BUILD (default build-bench,
# configured Release). Output: bench/out/backpressure_<variant>_{a,b,c}.csv,
# bench/out/backpressure.png, and the table on stdout (also in bench/out/backpressure.txt).
# About 4 minutes. Exit status: the bench's (1 when a check failed). PLOT_ONLY=1: only plot
# the CSV files of the last run.
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

rc=0
started=0
trap '[ $started = 1 ] && bash tests/infra/kafka.sh stop >/dev/null 2>&1 || true' EXIT
if [ -z "${PLOT_ONLY:-}" ]; then
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSLUICE_WERROR=OFF >/dev/null
    cmake --build "$BUILD" -j2 --target backpressure >/dev/null
    if [[ " $* " != *" --variants tcp "* ]] && [ -f tests/infra/kafka.sh ] &&
        grep -q 'SLUICE_WITH_KAFKA:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then
        if ! bash tests/infra/kafka.sh status >/dev/null 2>&1; then
            bash tests/infra/kafka.sh start >/dev/null && started=1
        fi
    fi
    rm -f "$OUT"/backpressure_*.csv
    "$BUILD/backpressure" --out "$OUT" "$@" | tee "$OUT/backpressure.txt" || rc=${PIPESTATUS[0]}
fi
# The title's figures from the bench's first line.
head -1 "$OUT/backpressure.txt" | sed 's/^Backpressure: //' >"$OUT/.title"

if command -v gnuplot >/dev/null 2>&1; then
    variants=
    for v in tcp kafka kafka_receiver; do
        [ -f "$OUT/backpressure_${v}_a.csv" ] && variants="$variants $v"
    done
    ncols=$(echo $variants | wc -w)
    if [ "$ncols" -gt 0 ]; then
        gnuplot <<EOF
set terminal pngcairo size $((800 * ncols)),1400 font ",10"
set output "$OUT/backpressure.png"
set termoption noenhanced
set datafile separator ","
set datafile missing "NaN"
set key top right font ",9"
set grid
set multiplot layout 3,$ncols rowsfirst title "sluice backpressure: $(sed 's/"/\\"/g' "$OUT/.title")" font ",11"
set xlabel "batch time (s)"
set ylabel "records/s"
set y2label "ms"
set y2tics
set ytics nomirror
ok(d) = (d == 0) ? 1 : 0
do for [r in "a b c"] {
    do for [v in "$variants"] {
        f = sprintf("$OUT/backpressure_%s_%s.csv", v, r)
        set title sprintf("%s: %s", v, r eq "a" ? "a) no backpressure (log scale)" : r eq "b" ? "b) backpressure, initial rate C/2" : "c) backpressure, capacity C -> C/2 -> C (dotted: ideal loop)")
        stats f using 6 nooutput
        if (r eq "a") { set logscale y; set yrange [1000:STATS_max * 60] } else { unset logscale y; set yrange [0:STATS_max * 1.6] }
        set y2range [0:*]
        if (r eq "a") {
        plot f using 2:(ok(\$11) ? \$4 : 1/0) with linespoints pt 7 ps 0.5 lw 2 lc rgb "#1f77b4" title "ingest rate", \
             f using 2:(ok(\$11) ? \$6 : 1/0) with steps lw 1 lc rgb "black" title "capacity C", \
             f using 2:(ok(\$11) ? \$7 : 1/0) axes x1y2 with lines lw 1 lc rgb "#ff7f0e" title "processing (ms)", \
             f using 2:(ok(\$11) ? \$8 : 1/0) axes x1y2 with lines lw 2 lc rgb "#d62728" title "scheduling delay (ms)"
        } else {
        plot f using 2:(ok(\$11) ? \$4 : 1/0) with linespoints pt 7 ps 0.5 lw 2 lc rgb "#1f77b4" title "ingest rate", \
             f using 2:(ok(\$11) && \$5 > 0 ? \$5 : 1/0) with steps lw 1 dt 2 lc rgb "#2ca02c" title "rate limit", \
             f using 2:(ok(\$11) ? \$6 : 1/0) with steps lw 1 lc rgb "black" title "capacity C", \
             f using 2:(ok(\$11) ? \$9 : 1/0) with lines lw 1 dt 3 lc rgb "#1f77b4" title "ideal ingest", \
             f using 2:(ok(\$11) ? \$7 : 1/0) axes x1y2 with lines lw 1 lc rgb "#ff7f0e" title "processing (ms)", \
             f using 2:(ok(\$11) ? \$8 : 1/0) axes x1y2 with lines lw 2 lc rgb "#d62728" title "scheduling delay (ms)", \
             f using 2:(ok(\$11) ? \$10 : 1/0) axes x1y2 with lines lw 1 dt 3 lc rgb "#d62728" title "ideal delay (ms)"
        }
    }
}
unset multiplot
EOF
        echo "plot: $OUT/backpressure.png"
    fi
fi
rm -f "$OUT/.title"
exit $rc
