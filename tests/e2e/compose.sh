#!/usr/bin/env bash
# compose.sh -- reads docker/docker-compose.yml as docker-compose resolved it, and
# docker/Dockerfile, for the tests that run the compose topology natively
# (test_compose_topology.sh) and check the compose file's references (test_compose_file.sh).
# The YAML is read with yq (Debian's, the jq wrapper), the Dockerfile with awk.
#
#   docker-compose ... config | compose.sh services             every service
#   docker-compose ... config | compose.sh sluice-services      services built from the Dockerfile
#   docker-compose ... config | compose.sh env SERVICE          NAME=VALUE per line
#   docker-compose ... config | compose.sh command SERVICE      the command's words, one per line
#   docker-compose ... config | compose.sh config SERVICE       host path of the file the
#                                                               command runs (`run FILE`)
#   docker-compose ... config | compose.sh binds SERVICE        "HOST_PATH<TAB>TARGET" per bind
#   docker-compose ... config | compose.sh ports SERVICE        published ports, one per line
#   docker-compose ... config | compose.sh depends SERVICE      "NAME CONDITION" per line
#   docker-compose ... config | compose.sh healthcheck SERVICE  the healthcheck's test, or nothing
#   compose.sh dockerfile-healthcheck DOCKERFILE                the shell command of HEALTHCHECK
#   compose.sh dockerfile-runtime-packages DOCKERFILE           apt-get packages of the last stage
#
# Exit status 2 (with a message) when the service or the item does not exist.
set -euo pipefail

die() {
    echo "compose.sh: $*" >&2
    exit 2
}

# The Dockerfile's instructions, one per line: continuation lines joined, comments dropped.
dockerfile_lines() {
    [ -r "$1" ] || die "cannot read $1"
    awk '
        function flush() {
            gsub(/^[ \t]+|[ \t]+$/, "", cur)
            if (cur != "") print cur
            cur = ""
        }
        cur == "" && /^[ \t]*#/ { next }
        /\\$/ { cur = cur substr($0, 1, length($0) - 1) " "; next }
        { cur = cur $0; flush() }
        END { flush() }
    ' "$1"
}

# JSON of the resolved compose file on stdin (read once: $DOC).
load() {
    DOC=$(yq -c . 2>/dev/null) || die "stdin is not YAML"
    jq -e '(type == "object") and (.services | type == "object")' <<<"$DOC" >/dev/null ||
        die "stdin is not a resolved compose file (docker-compose config)"
}

# q FILTER: runs FILTER on the service $SVC of $DOC, raw output.
q() {
    jq -r --arg s "$SVC" ".services[\$s] | $1" <<<"$DOC"
}

# The command's words (a string is split on white space).
command_words() {
    q '(.command // []) | if type == "array" then .[] else splits("\\s+") | select(. != "") end'
}

# "HOST_PATH<TAB>TARGET" of each bind mount (long syntax with type bind, or a short
# HOST:TARGET[:MODE] whose host part is an absolute path).
binds() {
    q '(.volumes // [])[] |
        if type == "object" then
            select(.type == "bind") | "\(.source)\t\(.target)"
        else
            split(":") | select(length >= 2 and (.[0] | startswith("/"))) | "\(.[0])\t\(.[1])"
        end'
}

[ $# -ge 1 ] || die "usage: see the file's comment"
cmd=$1
case $cmd in
dockerfile-healthcheck)
    [ $# -ge 2 ] || die "$cmd needs a DOCKERFILE"
    hc=$(dockerfile_lines "$2" | sed -nE \
        's/^HEALTHCHECK[[:space:]]+(--[^[:space:]]+[[:space:]]+)*CMD[[:space:]]+(.*)$/\2/p' |
        head -n 1)
    [ -n "$hc" ] || die "no HEALTHCHECK ... CMD in $2"
    printf '%s\n' "$hc"
    exit 0
    ;;
dockerfile-runtime-packages)
    [ $# -ge 2 ] || die "$cmd needs a DOCKERFILE"
    pkgs=$(dockerfile_lines "$2" | awk '
        toupper(substr($0, 1, 5)) == "FROM " { n = 0 }
        {
            s = $0
            while (match(s, /apt-get install [^&;|]*/)) {
                k = split(substr(s, RSTART + 16, RLENGTH - 16), w, /[ \t]+/)
                for (i = 1; i <= k; i++)
                    if (w[i] != "" && substr(w[i], 1, 1) != "-") pkg[++n] = w[i]
                s = substr(s, RSTART + RLENGTH)
            }
        }
        END { for (i = 1; i <= n; i++) print pkg[i] }')
    [ -n "$pkgs" ] || die "no apt-get install in the last stage of $2"
    printf '%s\n' "$pkgs"
    exit 0
    ;;
esac

load
case $cmd in
services)
    jq -r '.services | keys[]' <<<"$DOC"
    exit 0
    ;;
sluice-services)
    jq -r '.services | keys[] as $k | .[$k].build |
        select(type == "object" and ((.dockerfile // "") | endswith("docker/Dockerfile"))) | $k' \
        <<<"$DOC"
    exit 0
    ;;
esac
[ $# -ge 2 ] || die "$cmd needs a SERVICE"
SVC=$2
jq -e --arg s "$SVC" '.services | has($s)' <<<"$DOC" >/dev/null || die "no service '$SVC'"
case $cmd in
env)
    q '(.environment // {}) |
        if type == "array" then
            map(split("=") | {key: .[0], value: (.[1:] | join("="))}) | from_entries
        else . end |
        to_entries | sort_by(.key)[] |
        "\(.key)=\(if .value == null then "" else .value | tostring end)"'
    ;;
command)
    command_words
    ;;
config)
    mapfile -t words < <(command_words)
    [ ${#words[@]} -ge 2 ] && [ "${words[0]}" = run ] || die "the command of $SVC is not 'run FILE'"
    while IFS=$'\t' read -r src dst; do
        if [ "$dst" = "${words[1]}" ]; then
            printf '%s\n' "$src"
            exit 0
        fi
    done < <(binds)
    die "$SVC runs ${words[1]}, which no bind mount provides"
    ;;
binds)
    binds
    ;;
ports)
    q '(.ports // [])[] |
        if type == "object" then
            "\(.host_ip // ""):\(.published // ""):\(.target // "")/\(.protocol // "tcp")"
        else tostring end'
    ;;
depends)
    q '(.depends_on // {}) |
        if type == "array" then map({key: ., value: {condition: "service_started"}}) | from_entries
        else . end |
        to_entries | sort_by(.key)[] | "\(.key) \((.value // {}).condition // "service_started")"'
    ;;
healthcheck)
    q '(.healthcheck // {}).test // empty | if type == "array" then join(" ") else . end |
        select(. != "")'
    ;;
*)
    die "unknown command '$cmd'"
    ;;
esac
