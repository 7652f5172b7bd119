/* reactis/cluster.h — Redis Cluster: routing commands, per-node access.
 *
 * An rx_cluster discovers the cluster's topology from a list of seed nodes
 * (CLUSTER SHARDS on Redis 7.0+, CLUSTER SLOTS before), keeps one rx_conn
 * per node, and sends each command to the master of its key's hash slot. It
 * follows MOVED (updating its slot map, then refreshing it) and ASK (ASKING
 * on the target, once), and when a node cannot be reached, the cluster is
 * down or a failover is under way it refreshes the map and retries with a
 * short backoff, all within the command timeout.
 *
 * URLs: the same as conn.h, with a comma-separated host list:
 *   redis://[[user]:password@]h1:p1,h2:p2,...[?option=value&...]
 *   rediss://...                                  TLS on every node
 * Every option applies to every node. Redis Cluster has only database 0, so
 * a path or db= other than 0 is refused (RX_EURL); unix:// is refused too.
 * The option cluster=yes also makes rx_sub_new (sub.h) work in cluster mode
 * with a single seed; several hosts imply it.
 *
 * The subscriber in cluster mode (rx_sub_new with such a URL) has the same
 * API and guarantees as sub.h, per node:
 *   - channels and patterns beginning "__key" (__keyspace@..., __keyevent@...)
 *     are subscribed on every master that serves slots, since each node
 *     notifies only about its own keys; new and promoted masters are added as
 *     the topology changes (it is reloaded every 5 s, and at once after a lost
 *     link or a failed reconnect);
 *   - other SUBSCRIBE / PSUBSCRIBE names go to one master (Redis broadcasts
 *     PUBLISH to every node), so each message arrives once; a message that
 *     someone PUBLISHes to a "__key..." channel by hand arrives once per master;
 *   - SSUBSCRIBE names go to the master of the channel's slot, and follow the
 *     slot when it moves (a server-sent sunsubscribe or MOVED);
 *   - replicas are never subscribed to.
 * An RX_EV_GAP event comes once every link the topology needs is back and
 * confirmed after a link was lost, a master failed over, or a slot of a shard
 * channel moved; its data holds the nodes concerned ("127.0.0.1:7001,...") and
 * gap_start_ms is when the first of them was last known good. Events of
 * different nodes are not ordered with respect to each other. rx_sub_fd
 * returns an epoll descriptor that is readable when any link is (Linux; -1
 * elsewhere); timers (health checks, reconnects, topology reloads) run only
 * inside rx_sub_next, so wait on it with a timeout of at most a second or so.
 *
 * Retries never resend a command that may have reached a server: only a
 * command that could not be sent (the node refused the connection), or that
 * the server refused without running it (MOVED, ASK, TRYAGAIN, CLUSTERDOWN,
 * LOADING, READONLY from a demoted master), is retried. A link that fails
 * after the command was written gives RX_EIO / RX_ETIMEDOUT, as with a
 * single rx_conn: the command may or may not have run.
 *
 * Threads: a cluster handle and its node connections are used by one thread
 * at a time; rx_cluster_wakeup may be called from any thread.
 */
#ifndef REACTIS_CLUSTER_H
#define REACTIS_CLUSTER_H

#include "reactis/reactis.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rx_conn rx_conn;
typedef struct rx_reply rx_reply;
typedef struct rx_cluster rx_cluster;

/* Number of hash slots in Redis Cluster. */
#define RX_CLUSTER_SLOTS 16384

/* The hash slot of a key, exactly as Redis computes it: CRC16 (XMODEM) of
 * the key modulo 16384, or of the part between the first '{' and the first
 * '}' after it when that part is not empty ("{user1}.a" and "{user1}.b"
 * share a slot; "{}x" hashes the whole key; "{{a}}" hashes "{a"). Binary
 * safe; key may be NULL when len is 0. */
RX_EXTERN int rx_cluster_keyslot(const char *key, size_t len);

/* Parses the URL and creates the handle; it does not connect (the first
 * command or rx_cluster_refresh does). NULL on a malformed URL, an unknown
 * option or no memory, with a message in errstr (never the password);
 * errstr may be NULL. */
RX_EXTERN rx_cluster *rx_cluster_new(const char *url, char *errstr, size_t errstr_len);

/* 1 when url names a Redis Cluster: a redis:// or rediss:// URL with
 * several hosts, or with the option cluster=yes; else 0 (also for a URL that
 * does not parse). rx_sub_new and rx_queue_new decide their mode with this
 * same test, and the bindings' Client does too, so one URL means one thing
 * everywhere. */
RX_EXTERN int rx_url_is_cluster(const char *url);

/* The handle's URL with the password replaced by "***", for logs and
 * reprs: "redis://[user][:***@]h1:p1,h2:p2" (the seeds as given, no
 * options). Writes at most buf_len bytes including the NUL; returns buf. */
RX_EXTERN const char *rx_cluster_describe(const rx_cluster *c, char *buf, size_t buf_len);

/* 1 when the topology has been loaded and at least one node connection is
 * open, else 0. Does no I/O. */
RX_EXTERN int rx_cluster_is_connected(const rx_cluster *c);

/* Closes every node connection and frees the handle; NULL does nothing. */
RX_EXTERN void rx_cluster_free(rx_cluster *c);

/* Adds a seed node, "host:port" or "[v6]:port" (port default 6379), used
 * when no known node answers. 0, RX_EURL or RX_ENOMEM. */
RX_EXTERN int rx_cluster_add_seed(rx_cluster *c, const char *host_port);

/* Sets one option by name on the cluster and every node connection (see
 * conn.h), as rx_conn_set. 0 or RX_EURL/RX_EINVAL. */
RX_EXTERN int rx_cluster_set(rx_cluster *c, const char *name, const char *value);

/* Loads the topology now: asks the known nodes, then the seeds, until one
 * answers. 0; RX_ECLUSTER when the server is not a cluster node ("cluster
 * support disabled": use a plain URL) or no node knows any slot; or the
 * connection error of the last node tried. */
RX_EXTERN int rx_cluster_refresh(rx_cluster *c);

/* Runs one command on the master of its key's slot and waits for the reply,
 * following redirections and retrying as described above; the whole call
 * takes at most about the command timeout. The key is argv[1] (GET, SET,
 * HSET, XADD, SPUBLISH, ... and any command the table below does not know),
 * except for what a small table knows: the first key of EVAL / EVALSHA /
 * FCALL (after numkeys; none when numkeys is 0), the first stream after
 * STREAMS for XREAD / XREADGROUP, argv[2] for XGROUP, XINFO, OBJECT and
 * MEMORY; keyless commands (PING, PUBLISH, INFO, CONFIG, CLUSTER, SCRIPT,
 * FUNCTION, WAIT, SCAN, ...) go to a random master: per-node commands belong
 * on the node's own connection (rx_cluster_nodes). Multi-key commands must
 * keep their keys in one slot (use a hash tag); MULTI/EXEC and WATCH are not
 * routed as a unit, and pub/sub belongs in rx_sub. Reply ownership as
 * rx_conn_command: on 0, *reply is the
 * server's reply, possibly an error reply (also a CLUSTERDOWN or TRYAGAIN
 * that persisted until the deadline); the caller frees it with
 * rx_reply_free. On a negative code *reply is NULL: RX_ECLUSTER (too many
 * redirections, no node for the slot), connection errors, RX_WOKEN,
 * RX_EINTR. */
RX_EXTERN int rx_cluster_command(rx_cluster *c, rx_reply **reply, int argc,
                                 const char *const *argv, const size_t *argvlen);

/* As rx_cluster_command with the key argument given: argv[key_index] is
 * the key (1 <= key_index < argc), or key_index -1 for any master. */
RX_EXTERN int rx_cluster_command_key(rx_cluster *c, int key_index, rx_reply **reply, int argc,
                                     const char *const *argv, const size_t *argvlen);

/* As rx_cluster_command, but an error reply becomes a status code as in
 * rx_conn_call (CLUSTERDOWN, TRYAGAIN, MOVED and ASK give RX_ECLUSTER), with
 * the server's text in rx_cluster_errstr. reply may be NULL. */
RX_EXTERN int rx_cluster_call(rx_cluster *c, rx_reply **reply, int argc,
                              const char *const *argv, const size_t *argvlen);

/* One node of the topology, as rx_cluster_nodes lists it. */
typedef struct rx_cluster_node {
  const char *host;   /* address as the cluster announces it; valid until rx_cluster_free */
  int port;           /* the port used (tls-port for rediss://) */
  const char *id;     /* the 40-hex node id, "" when unknown; valid until rx_cluster_free */
  int is_master;      /* 1 for a master, 0 for a replica */
  int failed;         /* 1 when the cluster reports the node as failed */
  size_t range_count; /* masters: number of slot ranges it serves */
  const int *ranges;  /* 2 * range_count ints: first0, last0, first1, ...
                         (inclusive); valid until the next topology refresh
                         (any rx_cluster_* call on c) */
  rx_conn *conn;      /* this node's connection, for per-node commands
                         (CONFIG SET, INFO, DBSIZE...). Borrowed: owned by c,
                         valid until rx_cluster_free; do not free it. It
                         connects on first use. */
} rx_cluster_node;

enum {
  RX_CLUSTER_MASTERS = 1, /* list masters */
  RX_CLUSTER_REPLICAS = 2 /* list replicas */
};

/* Lists the nodes of the current topology (loading it first if needed)
 * whose role is in `which` (RX_CLUSTER_MASTERS, RX_CLUSTER_REPLICAS or
 * both), masters ordered by their first slot. Fills up to max entries of
 * out (out may be NULL when max is 0) and returns how many nodes match,
 * which may be more than max; or a negative code. When no topology was
 * known and loading it was woken up or interrupted, it returns 0 with
 * rx_cluster_err() RX_WOKEN or RX_EINTR (otherwise rx_cluster_err() is 0
 * after a call that did not fail). */
RX_EXTERN int rx_cluster_nodes(rx_cluster *c, int which, rx_cluster_node *out, size_t max);

/* Counters since the handle was created, for tests and monitoring. */
typedef struct rx_cluster_stats {
  long long moved;     /* MOVED redirections followed */
  long long ask;       /* ASK redirections followed */
  long long retries;   /* attempts repeated after an error or a refusal */
  long long refreshes; /* topology loads that succeeded */
} rx_cluster_stats;

RX_EXTERN void rx_cluster_get_stats(const rx_cluster *c, rx_cluster_stats *out);

/* Makes sure notify-keyspace-events contains `flags` on every master and
 * every replica (so a promoted replica keeps them), using rx_notify_ensure
 * (keyspace.h) on each node's connection. Nodes that are reported failed
 * are skipped. effective (may be NULL) receives what the first master now
 * has. Returns 0 when every node is set; otherwise the first node's error
 * (RX_ECONFIG, RX_EINVAL, connection errors), with rx_cluster_errstr naming
 * that node; the other nodes are still attempted. */
RX_EXTERN int rx_cluster_notify_ensure(rx_cluster *c, const char *flags, char *effective,
                                       size_t effective_len);

/* Makes the current or next blocking wait of c (any node) return RX_WOKEN.
 * Safe from any thread and from a signal handler. */
RX_EXTERN void rx_cluster_wakeup(rx_cluster *c);

/* The last error's code and message ("" when none), owned by the handle and
 * valid until the next call on it. */
RX_EXTERN int rx_cluster_err(const rx_cluster *c);
RX_EXTERN const char *rx_cluster_errstr(const rx_cluster *c);

#ifdef __cplusplus
}
#endif

#endif
