#!/usr/bin/env bash
# test_install.sh -- `cmake --install` into a temporary prefix: every file lands (binary,
# static and shared library with its symlinks, sluice.h and sl_connector.h, sluice.pc, the
# systemd unit and its sysusers.d file, the man page, the example pipelines); pkg-config
# finds the library and a small C program compiles and links against it, shared and static,
# and so does one with a connector of its own; the man page renders without warnings and
# documents every command and option of --help; systemd-analyze verifies the unit (skipped,
# saying so, when systemd-analyze is missing); a DESTDIR install
# keeps the prefix in the generated files.
#
# Env: SLUICE_BUILD (the configured and built build directory), SLUICE_SRC, SLUICE_BIN.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
set -euo pipefail
sl_setup


cache=$SLUICE_BUILD/CMakeCache.txt
[ -f "$cache" ] || sl_fail "no CMakeCache.txt in $SLUICE_BUILD (set SLUICE_BUILD)"
cache_get() { sed -n "s/^$1:[A-Z]*=//p" "$cache" | head -n 1; }
libdir=$(cache_get CMAKE_INSTALL_LIBDIR)
libdir=${libdir:-lib}
version=$("$SLUICE_BIN" --version | awk '{ print $2 }')
P=$SL_TMP/prefix

# ==== Install ====

if timeout 120 cmake --install "$SLUICE_BUILD" --prefix "$P" >"$SL_TMP/install.log" 2>&1; then
    sl_ok "cmake --install --prefix $P"
else
    sl_fail "cmake --install failed: $(tail -n 5 "$SL_TMP/install.log")"
fi
for f in bin/sluice "$libdir/libsluice.a" "$libdir/libsluice.so.$version" include/sluice.h \
    include/sl_connector.h \
    "$libdir/pkgconfig/sluice.pc" lib/systemd/system/sluice.service lib/sysusers.d/sluice.conf \
    share/man/man1/sluice.1; do
    check "installed: $f" test -f "$P/$f" -a -s "$P/$f"
done
check "bin/sluice is executable and prints its version" \
    bash -c "[ \"\$('$P/bin/sluice' --version)\" = 'sluice $version' ]"
check "libsluice.so -> libsluice.so.0 -> libsluice.so.$version" \
    test "$(readlink "$P/$libdir/libsluice.so")" = libsluice.so.0 -a \
    "$(readlink "$P/$libdir/libsluice.so.0")" = "libsluice.so.$version"
check "libsluice.so.$version has the soname libsluice.so.0" \
    bash -c "LC_ALL=C readelf -d '$P/$libdir/libsluice.so.$version' | grep -q 'SONAME.*\[libsluice.so.0\]'"
check "include/sluice.h is src/sluice.h" cmp -s "$P/include/sluice.h" "$SLUICE_SRC/src/sluice.h"
n_src=$(ls "$SLUICE_SRC"/config/examples/*.yaml | wc -l)
n_inst=$(ls "$P"/share/sluice/examples/*.yaml 2>/dev/null | wc -l)
check "share/sluice/examples holds the $n_src example pipelines ($n_inst)" \
    test "$n_src" -eq "$n_inst" -a "$n_src" -gt 0
check "the installed binary checks an installed example" \
    bash -c "'$P/bin/sluice' check '$P/share/sluice/examples/generate.yaml' >/dev/null"

# ==== pkg-config and a program linked against the library ====

export PKG_CONFIG_PATH=$P/$libdir/pkgconfig
check "pkg-config finds sluice $version" test "$(pkg-config --modversion sluice)" = "$version"
cflags=$(pkg-config --cflags sluice)
libs=$(pkg-config --libs sluice)
check "pkg-config --cflags names $P/include ($cflags)" grep -qF -- "-I$P/include" <<<"$cflags"
check "pkg-config --libs names $P/$libdir and -lsluice ($libs)" \
    bash -c "grep -qF -- '-L$P/$libdir' <<<'$libs' && grep -qw -- '-lsluice' <<<'$libs'"

san=()
if [ "$(cache_get SLUICE_SANITIZE)" = ON ]; then
    san=(-fsanitize=address,undefined)
fi
cat >"$SL_TMP/hello.c" <<'EOF'
/* hello.c -- a program against the installed libsluice: a context with a stream, built and
 * destroyed. */
#include <sluice.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    char errstr[256];
    sl_context_conf conf = {.name = "hello", .batch_interval_ms = 1000, .workers = 1};
    sl_context *ctx = sl_context_new(&conf, errstr, sizeof(errstr));
    if (!ctx) {
        fprintf(stderr, "sl_context_new: %s\n", errstr);
        return 1;
    }
    sl_stream *lines = sl_socket_text_stream(ctx, "127.0.0.1", 9);
    printf("%s %s %s\n", sl_context_name(ctx), lines ? "stream" : "none",
           strlen(sl_err2str(SL_ERR_RETRY)) > 0 ? "errors" : "none");
    sl_context_destroy(ctx);
    return 0;
}
EOF
# shellcheck disable=SC2086
if cc -std=c11 -Wall -Wextra -Werror "${san[@]}" "$SL_TMP/hello.c" $cflags $libs \
    -o "$SL_TMP/hello" 2>"$SL_TMP/cc.log"; then
    sl_ok "a C program compiles and links with \$(pkg-config --cflags --libs sluice)"
    out=$(LD_LIBRARY_PATH=$P/$libdir timeout 30 "$SL_TMP/hello" 2>&1) || true
    check "it runs with the installed libsluice.so.0: '$out'" test "$out" = "hello stream errors"
    check "it loads libsluice.so.0 from the prefix" \
        bash -c "LD_LIBRARY_PATH='$P/$libdir' ldd '$SL_TMP/hello' | grep -q 'libsluice.so.0 => $P/$libdir/'"
else
    sl_bad "compile and link with pkg-config: $(head -n 5 "$SL_TMP/cc.log")"
fi
# Static: libsluice.a with the libraries of Requires.private and Libs.private (shared).
req=$(sed -n 's/^Requires.private: *//p' "$PKG_CONFIG_PATH/sluice.pc")
priv=$(sed -n 's/^Libs.private: *//p' "$PKG_CONFIG_PATH/sluice.pc")
# shellcheck disable=SC2086
if cc -std=c11 "${san[@]}" "$SL_TMP/hello.c" $cflags "$P/$libdir/libsluice.a" \
    $(pkg-config --libs $req) $priv -o "$SL_TMP/hello-static" 2>"$SL_TMP/cc-static.log" &&
    [ "$(timeout 30 "$SL_TMP/hello-static" 2>&1)" = "hello stream errors" ]; then
    sl_ok "libsluice.a links with the libraries of Requires.private ($req) and runs"
else
    sl_bad "static link: $(head -n 5 "$SL_TMP/cc-static.log")"
fi

# A program that brings its own connector: sl_connector.h stands alone on sluice.h.
cat >"$SL_TMP/myconn.c" <<'EOF'
/* myconn.c -- a sink of its own, written against the installed connector interface. */
#include <sl_connector.h>
#include <stdio.h>

static int my_write(void *ctx, const sl_batch_output *out, char *errstr, size_t errsize)
{
    (void)ctx;
    if (!out->ds) {
        snprintf(errstr, errsize, "no dataset");
        return SL_ERR_INVAL;
    }
    return SL_OK;
}

static const sl_connector my_sink = {
    .name = "mine", .description = "writes nothing", .flags = SL_SINK, .write = my_write};

int main(void)
{
    char errstr[256] = "no context";
    sl_context_conf conf = {.name = "mine", .batch_interval_ms = 1000, .workers = 1};
    sl_context *ctx = sl_context_new(&conf, errstr, sizeof(errstr));
    sl_stream *lines = ctx ? sl_socket_text_stream(ctx, "127.0.0.1", 9) : NULL;
    int rc = lines ? sl_stream_to_connector(lines, &my_sink, "mine", NULL, errstr, sizeof(errstr))
                   : SL_ERR_INVAL;
    printf("%s\n", rc == SL_OK ? "connector added" : errstr);
    sl_context_destroy(ctx);
    return rc == SL_OK ? 0 : 1;
}
EOF
# shellcheck disable=SC2086
if cc -std=c11 -Wall -Wextra -Wstrict-prototypes -Werror "${san[@]}" "$SL_TMP/myconn.c" \
    $cflags $libs -o "$SL_TMP/myconn" 2>"$SL_TMP/cc-conn.log"; then
    out=$(LD_LIBRARY_PATH=$P/$libdir timeout 30 "$SL_TMP/myconn" 2>&1) || true
    check "a program with its own connector (installed sl_connector.h) runs: '$out'" \
        test "$out" = "connector added"
else
    sl_bad "compile against the installed sl_connector.h: $(head -n 5 "$SL_TMP/cc-conn.log")"
fi

# ==== The man page ====

man1=$P/share/man/man1/sluice.1
check "the man page's header names version $version" \
    grep -qE "^\.TH SLUICE 1 .*\"sluice $version\"" "$man1"
if command -v groff >/dev/null 2>&1; then
    groff -man -ww -z -Tutf8 "$man1" >"$SL_TMP/groff.log" 2>&1 || true
    check "groff -man -ww renders it without a warning" test ! -s "$SL_TMP/groff.log"
    MANWIDTH=80 LC_ALL=C.UTF-8 groff -man -Tutf8 "$man1" 2>/dev/null | col -bx >"$SL_TMP/man.txt"
    if command -v man >/dev/null 2>&1; then
        MANWIDTH=80 man --warnings -l "$man1" >/dev/null 2>"$SL_TMP/man.log" || true
        check "man -l renders it without a warning" test ! -s "$SL_TMP/man.log"
    fi
    # Every command and option of --help is in the page.
    "$SLUICE_BIN" --help >"$SL_TMP/help.txt"
    words=$(awk '/^Commands:/ { c = 1; next } /^$/ { c = 0 } c && /^  [a-z]/ { print $1 }' \
        "$SL_TMP/help.txt"; grep -oE -- '--[a-z][a-z-]+' "$SL_TMP/help.txt" | sort -u)
    missing=""
    for w in $words; do
        grep -qF -- "$w" "$SL_TMP/man.txt" || missing="$missing $w"
    done
    check "the page documents every command and option of --help ($(echo $words))${missing:+; missing:$missing}" \
        test -z "$missing" -a -n "$words"
    check "the page has NAME, SYNOPSIS, COMMANDS, OPTIONS, EXIT STATUS" \
        bash -c "for s in NAME SYNOPSIS COMMANDS OPTIONS 'EXIT STATUS'; do
            grep -qx \"\$s\" '$SL_TMP/man.txt' || exit 1; done"
else
    echo "skip - groff is not installed: the man page is not rendered"
fi

# ==== The systemd unit ====

unit=$P/lib/systemd/system/sluice.service
check "the unit runs $P/bin/sluice run /etc/sluice/pipeline.yaml" \
    grep -qx "ExecStart=$P/bin/sluice run /etc/sluice/pipeline.yaml" "$unit"
for kv in User=sluice Restart=on-failure NoNewPrivileges=yes ProtectSystem=strict \
    StateDirectory=sluice; do
    check "the unit sets $kv" grep -qx "$kv" "$unit"
done
check "the sysusers.d file creates the user sluice" grep -qE '^u sluice ' "$P/lib/sysusers.d/sluice.conf"
if command -v systemd-analyze >/dev/null 2>&1; then
    # Documentation=man:sluice(1): systemd-analyze looks the page up, in the prefix here.
    RC=0
    MANPATH=$P/share/man: timeout 60 systemd-analyze verify "$unit" >"$SL_TMP/verify.log" 2>&1 ||
        RC=$?
    check "systemd-analyze verify: no error, no warning" test $RC -eq 0 -a ! -s "$SL_TMP/verify.log"
    [ -s "$SL_TMP/verify.log" ] && sed 's/^/    /' "$SL_TMP/verify.log"
    if timeout 60 systemd-analyze security --offline=yes "$unit" >"$SL_TMP/security.log" 2>&1; then
        level=$(sed -n 's/.*Overall exposure level for sluice.service: \([0-9.]*\).*/\1/p' \
            "$SL_TMP/security.log")
        check "systemd-analyze security: exposure ${level:-?} <= 3.0 (hardened)" \
            awk -v l="${level:-99}" 'BEGIN { exit !(l <= 3.0) }'
    else
        echo "skip - systemd-analyze security --offline is not supported here"
    fi
else
    echo "skip - systemd-analyze is not installed: the unit is not verified"
fi

# ==== DESTDIR: staged for a package, the files name the prefix ====

D=$SL_TMP/dest
if DESTDIR=$D timeout 120 cmake --install "$SLUICE_BUILD" --prefix /usr >"$SL_TMP/destdir.log" 2>&1; then
    check "DESTDIR install: sluice.pc says prefix=/usr" grep -qx 'prefix=/usr' \
        "$D/usr/$libdir/pkgconfig/sluice.pc"
    check "DESTDIR install: the unit runs /usr/bin/sluice" \
        grep -qx 'ExecStart=/usr/bin/sluice run /etc/sluice/pipeline.yaml' \
        "$D/usr/lib/systemd/system/sluice.service"
    check "DESTDIR install: nothing names the staging directory" \
        bash -c "! grep -rqF '$D' '$D/usr/$libdir/pkgconfig' '$D/usr/lib/systemd'"
else
    sl_bad "DESTDIR install: $(tail -n 5 "$SL_TMP/destdir.log")"
fi

finish
