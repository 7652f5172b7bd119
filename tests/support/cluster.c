/* cluster.c — starts a local Redis Cluster for the C tests (see cluster.h). */
#include "cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define RXT_CLUSTER_VIEW_MAX 32

/* ------------------------------------------------------------ replies */

/* The text of a bulk or simple string reply, malloc'd; NULL otherwise. */
static char *text_of(char *raw) {
  char *out = NULL;
  if (raw == NULL) return NULL;
  if (raw[0] == '$') {
    long n = strtol(raw + 1, NULL, 10);
    char *body = strstr(raw, "\r\n");
    if (n >= 0 && body) {
      out = malloc((size_t)n + 1);
      if (out == NULL) abort();
      memcpy(out, body + 2, (size_t)n);
      out[n] = '\0';
    }
  } else if (raw[0] == '+') {
    size_t n = strcspn(raw + 1, "\r");
    out = malloc(n + 1);
    if (out == NULL) abort();
    memcpy(out, raw + 1, n);
    out[n] = '\0';
  }
  free(raw);
  return out;
}

static char *cmd_text(rxt_server *s, const char *const *argv) {
  if (s->pid <= 0) return NULL;
  return text_of(rxt_cmd(s, argv));
}

/* 1 if the command's reply is +OK. Prints the reply otherwise. */
static int cmd_ok(rxt_server *s, const char *const *argv) {
  char *r = rxt_cmd(s, argv);
  int ok = r && strncmp(r, "+OK", 3) == 0;
  if (!ok) {
    fprintf(stderr, "rxt: %s %s %s on port %d: %s", argv[0], argv[1] ? argv[1] : "",
            argv[1] && argv[2] ? argv[2] : "", s->port, r ? r : "(no reply)\n");
  }
  free(r);
  return ok;
}

/* ------------------------------------------------------------ views */

typedef struct vnode {
  char id[48];
  char master_id[48];
  int port;
  int master, fail, myself;
  int ranges[64]; /* pairs */
  int range_count;
} vnode;

/* Node s's CLUSTER NODES, parsed. Returns the count or -1. */
static int view_of(rxt_server *s, vnode *out, int max) {
  const char *argv[] = {"CLUSTER", "NODES", NULL};
  char *text = cmd_text(s, argv);
  int n = 0;
  if (text == NULL) return -1;
  char *lsave = NULL;
  for (char *line = strtok_r(text, "\n", &lsave); line && n < max;
       line = strtok_r(NULL, "\n", &lsave)) {
    char *tok[128];
    int nt = 0;
    char *save = NULL;
    vnode *v = &out[n];
    memset(v, 0, sizeof *v);
    for (char *t = strtok_r(line, " \r", &save); t && nt < 128; t = strtok_r(NULL, " \r", &save))
      tok[nt++] = t;
    if (nt < 8) continue;
    snprintf(v->id, sizeof v->id, "%s", tok[0]);
    {
      char *at = strchr(tok[1], '@'), *colon;
      if (at) *at = '\0';
      colon = strrchr(tok[1], ':');
      v->port = colon ? atoi(colon + 1) : 0;
    }
    v->master = strstr(tok[2], "master") != NULL;
    v->fail = strstr(tok[2], "fail") != NULL;
    v->myself = strstr(tok[2], "myself") != NULL;
    snprintf(v->master_id, sizeof v->master_id, "%s", tok[3]);
    for (int i = 8; i < nt && v->range_count < 32; i++) {
      int a, b;
      if (tok[i][0] == '[') continue; /* [slot->-id] migration marks */
      if (sscanf(tok[i], "%d-%d", &a, &b) == 2) {
      } else if (sscanf(tok[i], "%d", &a) == 1) {
        b = a;
      } else {
        continue;
      }
      v->ranges[v->range_count * 2] = a;
      v->ranges[v->range_count * 2 + 1] = b;
      v->range_count++;
    }
    n++;
  }
  free(text);
  return n;
}

int rxt_cluster_index(const rxt_cluster *c, const rxt_server *s) {
  for (int i = 0; i < c->count; i++)
    if (&c->node[i] == s) return i;
  return -1;
}

static rxt_server *by_port(rxt_cluster *c, int port) {
  for (int i = 0; i < c->count; i++)
    if (c->node[i].port == port && c->node[i].pid > 0) return &c->node[i];
  return NULL;
}

static rxt_server *first_running(rxt_cluster *c) {
  for (int i = 0; i < c->count; i++)
    if (c->node[i].pid > 0) return &c->node[i];
  return NULL;
}

static int owner_port(const vnode *v, int n, int slot) {
  for (int i = 0; i < n; i++) {
    if (!v[i].master || v[i].fail) continue;
    for (int r = 0; r < v[i].range_count; r++)
      if (slot >= v[i].ranges[r * 2] && slot <= v[i].ranges[r * 2 + 1]) return v[i].port;
  }
  return 0;
}

rxt_server *rxt_cluster_owner(rxt_cluster *c, int slot) {
  vnode v[RXT_CLUSTER_VIEW_MAX];
  rxt_server *s = first_running(c);
  int n = s ? view_of(s, v, RXT_CLUSTER_VIEW_MAX) : -1;
  if (n < 0) return NULL;
  return by_port(c, owner_port(v, n, slot));
}

int rxt_cluster_id(rxt_server *s, char *id, size_t len) {
  const char *argv[] = {"CLUSTER", "MYID", NULL};
  char *t = cmd_text(s, argv);
  if (t == NULL) return -1;
  snprintf(id, len, "%s", t);
  free(t);
  return 0;
}

int rxt_cluster_is_master(rxt_server *s) {
  vnode v[RXT_CLUSTER_VIEW_MAX];
  int n = view_of(s, v, RXT_CLUSTER_VIEW_MAX);
  for (int i = 0; i < n; i++)
    if (v[i].myself) return v[i].master;
  return 0;
}

rxt_server *rxt_cluster_replica_of(rxt_cluster *c, rxt_server *m) {
  char id[64];
  vnode v[RXT_CLUSTER_VIEW_MAX];
  if (rxt_cluster_id(m, id, sizeof id) != 0) return NULL;
  rxt_server *s = first_running(c);
  int n = s ? view_of(s, v, RXT_CLUSTER_VIEW_MAX) : -1;
  for (int i = 0; i < n; i++) {
    rxt_server *r = by_port(c, v[i].port);
    if (!v[i].master && !strcmp(v[i].master_id, id) && r) return r;
  }
  return NULL;
}

/* Every slot's owner port in s's view; 0 for none. -1 also while s still
 * sees a running node as a master without slots (a replica whose role has
 * not reached s yet). */
static int slot_map(rxt_cluster *c, rxt_server *s, int *map) {
  vnode v[RXT_CLUSTER_VIEW_MAX];
  int n = view_of(s, v, RXT_CLUSTER_VIEW_MAX);
  if (n < 0) return -1;
  memset(map, 0, 16384 * sizeof *map);
  for (int i = 0; i < n; i++)
    if (v[i].master && !v[i].range_count && !v[i].fail && by_port(c, v[i].port)) return -1;
  for (int i = 0; i < n; i++) {
    if (!v[i].master || v[i].fail) continue;
    for (int r = 0; r < v[i].range_count; r++)
      for (int k = v[i].ranges[r * 2]; k <= v[i].ranges[r * 2 + 1] && k < 16384; k++)
        map[k] = v[i].port;
  }
  return 0;
}

static int state_ok(rxt_server *s) {
  const char *argv[] = {"CLUSTER", "INFO", NULL};
  char *t = cmd_text(s, argv);
  int ok = t && strstr(t, "cluster_state:ok") != NULL;
  free(t);
  return ok;
}

int rxt_cluster_wait_ok(rxt_cluster *c, int timeout_ms) {
  long long deadline = rxt_ms() + timeout_ms;
  static int ref[16384], map[16384];
  for (;;) {
    int good = 1, have_ref = 0;
    for (int i = 0; i < c->count && good; i++) {
      rxt_server *s = &c->node[i];
      if (s->pid <= 0) continue;
      if (!state_ok(s) || slot_map(c, s, have_ref ? map : ref) != 0) {
        good = 0;
        break;
      }
      if (!have_ref) {
        have_ref = 1;
        for (int k = 0; k < 16384 && good; k++)
          if (ref[k] == 0 || by_port(c, ref[k]) == NULL) good = 0;
      } else if (memcmp(ref, map, sizeof map) != 0) {
        good = 0;
      }
    }
    if (good && have_ref) return 0;
    if (rxt_ms() > deadline) {
      fprintf(stderr, "rxt: the cluster did not become ok and consistent within %d ms\n",
              timeout_ms);
      return -1;
    }
    rxt_sleep_ms(50);
  }
}

/* 1 when every running replica reports master_link_status:up. */
static int replicas_linked(rxt_cluster *c) {
  const char *argv[] = {"INFO", "replication", NULL};
  for (int i = 0; i < c->count; i++) {
    if (c->node[i].pid <= 0) continue;
    char *t = cmd_text(&c->node[i], argv);
    int ok = t && (strstr(t, "role:master") || strstr(t, "master_link_status:up"));
    free(t);
    if (!ok) return 0;
  }
  return 1;
}

/* ------------------------------------------------------------ start */

/* Runs redis-cli with argv (argv[0] is ignored) and waits up to timeout_ms;
 * its output goes to log. 0 when it exits with status 0. */
static int run_cli(const char *const *argv, const char *log, int timeout_ms) {
  const char *bin = getenv("RX_REDIS_CLI");
  pid_t parent = getpid();
  int status = 0;
  long long deadline = rxt_ms() + timeout_ms;
  if (bin == NULL || bin[0] == '\0') bin = "redis-cli";
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    fd = open("/dev/null", O_RDONLY);
    if (fd >= 0) {
      dup2(fd, 0);
      close(fd);
    }
    execvp(bin, (char *const *)argv);
    _exit(127);
  }
  for (;;) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) return -1;
    if (rxt_ms() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      fprintf(stderr, "rxt: redis-cli did not finish within %d ms\n", timeout_ms);
      return -1;
    }
    rxt_sleep_ms(20);
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void print_file(const char *path) {
  FILE *f = fopen(path, "r");
  char line[512];
  if (f == NULL) return;
  fprintf(stderr, "---- %s ----\n", path);
  while (fgets(line, sizeof line, f)) fputs(line, stderr);
  fclose(f);
}

/* 1 when the server answering on s->port is the process we started. Two
 * tests picking the same free port at once would otherwise let one of them
 * take the other's server for its own (ours failed to bind, theirs answered
 * PING), and one redis-cli --cluster create would then join nodes of two
 * clusters. */
static int is_ours(rxt_server *s) {
  const char *argv[] = {"INFO", "server", NULL};
  char *t = cmd_text(s, argv);
  const char *p = t ? strstr(t, "process_id:") : NULL;
  int ours = p && atoi(p + 11) == s->pid;
  free(t);
  return ours;
}

int rxt_cluster_start(rxt_cluster *c, int masters, int replicas) {
  int total = masters * (1 + replicas);
  memset(c, 0, sizeof *c);
  if (total > RXT_CLUSTER_MAX || masters < 3) {
    fprintf(stderr, "rxt: a cluster needs 3..%d nodes\n", RXT_CLUSTER_MAX);
    return -1;
  }
  for (int i = 0; i < total; i++) {
    int started = -1;
    for (int attempt = 0; attempt < 3 && started != 0; attempt++) {
      char cport[16];
      int p = rxt_free_port();
      if (p < 0) continue;
      snprintf(cport, sizeof cport, "%d", p);
      const char *args[] = {"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                            "--cluster-node-timeout", "2000", "--cluster-port", cport,
                            "--appendonly", "no",
                            /* Replicas sync at once, not after the 5 s
                             * wait for more replicas. */
                            "--repl-diskless-sync-delay", "0", NULL};
      started = rxt_server_start(&c->node[i], args);
      if (started == 0 && !is_ours(&c->node[i])) {
        fprintf(stderr, "rxt: port %d answered, but not from our redis-server (pid %d): retrying\n",
                c->node[i].port, c->node[i].pid);
        started = -1;
      }
      if (started != 0) rxt_server_cleanup(&c->node[i]);
    }
    if (started != 0) {
      c->count = i;
      rxt_cluster_cleanup(c);
      return -1;
    }
    c->count = i + 1;
  }
  {
    const char *argv[RXT_CLUSTER_MAX + 8];
    char addr[RXT_CLUSTER_MAX][32], reps[8], log[700];
    int n = 0;
    argv[n++] = "redis-cli";
    argv[n++] = "--cluster";
    argv[n++] = "create";
    for (int i = 0; i < total; i++) {
      snprintf(addr[i], sizeof addr[i], "127.0.0.1:%d", c->node[i].port);
      argv[n++] = addr[i];
    }
    snprintf(reps, sizeof reps, "%d", replicas);
    argv[n++] = "--cluster-replicas";
    argv[n++] = reps;
    argv[n++] = "--cluster-yes";
    argv[n] = NULL;
    snprintf(log, sizeof log, "%s/cluster-create.log", c->node[0].dir);
    if (run_cli(argv, log, 30000) != 0) {
      fprintf(stderr, "rxt: redis-cli --cluster create failed\n");
      print_file(log);
      rxt_cluster_cleanup(c);
      return -1;
    }
  }
  if (rxt_cluster_wait_ok(c, 30000) != 0) {
    rxt_cluster_cleanup(c);
    return -1;
  }
  {
    long long deadline = rxt_ms() + 20000;
    while (!replicas_linked(c)) {
      if (rxt_ms() > deadline) {
        fprintf(stderr, "rxt: the replicas did not sync within 20 s\n");
        rxt_cluster_cleanup(c);
        return -1;
      }
      rxt_sleep_ms(50);
    }
  }
  {
    size_t off = (size_t)snprintf(c->url, sizeof c->url, "redis://");
    for (int i = 0; i < c->count && off < sizeof c->url; i++)
      off += (size_t)snprintf(c->url + off, sizeof c->url - off, "%s127.0.0.1:%d", i ? "," : "",
                              c->node[i].port);
  }
  return 0;
}

void rxt_cluster_cleanup(rxt_cluster *c) {
  for (int i = 0; i < c->count; i++) rxt_server_cleanup(&c->node[i]);
  c->count = 0;
}

/* ------------------------------------------------------------ failover */

rxt_server *rxt_cluster_failover(rxt_cluster *c, rxt_server *m, int timeout_ms) {
  vnode v[RXT_CLUSTER_VIEW_MAX];
  int n = view_of(m, v, RXT_CLUSTER_VIEW_MAX), slot = -1;
  rxt_server *r = rxt_cluster_replica_of(c, m);
  long long deadline = rxt_ms() + timeout_ms;
  for (int i = 0; i < n; i++)
    if (v[i].myself && v[i].range_count) slot = v[i].ranges[0];
  if (r == NULL || slot < 0) {
    fprintf(stderr, "rxt: failover: port %d is not a master with a replica\n", m->port);
    return NULL;
  }
  rxt_server_kill(m);
  {
    const char *argv[] = {"CLUSTER", "FAILOVER", "TAKEOVER", NULL};
    if (!cmd_ok(r, argv)) return NULL;
  }
  for (;;) {
    int everywhere = 1;
    for (int i = 0; i < c->count && everywhere; i++) {
      if (c->node[i].pid <= 0) continue;
      int k = view_of(&c->node[i], v, RXT_CLUSTER_VIEW_MAX);
      everywhere = k > 0 && owner_port(v, k, slot) == r->port;
    }
    if (everywhere) break;
    if (rxt_ms() > deadline) {
      fprintf(stderr, "rxt: failover: port %d was not promoted everywhere in time\n", r->port);
      return NULL;
    }
    rxt_sleep_ms(20);
  }
  return rxt_cluster_wait_ok(c, (int)(deadline - rxt_ms() > 1000 ? deadline - rxt_ms() : 1000)) == 0
             ? r
             : NULL;
}

/* ------------------------------------------------------------ resharding */

int rxt_cluster_migrate_begin(rxt_cluster *c, int slot, rxt_server *from, rxt_server *to) {
  char sl[16], from_id[64], to_id[64];
  (void)c;
  snprintf(sl, sizeof sl, "%d", slot);
  if (rxt_cluster_id(from, from_id, sizeof from_id) || rxt_cluster_id(to, to_id, sizeof to_id))
    return -1;
  const char *imp[] = {"CLUSTER", "SETSLOT", sl, "IMPORTING", from_id, NULL};
  const char *mig[] = {"CLUSTER", "SETSLOT", sl, "MIGRATING", to_id, NULL};
  return cmd_ok(to, imp) && cmd_ok(from, mig) ? 0 : -1;
}

int rxt_cluster_migrate_keys(rxt_cluster *c, int slot, rxt_server *from, rxt_server *to) {
  char sl[16], port[16];
  (void)c;
  snprintf(sl, sizeof sl, "%d", slot);
  snprintf(port, sizeof port, "%d", to->port);
  for (int round = 0; round < 1000; round++) {
    const char *get[] = {"CLUSTER", "GETKEYSINSLOT", sl, "100"};
    size_t len = 0;
    char *raw = rxt_cmd_ex(from, NULL, NULL, 4, get, NULL, &len);
    const char *items[100];
    size_t lens[100];
    if (raw == NULL) return -1;
    int k = raw[0] == '*' ? rxt_resp_flat(raw, len, items, lens, 100) : -1;
    if (k <= 0) {
      if (k < 0) fprintf(stderr, "rxt: CLUSTER GETKEYSINSLOT failed: %s", raw);
      free(raw);
      return k < 0 ? -1 : 0;
    }
    const char *argv[8 + 100];
    size_t argl[8 + 100];
    int n = 0;
    const char *fixed[] = {"MIGRATE", "127.0.0.1", port, "", "0", "5000", "KEYS"};
    for (int i = 0; i < 7; i++) {
      argv[n] = fixed[i];
      argl[n++] = strlen(fixed[i]);
    }
    for (int i = 0; i < k && i < 100; i++) {
      argv[n] = items[i];
      argl[n++] = lens[i];
    }
    char *r = rxt_cmd_ex(from, NULL, NULL, n, argv, argl, NULL);
    int ok = r && strncmp(r, "+OK", 3) == 0;
    if (!ok) fprintf(stderr, "rxt: MIGRATE failed: %s", r ? r : "(no reply)\n");
    free(r);
    free(raw);
    if (!ok) return -1;
  }
  return -1;
}

int rxt_cluster_migrate_end(rxt_cluster *c, int slot, rxt_server *from, rxt_server *to) {
  char sl[16], to_id[64];
  snprintf(sl, sizeof sl, "%d", slot);
  if (rxt_cluster_id(to, to_id, sizeof to_id)) return -1;
  const char *argv[] = {"CLUSTER", "SETSLOT", sl, "NODE", to_id, NULL};
  /* The target first, so that the slot is never without an owner. */
  if (!cmd_ok(to, argv) || !cmd_ok(from, argv)) return -1;
  for (int i = 0; i < c->count; i++) {
    rxt_server *s = &c->node[i];
    if (s == to || s == from || s->pid <= 0 || !rxt_cluster_is_master(s)) continue;
    if (!cmd_ok(s, argv)) return -1;
  }
  long long deadline = rxt_ms() + 10000;
  for (;;) {
    int everywhere = 1;
    for (int i = 0; i < c->count && everywhere; i++) {
      vnode v[RXT_CLUSTER_VIEW_MAX];
      if (c->node[i].pid <= 0) continue;
      int k = view_of(&c->node[i], v, RXT_CLUSTER_VIEW_MAX);
      everywhere = k > 0 && owner_port(v, k, slot) == to->port;
    }
    if (everywhere) return rxt_cluster_wait_ok(c, 10000);
    if (rxt_ms() > deadline) {
      fprintf(stderr, "rxt: slot %d did not move to port %d everywhere\n", slot, to->port);
      return -1;
    }
    rxt_sleep_ms(20);
  }
}
