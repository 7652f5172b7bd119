/* rx_cluster.h — internal: the cluster handle's structures, shared by
 * cluster.c (topology, routing) and cluster_sub.c (the cluster subscriber),
 * and the entry points sub.c dispatches to in cluster mode. Not installed. */
#ifndef REACTIS_RX_CLUSTER_H
#define REACTIS_RX_CLUSTER_H

#include "rx_private.h"
#include "reactis/cluster.h"

/* One node of the cluster. Nodes are never freed before the handle, so
 * pointers to them (and to their conn) stay valid; a node that left the
 * topology just has in_topology = 0. */
typedef struct rx__cl_node {
  char *host;
  int port;
  char addr[300];         /* "host:port" for messages and gap events */
  char id[48];            /* node id, "" if unknown */
  int in_topology;        /* listed by the last refresh */
  int is_master;
  int failed;
  int *ranges;            /* slot ranges (pairs) from the last refresh */
  size_t range_count, range_cap;
  int mark;               /* scratch for cluster_sub.c's reconcile */
  rx_conn conn;           /* the command connection to this node */
} rx__cl_node;

struct rx_cluster {
  rx_opts opts;              /* base options: every node's copy replaces host/port */
  char **seed_host;          /* seeds, in the order given */
  int *seed_port;
  size_t seed_count;
  rx__cl_node **nodes;
  size_t node_count, node_cap;
  rx__cl_node **slots;       /* RX_CLUSTER_SLOTS owners (NULL = unknown) */
  int have_map;              /* a refresh succeeded once */
  int not_cluster;           /* a node said "cluster support disabled" */
  int need_refresh;          /* a MOVED or a failure made the map suspect */
  long long last_refresh_ms; /* monotonic ms of the last successful refresh */
  int wake_rd, wake_wr;      /* one wakeup pipe, shared (dup'ed) by every conn */
  rx_cluster_stats stats;
  int err;
  char errstr[256];
};

/* Creates a cluster handle from a URL with one or more hosts. NULL with a
 * message in errstr. */
rx_cluster *rx__cluster_new(const char *url, char *errstr, size_t errlen);

/* 1 if url names a cluster (several hosts, or cluster=yes), else 0 (also
 * for URLs that do not parse: the standalone path reports those). */
int rx__cluster_url(const char *url);

/* Initialises conn for node n with the cluster's options and its shared
 * wakeup pipe. 0 or RX_ENOMEM/RX_ESYS. Free with rx__conn_deinit. */
int rx__cluster_conn_init(rx_cluster *c, rx_conn *conn, const rx__cl_node *n);

/* Finds the node "host:port", creating it (not in the topology) when
 * unknown. NULL when out of memory. */
rx__cl_node *rx__cluster_node(rx_cluster *c, const char *host, int port);

/* Loads the topology (as rx_cluster_refresh). */
int rx__cluster_refresh(rx_cluster *c);

/* Applies "MOVED <slot> <host>:<port>" (or ASK, when is_ask: the map is not
 * changed) received from node `from`: returns the target node (created if
 * needed) and its slot in *slot, or NULL when the text is not a redirection
 * or memory ran out. MOVED also marks the map for a refresh. */
rx__cl_node *rx__cluster_redirect(rx_cluster *c, const rx__cl_node *from, const rx_reply *r,
                                  int *slot, int *is_ask);

/* rx_cluster_command_key with an explicit reply timeout in ms (0 = wait
 * forever), for blocking commands (XREADGROUP BLOCK, BLPOP) whose reply may
 * take longer than the command timeout; redirections and retries before
 * the command is sent stay bounded by the command timeout. key_index as
 * rx_cluster_command_key, or RX__CLUSTER_KEY_AUTO for the command table. */
#define RX__CLUSTER_KEY_AUTO (-2)
int rx__cluster_command_timeout(rx_cluster *c, int key_index, rx_reply **reply, int argc,
                                const char *const *argv, const size_t *argvlen, int timeout_ms);

/* 1 when the error reply starts with the word w ("MOVED", "CLUSTERDOWN"). */
int rx__cluster_err_is(const rx_reply *r, const char *w);

/* ---------------------------------------------------------------- sub.c */

/* The cluster subscriber (cluster_sub.c). sub.c's public functions call
 * these when the rx_sub handle is in cluster mode; the arguments and
 * results are those of the rx_sub_* function of the same name. `kind` is
 * sub.c's KIND_CHANNEL (0), KIND_PATTERN (1) or KIND_SHARD (2). */
typedef struct rx__csub rx__csub;
rx__csub *rx__csub_new(const char *url, char *errstr, size_t errlen);
void rx__csub_free(rx__csub *s);
int rx__csub_set(rx__csub *s, const char *name, const char *value);
int rx__csub_connect(rx__csub *s);
int rx__csub_change(rx__csub *s, int kind, int add, const char *p, size_t n);
size_t rx__csub_count(const rx__csub *s);
int rx__csub_next(rx__csub *s, int timeout_ms, rx_event *ev);
int rx__csub_next_batch(rx__csub *s, int timeout_ms, rx_event *evs, size_t max, size_t *n);
int rx__csub_fd(const rx__csub *s);
void rx__csub_wakeup(rx__csub *s);
int rx__csub_is_connected(const rx__csub *s);
int rx__csub_err(const rx__csub *s);
const char *rx__csub_errstr(const rx__csub *s);

#endif
