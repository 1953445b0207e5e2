/* sl_changelog.c -- keyed state that moves with its partitions: a stateful stream's
 * changelog sink, the state changes it gets after each batch, restores when a source takes a
 * partition, and drops when it loses one (see "Keyed state" in sl_connector.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_engine.h"

bool sl_instance_is_changelog(const sl_instance *ins)
{
    return ins && ins->changelog != NULL;
}

void sl_instance_set_waiting(sl_instance *ins, bool waiting)
{
    if (ins) {
        atomic_store(&ins->waiting, waiting);
    }
}

void sl_instance_release_partition(sl_instance *ins, const char *topic, int32_t partition)
{
    (void)ins;
    (void)topic;
    (void)partition;
}

int sl_stream_changelog(sl_stream *s, const char *type, const char *name, const sl_options *opts,
                        char *errstr, size_t errsize)
{
    (void)s;
    (void)type;
    (void)name;
    (void)opts;
    snprintf(errstr, errsize, "changelogs are not built yet");
    return SL_ERR_STATE;
}
