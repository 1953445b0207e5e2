/* sl_reducers.h -- the YAML reducers beyond sum, count, min and max: avg, first, last and
 * count_distinct, as an aggregate in three steps (Flink's AggregateFunction: create and add,
 * merge, getResult):
 *
 *   lift     (map_values, before the reduction): each record becomes a partial result, its
 *            value bytes an encoding of what the reducer needs (avg: sum and count; first and
 *            last: the record's time and position and its value; count_distinct: the set of
 *            values);
 *   combine  (the engine's sl_reduce_fn, associative and commutative): two partials into one;
 *   finish   (map_values, after the reduction): the partial becomes the output record.
 *
 * The engine reduces partials as it reduces anything else, keeping the reduced value bytes
 * (reduce, reduce_by_key, reduce_by_window, reduce_by_key_and_window plain and with the
 * inverse, running; keyed: true and time: event keep each slide's or pane's bytes through
 * sl__stream_rbkw_state_bytes and sl__stream_event_window_bytes), so results are exact over
 * the whole window: an avg is the window's sum over its count, never an average of averages.
 * Only avg has an inverse. */
#ifndef SL_REDUCERS_H
#define SL_REDUCERS_H

#include <stdbool.h>

#include "sluice.h"

/* One of the reducers; static, never freed. */
typedef struct sl_reducer sl_reducer;

/* The reducer called name ("avg", "first", "last", "count_distinct"), or NULL for another
 * name (sum, count, min and max are the engine's sl_reduce_*). */
const sl_reducer *sl__reducer_get(const char *name);
/* The same reducer whose keep filter also drops results whose typed value is 0 (drop_zero). */
const sl_reducer *sl__reducer_dropping_zeros(const sl_reducer *rd);
const char *sl__reducer_name(const sl_reducer *rd);
/* Whether rd has an inverse (reduce_by_key_and_window with inverse: true): avg does. */
bool sl__reducer_invertible(const sl_reducer *rd);

/* Lift: out becomes the partial of in. opaque is the sl_reducer. Thread-safe. */
int sl__reducer_lift(const sl_record *in, sl_record *out, sl_emitter *e, void *opaque);
/* Combine two partials of the same reducer (opaque unused). Fails a record that is not one. */
int sl__reducer_combine(sl_record *acc, const sl_record *r, sl_emitter *e, void *opaque);
/* The inverse of combine for avg: acc less r. */
int sl__reducer_inverse(sl_record *acc, const sl_record *r, sl_emitter *e, void *opaque);
/* Finish: out becomes the result of the partial in (opaque unused). A tombstone (a key that
 * left a window) passes as it is; an avg of no numbers is a tombstone. */
int sl__reducer_finish(const sl_record *in, sl_record *out, sl_emitter *e, void *opaque);
/* The filter of reduce_by_key_and_window over partials (opaque: the sl_reducer): drops an avg
 * whose count went back to 0 (its records left the window), and, for a reducer from
 * sl__reducer_dropping_zeros, results whose typed value is 0. */
int sl__reducer_keep(const sl_record *r, void *opaque);
/* running: the key's state is its partial since the start; each batch's partial of the key
 * (reduced by key before) is combined into it and the result emitted, ts = batch time.
 * opaque is the sl_reducer. */
int sl__reducer_running(const sl_record *in, sl_state *state, sl_emitter *e, void *opaque);

#endif
