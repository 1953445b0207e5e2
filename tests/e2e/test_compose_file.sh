#!/usr/bin/env bash
# test_compose_file.sh -- docker/docker-compose.yml and docker/Dockerfile against the code,
# without a container engine: the compose file is valid for Debian's docker-compose with
# docker/.env.example and refused without the secrets; every variable it uses is in
# .env.example; every file it mounts exists; each sluice service's environment is what its
# pipeline file uses and `sluice check` accepts the file with exactly that environment; the
# runtime image installs the package of every library the binary needs; and the image's
# HEALTHCHECK command, run here against sluice, passes with the token and fails without.
#
# Env: SLUICE_BIN, SLUICE_SRC (set by ctest). One line per check, then "N passed, N failed".
set -euo pipefail
. "$(dirname "$0")/lib.sh"
set -euo pipefail
sl_setup


D=$SLUICE_SRC/docker
COMPOSE=$D/docker-compose.yml
ENVEX=$D/.env.example
CS=$SLUICE_SRC/tests/e2e/compose.sh

command -v docker-compose >/dev/null 2>&1 ||
    sl_fail "docker-compose is not installed (tests/infra/deps.sh installs Debian's)"
command -v yq >/dev/null 2>&1 && command -v jq >/dev/null 2>&1 ||
    sl_fail "yq and jq are not installed (tests/infra/deps.sh installs Debian's)"

# ==== The compose file's syntax and its secrets ====

# docker-compose reads the variables of the calling environment too: run it with none.
dc() {
    env -i PATH="$PATH" HOME="$SL_TMP" timeout 60 docker-compose "$@"
}
check "docker-compose config -q accepts the file with .env.example" \
    dc --env-file "$ENVEX" -f "$COMPOSE" config -q
dc --env-file "$ENVEX" -f "$COMPOSE" config >"$SL_TMP/resolved.yml" 2>"$SL_TMP/config.log" ||
    sl_fail "docker-compose config: $(cat "$SL_TMP/config.log")"
RC=0
: >"$SL_TMP/empty.env"
dc --env-file "$SL_TMP/empty.env" -f "$COMPOSE" config -q >/dev/null 2>"$SL_TMP/nosecret.err" || RC=$?
if [ $RC -ne 0 ] && grep -q "docker/.env" "$SL_TMP/nosecret.err"; then
    sl_ok "without an env file, docker-compose refuses the file and names docker/.env"
else
    sl_bad "without an env file: exit $RC, $(head -c 300 "$SL_TMP/nosecret.err")"
fi

# Every ${NAME} of the compose file ($$ escapes the container's own variables) is set in
# .env.example, and .env.example sets nothing the compose file does not use.
used=$(sed 's/\$\$//g' "$COMPOSE" | grep -oE '\$\{[A-Za-z_][A-Za-z0-9_]*' | cut -c3- | sort -u)
defined=$(grep -E '^[A-Za-z_][A-Za-z0-9_]*=' "$ENVEX" | cut -d= -f1 | sort -u)
missing=$(comm -23 <(echo "$used") <(echo "$defined") | tr '\n' ' ')
unused=$(comm -13 <(echo "$used") <(echo "$defined") | tr '\n' ' ')
check "every variable of the compose file is in .env.example${missing:+ (missing: $missing)}" \
    test -z "$missing"
check "every variable of .env.example is used${unused:+ (unused: $unused)}" test -z "$unused"

# ==== Files it mounts and builds from ====

nbinds=0
for svc in $(bash "$CS" services <"$SL_TMP/resolved.yml"); do
    while IFS=$'\t' read -r src dst; do
        [ -n "$src" ] || continue
        nbinds=$((nbinds + 1))
        check "$svc mounts $src (exists) at $dst" test -e "$src"
    done < <(bash "$CS" binds "$svc" <"$SL_TMP/resolved.yml")
done
check "the compose file mounts files ($nbinds binds)" test "$nbinds" -ge 4
check "docker/sample/lines.txt and events.jsonl are not empty" \
    test -s "$D/sample/lines.txt" -a -s "$D/sample/events.jsonl"
check "the build context holds the Dockerfile (context .., docker/Dockerfile)" \
    test -f "$SLUICE_SRC/docker/Dockerfile"

# ==== Each sluice service against its pipeline file ====

services=$(bash "$CS" sluice-services <"$SL_TMP/resolved.yml")
check "sluice services: $(echo $services)" test "$(echo "$services" | wc -w)" -ge 2
image_cmd=$(grep -E '^CMD \[' "$D/Dockerfile" | tail -n 1)
for svc in $services; do
    cfg=$(bash "$CS" config "$svc" <"$SL_TMP/resolved.yml") || {
        sl_bad "$svc: its command's file is not mounted"
        continue
    }
    check "$svc runs $(basename "$cfg") from config/examples/" \
        test "$(dirname "$cfg")" = "$SLUICE_SRC/config/examples"
    target=$(bash "$CS" command "$svc" <"$SL_TMP/resolved.yml" | sed -n 2p)
    check "$svc: the image's CMD runs the same file ($target)" \
        grep -qF "\"$target\"" <<<"$image_cmd"
    bash "$CS" env "$svc" <"$SL_TMP/resolved.yml" >"$SL_TMP/$svc.env"
    set_vars=$(cut -d= -f1 "$SL_TMP/$svc.env" | sort -u)
    # The pipeline's variables: all of them, and those without a default.
    cfg_vars=$({ grep -v '^[[:space:]]*#' "$cfg" | grep -oE '\$\{[A-Za-z_][A-Za-z0-9_]*' || true; } |
        cut -c3- | sort -u)
    required=$({ grep -v '^[[:space:]]*#' "$cfg" | grep -oE '\$\{[A-Za-z_][A-Za-z0-9_]*\}' || true; } |
        tr -d '${}' | sort -u)
    # libpq reads PGHOST... itself when the postgres sink's conninfo is empty.
    libpq=""
    if grep -qE '^[[:space:]]*conninfo: \$\{PG_CONNINFO:-\}' "$cfg"; then
        libpq=$'PGDATABASE\nPGHOST\nPGPASSWORD\nPGPORT\nPGUSER'
    fi
    unused=$(comm -23 <(echo "$set_vars") <(printf '%s\n%s\n' "$cfg_vars" "$libpq" | sort -u) |
        grep -v '^$' | tr '\n' ' ' || true)
    unset_req=$(comm -23 <(echo "$required") <(echo "$set_vars") | grep -v '^$' |
        tr '\n' ' ' || true)
    check "$svc sets only variables its pipeline uses${unused:+ (unused: $unused)}" \
        test -z "$unused"
    check "$svc sets every variable its pipeline needs${unset_req:+ (unset: $unset_req)}" \
        test -z "$unset_req"
    mapfile -t svc_env <"$SL_TMP/$svc.env"
    RC=0
    env -i PATH="$PATH" "${svc_env[@]}" timeout 30 "$SLUICE_BIN" check "$cfg" \
        >"$SL_TMP/$svc.check" 2>&1 || RC=$?
    if [ $RC -eq 0 ] && grep -q 'listen: 0.0.0.0:4040' "$SL_TMP/$svc.check" &&
        grep -q 'token: \*\*\*' "$SL_TMP/$svc.check"; then
        sl_ok "$svc: sluice check passes with the service's environment (0.0.0.0:4040, a token)"
    else
        sl_bad "$svc: sluice check with its environment: exit $RC: $(tail -n 3 "$SL_TMP/$svc.check")"
    fi
    ports=$(bash "$CS" ports "$svc" <"$SL_TMP/resolved.yml")
    check "$svc publishes its HTTP port 4040, on 127.0.0.1 only ($(echo $ports))" \
        bash -c "grep -qE '^127\.0\.0\.1:[0-9]+:4040(/tcp)?$' <<<'$ports' &&
            ! grep -vqE '^127\.0\.0\.1:' <<<'$ports'"
    deps=$(bash "$CS" depends "$svc" <"$SL_TMP/resolved.yml")
    check "$svc waits for a healthy kafka and a finished kafka-setup" \
        bash -c "grep -qx 'kafka service_healthy' <<<'$deps' &&
            grep -qx 'kafka-setup service_completed_successfully' <<<'$deps'"
done
# The services that sluice waits for have a healthcheck.
for svc in kafka postgres redis; do
    check "$svc has a healthcheck" \
        test -n "$(bash "$CS" healthcheck "$svc" <"$SL_TMP/resolved.yml")"
done
# Scale-out: two services run the same file with the same group and their own INSTANCE.
wc_services=""
for svc in $services; do
    if [ "$(bash "$CS" config "$svc" <"$SL_TMP/resolved.yml")" = \
        "$SLUICE_SRC/config/examples/kafka-wordcount-postgres.yaml" ]; then
        wc_services="$wc_services $svc"
    fi
done
check "two services run kafka-wordcount-postgres.yaml ($(echo $wc_services))" \
    test "$(echo "$wc_services" | wc -w)" -eq 2
groups=$(for svc in $wc_services; do grep '^KAFKA_GROUP=' "$SL_TMP/$svc.env"; done | sort -u | wc -l)
instances=$(for svc in $wc_services; do grep '^INSTANCE=' "$SL_TMP/$svc.env"; done | sort -u | wc -l)
check "they share KAFKA_GROUP and have their own INSTANCE" test "$groups" -eq 1 -a "$instances" -eq 2

# ==== The Dockerfile ====

df=$D/Dockerfile
check "two stages on Debian bookworm" test "$(grep -cE '^FROM debian:bookworm' "$df")" -eq 2
check "the runtime stage runs as the user sluice" \
    bash -c "awk '/^FROM/ { n++ } n == 2' '$df' | grep -qE '^USER sluice'"
check "volumes /etc/sluice and /var/lib/sluice" \
    grep -qE '^VOLUME \["/etc/sluice", "/var/lib/sluice"\]' "$df"
runtime=$(bash "$CS" dockerfile-runtime-packages "$df")
check "the runtime stage installs no -dev package" bash -c "! grep -q -- '-dev$' <<<'$runtime'"
for lib in $(LC_ALL=C readelf -d "$SLUICE_BIN" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
    # The 32-bit copies (libc6-i386, lib32gcc-s1: clang's runtime brings them) are not ours.
    pkgs=$({ dpkg -S "*/$lib" 2>/dev/null || true; } | cut -d: -f1 | sort -u |
        grep -vE -- '-(i386|x32)$|^lib(32|x32)' || true)
    case "$pkgs" in
    libc6 | libgcc-s1 | libasan* | libubsan* | libstdc++*) continue ;;
    esac
    found=""
    for p in $pkgs; do
        if grep -qx "$p" <<<"$runtime"; then found=$p; fi
    done
    check "the runtime image installs $lib (${pkgs:-no package})" test -n "$found"
done
# The build stage's -dev packages are those of tests/infra/deps.sh (minus CUnit).
want_dev=$(grep -oE 'lib[a-z0-9-]+-dev' "$SLUICE_SRC/tests/infra/deps.sh" | grep -v cunit | sort -u)
have_dev=$(awk '/^FROM/ { n++ } n == 1' "$df" | grep -oE 'lib[a-z0-9-]+-dev' | sort -u)
check "the build stage installs the -dev packages of deps.sh" test "$want_dev" = "$have_dev"

# The HEALTHCHECK command, run here: against sluice with a token, with a wrong one, and with
# nothing listening.
hc=$(bash "$CS" dockerfile-healthcheck "$df")
check "HEALTHCHECK GETs /health" grep -qF '/health' <<<"$hc"
port=$(sl_free_port)
cat >"$SL_TMP/hc.yaml" <<'EOF'
app: {name: healthcheck, batch_interval: 500ms}
sources: [{name: lines, type: generate, rate: 10}]
sinks: [{name: out, type: stdout, from: lines, num: 1}]
http:
  listen: ${HTTP_LISTEN}
  token: ${SLUICE_TOKEN}
EOF
export HTTP_LISTEN=127.0.0.1:$port SLUICE_TOKEN=hc-secret
sl_start hc "$SL_TMP/hc.yaml"
unset HTTP_LISTEN SLUICE_TOKEN
sl_wait_port "$port" 20 || sl_fail "sluice did not serve on $port"
hcrun() { # TOKEN PORT
    env -i PATH="$PATH" SLUICE_TOKEN="$1" SLUICE_HTTP_PORT="$2" timeout 10 sh -c "$hc" \
        >/dev/null 2>&1
}
hcfails() { ! hcrun "$@"; }
check "the healthcheck passes with the token" hcrun hc-secret "$port"
check "the healthcheck fails with a wrong token" hcfails wrong "$port"
check "the healthcheck fails when nothing listens" hcfails hc-secret "$(sl_free_port)"

finish
