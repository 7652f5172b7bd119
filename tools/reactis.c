/* reactis — the command-line tool: schedule and inspect delayed queues,
 * handle dead letters, watch deliveries and keyspace events.
 *
 * Output is for humans by default and JSON (one object per line) with
 * --json. Exit codes scripts can rely on:
 *   0  done
 *   1  nothing to do: the message was not waiting, the dead letter was not
 *      found, or schedule kept an existing message with the same id
 *   2  usage error (unknown command or option, bad value)
 *   3  connection or server error (trying again later may help)
 *   4  refused: payload too big, a key of the wrong type, ... (trying again
 *      will not help)
 * The server comes from --url, else $REDIS_URL, else redis://127.0.0.1:6379.
 */
#include <reactis/queue.h>
#include <reactis/reactis.h>

#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { EX_OK = 0, EX_NO = 1, EX_USAGE = 2, EX_SERVER = 3, EX_REFUSED = 4 };

static const char *g_url;
static int g_json;
static volatile sig_atomic_t g_stop;

/* ---------------------------------------------------------------- help */

static const char usage_main[] =
    "usage: reactis [--url URL] [--json] COMMAND [ARGS]\n"
    "\n"
    "Commands:\n"
    "  schedule QUEUE PAYLOAD   schedule a message (PAYLOAD '-' reads stdin)\n"
    "  cancel QUEUE ID          remove a waiting message\n"
    "  reschedule QUEUE ID      move a waiting message (--delay or --at)\n"
    "  run-now QUEUE ID         make a waiting message due now\n"
    "  stats [QUEUE]            counters of one queue, or of every queue found\n"
    "  tail QUEUE               print deliveries as they happen (consumes nothing)\n"
    "  dead list|requeue|purge QUEUE   the dead letters\n"
    "  events                   print parsed keyspace notifications\n"
    "\n"
    "Options for every command:\n"
    "  --url URL   the server (default: $REDIS_URL, else redis://127.0.0.1:6379)\n"
    "  --json      one JSON object per line instead of text\n"
    "  --help      help for the command\n"
    "\n"
    "Exit codes: 0 done, 1 nothing to do (not waiting, not found, duplicate\n"
    "kept), 2 usage error, 3 connection or server error, 4 refused (too big,\n"
    "wrong key type).\n";

static const char usage_schedule[] =
    "usage: reactis schedule QUEUE PAYLOAD [--id ID] [--delay D | --at MS] [--replace]\n"
    "  PAYLOAD     the message bytes; '-' reads them from standard input\n"
    "  --id ID     message id (default: a generated one, printed)\n"
    "  --delay D   due after D: 500ms, 10s, 15m, 2h, 3d, or plain ms (default 0)\n"
    "  --at MS     due at this epoch time in milliseconds\n"
    "  --replace   if ID is waiting, replace its payload and due time\n"
    "                (default: keep the waiting one and exit 1)\n";
static const char usage_cancel[] = "usage: reactis cancel QUEUE ID\n"
                                   "  exits 1 when the message was not waiting\n";
static const char usage_reschedule[] =
    "usage: reactis reschedule QUEUE ID (--delay D | --at MS)\n"
    "  exits 1 when the message was not waiting\n";
static const char usage_run_now[] = "usage: reactis run-now QUEUE ID\n"
                                    "  exits 1 when the message was not waiting\n";
static const char usage_stats[] =
    "usage: reactis stats [QUEUE]\n"
    "  without QUEUE: every queue found on the server (SCAN for rx:{*}:* keys)\n";
static const char usage_tail[] =
    "usage: reactis tail QUEUE [--count N] [--timeout MS]\n"
    "  prints each delivery as a consumer receives it; takes nothing away\n"
    "  --count N     stop after N deliveries\n"
    "  --timeout MS  stop after MS without a delivery\n";
static const char usage_dead[] =
    "usage: reactis dead list QUEUE [--after TOKEN] [--count N]\n"
    "       reactis dead requeue QUEUE (TOKEN | --all) [--delay D]\n"
    "       reactis dead purge QUEUE (TOKEN | --all)\n"
    "  list prints the oldest first (default count 100); requeue puts dead\n"
    "  letters back on the schedule with fresh attempts; purge deletes them.\n"
    "  Exits 1 when TOKEN is not found.\n";
static const char usage_events[] =
    "usage: reactis events [--pattern P]... [--channel C]... [--enable FLAGS]\n"
    "                      [--count N] [--timeout MS]\n"
    "  subscribes (default pattern __key*__:*) and prints each notification\n"
    "  parsed: space, db, event, key. --enable makes sure notify-keyspace-events\n"
    "  holds FLAGS (e.g. KEA) first; it needs CONFIG (see the README).\n";

static int usage_error(const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int usage_error(const char *usage, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "reactis: ");
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n%s", usage);
  return EX_USAGE;
}

/* ---------------------------------------------------------------- output */

static int utf8_valid(const unsigned char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned c = s[i];
    size_t k;
    if (c < 0x80) continue;
    if (c >= 0xC2 && c <= 0xDF) k = 1;
    else if (c >= 0xE0 && c <= 0xEF) k = 2;
    else if (c >= 0xF0 && c <= 0xF4) k = 3;
    else return 0;
    if (k > n - i - 1) return 0;
    for (size_t j = 1; j <= k; j++)
      if ((s[i + j] & 0xC0) != 0x80) return 0;
    i += k;
  }
  return 1;
}

static void json_str(const char *s, size_t n) {
  putchar('"');
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      putchar('\\');
      putchar(c);
    } else if (c == '\n') {
      fputs("\\n", stdout);
    } else if (c == '\r') {
      fputs("\\r", stdout);
    } else if (c == '\t') {
      fputs("\\t", stdout);
    } else if (c < 0x20 || c == 0x7f) {
      printf("\\u%04x", c);
    } else {
      putchar(c);
    }
  }
  putchar('"');
}

static void base64(const unsigned char *s, size_t n) {
  static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  putchar('"');
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0) |
                 (i + 2 < n ? s[i + 2] : 0);
    putchar(t[v >> 18 & 63]);
    putchar(t[v >> 12 & 63]);
    putchar(i + 1 < n ? t[v >> 6 & 63] : '=');
    putchar(i + 2 < n ? t[v & 63] : '=');
  }
  putchar('"');
}

/* "payload": "..." for UTF-8 text, else "payload_base64": "...". */
static void json_bytes(const char *key, const char *s, size_t n) {
  if (utf8_valid((const unsigned char *)s, n)) {
    printf("\"%s\":", key);
    json_str(s, n);
  } else {
    printf("\"%s_base64\":", key);
    base64((const unsigned char *)s, n);
  }
}

/* Text output of bytes: printable ASCII and UTF-8 as is, others as \xNN. */
static void text_bytes(const char *s, size_t n) {
  int ok = utf8_valid((const unsigned char *)s, n);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c >= 0x20 && c != 0x7f && (c < 0x80 || ok)) || c == '\t')
      putchar(c);
    else
      printf("\\x%02x", c);
  }
}

static void iso_time(long long ms, char *buf, size_t len) {
  if (ms <= 0) {
    snprintf(buf, len, "-");
    return;
  }
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  size_t k = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + k, len - k, ".%03lldZ", ms % 1000);
}

/* Maps a status to an exit code and prints the error. */
static int fail_status(int rc, const char *msg) {
  if (g_json) {
    printf("{\"error\":\"%s\",\"message\":", rx_errname(rc));
    json_str(msg, strlen(msg));
    printf("}\n");
  }
  fprintf(stderr, "reactis: %s\n", msg && *msg ? msg : rx_strerror(rc));
  switch (rc) {
  case RX_ETOOBIG:
  case RX_EWRONGTYPE:
  case RX_EINVAL:
  case RX_ENOPERM:
  case RX_EURL:
  case RX_EAUTH:
    return EX_REFUSED;
  default:
    return EX_SERVER;
  }
}

/* ---------------------------------------------------------------- args */

typedef struct args {
  int argc;
  char **argv;
  int i;
} args;

/* Parses a duration: 500ms, 10s, 15m, 2h, 3d, or plain ms. */
static int parse_duration(const char *s, long long *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || v < -1e15 || v > 1e15) return -1;
  double mul = 1;
  if (!*end || !strcmp(end, "ms")) mul = 1;
  else if (!strcmp(end, "s")) mul = 1000;
  else if (!strcmp(end, "m")) mul = 60000;
  else if (!strcmp(end, "h")) mul = 3600000;
  else if (!strcmp(end, "d")) mul = 86400000;
  else return -1;
  *out = (long long)(v * mul);
  return 0;
}

static int parse_count(const char *s, long long *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *end || end == s || v < 0) return -1;
  *out = v;
  return 0;
}

static rx_queue *open_queue(const char *name, int *ex) {
  char err[300];
  rx_queue *q = rx_queue_new(g_url, name, err, sizeof err);
  if (!q) {
    *ex = fail_status(RX_EINVAL, err);
    return NULL;
  }
  return q;
}

static int queue_fail(rx_queue *q, int rc) {
  int ex = fail_status(rc, rx_queue_errstr(q));
  rx_queue_free(q);
  return ex;
}

static void print_warning(rx_queue *q) {
  if (*rx_queue_warning(q)) fprintf(stderr, "reactis: warning: %s\n", rx_queue_warning(q));
}

static int is_help(const char *a) { return !strcmp(a, "--help") || !strcmp(a, "-h"); }

/* ---------------------------------------------------------------- schedule */

static char *read_stdin(size_t *len) {
  size_t cap = 65536, n = 0;
  char *b = malloc(cap);
  if (!b) return NULL;
  for (;;) {
    if (n == cap) {
      char *nb = realloc(b, cap *= 2);
      if (!nb) {
        free(b);
        return NULL;
      }
      b = nb;
    }
    size_t r = fread(b + n, 1, cap - n, stdin);
    n += r;
    if (r == 0) break;
  }
  *len = n;
  return b;
}

static int cmd_schedule(int argc, char **argv) {
  const char *pos[2] = {NULL, NULL};
  int npos = 0, flags = 0;
  const char *id = NULL;
  long long when = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (is_help(a)) {
      fputs(usage_schedule, stdout);
      return EX_OK;
    } else if (!strcmp(a, "--id") && i + 1 < argc) {
      id = argv[++i];
    } else if (!strcmp(a, "--delay") && i + 1 < argc) {
      if (parse_duration(argv[++i], &when))
        return usage_error(usage_schedule, "bad duration '%s'", argv[i]);
      flags &= ~RX_SCHED_AT;
    } else if (!strcmp(a, "--at") && i + 1 < argc) {
      if (parse_count(argv[++i], &when))
        return usage_error(usage_schedule, "bad epoch ms '%s'", argv[i]);
      flags |= RX_SCHED_AT;
    } else if (!strcmp(a, "--replace")) {
      flags |= RX_SCHED_REPLACE;
    } else if (a[0] == '-' && a[1] == '-') {
      return usage_error(usage_schedule, "unknown option or missing value: %s", a);
    } else if (npos < 2) {
      pos[npos++] = a;
    } else {
      return usage_error(usage_schedule, "unexpected argument '%s'", a);
    }
  }
  if (npos != 2) return usage_error(usage_schedule, "%s", "QUEUE and PAYLOAD are needed");
  int ex = 0;
  rx_queue *q = open_queue(pos[0], &ex);
  if (!q) return ex;
  size_t plen = strlen(pos[1]);
  char *payload = NULL;
  if (!strcmp(pos[1], "-")) {
    payload = read_stdin(&plen);
    if (!payload) {
      rx_queue_free(q);
      return fail_status(RX_ENOMEM, "cannot read standard input");
    }
  }
  char out[RX_QUEUE_ID_MAX + 1];
  int outcome = 0;
  long long due = 0;
  int rc = rx_queue_schedule(q, id, id ? strlen(id) : 0, payload ? payload : pos[1], plen, when,
                             flags, out, sizeof out, &outcome, &due);
  free(payload);
  if (rc != RX_OK) return queue_fail(q, rc);
  print_warning(q);
  static const char *const names[] = {"added", "exists", "replaced"};
  const char *what = outcome >= 0 && outcome <= 2 ? names[outcome] : "unknown";
  char ts[40];
  iso_time(due, ts, sizeof ts);
  if (g_json) {
    printf("{\"queue\":");
    json_str(pos[0], strlen(pos[0]));
    printf(",\"id\":");
    json_str(out, strlen(out));
    printf(",\"outcome\":\"%s\",\"due_ms\":%lld}\n", what, due);
  } else if (outcome == RX_SCHED_EXISTS) {
    printf("%s: already waiting, kept (due %s); --replace replaces it\n", out, ts);
  } else {
    printf("%s %s, due %s\n", out, what, ts);
  }
  rx_queue_free(q);
  return outcome == RX_SCHED_EXISTS ? EX_NO : EX_OK;
}

/* ---------------------------------------------------------------- manage */

static int cmd_manage(const char *cmd, const char *usage, int argc, char **argv) {
  const char *pos[2] = {NULL, NULL};
  int npos = 0, flags = 0, have_when = 0;
  long long when = 0;
  int resched = !strcmp(cmd, "reschedule");
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (is_help(a)) {
      fputs(usage, stdout);
      return EX_OK;
    } else if (resched && !strcmp(a, "--delay") && i + 1 < argc) {
      if (parse_duration(argv[++i], &when)) return usage_error(usage, "bad duration '%s'", argv[i]);
      flags = 0;
      have_when = 1;
    } else if (resched && !strcmp(a, "--at") && i + 1 < argc) {
      if (parse_count(argv[++i], &when)) return usage_error(usage, "bad epoch ms '%s'", argv[i]);
      flags = RX_SCHED_AT;
      have_when = 1;
    } else if (a[0] == '-' && a[1] == '-') {
      return usage_error(usage, "unknown option or missing value: %s", a);
    } else if (npos < 2) {
      pos[npos++] = a;
    } else {
      return usage_error(usage, "unexpected argument '%s'", a);
    }
  }
  if (npos != 2) return usage_error(usage, "%s", "QUEUE and ID are needed");
  if (resched && !have_when) return usage_error(usage, "%s", "--delay or --at is needed");
  int ex = 0;
  rx_queue *q = open_queue(pos[0], &ex);
  if (!q) return ex;
  int rc;
  if (!strcmp(cmd, "cancel"))
    rc = rx_queue_cancel(q, pos[1], strlen(pos[1]));
  else if (resched)
    rc = rx_queue_reschedule(q, pos[1], strlen(pos[1]), when, flags);
  else
    rc = rx_queue_run_now(q, pos[1], strlen(pos[1]));
  if (rc < 0) return queue_fail(q, rc);
  print_warning(q);
  int waiting = rc == RX_OK;
  if (g_json) {
    printf("{\"queue\":");
    json_str(pos[0], strlen(pos[0]));
    printf(",\"id\":");
    json_str(pos[1], strlen(pos[1]));
    printf(",\"was_waiting\":%s}\n", waiting ? "true" : "false");
  } else if (waiting) {
    printf("%s: %s\n", pos[1],
           !strcmp(cmd, "cancel") ? "cancelled" : resched ? "rescheduled" : "due now");
  } else {
    printf("%s: not waiting (unknown, delivered already, or dead)\n", pos[1]);
  }
  rx_queue_free(q);
  return waiting ? EX_OK : EX_NO;
}

/* ---------------------------------------------------------------- stats */

static int print_stats(const char *name, int *ex) {
  rx_queue *q = open_queue(name, ex);
  if (!q) return -1;
  rx_queue_stats st;
  int rc = rx_queue_stats_get(q, &st);
  if (rc != RX_OK) {
    *ex = queue_fail(q, rc);
    return -1;
  }
  print_warning(q);
  if (g_json) {
    printf("{\"queue\":");
    json_str(name, strlen(name));
    printf(",\"scheduled\":%lld,\"ready\":%lld,\"in_flight\":%lld,\"dead\":%lld,"
           "\"lag_ms\":%lld,\"consumers\":%lld,\"next_due_ms\":%lld,\"now_ms\":%lld,"
           "\"acked\":%lld,\"failures\":%lld,\"crashes\":%lld,\"dead_total\":%lld}\n",
           st.scheduled, st.ready, st.in_flight, st.dead, st.lag_ms, st.consumers,
           st.next_due_ms, st.now_ms, st.acked, st.failures, st.crashes, st.dead_total);
  } else {
    char ts[40];
    iso_time(st.next_due_ms, ts, sizeof ts);
    printf("%s\n  scheduled %lld  ready %lld  in flight %lld  dead %lld\n"
           "  lag %lld ms  consumers %lld  next due %s\n"
           "  acked %lld  failures %lld  crashes %lld  dead total %lld\n",
           name, st.scheduled, st.ready, st.in_flight, st.dead, st.lag_ms, st.consumers, ts,
           st.acked, st.failures, st.crashes, st.dead_total);
  }
  rx_queue_free(q);
  return 0;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every queue name on the server: SCAN for rx:{NAME}:<one letter>. */
static int list_queues(char ***out, size_t *n, int *ex) {
  char err[300];
  rx_conn *c = rx_conn_new(g_url, err, sizeof err);
  if (!c) {
    *ex = fail_status(RX_EINVAL, err);
    return -1;
  }
  char cursor[32] = "0";
  char **names = NULL;
  size_t cnt = 0, cap = 0;
  do {
    const char *a[6] = {"SCAN", cursor, "MATCH", "rx:{*}:?", "COUNT", "1000"};
    rx_reply *r = NULL;
    int rc = rx_conn_call(c, &r, 6, a, NULL);
    if (rc != RX_OK) {
      *ex = fail_status(rc, rx_conn_errstr(c));
      rx_conn_free(c);
      return -1;
    }
    if (r->type != RX_REPLY_ARRAY || r->elements != 2) {
      rx_reply_free(r);
      break;
    }
    snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
    const rx_reply *keys = r->element[1];
    for (size_t i = 0; i < keys->elements; i++) {
      const char *k = keys->element[i]->str;
      size_t kl = keys->element[i]->len;
      if (kl < 8 || memcmp(k, "rx:{", 4) || k[kl - 2] != ':' || k[kl - 3] != '}') continue;
      size_t nl = kl - 7;
      int dup = 0;
      for (size_t j = 0; j < cnt && !dup; j++)
        dup = strlen(names[j]) == nl && !memcmp(names[j], k + 4, nl);
      if (dup) continue;
      if (cnt == cap) {
        cap = cap ? cap * 2 : 16;
        names = realloc(names, cap * sizeof *names);
        if (!names) exit(EX_SERVER);
      }
      names[cnt] = malloc(nl + 1);
      if (!names[cnt]) exit(EX_SERVER);
      memcpy(names[cnt], k + 4, nl);
      names[cnt++][nl] = '\0';
    }
    rx_reply_free(r);
  } while (strcmp(cursor, "0"));
  rx_conn_free(c);
  if (cnt) qsort(names, cnt, sizeof *names, cmp_str);
  *out = names;
  *n = cnt;
  return 0;
}

static int cmd_stats(int argc, char **argv) {
  const char *name = NULL;
  for (int i = 0; i < argc; i++) {
    if (is_help(argv[i])) {
      fputs(usage_stats, stdout);
      return EX_OK;
    } else if (argv[i][0] == '-' && argv[i][1] == '-') {
      return usage_error(usage_stats, "unknown option %s", argv[i]);
    } else if (!name) {
      name = argv[i];
    } else {
      return usage_error(usage_stats, "unexpected argument '%s'", argv[i]);
    }
  }
  int ex = EX_OK;
  if (name) return print_stats(name, &ex) ? ex : EX_OK;
  char **names = NULL;
  size_t n = 0;
  if (list_queues(&names, &n, &ex)) return ex;
  if (!n && !g_json) printf("no queues found\n");
  for (size_t i = 0; i < n; i++) {
    /* A queue that cannot be read is reported; the others still print, and
     * the exit code is the first failure's. */
    int one = EX_OK;
    if (print_stats(names[i], &one) && ex == EX_OK) ex = one;
    free(names[i]);
  }
  free(names);
  return ex;
}

/* ---------------------------------------------------------------- tail */

static void print_entry(const char *queue, const rx_reply *e, int dead) {
  const rx_reply *kv = e->element[1];
  const char *vals[11] = {0};
  size_t lens[11] = {0};
  static const char *const names[11] = {"id",  "payload", "due",      "enq", "attempt", "fail",
                                        "crash", "err",   "attempts", "at",  "meta"};
  for (size_t i = 0; kv->type == RX_REPLY_ARRAY && i + 1 < kv->elements; i += 2)
    for (int k = 0; k < 11; k++)
      if (!strcmp(kv->element[i]->str, names[k])) {
        vals[k] = kv->element[i + 1]->str;
        lens[k] = kv->element[i + 1]->len;
      }
  for (int k = 0; k < 11; k++)
    if (!vals[k]) vals[k] = "";
  long long due = atoll(vals[2]), enq = atoll(vals[3]);
  int attempt = atoi(dead ? vals[8] : vals[4]);
  char fail_s[16] = "0", crash_s[16] = "0";
  if (!dead) {
    /* A delivery's meta field: "due enq attempt fail crash". */
    int f = 0, c = 0;
    if (sscanf(vals[10], "%lld %lld %d %d %d", &due, &enq, &attempt, &f, &c) == 5) {
      snprintf(fail_s, sizeof fail_s, "%d", f);
      snprintf(crash_s, sizeof crash_s, "%d", c);
    }
    vals[5] = fail_s;
    vals[6] = crash_s;
  }
  if (g_json) {
    printf("{\"queue\":");
    json_str(queue, strlen(queue));
    printf(",\"token\":\"%s\",\"id\":", e->element[0]->str);
    json_str(vals[0], lens[0]);
    putchar(',');
    json_bytes("payload", vals[1], lens[1]);
    printf(",\"due_ms\":%lld,\"enqueued_ms\":%lld,\"%s\":%d,\"failures\":%s,\"crashes\":%s,"
           "\"error\":",
           due, enq, dead ? "attempts" : "attempt", attempt, *vals[5] ? vals[5] : "0",
           *vals[6] ? vals[6] : "0");
    json_str(vals[7], lens[7]);
    if (dead) printf(",\"dead_ms\":%lld", atoll(vals[9]));
    printf("}\n");
  } else {
    char ts[40], ts2[40];
    iso_time(due, ts, sizeof ts);
    iso_time(dead ? atoll(vals[9]) : enq, ts2, sizeof ts2);
    printf("%s  %s  id=", e->element[0]->str, dead ? ts2 : ts);
    text_bytes(vals[0], lens[0]);
    printf("  %s=%d", dead ? "attempts" : "attempt", attempt);
    if (lens[7]) {
      printf("  error=");
      text_bytes(vals[7], lens[7]);
    }
    printf("\n  ");
    text_bytes(vals[1], lens[1]);
    printf("\n");
  }
}

static void on_signal(int sig) {
  (void)sig;
  g_stop = 1;
}

static int cmd_tail(int argc, char **argv) {
  const char *name = NULL;
  long long count = 0, timeout = -1;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (is_help(a)) {
      fputs(usage_tail, stdout);
      return EX_OK;
    } else if (!strcmp(a, "--count") && i + 1 < argc) {
      if (parse_count(argv[++i], &count)) return usage_error(usage_tail, "bad count '%s'", argv[i]);
    } else if (!strcmp(a, "--timeout") && i + 1 < argc) {
      if (parse_count(argv[++i], &timeout))
        return usage_error(usage_tail, "bad timeout '%s'", argv[i]);
    } else if (a[0] == '-' && a[1] == '-') {
      return usage_error(usage_tail, "unknown option or missing value: %s", a);
    } else if (!name) {
      name = a;
    } else {
      return usage_error(usage_tail, "unexpected argument '%s'", a);
    }
  }
  if (!name) return usage_error(usage_tail, "%s", "QUEUE is needed");
  if (strchr(name, '{') || strchr(name, '}'))
    return usage_error(usage_tail, "bad queue name '%s'", name);
  char err[300];
  rx_conn *c = rx_conn_new(g_url, err, sizeof err);
  if (!c) return fail_status(RX_EINVAL, err);
  char key[300], last[64];
  snprintf(key, sizeof key, "rx:{%s}:s", name);
  /* Start after the newest entry, so nothing added between two reads is
   * missed (XREAD with $ would skip it). */
  const char *ra[6] = {"XREVRANGE", key, "+", "-", "COUNT", "1"};
  rx_reply *x = NULL;
  int rc = rx_conn_call(c, &x, 6, ra, NULL);
  if (rc != RX_OK) {
    int ex = fail_status(rc, rx_conn_errstr(c));
    rx_conn_free(c);
    return ex;
  }
  snprintf(last, sizeof last, "%s",
           x->type == RX_REPLY_ARRAY && x->elements == 1 ? x->element[0]->element[0]->str : "0-0");
  rx_reply_free(x);
  long long seen = 0, idle_since = rx_monotonic_ms();
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  /* Every delivery is an entry added to the ready stream right before the
   * consumer group reads it: a plain XREAD sees them all, taking none. */
  while (!g_stop && (!count || seen < count)) {
    long long block = 500;
    if (timeout >= 0) {
      long long left = timeout - (rx_monotonic_ms() - idle_since);
      if (left <= 0) break;
      if (left < block) block = left;
    }
    char bs[24];
    snprintf(bs, sizeof bs, "%lld", block);
    const char *a[8] = {"XREAD", "COUNT", "100", "BLOCK", bs, "STREAMS", key, last};
    rx_reply *r = NULL;
    rc = rx_conn_call(c, &r, 8, a, NULL);
    if (rc == RX_EINTR || rc == RX_WOKEN) break;
    if (rc != RX_OK) {
      int ex = fail_status(rc, rx_conn_errstr(c));
      rx_conn_free(c);
      return ex;
    }
    if (r->type == RX_REPLY_ARRAY && r->elements == 1) {
      const rx_reply *es = r->element[0]->element[1];
      for (size_t i = 0; i < es->elements && (!count || seen < count); i++) {
        print_entry(name, es->element[i], 0);
        snprintf(last, sizeof last, "%s", es->element[i]->element[0]->str);
        seen++;
      }
      fflush(stdout);
      idle_since = rx_monotonic_ms();
    }
    rx_reply_free(r);
  }
  rx_conn_free(c);
  return EX_OK;
}

/* ---------------------------------------------------------------- dead */

static int cmd_dead(int argc, char **argv) {
  if (argc < 1 || is_help(argv[0])) {
    fputs(usage_dead, argc < 1 ? stderr : stdout);
    return argc < 1 ? EX_USAGE : EX_OK;
  }
  const char *sub = argv[0];
  if (strcmp(sub, "list") && strcmp(sub, "requeue") && strcmp(sub, "purge"))
    return usage_error(usage_dead, "unknown dead-letter command '%s'", sub);
  const char *name = NULL, *token = NULL, *after = NULL;
  long long count = 100, delay = 0;
  int all = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (is_help(a)) {
      fputs(usage_dead, stdout);
      return EX_OK;
    } else if (!strcmp(a, "--all")) {
      all = 1;
    } else if (!strcmp(a, "--after") && i + 1 < argc) {
      after = argv[++i];
    } else if (!strcmp(a, "--count") && i + 1 < argc) {
      if (parse_count(argv[++i], &count) || count < 1 || count > 1000)
        return usage_error(usage_dead, "bad count '%s' (1..1000)", argv[i]);
    } else if (!strcmp(a, "--delay") && i + 1 < argc) {
      if (parse_duration(argv[++i], &delay)) return usage_error(usage_dead, "bad duration '%s'", argv[i]);
    } else if (a[0] == '-' && a[1] == '-') {
      return usage_error(usage_dead, "unknown option or missing value: %s", a);
    } else if (!name) {
      name = a;
    } else if (!token) {
      token = a;
    } else {
      return usage_error(usage_dead, "unexpected argument '%s'", a);
    }
  }
  if (!name) return usage_error(usage_dead, "%s", "QUEUE is needed");
  int listing = !strcmp(sub, "list");
  if (!listing && !token == !all)
    return usage_error(usage_dead, "%s: give a TOKEN or --all", sub);
  int ex = 0;
  rx_queue *q = open_queue(name, &ex);
  if (!q) return ex;
  int rc;
  if (listing) {
    /* The library lists up to 1000 at a time; page through for more. */
    size_t n = 0;
    rc = rx_queue_dead_list(q, after, (size_t)count, &n);
    if (rc != RX_OK) return queue_fail(q, rc);
    print_warning(q);
    for (size_t i = 0; i < n; i++) {
      const rx_job *d = rx_queue_dead(q, i);
      if (g_json) {
        printf("{\"queue\":");
        json_str(name, strlen(name));
        printf(",\"token\":\"%s\",\"id\":", d->token);
        json_str(d->id, d->id_len);
        putchar(',');
        json_bytes("payload", d->payload, d->payload_len);
        printf(",\"attempts\":%d,\"failures\":%d,\"crashes\":%d,\"due_ms\":%lld,"
               "\"enqueued_ms\":%lld,\"dead_ms\":%lld,\"error\":",
               d->attempt, d->failures, d->crashes, d->due_ms, d->enqueued_ms, d->delivered_ms);
        json_str(d->error, d->error_len);
        printf("}\n");
      } else {
        char ts[40];
        iso_time(d->delivered_ms, ts, sizeof ts);
        printf("%s  died %s  id=", d->token, ts);
        text_bytes(d->id, d->id_len);
        printf("  attempts=%d (failures %d, crashes %d)\n  error: ", d->attempt, d->failures,
               d->crashes);
        text_bytes(d->error, d->error_len);
        printf("\n  payload: ");
        text_bytes(d->payload, d->payload_len);
        printf("\n");
      }
    }
    if (!n && !g_json) printf("no dead letters\n");
    rx_queue_free(q);
    return EX_OK;
  }
  size_t cnt = 0;
  if (!strcmp(sub, "requeue"))
    rc = rx_queue_dead_requeue(q, all ? NULL : token, delay, &cnt);
  else
    rc = rx_queue_dead_purge(q, all ? NULL : token, &cnt);
  if (rc < 0) return queue_fail(q, rc);
  print_warning(q);
  if (g_json) {
    printf("{\"queue\":");
    json_str(name, strlen(name));
    printf(",\"%s\":%zu}\n", !strcmp(sub, "requeue") ? "requeued" : "purged", cnt);
  } else if (rc == RX_NOMATCH) {
    printf("%s: no such dead letter\n", token);
  } else {
    printf("%zu dead letter%s %s\n", cnt, cnt == 1 ? "" : "s",
           !strcmp(sub, "requeue") ? "requeued" : "purged");
  }
  rx_queue_free(q);
  return rc == RX_NOMATCH ? EX_NO : EX_OK;
}

/* ---------------------------------------------------------------- events */

static int cmd_events(int argc, char **argv) {
  const char *pats[32], *chans[32], *enable = NULL;
  int np = 0, nc = 0;
  long long count = 0, timeout = -1;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (is_help(a)) {
      fputs(usage_events, stdout);
      return EX_OK;
    } else if (!strcmp(a, "--pattern") && i + 1 < argc && np < 32) {
      pats[np++] = argv[++i];
    } else if (!strcmp(a, "--channel") && i + 1 < argc && nc < 32) {
      chans[nc++] = argv[++i];
    } else if (!strcmp(a, "--enable") && i + 1 < argc) {
      enable = argv[++i];
    } else if (!strcmp(a, "--count") && i + 1 < argc) {
      if (parse_count(argv[++i], &count)) return usage_error(usage_events, "bad count '%s'", argv[i]);
    } else if (!strcmp(a, "--timeout") && i + 1 < argc) {
      if (parse_count(argv[++i], &timeout))
        return usage_error(usage_events, "bad timeout '%s'", argv[i]);
    } else {
      return usage_error(usage_events, "unknown argument or missing value: %s", a);
    }
  }
  if (!np && !nc) pats[np++] = "__key*__:*";
  char err[300];
  if (enable) {
    rx_conn *c = rx_conn_new(g_url, err, sizeof err);
    if (!c) return fail_status(RX_EINVAL, err);
    char eff[64];
    int rc = rx_notify_ensure(c, enable, eff, sizeof eff);
    if (rc != RX_OK) {
      int ex = fail_status(rc, rx_conn_errstr(c));
      rx_conn_free(c);
      return ex;
    }
    if (!g_json) fprintf(stderr, "reactis: notify-keyspace-events is now \"%s\"\n", eff);
    rx_conn_free(c);
  }
  rx_sub *s = rx_sub_new(g_url, err, sizeof err);
  if (!s) return fail_status(RX_EINVAL, err);
  for (int i = 0; i < np; i++) {
    int rc = rx_sub_psubscribe(s, pats[i], strlen(pats[i]));
    if (rc != RX_OK) {
      int ex = fail_status(rc, rx_sub_errstr(s));
      rx_sub_free(s);
      return ex;
    }
  }
  for (int i = 0; i < nc; i++) {
    int rc = rx_sub_subscribe(s, chans[i], strlen(chans[i]));
    if (rc != RX_OK) {
      int ex = fail_status(rc, rx_sub_errstr(s));
      rx_sub_free(s);
      return ex;
    }
  }
  if (!g_json) fprintf(stderr, "reactis: listening (Ctrl-C stops)\n");
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  long long seen = 0, idle_since = rx_monotonic_ms();
  int ex = EX_OK;
  while (!g_stop && (!count || seen < count)) {
    int wait = 500;
    if (timeout >= 0) {
      long long left = timeout - (rx_monotonic_ms() - idle_since);
      if (left <= 0) break;
      if (left < wait) wait = (int)left;
    }
    rx_event ev;
    int rc = rx_sub_next(s, wait, &ev);
    if (rc == RX_TIMEOUT) continue;
    if (rc == RX_EINTR || rc == RX_WOKEN) break;
    if (rc != RX_OK) {
      ex = fail_status(rc, rx_sub_errstr(s));
      break;
    }
    idle_since = rx_monotonic_ms();
    if (ev.kind == RX_EV_GAP) {
      char a[40], b[40];
      iso_time(ev.gap_start_ms, a, sizeof a);
      iso_time(ev.gap_end_ms, b, sizeof b);
      if (g_json)
        printf("{\"gap\":true,\"start_ms\":%lld,\"end_ms\":%lld,\"reconnects\":%d}\n",
               ev.gap_start_ms, ev.gap_end_ms, ev.reconnects);
      else
        printf("-- reconnected: events between %s and %s may be missing\n", a, b);
      fflush(stdout);
      continue;
    }
    seen++;
    rx_key_event ke;
    int prc = rx_keyspace_parse(ev.channel, ev.channel_len, ev.data, ev.data_len, &ke);
    if (g_json) {
      printf("{\"channel\":");
      json_str(ev.channel, ev.channel_len);
      if (prc == RX_OK) {
        printf(",\"space\":\"%s\",\"db\":%d,\"event\":",
               ke.space == RX_SPACE_KEYSPACE ? "keyspace" : "keyevent", ke.db);
        json_str(ke.event, ke.event_len);
        putchar(',');
        json_bytes("key", ke.key, ke.key_len);
      } else {
        putchar(',');
        json_bytes("message", ev.data, ev.data_len);
      }
      printf("}\n");
    } else if (prc == RX_OK) {
      printf("db%d %-10.*s ", ke.db, (int)ke.event_len, ke.event);
      text_bytes(ke.key, ke.key_len);
      printf("\n");
    } else {
      text_bytes(ev.channel, ev.channel_len);
      printf(": ");
      text_bytes(ev.data, ev.data_len);
      printf("\n");
    }
    fflush(stdout);
  }
  rx_sub_free(s);
  return ex;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  g_url = getenv("REDIS_URL");
  if (!g_url || !*g_url) g_url = "redis://127.0.0.1:6379";
  /* Global options may come anywhere; they are taken out of argv. */
  int n = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--json")) {
      g_json = 1;
    } else if (!strcmp(argv[i], "--url")) {
      if (i + 1 >= argc) return usage_error(usage_main, "%s", "--url needs a value");
      g_url = argv[++i];
    } else if (!strncmp(argv[i], "--url=", 6)) {
      g_url = argv[i] + 6;
    } else {
      argv[++n] = argv[i];
    }
  }
  argc = n + 1;
  if (argc < 2) {
    fputs(usage_main, stderr);
    return EX_USAGE;
  }
  const char *cmd = argv[1];
  int sargc = argc - 2;
  char **sargv = argv + 2;
  if (is_help(cmd) || !strcmp(cmd, "help")) {
    fputs(usage_main, stdout);
    return EX_OK;
  }
  if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
    printf("reactis %s\n", rx_version());
    return EX_OK;
  }
  if (!strcmp(cmd, "schedule")) return cmd_schedule(sargc, sargv);
  if (!strcmp(cmd, "cancel")) return cmd_manage(cmd, usage_cancel, sargc, sargv);
  if (!strcmp(cmd, "reschedule")) return cmd_manage(cmd, usage_reschedule, sargc, sargv);
  if (!strcmp(cmd, "run-now")) return cmd_manage(cmd, usage_run_now, sargc, sargv);
  if (!strcmp(cmd, "stats")) return cmd_stats(sargc, sargv);
  if (!strcmp(cmd, "tail")) return cmd_tail(sargc, sargv);
  if (!strcmp(cmd, "dead")) return cmd_dead(sargc, sargv);
  if (!strcmp(cmd, "events")) return cmd_events(sargc, sargv);
  return usage_error(usage_main, "unknown command '%s'", cmd);
}
