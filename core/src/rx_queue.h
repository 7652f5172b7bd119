/* rx_queue.h — internal: the queue in two layers. Not installed.
 *
 * queue.c implements one queue on one hash tag: one sorted set, one stream,
 * one server (its keys rx:{NAME}:*). It is reached through the rx__qp_*
 * functions below, each the same as the public rx_queue_* function of the
 * same name (queue.h documents them) on an rx__qp handle.
 *
 * queue_cluster.c implements the public rx_queue_* API on top: a standalone
 * queue of one partition is passed straight through to one rx__qp that owns
 * its connections (the behaviour queue.h describes, unchanged); a queue on a
 * Redis Cluster URL, or with partitions=N, holds one rx__qp per partition
 * that borrows its command connection from queue_cluster.c (rx__qp_new with
 * url NULL, rx__qp_use_conn), which picks the right node, follows MOVED and
 * failovers, and does the waiting for every partition at once.
 *
 * queue.c defines RX__QP_IMPL before including this header: the macros at
 * the end rename its definitions (written with the public names) to the
 * rx__qp_* ones, so queue.c reads as a whole queue and needs no other
 * change to be one partition. */
#ifndef REACTIS_RX_QUEUE_H
#define REACTIS_RX_QUEUE_H

#include "rx_private.h"
#include "reactis/queue.h"

typedef struct rx__qp rx__qp;

/* url NULL: a partition without connections of its own; its command
 * connection is set with rx__qp_use_conn before every call (borrowed: never
 * freed by the partition), and it must never block in fetch (timeout 0),
 * since it has no waiter connection. rx__qp_set then refuses connection
 * options with RX_EURL. */
rx__qp *rx__qp_new(const char *url, const char *name, char *errstr, size_t errstr_len);
void rx__qp_free(rx__qp *q);
int rx__qp_set(rx__qp *q, const char *name, const char *value);
const char *rx__qp_name(const rx__qp *q);

int rx__qp_schedule(rx__qp *q, const char *id, size_t id_len, const char *payload,
                    size_t payload_len, long long when_ms, int flags, char *out_id,
                    size_t out_id_len, int *outcome, long long *due_ms);
int rx__qp_batch_add(rx__qp *q, const char *id, size_t id_len, const char *payload,
                     size_t payload_len, long long when_ms, int flags);
size_t rx__qp_batch_count(const rx__qp *q);
int rx__qp_batch_send(rx__qp *q);
int rx__qp_batch_result(const rx__qp *q, size_t i, int *outcome, const char **id,
                        size_t *id_len, long long *due_ms);
void rx__qp_batch_clear(rx__qp *q);
int rx__qp_cancel(rx__qp *q, const char *id, size_t id_len);
int rx__qp_reschedule(rx__qp *q, const char *id, size_t id_len, long long when_ms, int flags);
int rx__qp_run_now(rx__qp *q, const char *id, size_t id_len);

int rx__qp_fetch(rx__qp *q, size_t max, int timeout_ms, rx_job *jobs, size_t *n);
const rx_job *rx__qp_job(const rx__qp *q, size_t i);
size_t rx__qp_job_count(const rx__qp *q);
int rx__qp_ack(rx__qp *q, const char *token);
int rx__qp_ack_many(rx__qp *q, const char *tokens, size_t len, size_t *acked);
int rx__qp_ack_jobs(rx__qp *q, const rx_job *jobs, size_t n, size_t *acked);
int rx__qp_ack_fetch(rx__qp *q, const rx_job *ack, size_t nack, size_t *acked, size_t max,
                     int timeout_ms, rx_job *jobs, size_t *n);
int rx__qp_retry(rx__qp *q, const char *token, long long delay_ms, const char *error,
                 size_t error_len, int *dead);
int rx__qp_fail(rx__qp *q, const char *token, const char *error, size_t error_len);
int rx__qp_extend(rx__qp *q, const char *token, long long ms);
void rx__qp_wakeup(rx__qp *q);

int rx__qp_dead_list(rx__qp *q, const char *after, size_t max, size_t *n);
const rx_job *rx__qp_dead(const rx__qp *q, size_t i);
int rx__qp_dead_requeue(rx__qp *q, const char *token, long long delay_ms, size_t *count);
int rx__qp_dead_purge(rx__qp *q, const char *token, size_t *count);

int rx__qp_stats_get(rx__qp *q, rx_queue_stats *st);
const char *rx__qp_warning(const rx__qp *q);
int rx__qp_err(const rx__qp *q);
const char *rx__qp_errstr(const rx__qp *q);
rx_conn *rx__qp_conn(rx__qp *q);

/* Sets the command connection of a partition made with url NULL. */
void rx__qp_use_conn(rx__qp *q, rx_conn *c);

/* What the last fetch call learned from the server (also when it found
 * nothing): the server's clock, the earliest waiting due time (-1: none),
 * and the last id of the wake stream (for an XREAD after it). Zeroes and
 * "0-0" before the first fetch. */
void rx__qp_fetch_hint(const rx__qp *q, long long *now_ms, long long *next_due_ms, char *wid,
                       size_t wid_len);

#ifdef RX__QP_IMPL
#define rx_queue rx__qp
#define rx_queue_new rx__qp_new
#define rx_queue_free rx__qp_free
#define rx_queue_set rx__qp_set
#define rx_queue_name rx__qp_name
#define rx_queue_schedule rx__qp_schedule
#define rx_queue_batch_add rx__qp_batch_add
#define rx_queue_batch_count rx__qp_batch_count
#define rx_queue_batch_send rx__qp_batch_send
#define rx_queue_batch_result rx__qp_batch_result
#define rx_queue_batch_clear rx__qp_batch_clear
#define rx_queue_cancel rx__qp_cancel
#define rx_queue_reschedule rx__qp_reschedule
#define rx_queue_run_now rx__qp_run_now
#define rx_queue_fetch rx__qp_fetch
#define rx_queue_job rx__qp_job
#define rx_queue_job_count rx__qp_job_count
#define rx_queue_ack rx__qp_ack
#define rx_queue_ack_many rx__qp_ack_many
#define rx_queue_ack_jobs rx__qp_ack_jobs
#define rx_queue_ack_fetch rx__qp_ack_fetch
#define rx_queue_retry rx__qp_retry
#define rx_queue_fail rx__qp_fail
#define rx_queue_extend rx__qp_extend
#define rx_queue_wakeup rx__qp_wakeup
#define rx_queue_dead_list rx__qp_dead_list
#define rx_queue_dead rx__qp_dead
#define rx_queue_dead_requeue rx__qp_dead_requeue
#define rx_queue_dead_purge rx__qp_dead_purge
#define rx_queue_stats_get rx__qp_stats_get
#define rx_queue_warning rx__qp_warning
#define rx_queue_err rx__qp_err
#define rx_queue_errstr rx__qp_errstr
#define rx_queue_conn rx__qp_conn
#endif

#endif
