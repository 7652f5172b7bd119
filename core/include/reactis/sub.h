/* reactis/sub.h — a subscriber that survives the network.
 *
 * An rx_sub keeps the set of wanted subscriptions (channels, patterns, shard
 * channels). It owns its connection: when the link fails it reconnects with
 * exponential backoff and jitter (forever, unless reconnect_max_attempts is
 * set), replays every subscription, waits for the confirmations, and then
 * delivers one RX_EV_GAP event saying when the link was last known good and
 * when it came back: messages published in between may have been missed
 * (pub/sub is at-most-once). While idle it sends PING and expects an answer
 * within a deadline, so a server that hangs or a half-open link is detected.
 *
 * Pull, don't push: rx_sub_next waits up to timeout_ms for one event. No
 * callbacks. Threads: one thread uses the handle; rx_sub_wakeup may be called
 * from any thread or from a signal handler.
 */
#ifndef REACTIS_SUB_H
#define REACTIS_SUB_H

#include "reactis/reactis.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum rx_event_kind {
  RX_EV_MESSAGE = 1,  /* from SUBSCRIBE: channel, data */
  RX_EV_PMESSAGE = 2, /* from PSUBSCRIBE: pattern, channel, data */
  RX_EV_SMESSAGE = 3, /* from SSUBSCRIBE: channel, data */
  RX_EV_GAP = 4       /* reconnected and resubscribed: gap_start_ms..gap_end_ms */
} rx_event_kind;

/* One event. Pointers are borrowed from the subscriber and stay valid until
 * the next rx_sub_next / rx_sub_next_batch / rx_sub_free call on it. Strings
 * are binary-safe (use the lengths) and also NUL-terminated. */
typedef struct rx_event {
  int kind;              /* an rx_event_kind */
  const char *pattern;   /* RX_EV_PMESSAGE: the matching pattern, else NULL */
  size_t pattern_len;
  const char *channel;   /* the channel the message was published on */
  size_t channel_len;
  const char *data;      /* the message payload */
  size_t data_len;
  long long gap_start_ms; /* RX_EV_GAP: epoch ms the link was last known good */
  long long gap_end_ms;   /* RX_EV_GAP: epoch ms every subscription was back */
  int reconnects;         /* RX_EV_GAP: connection attempts it took */
} rx_event;

typedef struct rx_sub rx_sub;

/* Creates a subscriber for the URL (see conn.h for URL and options). It does
 * not connect until the first subscribe or rx_sub_connect. NULL on a bad URL
 * or no memory, with a message in errstr (may be NULL). */
RX_EXTERN rx_sub *rx_sub_new(const char *url, char *errstr, size_t errstr_len);

/* Unsubscribes nothing, closes the link and frees everything, including the
 * last events' memory. rx_sub_free(NULL) does nothing. */
RX_EXTERN void rx_sub_free(rx_sub *s);

/* Options by name: health_check_interval (seconds, default 5, 0 = off),
 * health_check_timeout (seconds for the PING reply, default 3),
 * reconnect_min / reconnect_max (backoff bounds in seconds, default 0.05 and
 * 5), reconnect_max_attempts (0 = forever, the default), and every connection
 * option of conn.h. Returns 0 or RX_EURL/RX_EINVAL. */
RX_EXTERN int rx_sub_set(rx_sub *s, const char *name, const char *value);

/* Connects now. Returns 0 or the error (RX_EAUTH, RX_ECONNECT, ...). */
RX_EXTERN int rx_sub_connect(rx_sub *s);

/* Adds a subscription and waits (up to the command timeout) until the server
 * confirms it, so a message published after this returns will be received.
 * Connects first if needed. Messages that arrive meanwhile are kept for
 * rx_sub_next. Returns 0, or a negative code: the subscription stays wanted
 * and is made on the next successful reconnect. */
RX_EXTERN int rx_sub_subscribe(rx_sub *s, const char *channel, size_t len);
RX_EXTERN int rx_sub_psubscribe(rx_sub *s, const char *pattern, size_t len);
RX_EXTERN int rx_sub_ssubscribe(rx_sub *s, const char *channel, size_t len);

/* Removes a subscription (channel NULL: all of that kind), waiting for the
 * confirmation. Messages already buffered for it are still delivered. */
RX_EXTERN int rx_sub_unsubscribe(rx_sub *s, const char *channel, size_t len);
RX_EXTERN int rx_sub_punsubscribe(rx_sub *s, const char *pattern, size_t len);
RX_EXTERN int rx_sub_sunsubscribe(rx_sub *s, const char *channel, size_t len);

/* Number of wanted subscriptions of all kinds. */
RX_EXTERN size_t rx_sub_count(const rx_sub *s);

/* Waits up to timeout_ms (-1 = forever, 0 = do not wait) for one event and
 * fills *ev. Returns 0 with an event; RX_TIMEOUT; RX_WOKEN; RX_EINTR; or a
 * negative code when the subscriber cannot go on by itself (a wrong password
 * at reconnect, reconnect_max_attempts reached, no subscriptions at all).
 * Reconnecting, resubscribing and health checks happen inside this call. */
RX_EXTERN int rx_sub_next(rx_sub *s, int timeout_ms, rx_event *ev);

/* As rx_sub_next, but returns up to max events in evs, *n of them: all that
 * are already buffered or readable without waiting, or waits for the first
 * one as rx_sub_next does. Returns 0 when *n > 0. */
RX_EXTERN int rx_sub_next_batch(rx_sub *s, int timeout_ms, rx_event *evs,
                                size_t max, size_t *n);

/* A file descriptor that becomes readable when rx_sub_next may have something
 * (the socket), for select/poll/epoll loops; -1 while disconnected. It changes
 * after a reconnect: ask again after each rx_sub_next. */
RX_EXTERN int rx_sub_fd(const rx_sub *s);

/* Makes the current or next wait of rx_sub_next return RX_WOKEN. Safe from any
 * thread and from a signal handler. */
RX_EXTERN void rx_sub_wakeup(rx_sub *s);

/* 1 when subscribed on a live link, else 0. */
RX_EXTERN int rx_sub_is_connected(const rx_sub *s);

/* The last error's code and message (valid until the next call on s). */
RX_EXTERN int rx_sub_err(const rx_sub *s);
RX_EXTERN const char *rx_sub_errstr(const rx_sub *s);

#ifdef __cplusplus
}
#endif

#endif
