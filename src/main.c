/* main.c -- the sluice daemon and command line: run, check, test, connectors, ops,
 * demo.
 *
 * Exit status: 0 ok, 1 runtime failure (the pipeline could not start or stopped on a fatal
 * error), 2 bad configuration or usage.
 *
 * Signals: SIGINT and SIGTERM are blocked in every thread before the context exists and
 * taken by a dedicated thread with sigwait(). The first one stops the pipeline gracefully
 * (sl_context_stop(ctx, true): the running batch finishes, what receivers hold is
 * processed, sinks are flushed), then sluice exits 0; if that takes longer than
 * app.stop_timeout, the unfinished batches are abandoned (they stay pending) and sluice
 * exits 1; a second one stops without waiting for the queued batches
 * (sl_context_stop(ctx, false)); a third exits at once. SIGHUP is taken by the same thread
 * and ignored with a warning (no reload).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sl_cmd.h"
#include "sl_config.h"
#include "sl_http.h"
#include "sl_test.h"
#include "sl_util.h"
#include "sluice.h"

#define EXIT_OK          0
#define EXIT_RUNTIME     1
#define EXIT_USAGE       2
#define SIGNAL_REPEAT_MS 250

/* The pipeline of `sluice demo`: config/demo.yaml (or, built without Kafka,
 * config/generate_wordcount.yaml), compiled in by CMake as the array demo_yaml. */
#include "demo_yaml.h"

/* ==== Usage ==== */

static void usage(FILE *f)
{
    fprintf(f, "Usage: sluice COMMAND [ARGS] [OPTIONS]\n"
               "\n"
               "sluice is a micro-batch stream processor (Spark Streaming's DStream model).\n"
               "\n"
               "Commands:\n"
               "  run FILE       run the pipeline described by the YAML file FILE; Ctrl-C (or\n"
               "                 SIGTERM) stops it gracefully: the running batch finishes and the\n"
               "                 sinks are flushed, within app.stop_timeout (else exit 1, the\n"
               "                 batches left pending); a second Ctrl-C drops the queued batches;\n"
               "                 SIGHUP is ignored (logged): restart to change the configuration\n"
               "  check FILE     check FILE and print the pipeline it describes, or every\n"
               "                 error in it (up to 20, with line:column; exit 2)\n"
               "  check --connect FILE  try each source's and sink's endpoints (brokers,\n"
               "                 databases, ports): a line each; exit 1 if one failed\n"
               "  test FILE...   run the pipeline tests of each test file (no server needed):\n"
               "                 a line per test, the differences of those that fail\n"
               "  connectors [NAME]\n"
               "                 list every source and sink with its options, or only\n"
               "                 connector NAME's, wrapped to the terminal's width\n"
               "  ops            list the operations of a stream's ops: and what they do\n"
               "  demo           run a word count over a built-in text, printed every second\n"
               "                 (no file, no server needed)\n"
               "  help           show this help\n"
               "\n"
               "Options:\n"
               "  --log-level LEVEL  error, warn, info or debug (overrides app.log_level)\n"
               "  --log-format FMT   text (the default) or json: one JSON object per line with\n"
               "                     time, level, pipeline, component, message and fields\n"
               "                     (overrides app.log_format)\n"
               "  --seconds N        run, demo: stop gracefully after N seconds (a stop takes\n"
               "                     about a second: the last batch runs at once)\n"
               "  --connect          check: try the endpoints instead of printing the pipeline\n"
               "  --markdown         connectors: print a Markdown table per connector;\n"
               "                     ops: print the README's operations table\n"
               "  --print-config     demo: print the demo's YAML instead of running it\n"
               "  -h, --help         show this help\n"
               "  --version          print the version\n"
               "\n"
               "Exit status: 0 ok, 1 runtime failure, 2 bad configuration or usage.\n");
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "sluice: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n");
    usage(stderr);
    return EXIT_USAGE;
}

/* ==== Running ==== */

static atomic_int stop_signals;
static sigset_t stop_set; /* SIGINT and SIGTERM; read by the signal thread for its lifetime */
/* The running context, for the signal thread; cleared under the lock before it is freed. */
static pthread_mutex_t running_lock = PTHREAD_MUTEX_INITIALIZER;
static sl_context *running_ctx;

/* The signal thread: takes SIGINT and SIGTERM with sigwait. The first signal is left to the
 * main thread, which calls sl_context_stop(ctx, true) within 100 ms; a second one (at least
 * SIGNAL_REPEAT_MS later, so the graceful stop has begun) makes that stop impatient, which
 * returns at once; a third one exits. */
static void *signal_main(void *arg)
{
    const sigset_t *set = arg;
    int64_t last = 0;
    for (;;) {
        int sig;
        if (sigwait(set, &sig) != 0) {
            continue;
        }
        if (sig == SIGHUP) {
            /* Daemons reload on SIGHUP; sluice does not (yet): say so rather than die. */
            sl_log(SL_LOG_WARN, "SIGHUP ignored: sluice does not reload its configuration; "
                                "restart it (the checkpoint keeps its state and positions)");
            continue;
        }
        /* One signal may arrive twice at once: sent to the process and to its group (as
         * timeout(1) does). Only a repeat after SIGNAL_REPEAT_MS counts as a second one. */
        int64_t t = sl__mono_ms();
        if (last && t - last < SIGNAL_REPEAT_MS) {
            continue;
        }
        last = t;
        int n = atomic_fetch_add(&stop_signals, 1) + 1;
        if (n == 1) {
            sl_log(SL_LOG_INFO,
                   "%s: stopping gracefully (finishing the running batch, flushing the "
                   "sinks); send it again to stop without waiting",
                   sig == SIGINT ? "interrupt" : "terminate");
        } else if (n == 2) {
            sl_log(SL_LOG_WARN, "second signal: stopping without waiting for queued batches; a "
                                "third one exits at once");
            pthread_mutex_lock(&running_lock);
            if (running_ctx) {
                sl_context_stop(running_ctx, false);
            }
            pthread_mutex_unlock(&running_lock);
        } else {
            sl_log(SL_LOG_WARN, "third signal: exiting now");
            _exit(EXIT_RUNTIME);
        }
    }
    return NULL;
}

/* Starts the status server that the config's http: section asks for; `sluice demo` serves
 * on 127.0.0.1:4040, or the next free port, without one. Returns false when a configured
 * server cannot start (the demo goes on without its page instead). */
static bool start_http(const sl_config *cfg, sl_context *ctx, bool demo, sl_http_server **out)
{
    char err[512];
    sl_http_conf conf;
    bool present;
    bool want = sl__config_http(cfg, &conf, &present);
    bool demo_default = demo && !present;
    *out = NULL;
    if (demo_default) {
        want = true;
        conf.port_retries = 16;
    }
    if (!want) {
        return true;
    }
    sl_http_server *srv = sl_http_start(ctx, &conf, err, sizeof(err));
    if (!srv) {
        if (demo_default) {
            sl_log(SL_LOG_WARN, "the status page is not served: %s", err);
            return true;
        }
        sl_log(SL_LOG_ERROR, "cannot serve the status page: %s", err);
        return false;
    }
    char wanted[32];
    snprintf(wanted, sizeof(wanted), ":%d/", 4040);
    if (demo_default && !strstr(sl_http_url(srv), wanted)) {
        sl_log(SL_LOG_INFO, "status page at %s (port 4040 is busy)", sl_http_url(srv));
    } else {
        sl_log(SL_LOG_INFO, "status page at %s%s", sl_http_url(srv),
               conf.token ? " (requests need the token)" : "");
    }
    *out = srv;
    return true;
}

/* Builds and runs a loaded pipeline until a signal, the time limit (seconds > 0) or a
 * fatal error. Returns the exit status. */
static int run_config(sl_config *cfg, double seconds, bool demo)
{
    char err[1024];
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGINT);
    sigaddset(&stop_set, SIGTERM);
    sigaddset(&stop_set, SIGHUP);
    /* Blocked before the context creates threads, so that they all inherit the mask. */
    pthread_sigmask(SIG_BLOCK, &stop_set, NULL);
    signal(SIGPIPE, SIG_IGN);

    sl_context *ctx = sl__config_build(cfg, err, sizeof(err));
    if (!ctx) {
        sl_log(SL_LOG_ERROR, "%s", err);
        return EXIT_USAGE;
    }
    pthread_mutex_lock(&running_lock);
    running_ctx = ctx;
    pthread_mutex_unlock(&running_lock);
    pthread_t sig_thread;
    if (pthread_create(&sig_thread, NULL, signal_main, &stop_set) != 0) {
        sl_log(SL_LOG_ERROR, "cannot create the signal thread");
        pthread_mutex_lock(&running_lock);
        running_ctx = NULL;
        pthread_mutex_unlock(&running_lock);
        sl_context_destroy(ctx);
        return EXIT_RUNTIME;
    }
    pthread_detach(sig_thread);

    sl_http_server *http = NULL;
    bool served = start_http(cfg, ctx, demo, &http);
    int rc = served ? sl_context_start(ctx) : SL_ERR_IO;
    if (rc != SL_OK) {
        if (served) {
            sl_log(SL_LOG_ERROR, "the pipeline could not start: %s (see the log above)",
                   sl_err2str(rc));
        }
        sl_http_stop(http);
        pthread_mutex_lock(&running_lock);
        running_ctx = NULL;
        pthread_mutex_unlock(&running_lock);
        sl_context_destroy(ctx);
        return EXIT_RUNTIME;
    }
    int64_t deadline = seconds > 0 ? sl__mono_ms() + (int64_t)(seconds * 1000.0) : 0;
    for (;;) {
        rc = sl_context_await_termination_or_timeout(ctx, 100);
        if (rc != SL_ERR_RETRY) {
            break;
        }
        bool timeout = deadline && sl__mono_ms() >= deadline;
        if (atomic_load(&stop_signals) > 0 || timeout) {
            sl_context_stop(ctx, true);
            rc = sl_context_await_termination(ctx);
            break;
        }
    }
    /* From here a late signal stops nothing: the context is about to be freed. */
    pthread_mutex_lock(&running_lock);
    running_ctx = NULL;
    pthread_mutex_unlock(&running_lock);
    sl_http_stop(http);
    sl_context_destroy(ctx);
    if (rc == SL_ERR_TIMEOUT) {
        sl_log(SL_LOG_ERROR, "the stop took longer than app.stop_timeout: unfinished batches "
                             "stay pending (see the log above)");
        return EXIT_RUNTIME;
    }
    if (rc != SL_OK) {
        sl_log(SL_LOG_ERROR, "the pipeline stopped on an error: %s", sl_err2str(rc));
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}

/* Set by --log-format: the config's app.log_format is then ignored. */
static bool cli_format_given;

/* Applies the log level and format: the command line's, else the config's. */
static void apply_log_level(const sl_config *cfg, int cli_level)
{
    sl_log_level level;
    sl_log_format format;
    if (cli_level >= 0) {
        sl_set_log_level((sl_log_level)cli_level);
    } else if (cfg && sl__config_log_level(cfg, &level)) {
        sl_set_log_level(level);
    }
    if (!cli_format_given && cfg && sl__config_log_format(cfg, &format)) {
        sl_set_log_format(format);
    }
}

static int cmd_run(const char *path, const char *text, int cli_level, double seconds, bool demo)
{
    char err[1024];
    sl_config *cfg;
    int rc = text ? sl__config_load_string(text, strlen(text), path, &cfg, err, sizeof(err))
                  : sl__config_load(path, &cfg, err, sizeof(err));
    if (rc != SL_OK) {
        sl_log(SL_LOG_ERROR, "%s", err); /* a log line: run's stderr is the log */
        return EXIT_USAGE;
    }
    apply_log_level(cfg, cli_level);
    int status = run_config(cfg, seconds, demo);
    sl__config_destroy(cfg);
    return status;
}

/* ==== Arguments ==== */

static int parse_level(const char *s)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

int main(int argc, char **argv)
{
    const char *positional[256];
    int npos = 0;
    int level = -1;
    double seconds = 0;
    bool markdown = false, print_config = false, connect = false;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return EXIT_OK;
        }
        if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
            printf("sluice %s\n", SLUICE_VERSION);
            return EXIT_OK;
        }
        if (strcmp(a, "--markdown") == 0) {
            markdown = true;
            continue;
        }
        if (strcmp(a, "--connect") == 0) {
            connect = true;
            continue;
        }
        if (strcmp(a, "--print-config") == 0) {
            print_config = true;
            continue;
        }
        bool is_level = strncmp(a, "--log-level", 11) == 0 && (a[11] == '\0' || a[11] == '=');
        bool is_secs = strncmp(a, "--seconds", 9) == 0 && (a[9] == '\0' || a[9] == '=');
        bool is_fmt = strncmp(a, "--log-format", 12) == 0 && (a[12] == '\0' || a[12] == '=');
        if (is_level || is_secs || is_fmt) {
            const char *eq = strchr(a, '=');
            if (eq) {
                val = eq + 1;
            } else if (i + 1 < argc) {
                val = argv[++i];
            } else {
                return usage_error("option %s needs a value", a);
            }
            sl_log_format format;
            if (is_fmt) {
                if (!sl__log_format_parse(val, &format)) {
                    return usage_error("bad log format '%s' (text or json)", val);
                }
                sl_set_log_format(format);
                cli_format_given = true;
            }
            if (is_level && (level = parse_level(val)) < 0) {
                return usage_error("bad log level '%s' (error, warn, info or debug)", val);
            }
            if (is_secs) {
                char *end;
                errno = 0;
                seconds = strtod(val, &end);
                if (errno || end == val || *end || !(seconds > 0) || seconds > 1e9) {
                    return usage_error("bad --seconds '%s' (a positive number)", val);
                }
            }
            continue;
        }
        if (a[0] == '-' && a[1] != '\0') {
            return usage_error("unknown option '%s'", a);
        }
        if (npos == (int)(sizeof(positional) / sizeof(positional[0]))) {
            return usage_error("too many arguments%s", "");
        }
        positional[npos++] = a;
    }
    if (npos == 0) {
        return usage_error("no command given%s", "");
    }
    const char *cmd = positional[0];
    if (level >= 0) {
        sl_set_log_level((sl_log_level)level);
    }
    if (strcmp(cmd, "help") == 0) {
        usage(stdout);
        return EXIT_OK;
    }
    bool testing = strcmp(cmd, "test") == 0;
    bool needs_file = strcmp(cmd, "run") == 0 || strcmp(cmd, "check") == 0 || testing;
    int want = needs_file ? 2 : 1;
    if (strcmp(cmd, "run") != 0 && strcmp(cmd, "check") != 0 && strcmp(cmd, "connectors") != 0 &&
        strcmp(cmd, "ops") != 0 && strcmp(cmd, "demo") != 0 && !testing) {
        return usage_error("unknown command '%s'", cmd);
    }
    if (testing && npos >= want && !markdown && !print_config && seconds <= 0) {
        /* Quiet unless asked: the engine's info lines would bury the results. */
        sl_set_log_level(level >= 0 ? (sl_log_level)level : SL_LOG_WARN);
        return sl__test_main(positional + 1, (size_t)(npos - 1));
    }
    if (npos < want) {
        return usage_error("'%s' needs a FILE", cmd);
    }
    if (strcmp(cmd, "connectors") == 0 && npos == 2) {
        want = 2; /* sluice connectors NAME */
    }
    if (npos > want) {
        return usage_error("unexpected argument '%s'", positional[want]);
    }
    if (markdown && strcmp(cmd, "connectors") != 0 && strcmp(cmd, "ops") != 0) {
        return usage_error("--markdown is an option of 'connectors' and 'ops', not of '%s'", cmd);
    }
    if (connect && strcmp(cmd, "check") != 0) {
        return usage_error("--connect is an option of 'check', not of '%s'", cmd);
    }
    if (print_config && strcmp(cmd, "demo") != 0) {
        return usage_error("--print-config is an option of 'demo', not of '%s'", cmd);
    }
    if (seconds > 0 && strcmp(cmd, "run") != 0 && strcmp(cmd, "demo") != 0) {
        return usage_error("--seconds is an option of 'run' and 'demo', not of '%s'", cmd);
    }
    if (strcmp(cmd, "run") == 0) {
        return cmd_run(positional[1], NULL, level, seconds, false);
    }
    if (strcmp(cmd, "check") == 0) {
        apply_log_level(NULL, level);
        return sl__cmd_check(positional[1], connect, level);
    }
    if (strcmp(cmd, "connectors") == 0) {
        return sl__cmd_connectors(npos == 2 ? positional[1] : NULL, markdown);
    }
    if (strcmp(cmd, "ops") == 0) {
        sl__config_print_ops(stdout, markdown);
        return EXIT_OK;
    }
    if (print_config) {
        fputs(demo_yaml, stdout);
        return EXIT_OK;
    }
    return cmd_run("demo.yaml", demo_yaml, level, seconds, true);
}
