/* kafka_probe.c -- `sluice check --connect` for the kafka source and sink: a TCP connect
 * to each bootstrap broker (the embedded cluster needs none). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"

/* Tries each broker of a "host:port,..." list ("SASL_SSL://host:port" and "[v6]:port"
 * too). */
static int probe_brokers(const char *brokers, sl_probe_report_fn report, void *opaque)
{
    if (!brokers || strcmp(brokers, SL_KAFKA_EMBEDDED) == 0) {
        report(opaque, "embedded", true, "in-process mock cluster, nothing to connect to");
        return SL_OK;
    }
    char *list = strdup(brokers);
    if (!list) {
        return SL_ERR_NOMEM;
    }
    char *save = NULL;
    for (char *b = strtok_r(list, ", ", &save); b; b = strtok_r(NULL, ", ", &save)) {
        char *host = strstr(b, "://") ? strstr(b, "://") + 3 : b;
        char *colon = strrchr(host, ':');
        char why[256] = "";
        int port = 9092;
        if (colon && (host[0] != '[' || colon > strchr(host, ']'))) {
            *colon = '\0';
            port = atoi(colon + 1);
        }
        if (host[0] == '[') {
            host++;
            host[strcspn(host, "]")] = '\0';
        }
        char endpoint[300];
        snprintf(endpoint, sizeof(endpoint), "broker %s:%d", host, port);
        bool ok =
            port > 0 && port < 65536 && sl_probe_tcp(host, port, 3000, why, sizeof(why)) == SL_OK;
        report(opaque, endpoint, ok, ok ? "" : why[0] ? why : "bad port");
    }
    free(list);
    return SL_OK;
}

int sl__kafka_src_probe(void *ctx, sl_probe_report_fn report, void *opaque)
{
    return probe_brokers(((sl_kafka_src *)ctx)->brokers, report, opaque);
}

int sl__kafka_sink_probe(void *ctx, sl_probe_report_fn report, void *opaque)
{
    return probe_brokers(((sl_kafka_sink *)ctx)->brokers, report, opaque);
}
