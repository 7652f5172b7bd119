/* cluster.h — a real local Redis Cluster for the C tests.
 *
 * Starts redis-server processes with rxt_server_start (so they are guarded
 * and cleaned up like every test server) with cluster mode on, joins them
 * with `redis-cli --cluster create`, and waits until every node reports
 * cluster_state:ok and all nodes agree on which master serves which slots.
 * Like server.c it talks to the servers over raw sockets only, never
 * through reactis, so the library under test cannot hide its own bugs.
 *
 * Each node's cluster bus port is chosen free as well (--cluster-port), so
 * clusters never collide with other tests or with port+10000.
 */
#ifndef REACTIS_TEST_CLUSTER_H
#define REACTIS_TEST_CLUSTER_H

#include "server.h"

#define RXT_CLUSTER_MAX 12

typedef struct rxt_cluster {
  rxt_server node[RXT_CLUSTER_MAX]; /* node[i].pid == 0 once killed */
  int count;
  char url[RXT_CLUSTER_MAX * 40];   /* "redis://127.0.0.1:p1,127.0.0.1:p2,..." (every node) */
} rxt_cluster;

/* Starts masters * (1 + replicas) nodes with --cluster-enabled yes
 * --cluster-config-file nodes.conf --cluster-node-timeout 2000
 * --appendonly no, creates the cluster with redis-cli --cluster create
 * ... --cluster-replicas <replicas> --cluster-yes, and waits (up to 30 s)
 * until it is ok and consistent and every replica's link to its master is
 * up. 0, or -1 after printing why (everything started is cleaned up). */
int rxt_cluster_start(rxt_cluster *c, int masters, int replicas);

/* Stops every node and removes their directories. */
void rxt_cluster_cleanup(rxt_cluster *c);

/* Waits up to timeout_ms until every running node says cluster_state:ok
 * and all of them map every slot to the same running master. 0 or -1. */
int rxt_cluster_wait_ok(rxt_cluster *c, int timeout_ms);

/* The running node that serves slot as master, as node 0..count-1 of c in
 * the view of the first running node; NULL if none. */
rxt_server *rxt_cluster_owner(rxt_cluster *c, int slot);

/* A running replica of master m; NULL if none. */
rxt_server *rxt_cluster_replica_of(rxt_cluster *c, rxt_server *m);

/* 1 when node s is a master (in its own view), 0 otherwise. */
int rxt_cluster_is_master(rxt_server *s);

/* CLUSTER MYID of s into id (at least 41 bytes). 0 or -1. */
int rxt_cluster_id(rxt_server *s, char *id, size_t len);

/* Kills master m (SIGKILL), promotes its replica at once with CLUSTER
 * FAILOVER TAKEOVER, and waits until every running node sees the replica
 * serving m's slots and the cluster is ok again. Returns the new master, or
 * NULL after printing why. */
rxt_server *rxt_cluster_failover(rxt_cluster *c, rxt_server *m, int timeout_ms);

/* Resharding in steps, so a test can act in between:
 * begin: IMPORTING on `to`, MIGRATING on `from`;
 * keys: MIGRATE every key of the slot from `from` to `to`;
 * end: SETSLOT <slot> NODE <to> on every running master, then wait until
 * all nodes agree. 0 or -1. */
int rxt_cluster_migrate_begin(rxt_cluster *c, int slot, rxt_server *from, rxt_server *to);
int rxt_cluster_migrate_keys(rxt_cluster *c, int slot, rxt_server *from, rxt_server *to);
int rxt_cluster_migrate_end(rxt_cluster *c, int slot, rxt_server *from, rxt_server *to);

/* The index of s in c (0..count-1), -1 if not a node of c. */
int rxt_cluster_index(const rxt_cluster *c, const rxt_server *s);

#endif
