/* reactis/keyspace.h — keyspace notifications: parsing and enabling.
 *
 * Redis publishes two kinds of channel for key events (when
 * notify-keyspace-events allows it):
 *   __keyspace@<db>__:<key>      with the event name as the message
 *   __keyevent@<db>__:<event>    with the key as the message
 * Keys are binary: they may hold NUL, 0xFF, ':' and '@'. Parsing here is
 * binary-safe and strict: what does not have exactly this shape is "not a
 * keyspace event", never a misparse.
 */
#ifndef REACTIS_KEYSPACE_H
#define REACTIS_KEYSPACE_H

#include "reactis/reactis.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rx_conn rx_conn;

typedef enum rx_key_space {
  RX_SPACE_KEYSPACE = 1, /* __keyspace@db__:key, message = event */
  RX_SPACE_KEYEVENT = 2  /* __keyevent@db__:event, message = key */
} rx_key_space;

/* The events Redis 7 emits; RX_KEV_OTHER for any other name (modules, newer
 * servers): the name is still in event/event_len. */
#define RX_KEY_EVENT_MAP(XX)                                                  \
  XX(OTHER, "")                                                               \
  XX(DEL, "del") XX(RENAME_FROM, "rename_from") XX(RENAME_TO, "rename_to")    \
  XX(MOVE_FROM, "move_from") XX(MOVE_TO, "move_to") XX(COPY_TO, "copy_to")    \
  XX(RESTORE, "restore") XX(EXPIRE, "expire") XX(PERSIST, "persist")          \
  XX(EXPIRED, "expired") XX(EVICTED, "evicted") XX(NEW, "new")                \
  XX(SET, "set") XX(SETRANGE, "setrange") XX(INCRBY, "incrby")                \
  XX(INCRBYFLOAT, "incrbyfloat") XX(APPEND, "append")                         \
  XX(LPUSH, "lpush") XX(RPUSH, "rpush") XX(LPOP, "lpop") XX(RPOP, "rpop")     \
  XX(LINSERT, "linsert") XX(LSET, "lset") XX(LREM, "lrem")                    \
  XX(LTRIM, "ltrim") XX(SADD, "sadd") XX(SREM, "srem")                        \
  XX(SPOP, "spop") XX(SINTERSTORE, "sinterstore")                             \
  XX(SUNIONSTORE, "sunionstore") XX(SDIFFSTORE, "sdiffstore")                 \
  XX(HSET, "hset") XX(HINCRBY, "hincrby") XX(HINCRBYFLOAT, "hincrbyfloat")    \
  XX(HDEL, "hdel") XX(ZADD, "zadd") XX(ZINCR, "zincr") XX(ZREM, "zrem")       \
  XX(ZREMRANGEBYRANK, "zremrangebyrank")                                      \
  XX(ZREMRANGEBYSCORE, "zremrangebyscore")                                    \
  XX(ZREMRANGEBYLEX, "zremrangebylex") XX(ZINTERSTORE, "zinterstore")         \
  XX(ZUNIONSTORE, "zunionstore") XX(ZDIFFSTORE, "zdiffstore")                 \
  XX(XADD, "xadd") XX(XTRIM, "xtrim") XX(XDEL, "xdel")                        \
  XX(XGROUP_CREATE, "xgroup-create") XX(XGROUP_DESTROY, "xgroup-destroy")     \
  XX(XGROUP_CREATECONSUMER, "xgroup-createconsumer")                          \
  XX(XGROUP_DELCONSUMER, "xgroup-delconsumer")                                \
  XX(XGROUP_SETID, "xgroup-setid") XX(XSETID, "xsetid")

typedef enum rx_key_event_type {
#define RX__KEV_ENUM(name, str) RX_KEV_##name,
  RX_KEY_EVENT_MAP(RX__KEV_ENUM)
#undef RX__KEV_ENUM
  RX__KEV_COUNT
} rx_key_event_type;

/* A parsed notification. Pointers borrow from the channel and message given
 * to rx_keyspace_parse and live as long as they do. */
typedef struct rx_key_event {
  int space;         /* an rx_key_space */
  int db;            /* database number, 0..INT_MAX */
  int type;          /* an rx_key_event_type; RX_KEV_OTHER if unknown */
  const char *event; /* event name, e.g. "expired" (not NUL-terminated) */
  size_t event_len;
  const char *key;   /* the key (binary, not NUL-terminated) */
  size_t key_len;
} rx_key_event;

/* Parses a notification's channel and message. Returns 0 and fills *out, or
 * RX_NOMATCH (positive: a normal outcome) when the channel is not a keyspace
 * or keyevent channel of the exact shape, or the event name is empty or
 * malformed; RX_EINVAL when channel or out is NULL. Never reads past the
 * given lengths. */
RX_EXTERN int rx_keyspace_parse(const char *channel, size_t channel_len,
                                const char *message, size_t message_len,
                                rx_key_event *out);

/* The event name of a known type ("expired"); "" for RX_KEV_OTHER and for
 * values out of range. */
RX_EXTERN const char *rx_key_event_name(int type);

/* The type of an event name, RX_KEV_OTHER when unknown. */
RX_EXTERN int rx_key_event_type_of(const char *name, size_t len);

/* Makes sure notify-keyspace-events contains every flag in `flags` (Redis
 * syntax: K E g $ l s h z x e t m d n A). It reads the current value, merges
 * flag sets (A is expanded), writes only when something is missing, and never
 * removes a flag. CONFIG GET prints "A" for the whole class set and then
 * hides n; when a write is needed and n may be hidden that way, a probe on a
 * second connection (a throwaway key reactis:probe:<random> and one PUBLISH)
 * finds out whether n is on, so it is kept. On 0, `effective` (if not NULL)
 * receives the flags now in force as CONFIG GET shows them. Errors: RX_EINVAL
 * for an unknown flag; RX_ECONFIG when the server refuses CONFIG (managed
 * Redis), with a message in rx_conn_errstr saying how to enable
 * notifications on that kind of service; connection errors. */
RX_EXTERN int rx_notify_ensure(rx_conn *c, const char *flags, char *effective,
                               size_t effective_len);

#ifdef __cplusplus
}
#endif

#endif
