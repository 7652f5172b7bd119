/* reactis/timer.h — resettable timers with shadow data, the bridge from
 * keys that expire, and once-only claims.
 *
 * ---------------------------------------------------------------- timers
 * A timer set is a delayed queue (queue.h) used in one particular way:
 * every timer is a message whose id is the timer's id and whose payload is
 * its shadow data. Touching a timer schedules its id with RX_SCHED_REPLACE
 * (one round trip, O(log N)): a timer that is armed gets the new deadline
 * and data, one that is not is armed. When a deadline passes without a
 * touch, the timer fires: the message is delivered to a watcher
 * (rx_timers_watch) like any job, with its last data, and must be acked.
 * So firing inherits every guarantee of the queue:
 *   - at least once, and on time: a watcher blocks until the earliest
 *     deadline and fetches within a few ms of it;
 *   - a deadline that passed while no watcher ran fires as soon as one
 *     starts (the first watch promotes the backlog);
 *   - a watcher that dies before acking has the firing redelivered after
 *     the visibility timeout; a handler failure retries with backoff and
 *     ends in the dead letters after max_attempts; several watchers in one
 *     consumer group share the firings.
 * And one guarantee of its own: a timer touched before its deadline never
 * fires for that deadline. Deadlines are compared with the server's clock
 * inside the scripts, and a touch and a promotion are both one script call,
 * so one of them comes first: a touch that reached Redis before the
 * deadline moved it; a touch that came after found the timer fired.
 *
 * What happens at the edges (precisely, since the queue decides it):
 *   - touching a timer that has fired but whose firing is not acked yet
 *     (delivered, in the hands of a watcher) arms a new timer with the same
 *     id; the firing already under way is not taken back.
 *   - rx_timers_stop on such a timer returns RX_NOMATCH (it is not armed)
 *     and the firing goes on; after a touch it stops the new timer only.
 *   - a firing that is redelivered (its watcher died, or its handler failed
 *     and it waits for a retry) is dropped when the id was touched again in
 *     the meantime: the armed timer supersedes it. A retry waiting on the
 *     schedule is itself what a touch replaces (with fresh attempt counts).
 *     Use this on purpose: "device offline" is not worth reporting once the
 *     device is back.
 *   - ids are 1..RX_QUEUE_ID_MAX bytes, data up to the queue's max_payload
 *     (1 MiB by default).
 *
 * Keys: the timer set NAME is the queue "timer:NAME" (rx:{timer:NAME}:z
 * and the rest, see queue.h), so `reactis stats timer:NAME` shows it.
 *
 * ---------------------------------------------------------------- the bridge
 * For keys with TTLs set by other applications: a template ("session:{id}")
 * and a shadow template ("shadow:session:{id}") turn each `expired`
 * notification of a matching key into its captures and the value of its
 * shadow key, read and deleted in one command (GETDEL, or a small script on
 * servers before 6.2). Writers set the shadow key, without a TTL or with a
 * longer one, next to the key itself. This inherits Redis's notifications:
 * at most once (a subscriber that is down or disconnected misses events),
 * and late: `expired` fires when Redis deletes the key, which can lag far
 * behind its TTL when many keys carry TTLs. Timers do not have these
 * limits; use them where it matters.
 *
 * ---------------------------------------------------------------- claims
 * rx_claim_once: the first caller for (name, id) wins, for ttl_ms; SET NX
 * PX on the key "rx:claim:{NAME}:ID". Use it to run a side effect once when
 * several processes see the same event (every subscriber receives every
 * notification).
 *
 * Threads: a handle is used by one thread at a time; rx_timers_wakeup may be
 * called from any thread or a signal handler.
 */
#ifndef REACTIS_TIMER_H
#define REACTIS_TIMER_H

#include <stddef.h>

/* Only reactis.h: it includes every other header (queue.h, template.h)
 * before this one, and the forward declarations below keep this header
 * independent of which header an application includes first. */
#include "reactis/reactis.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rx_conn rx_conn;
typedef struct rx_sub rx_sub;
typedef struct rx_queue rx_queue;
typedef struct rx_template rx_template;
struct rx_job;     /* queue.h */
struct rx_capture; /* template.h */

/* Longest timer-set name, in bytes (the queue name adds "timer:"). */
#define RX_TIMERS_NAME_MAX 194

/* ------------------------------------------------------------ timers */

typedef struct rx_timers rx_timers;

/* Creates a handle on the timer set NAME (1..RX_TIMERS_NAME_MAX bytes,
 * NUL-terminated, no '{' or '}') at url. It does not connect until the
 * first call. NULL on a bad URL or name, or no memory, with a message in
 * errstr (may be NULL). */
RX_EXTERN rx_timers *rx_timers_new(const char *url, const char *name, char *errstr,
                                   size_t errstr_len);

/* Frees the handle and its queue handle (see rx_queue_free).
 * rx_timers_free(NULL) does nothing. */
RX_EXTERN void rx_timers_free(rx_timers *t);

/* Sets an option of the underlying queue (rx_queue_set: visibility_timeout_ms,
 * max_attempts, block_cap_ms, consumer, group, connection options, ...). */
RX_EXTERN int rx_timers_set(rx_timers *t, const char *name, const char *value);

/* The timer set's name (without "timer:"), owned by the handle. */
RX_EXTERN const char *rx_timers_name(const rx_timers *t);

/* The queue handle behind the timers (borrowed, freed with t), for what
 * this header does not repeat: rx_queue_retry, rx_queue_fail,
 * rx_queue_extend, rx_queue_ack_jobs, dead letters, stats. */
RX_EXTERN rx_queue *rx_timers_queue(rx_timers *t);

/* Arms the timer id (id_len bytes) to fire in ttl_ms (0: at once), or moves
 * its deadline there when it is armed, and sets its shadow data (data_len
 * bytes, copied; data may be NULL when data_len is 0), handed over when it
 * fires. One round trip. Returns 0, RX_EINVAL (no id, ttl_ms < 0, too
 * long), RX_ETOOBIG (data over max_payload), or a connection error. */
RX_EXTERN int rx_timers_touch(rx_timers *t, const char *id, size_t id_len, long long ttl_ms,
                              const char *data, size_t data_len);

/* rx_timers_touch with more: when_ms is a ttl in ms, or with RX_SCHED_AT an
 * epoch deadline in ms; *armed (may be NULL) is 1 when the timer was not
 * armed (a new one), 0 when its deadline moved; *due_ms (may be NULL) gets
 * the deadline (server epoch ms). */
RX_EXTERN int rx_timers_touch_ex(rx_timers *t, const char *id, size_t id_len,
                                 long long when_ms, int flags, const char *data,
                                 size_t data_len, int *armed, long long *due_ms);

/* Disarms a timer: 0 when it was armed (it will not fire), RX_NOMATCH when
 * it was not (unknown, stopped, or fired already: see the header comment). */
RX_EXTERN int rx_timers_stop(rx_timers *t, const char *id, size_t id_len);

/* Batched touches: add touches (copied; checked at once as rx_timers_touch
 * does, nothing is added on an error), then send them all in one round trip
 * per 1000 (pipelined). A batch may touch the same id twice: the last touch
 * wins. After a failed send some touches may have been made; sending again
 * is safe (a touch is idempotent but for the deadline's base time). */
RX_EXTERN int rx_timers_batch_add(rx_timers *t, const char *id, size_t id_len,
                                  long long ttl_ms, const char *data, size_t data_len);
RX_EXTERN size_t rx_timers_batch_count(const rx_timers *t);
RX_EXTERN int rx_timers_batch_send(rx_timers *t);
/* Of the last sent batch: *armed 1 when touch i armed a new timer. */
RX_EXTERN int rx_timers_batch_result(const rx_timers *t, size_t i, int *armed,
                                     long long *due_ms);
RX_EXTERN void rx_timers_batch_clear(rx_timers *t);

/* Waits for fired timers: up to max (1..1000), as rx_queue_fetch (timeout_ms
 * -1 = forever, 0 = do not block). On 0, *n >= 1 firings are in
 * fired[0..*n-1] (when fired is not NULL; room for max) and in
 * rx_timers_fired(t, i): id = the timer's id, payload = its last data,
 * due_ms = its deadline, delivered_ms = when it fired, token = for
 * rx_timers_ack. Borrowed until the next watch or rx_timers_free. Returns 0,
 * RX_TIMEOUT, RX_WOKEN, RX_EINTR, or an error. */
RX_EXTERN int rx_timers_watch(rx_timers *t, size_t max, int timeout_ms, struct rx_job *fired,
                              size_t *n);
RX_EXTERN const struct rx_job *rx_timers_fired(const rx_timers *t, size_t i);

/* Acknowledges a firing (its token): done. RX_ESTALE when it was
 * redelivered meanwhile (see rx_queue_ack). */
RX_EXTERN int rx_timers_ack(rx_timers *t, const char *token);

/* Makes the current or next wait of rx_timers_watch return RX_WOKEN. Safe
 * from any thread and from a signal handler. */
RX_EXTERN void rx_timers_wakeup(rx_timers *t);

/* The last error's code and message ("" when none), owned by the handle. */
RX_EXTERN int rx_timers_err(const rx_timers *t);
RX_EXTERN const char *rx_timers_errstr(const rx_timers *t);

/* ------------------------------------------------------------ the bridge */

typedef struct rx_bridge rx_bridge;

/* Flags of rx_bridge_new. */
#define RX_BRIDGE_KEEP 1 /* read the shadow key, do not delete it (GET) */

/* One expired key, from rx_bridge_take. Pointers are borrowed: key and the
 * captures from the notification given to rx_bridge_take (valid as long as
 * it is), shadow_key and value from the bridge (valid until the next
 * rx_bridge_take or rx_bridge_free). Binary-safe; value and shadow_key are
 * also NUL-terminated. */
typedef struct rx_expiry {
  int db;                   /* the database of the key */
  const char *key;          /* the key that expired */
  size_t key_len;
  const struct rx_capture *caps; /* caps[i]: placeholder i of the template */
  size_t ncaps;             /* rx_template_count of the template */
  const char *shadow_key;   /* the shadow key that was read */
  size_t shadow_key_len;
  const char *value;        /* its value; NULL when it did not exist */
  size_t value_len;
} rx_expiry;

/* Compiles a bridge: tpl is the template of the keys that expire
 * ("session:{id}"), shadow the template of their shadow keys, using only
 * placeholders of tpl ("shadow:session:{id}"; NULL or shadow_len 0:
 * "shadow:" followed by tpl). flags: RX_BRIDGE_KEEP. NULL on a malformed
 * template or no memory, with the message in errstr. */
RX_EXTERN rx_bridge *rx_bridge_new(const char *tpl, size_t tpl_len, const char *shadow,
                                   size_t shadow_len, int flags, char *errstr,
                                   size_t errstr_len);
RX_EXTERN void rx_bridge_free(rx_bridge *b);

/* The key template and the shadow template (borrowed from b). */
RX_EXTERN const rx_template *rx_bridge_template(const rx_bridge *b);
RX_EXTERN const rx_template *rx_bridge_shadow(const rx_bridge *b);

/* Subscribes s to the expired events of database db (db < 0: of every
 * database): PSUBSCRIBE __keyevent@DB__:expired. The server must have
 * notify-keyspace-events with E and x (rx_notify_ensure(c, "Ex", ...)).
 * Returns what rx_sub_psubscribe returns. */
RX_EXTERN int rx_bridge_subscribe(rx_bridge *b, rx_sub *s, int db);

/* Handles one notification (a message's channel and data, e.g. from
 * rx_sub_next): when it says a key of the template expired, in the database
 * c uses, reads the shadow key on c (and deletes it, unless RX_BRIDGE_KEEP:
 * one GETDEL, so of several bridges that see the same event exactly one gets
 * the value) and fills *out. Both notification forms are understood
 * (__keyevent@db__:expired with the key as message, and
 * __keyspace@db__:KEY with "expired"). Returns 0 (out->value NULL when the
 * shadow key did not exist: deleted, or taken by another bridge),
 * RX_NOMATCH when the notification is not such an event (nothing is done),
 * or a connection error (rx_conn_errstr(c)). */
RX_EXTERN int rx_bridge_take(rx_bridge *b, rx_conn *c, const char *channel,
                             size_t channel_len, const char *message, size_t message_len,
                             rx_expiry *out);

/* ------------------------------------------------------------ claims */

/* Claims (name, id) once: SET "rx:claim:{NAME}:ID" <host:pid> NX PX ttl_ms
 * on c. *won is 1 for the one caller that made the claim, 0 for every other
 * until ttl_ms has passed (then it may be claimed again). name: 1..200
 * bytes without '{' or '}' (one name stays in one Cluster slot); id:
 * 1..RX_QUEUE_ID_MAX bytes, binary; ttl_ms >= 1. Returns 0, RX_EINVAL, or
 * an error of c. */
RX_EXTERN int rx_claim_once(rx_conn *c, const char *name, size_t name_len, const char *id,
                            size_t id_len, long long ttl_ms, int *won);

#ifdef __cplusplus
}
#endif

#endif
