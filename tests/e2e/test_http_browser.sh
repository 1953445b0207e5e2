#!/usr/bin/env bash
# test_http_browser.sh -- the status page in a real browser: headless Chromium (Debian's
# chromium, driven by playwright-core from npm) opens the page of a running word count
# (a tcp listen source fed by a sender, a tcp connect-mode source reading from a server the
# test runs, stdout sink, a token), sees batches arrive and the charts drawn, then the test
# kills the server and the page shows the input's error; with the API's answers altered in the
# browser, an input waiting for partitions and the restores of keyed state. Screenshots are kept in
# tests/artifacts/http_browser/ (git-ignored).
source "$(dirname "$0")/lib.sh"
sl_setup

chromium=${CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || sl_fail "no Chromium at $chromium (tests/infra/deps.sh installs Debian's chromium)"
command -v node >/dev/null || sl_fail "node is not installed (tests/infra/deps.sh installs it)"
command -v npm >/dev/null || sl_fail "npm is not installed (tests/infra/deps.sh installs it)"

browser_dir="$SLUICE_SRC/tests/e2e/browser"
if [ ! -d "$browser_dir/node_modules/playwright-core" ]; then
    sl_log "installing playwright-core (npm)"
    (cd "$browser_dir" && npm install --no-audit --no-fund >"$SL_TMP/npm.log" 2>&1) ||
        sl_fail "npm install failed: $(tail -n 5 "$SL_TMP/npm.log")"
fi

artifacts="$SLUICE_SRC/tests/artifacts/http_browser"
rm -rf "$artifacts"
mkdir -p "$artifacts"

http_port=$(sl_free_port)
listen_port=$(sl_free_port)
up_port=$(sl_free_port)
token="browser-secret-$RANDOM$RANDOM"

# The upstream server of the connect-mode input: a line every 100 ms to whoever connects.
# nc itself is the process started (and the one the browser test kills); the loop feeding
# it ends with it (SIGPIPE).
sl_bg nc -lk 127.0.0.1 "$up_port" < <(while :; do echo 'upstream says hello'; sleep 0.1; done)
nc_pid=$SL_LAST_PID
sl_wait_port "$up_port" 10 || sl_fail "the upstream server did not start"

cat >"$SL_TMP/browser.yaml" <<YAML
app:
  name: browser_wordcount
  batch_interval: 500ms
  workers: 2
sources:
  - name: lines
    type: tcp
    mode: listen
    host: 127.0.0.1
    port: $listen_port
  - name: upstream
    type: tcp
    mode: connect
    host: 127.0.0.1
    port: $up_port
    reconnect_interval: 500ms
streams:
  - name: counts
    from: [lines, upstream]
    ops:
      - split: whitespace
      - key: value
      - value: 1
      - reduce_by_key: sum
sinks:
  - name: out
    type: stdout
    from: counts
    num: 5
http:
  listen: 127.0.0.1:$http_port
  token: $token
YAML

sl_start sluice "$SL_TMP/browser.yaml"
sluice_pid=$SL_LAST_PID
sl_wait_for_line "$SL_TMP/sluice.log" "status page at http://127.0.0.1:$http_port/" 10 ||
    sl_fail "no status page line in the log"
sl_wait_for_line "$SL_TMP/sluice.log" "listening on 127.0.0.1:$listen_port" 10 ||
    sl_fail "the tcp source is not listening"

# The sender: a few lines every 50 ms into the listen source, for as long as the test runs.
sl_bg bash -c "exec 3<>/dev/tcp/127.0.0.1/$listen_port || exit 1
    i=0
    while :; do
        i=\$((i + 1))
        echo \"the quick brown fox \$i\" >&3 || exit 0
        echo \"jumps over the lazy dog\" >&3 || exit 0
        sleep 0.05
    done"

(cd "$browser_dir" && SLUICE_URL="http://127.0.0.1:$http_port/" SLUICE_TOKEN="$token" \
    BROKEN_INPUT=upstream UPSTREAM_PID="$nc_pid" ARTIFACTS="$artifacts" CHROMIUM="$chromium" \
    timeout 180 node status_page.js) 2>&1 | tee "$SL_TMP/browser.out"
rc=${PIPESTATUS[0]}
[ "$rc" -eq 0 ] || sl_fail "the browser checks failed (exit $rc)"

kill -0 "$sluice_pid" 2>/dev/null || sl_fail "sluice died during the test"
sl_stop "$sluice_pid" || sl_fail "sluice did not stop cleanly"
grep -q -- "$token" "$SL_TMP/sluice.log" "$SL_TMP/sluice.out" && sl_fail "the token was logged"
for f in status-overview.png status-input-error.png status-batch.png; do
    [ -s "$artifacts/$f" ] || sl_fail "no screenshot $f"
done
sl_log "screenshots in $artifacts"
sl_pass
