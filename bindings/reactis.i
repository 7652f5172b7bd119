/* bindings/reactis.i — the one SWIG interface of reactis.
 *
 * Python (`reactis.cimpl`) and Ruby (`Reactis::Cimpl`) are generated from this
 * file. It is private and mechanical: the public, idiomatic classes are
 * hand-written in bindings/python/reactis and bindings/ruby/lib. Everything
 * that is not language-specific lives here; python.i and ruby.i supply
 *
 *   typemaps   (const char *RX_BYTES, size_t RX_LEN)        bytes in
 *              (const char *RX_BYTES_OR_NONE, size_t RX_LEN) bytes or nil/None
 *              const char *RX_TEXT                           text without NUL
 *              (int RX_ARGC, const char *const *RX_ARGV,
 *               const size_t *RX_ARGVLEN)                    a command's argv
 *              rx_reply **RX_REPLY_OUT                       a reply, converted
 *              rx_event *RX_EVENT_OUT                        one event, copied
 *              (rx_event *RX_EVENTS_OUT, size_t RX_MAX,
 *               size_t *RX_N_OUT)                            a batch of events
 *              rx_key_event *RX_KEY_EVENT_OUT                a parsed notification
 *              long long *RX_LL_OUT, int *RX_INT_OUT,
 *              size_t *RX_SIZE_OUT                           integer results
 *              const char *RX_TEXT_OR_NONE                   text or nil/None
 *              (char *RX_CSTR_OUT, size_t RX_CSTR_OUT_LEN)   a NUL-terminated
 *                                                            out string, as bytes
 *              (const char **RX_BYTES_OUT, size_t *RX_BYTES_OUT_LEN)
 *                                                            borrowed bytes, copied
 *              (rx_job *RX_JOBS_OUT, size_t RX_MAX,
 *               size_t *RX_N_OUT)                            a batch of jobs
 *              rx_queue_stats *RX_STATS_OUT                  queue counters
 *              (rx_capture *RX_CAPS_OUT, size_t RX_MAX,
 *               size_t *RX_N_OUT)                            template captures:
 *                                                            a list of bytes,
 *                                                            nil/None unless OK
 *              (char **RX_OWNED_OUT, size_t *RX_OWNED_OUT_LEN)
 *                                                            bytes the core
 *                                                            allocated (rx_free)
 *              (rx_cluster_node *RX_NODES_OUT, size_t RX_MAX,
 *               size_t *RX_N_OUT)                            cluster nodes: a list
 *                                                            of (host, port, id,
 *                                                            is_master, failed,
 *                                                            ranges) tuples
 *   macros     RXG_RAISE(code, msg)      raise the language's error
 *              RXG_CHECK_SIGNALS()       run pending signal handlers; nonzero
 *                                        when one raised
 *
 * Errors: every glue function below reports its status through rxg_note*(),
 * which records the code and (for errors) the handle's message in a
 * thread-local slot. The one %exception reads that slot after the call and
 * turns a negative status into the language's error; RX_EINTR runs the
 * pending signal handlers. The slot is thread-local because blocking calls run
 * without the GIL/GVL, so several threads may be inside the library at once.
 *
 * Names: SWIG calls the C function of an %extend method STRUCT_METHOD, which
 * for `struct rx_conn` would be rx_conn_set, the core's own function. SWIG
 * therefore sees the handles as rxg_conn/rxg_sub, and a #define maps them back
 * to the real types for the C compiler.
 */
#if defined(SWIGPYTHON)
%module(package="reactis", threads="1") cimpl
#elif defined(SWIGRUBY)
%module "Reactis::Cimpl"
#else
%module cimpl
#endif

%{
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reactis/reactis.h"
#include "reactis/queue.h"
#include "reactis/timer.h"
#include "reactis/cluster.h"

#define rxg_conn rx_conn
#define rxg_sub rx_sub
#define rxg_queue rx_queue
#define rxg_timers rx_timers
#define rxg_template rx_template
#define rxg_bridge rx_bridge
#define rxg_cluster rx_cluster

/* The outcome of the last glue call in this thread (see the header comment). */
typedef struct rxg_status {
  int code;
  char msg[512];
} rxg_status;
static _Thread_local rxg_status rxg_last;

/* Records status `code`; for an error, also its message (the handle's errstr,
 * or the fixed message of the code when the handle has none). Returns code. */
static int rxg_note(int code, const char *msg) {
  rxg_last.code = code;
  if (code < 0)
    snprintf(rxg_last.msg, sizeof rxg_last.msg, "%s",
             msg && *msg ? msg : rx_strerror(code));
  else
    rxg_last.msg[0] = '\0';
  return code;
}

static int rxg_note_conn(rx_conn *c, int code) {
  return rxg_note(code, code < 0 ? rx_conn_errstr(c) : NULL);
}

static int rxg_note_sub(rx_sub *s, int code) {
  return rxg_note(code, code < 0 ? rx_sub_errstr(s) : NULL);
}

static int rxg_note_queue(rx_queue *q, int code) {
  return rxg_note(code, code < 0 ? rx_queue_errstr(q) : NULL);
}

static int rxg_note_timers(rx_timers *t, int code) {
  return rxg_note(code, code < 0 ? rx_timers_errstr(t) : NULL);
}

static int rxg_note_cluster(rx_cluster *c, int code) {
  return rxg_note(code, code < 0 ? rx_cluster_errstr(c) : NULL);
}

/* A constructor failed before a handle existed: rx_*_new only says so in its
 * errstr. Running out of memory or descriptors is the one failure that is not
 * a bad URL or option. */
static void rxg_note_new_failed(const char *errstr) {
  int code = strstr(errstr, "out of memory") ? RX_ENOMEM : RX_EURL;
  rxg_note(code, errstr);
}
%}

/* ------------------------------------------------------------ language glue */

#if defined(SWIGPYTHON)
%include "python.i"
#elif defined(SWIGRUBY)
%include "ruby.i"
#else
#error "reactis.i supports Python and Ruby"
#endif

/* The one exception handler, for every wrapped function. */
%exception {
  rxg_last.code = 0;
  $action
  if (rxg_last.code < 0) {
    RXG_RAISE(rxg_last.code, rxg_last.msg);
    SWIG_fail;
  }
  if (rxg_last.code == RX_EINTR && RXG_CHECK_SIGNALS() != 0) SWIG_fail;
}

/* ------------------------------------------------------------ threads */

/* The GIL is held everywhere (threads="1" only makes release possible) and
 * released around the calls that can block on the network. Ruby's GVL is
 * handled by ruby.i's trampoline for the same list. */
%nothread;
%thread rxg_conn::connect;
%thread rxg_conn::command;
%thread rxg_conn::call;
%thread rxg_conn::get_reply;
%thread rxg_conn::publish;
%thread rxg_conn::notify_ensure;
%thread rxg_sub::connect;
%thread rxg_sub::subscribe;
%thread rxg_sub::psubscribe;
%thread rxg_sub::ssubscribe;
%thread rxg_sub::unsubscribe;
%thread rxg_sub::punsubscribe;
%thread rxg_sub::sunsubscribe;
%thread rxg_sub::next;
%thread rxg_sub::next_batch;
%thread rxg_queue::~rxg_queue; /* removes the consumer from its group */
%thread rxg_queue::schedule;
%thread rxg_queue::batch_send;
%thread rxg_queue::cancel;
%thread rxg_queue::reschedule;
%thread rxg_queue::run_now;
%thread rxg_queue::fetch;
%thread rxg_queue::ack;
%thread rxg_queue::ack_many;
%thread rxg_queue::ack_fetch;
%thread rxg_queue::retry;
%thread rxg_queue::fail;
%thread rxg_queue::extend;
%thread rxg_queue::dead_list;
%thread rxg_queue::dead_requeue;
%thread rxg_queue::dead_purge;
%thread rxg_queue::stats;
%thread rxg_timers::~rxg_timers; /* removes the consumer from its group */
%thread rxg_timers::touch;
%thread rxg_timers::stop;
%thread rxg_timers::batch_send;
%thread rxg_timers::watch;
%thread rxg_timers::ack;
%thread rxg_timers::ack_many;
%thread rxg_timers::retry;
%thread rxg_timers::fail;
%thread rxg_timers::extend;
%thread rxg_timers::stats;
%thread rxg_bridge::take;
%thread claim_once;
%thread rxg_cluster::connect;
%thread rxg_cluster::command;
%thread rxg_cluster::call;
%thread rxg_cluster::nodes;
%thread rxg_cluster::notify_ensure;

/* ------------------------------------------------------------ typemap uses */

%apply (const char *RX_BYTES, size_t RX_LEN) {
  (const char *channel, size_t channel_len),
  (const char *pattern, size_t pattern_len),
  (const char *data, size_t data_len),
  (const char *message, size_t message_len),
  (const char *name, size_t name_len),
  (const char *payload, size_t payload_len),
  (const char *message_id, size_t message_id_len),
  (const char *tokens, size_t tokens_len),
  (const char *timer_id, size_t timer_id_len),
  (const char *claim_id, size_t claim_id_len),
  (const char *tpl, size_t tpl_len),
  (const char *key_name, size_t key_name_len)
};
%apply (const char *RX_BYTES_OR_NONE, size_t RX_LEN) {
  (const char *channel_or_all, size_t channel_len),
  (const char *pattern_or_all, size_t pattern_len),
  (const char *id_or_generate, size_t id_len),
  (const char *error, size_t error_len),
  (const char *shadow_or_default, size_t shadow_len)
};
%apply const char *RX_TEXT { const char *url, const char *option,
                             const char *value, const char *flags,
                             const char *queue_name, const char *token };
%apply const char *RX_TEXT_OR_NONE { const char *after, const char *token_or_all };
%apply (int RX_ARGC, const char *const *RX_ARGV, const size_t *RX_ARGVLEN) {
  (int argc, const char *const *argv, const size_t *argvlen)
};
%apply rx_reply **RX_REPLY_OUT { rx_reply **reply };
%apply rx_event *RX_EVENT_OUT { rx_event *event };
%apply (rx_event *RX_EVENTS_OUT, size_t RX_MAX, size_t *RX_N_OUT) {
  (rx_event *events, size_t max_events, size_t *n_events)
};
%apply rx_key_event *RX_KEY_EVENT_OUT { rx_key_event *key_event };
%apply long long *RX_LL_OUT { long long *receivers, long long *due_ms };
%apply int *RX_INT_OUT { int *outcome, int *dead, int *armed, int *won };
%apply size_t *RX_SIZE_OUT { size_t *acked, size_t *count };
%apply (char *RX_CSTR_OUT, size_t RX_CSTR_OUT_LEN) { (char *out_id, size_t out_id_len) };
%apply (const char **RX_BYTES_OUT, size_t *RX_BYTES_OUT_LEN) {
  (const char **id_out, size_t *id_out_len),
  (const char **bytes_out, size_t *bytes_out_len),
  (const char **key_out, size_t *key_out_len),
  (const char **value_out, size_t *value_out_len)
};
%apply (rx_capture *RX_CAPS_OUT, size_t RX_MAX, size_t *RX_N_OUT) {
  (rx_capture *caps, size_t max_caps, size_t *n_caps)
};
%apply (char **RX_OWNED_OUT, size_t *RX_OWNED_OUT_LEN) {
  (char **owned_out, size_t *owned_out_len)
};
%apply (rx_job *RX_JOBS_OUT, size_t RX_MAX, size_t *RX_N_OUT) {
  (rx_job *jobs, size_t max_jobs, size_t *n_jobs)
};
%apply rx_queue_stats *RX_STATS_OUT { rx_queue_stats *stats };
%apply (rx_cluster_node *RX_NODES_OUT, size_t RX_MAX, size_t *RX_N_OUT) {
  (rx_cluster_node *nodes, size_t max_nodes, size_t *n_nodes)
};
%apply long long *RX_LL_OUT { long long *moved, long long *ask, long long *retries,
                              long long *refreshes };

/* ------------------------------------------------------------ constants */

/* Every status code of reactis.h as a constant (OK, TIMEOUT, ..., EBUSY),
 * straight from its X-macro table so new codes appear by themselves. */
%import "reactis/reactis.h"
#define RXG__STATUS_CONST(name, value, msg) %constant int name = RX_##name;
RX_STATUS_MAP(RXG__STATUS_CONST)
#undef RXG__STATUS_CONST

%constant int EV_MESSAGE = RX_EV_MESSAGE;
%constant int EV_PMESSAGE = RX_EV_PMESSAGE;
%constant int EV_SMESSAGE = RX_EV_SMESSAGE;
%constant int EV_GAP = RX_EV_GAP;
%constant int SPACE_KEYSPACE = RX_SPACE_KEYSPACE;
%constant int SPACE_KEYEVENT = RX_SPACE_KEYEVENT;
%constant int KEV_OTHER = RX_KEV_OTHER;
%constant int REPLY_STRING = RX_REPLY_STRING;
%constant int REPLY_ARRAY = RX_REPLY_ARRAY;
%constant int REPLY_INTEGER = RX_REPLY_INTEGER;
%constant int REPLY_NIL = RX_REPLY_NIL;
%constant int REPLY_STATUS = RX_REPLY_STATUS;
%constant int REPLY_ERROR = RX_REPLY_ERROR;
%constant int SCHED_AT = RX_SCHED_AT;
%constant int SCHED_REPLACE = RX_SCHED_REPLACE;
%constant int SCHED_ADDED = RX_SCHED_ADDED;
%constant int SCHED_EXISTS = RX_SCHED_EXISTS;
%constant int SCHED_REPLACED = RX_SCHED_REPLACED;
%constant int QUEUE_ID_MAX = RX_QUEUE_ID_MAX;
%constant int TIMERS_NAME_MAX = RX_TIMERS_NAME_MAX;
%constant int BRIDGE_KEEP = RX_BRIDGE_KEEP;
%constant int CLUSTER_SLOTS = RX_CLUSTER_SLOTS;
%constant int CLUSTER_MASTERS = RX_CLUSTER_MASTERS;
%constant int CLUSTER_REPLICAS = RX_CLUSTER_REPLICAS;

/* ------------------------------------------------------------ module functions */

%rename(version) rx_version;
const char *rx_version(void);
%rename(strerror) rx_strerror;
const char *rx_strerror(int status);
%rename(errname) rx_errname;
const char *rx_errname(int status);
%rename(now_ms) rx_now_ms;
long long rx_now_ms(void);
%rename(monotonic_ms) rx_monotonic_ms;
long long rx_monotonic_ms(void);
%rename(key_event_name) rx_key_event_name;
const char *rx_key_event_name(int type);

%newobject url_redact;
%inline %{
/* The URL with any password replaced by "***". */
static char *url_redact(const char *url) {
  size_t n = strlen(url) + 16;
  char *buf = malloc(n);
  if (!buf) {
    rxg_note(RX_ENOMEM, NULL);
    return NULL;
  }
  return (char *)rx_url_redact(url, buf, n);
}

/* The type (an RX_KEV_* value) of an event name; KEV_OTHER when unknown. */
static int key_event_type_of(const char *name, size_t name_len) {
  return rx_key_event_type_of(name, name_len);
}

/* Parses a keyspace/keyevent notification: the language's tuple/array
 * (space, db, type, event, key) with byte-string copies, or nil/None when the
 * channel is not a notification channel of the exact shape. */
static int keyspace_parse(const char *channel, size_t channel_len,
                          const char *message, size_t message_len,
                          rx_key_event *key_event) {
  int rc = rx_keyspace_parse(channel, channel_len, message, message_len, key_event);
  return rxg_note(rc, NULL);
}
%}

/* ------------------------------------------------------------ rx_conn */

/* To SWIG the handles are empty structs; only the methods below exist. */
%rename(Conn) rxg_conn;
typedef struct rxg_conn {} rxg_conn;

%newobject rxg_conn::describe;
%newobject rxg_conn::notify_ensure;

%extend rxg_conn {
  /* Parses the URL; does not connect (see rx_conn_new). */
  rxg_conn(const char *url) {
    char err[256];
    rx_conn *c = rx_conn_new(url, err, sizeof err);
    if (!c) rxg_note_new_failed(err);
    return c;
  }
  ~rxg_conn() { rx_conn_free($self); }

  /* One option by name, as in the URL query. */
  void set_option(const char *option, const char *value) {
    rxg_note_conn($self, rx_conn_set($self, option, value));
  }
  void connect() { rxg_note_conn($self, rx_conn_connect($self)); }
  void close() { rx_conn_close($self); }
  bool is_connected() { return rx_conn_is_connected($self) != 0; }

  /* Returns [status, reply]; status 0 or RX_WOKEN/RX_EINTR (reply nil). An
   * error reply is returned as an error object, not raised. */
  int command(int argc, const char *const *argv, const size_t *argvlen,
              rx_reply **reply) {
    *reply = NULL;
    return rxg_note_conn($self, rx_conn_command($self, reply, argc, argv, argvlen));
  }
  /* As command, but an error reply is raised with its typed code. */
  int call(int argc, const char *const *argv, const size_t *argvlen,
           rx_reply **reply) {
    *reply = NULL;
    return rxg_note_conn($self, rx_conn_call($self, reply, argc, argv, argvlen));
  }
  /* Pipelining: queue commands with append, collect replies with get_reply. */
  void append(int argc, const char *const *argv, const size_t *argvlen) {
    rxg_note_conn($self, rx_conn_append($self, argc, argv, argvlen));
  }
  int get_reply(rx_reply **reply) {
    *reply = NULL;
    return rxg_note_conn($self, rx_conn_get_reply($self, reply));
  }
  /* Returns [status, receivers]. */
  int publish(const char *channel, size_t channel_len, const char *data,
              size_t data_len, long long *receivers) {
    *receivers = 0;
    return rxg_note_conn($self, rx_conn_publish($self, channel, channel_len,
                                                data, data_len, receivers));
  }
  /* Makes the current or next wait on this handle return RX_WOKEN. */
  void wakeup() { rx_conn_wakeup($self); }
  int err() { return rx_conn_err($self); }
  const char *errstr() { return rx_conn_errstr($self); }
  /* The URL with the password replaced by "***". */
  char *describe() {
    char *buf = malloc(512);
    if (!buf) {
      rxg_note(RX_ENOMEM, NULL);
      return NULL;
    }
    return (char *)rx_conn_describe($self, buf, 512);
  }
  /* Makes sure notify-keyspace-events has every flag; returns the flags now
   * in force (rx_notify_ensure). */
  char *notify_ensure(const char *flags) {
    char *buf = malloc(64);
    if (!buf) {
      rxg_note(RX_ENOMEM, NULL);
      return NULL;
    }
    buf[0] = '\0';
    if (rxg_note_conn($self, rx_notify_ensure($self, flags, buf, 64)) < 0) {
      free(buf);
      return NULL;
    }
    return buf;
  }
}

/* ------------------------------------------------------------ rx_sub */

%rename(Sub) rxg_sub;
typedef struct rxg_sub {} rxg_sub;

%extend rxg_sub {
  rxg_sub(const char *url) {
    char err[256];
    rx_sub *s = rx_sub_new(url, err, sizeof err);
    if (!s) rxg_note_new_failed(err);
    return s;
  }
  ~rxg_sub() { rx_sub_free($self); }

  void set_option(const char *option, const char *value) {
    rxg_note_sub($self, rx_sub_set($self, option, value));
  }
  void connect() { rxg_note_sub($self, rx_sub_connect($self)); }

  /* Each returns the status: 0, or RX_WOKEN/RX_EINTR when the wait for the
   * confirmation was interrupted (the subscription stays wanted). */
  int subscribe(const char *channel, size_t channel_len) {
    return rxg_note_sub($self, rx_sub_subscribe($self, channel, channel_len));
  }
  int psubscribe(const char *pattern, size_t pattern_len) {
    return rxg_note_sub($self, rx_sub_psubscribe($self, pattern, pattern_len));
  }
  int ssubscribe(const char *channel, size_t channel_len) {
    return rxg_note_sub($self, rx_sub_ssubscribe($self, channel, channel_len));
  }
  /* nil/None: every subscription of that kind. */
  int unsubscribe(const char *channel_or_all, size_t channel_len) {
    return rxg_note_sub($self, rx_sub_unsubscribe($self, channel_or_all, channel_len));
  }
  int punsubscribe(const char *pattern_or_all, size_t pattern_len) {
    return rxg_note_sub($self, rx_sub_punsubscribe($self, pattern_or_all, pattern_len));
  }
  int sunsubscribe(const char *channel_or_all, size_t channel_len) {
    return rxg_note_sub($self, rx_sub_sunsubscribe($self, channel_or_all, channel_len));
  }
  size_t count() { return rx_sub_count($self); }

  /* Returns [status, event]: event is (kind, pattern, channel, data,
   * gap_start_ms, gap_end_ms, reconnects) with byte-string copies when status
   * is 0, else nil/None (RX_TIMEOUT, RX_WOKEN, RX_EINTR). */
  int next(int timeout_ms, rx_event *event) {
    memset(event, 0, sizeof *event);
    return rxg_note_sub($self, rx_sub_next($self, timeout_ms, event));
  }
  /* Returns [status, events]: a list of up to max_events event tuples. */
  int next_batch(int timeout_ms, rx_event *events, size_t max_events,
                 size_t *n_events) {
    return rxg_note_sub($self, rx_sub_next_batch($self, timeout_ms, events,
                                                 max_events, n_events));
  }
  int fd() { return rx_sub_fd($self); }
  void wakeup() { rx_sub_wakeup($self); }
  bool is_connected() { return rx_sub_is_connected($self) != 0; }
  int err() { return rx_sub_err($self); }
  const char *errstr() { return rx_sub_errstr($self); }
}

/* ------------------------------------------------------------ rx_queue */

%rename(Queue) rxg_queue;
typedef struct rxg_queue {} rxg_queue;

%extend rxg_queue {
  rxg_queue(const char *url, const char *queue_name) {
    char err[256];
    rx_queue *q = rx_queue_new(url, queue_name, err, sizeof err);
    if (!q) {
      rxg_note_new_failed(err);
      if (strstr(err, "queue name")) rxg_last.code = RX_EINVAL; /* not the URL */
    }
    return q;
  }
  ~rxg_queue() { rx_queue_free($self); }

  void set_option(const char *option, const char *value) {
    rxg_note_queue($self, rx_queue_set($self, option, value));
  }
  const char *name() { return rx_queue_name($self); }

  /* Returns [status, id, outcome, due_ms]; id nil/None: generate one (the
   * returned id is then the generated one). */
  int schedule(const char *id_or_generate, size_t id_len, const char *payload,
               size_t payload_len, long long when_ms, int flags, char *out_id,
               size_t out_id_len, int *outcome, long long *due_ms) {
    return rxg_note_queue($self, rx_queue_schedule($self, id_or_generate, id_len,
                                                   payload, payload_len, when_ms,
                                                   flags, out_id, out_id_len,
                                                   outcome, due_ms));
  }
  void batch_add(const char *id_or_generate, size_t id_len, const char *payload,
                 size_t payload_len, long long when_ms, int flags) {
    rxg_note_queue($self, rx_queue_batch_add($self, id_or_generate, id_len,
                                             payload, payload_len, when_ms, flags));
  }
  size_t batch_count() { return rx_queue_batch_count($self); }
  void batch_send() { rxg_note_queue($self, rx_queue_batch_send($self)); }
  /* Returns [status, outcome, id, due_ms] of message i of the sent batch. */
  int batch_result(size_t i, int *outcome, const char **id_out, size_t *id_out_len,
                   long long *due_ms) {
    return rxg_note(rx_queue_batch_result($self, i, outcome, id_out, id_out_len,
                                          due_ms), "no such batch result");
  }
  void batch_clear() { rx_queue_batch_clear($self); }

  /* Each returns 0, or RX_NOMATCH when the message was not waiting. */
  int cancel(const char *message_id, size_t message_id_len) {
    return rxg_note_queue($self, rx_queue_cancel($self, message_id, message_id_len));
  }
  int reschedule(const char *message_id, size_t message_id_len, long long when_ms,
                 int flags) {
    return rxg_note_queue($self, rx_queue_reschedule($self, message_id,
                                                     message_id_len, when_ms, flags));
  }
  int run_now(const char *message_id, size_t message_id_len) {
    return rxg_note_queue($self, rx_queue_run_now($self, message_id, message_id_len));
  }

  /* Returns [status, jobs]: status 0 with up to max_jobs job tuples (id,
   * payload, attempt, failures, crashes, due_ms, enqueued_ms, delivered_ms,
   * error, token), or RX_TIMEOUT/RX_WOKEN/RX_EINTR with none. */
  int fetch(int timeout_ms, rx_job *jobs, size_t max_jobs, size_t *n_jobs) {
    return rxg_note_queue($self, rx_queue_fetch($self, max_jobs, timeout_ms, jobs,
                                                n_jobs));
  }
  /* Returns [status, acked, jobs]: the acks of tokens (as ack_many takes
   * them; stale ones are not counted, no error) and a fetch, in one round
   * trip (rx_queue_ack_many_fetch). */
  int ack_fetch(const char *tokens, size_t tokens_len, size_t *acked, int timeout_ms,
                rx_job *jobs, size_t max_jobs, size_t *n_jobs) {
    return rxg_note_queue($self, rx_queue_ack_many_fetch($self, tokens, tokens_len, acked,
                                                         max_jobs, timeout_ms, jobs, n_jobs));
  }
  int ack(const char *token) { return rxg_note_queue($self, rx_queue_ack($self, token)); }
  /* Returns [status, acked]; RX_ESTALE (some were stale, the others acked)
   * is returned, not raised, so the count is not lost. */
  int ack_many(const char *tokens, size_t tokens_len, size_t *acked) {
    int rc = rx_queue_ack_many($self, tokens, tokens_len, acked);
    if (rc == RX_ESTALE) {
      rxg_note(RX_OK, NULL);
      return rc;
    }
    return rxg_note_queue($self, rc);
  }
  /* Returns [status, dead]. delay_ms < 0: backoff with jitter. */
  int retry(const char *token, long long delay_ms, const char *error,
            size_t error_len, int *dead) {
    *dead = 0;
    return rxg_note_queue($self, rx_queue_retry($self, token, delay_ms, error,
                                                error_len, dead));
  }
  int fail(const char *token, const char *error, size_t error_len) {
    return rxg_note_queue($self, rx_queue_fail($self, token, error, error_len));
  }
  int extend(const char *token, long long ms) {
    return rxg_note_queue($self, rx_queue_extend($self, token, ms));
  }
  void wakeup() { rx_queue_wakeup($self); }

  /* Returns [status, dead letters] as job tuples; token = dead-stream id. */
  int dead_list(const char *after, rx_job *jobs, size_t max_jobs, size_t *n_jobs) {
    int rc = rx_queue_dead_list($self, after, max_jobs, n_jobs);
    if (rc == RX_OK) {
      for (size_t i = 0; i < *n_jobs; i++) jobs[i] = *rx_queue_dead($self, i);
    } else {
      *n_jobs = 0;
    }
    return rxg_note_queue($self, rc);
  }
  /* Return [status, count]; status RX_NOMATCH when the token is unknown. */
  int dead_requeue(const char *token_or_all, long long delay_ms, size_t *count) {
    return rxg_note_queue($self, rx_queue_dead_requeue($self, token_or_all, delay_ms,
                                                       count));
  }
  int dead_purge(const char *token_or_all, size_t *count) {
    return rxg_note_queue($self, rx_queue_dead_purge($self, token_or_all, count));
  }
  /* Returns [status, counters] (a dict / Hash keyed by field name). */
  int stats(rx_queue_stats *stats) {
    memset(stats, 0, sizeof *stats);
    return rxg_note_queue($self, rx_queue_stats_get($self, stats));
  }
  const char *warning() { return rx_queue_warning($self); }
  int err() { return rx_queue_err($self); }
  const char *errstr() { return rx_queue_errstr($self); }
}

/* ------------------------------------------------------------ rx_template */

%rename(Template) rxg_template;
typedef struct rxg_template {} rxg_template;

%extend rxg_template {
  /* A malformed template raises InvalidArgumentError with the offset. */
  rxg_template(const char *tpl, size_t tpl_len) {
    char err[256];
    rx_template *t = rx_template_new(tpl, tpl_len, err, sizeof err);
    if (!t) rxg_note(strstr(err, "out of memory") ? RX_ENOMEM : RX_EINVAL, err);
    return t;
  }
  ~rxg_template() { rx_template_free($self); }

  size_t count() { return rx_template_count($self); }
  /* The name of placeholder i (bytes), nil/None when out of range. */
  void name(size_t i, const char **bytes_out, size_t *bytes_out_len) {
    *bytes_out = rx_template_name($self, i, bytes_out_len);
  }
  /* The source text and the glob pattern (bytes). */
  void source(const char **bytes_out, size_t *bytes_out_len) {
    *bytes_out = rx_template_source($self, bytes_out_len);
  }
  void glob(const char **bytes_out, size_t *bytes_out_len) {
    *bytes_out = rx_template_glob($self, bytes_out_len);
  }
  /* Returns [status, captures]: 0 with a list of max_caps or fewer byte
   * strings (placeholder order), or RX_NOMATCH with nil/None. */
  int match(const char *key_name, size_t key_name_len, rx_capture *caps, size_t max_caps,
            size_t *n_caps) {
    int rc = rx_template_match($self, key_name, key_name_len, caps, max_caps);
    size_t n = rx_template_count($self);
    *n_caps = rc == RX_OK ? (n < max_caps ? n : max_caps) : 0;
    return rxg_note(rc, NULL);
  }
  /* argv[0] is ignored (the argv typemap wants one argument at least);
   * argv[1..] are the values in placeholder order. Returns the name. */
  void format(int argc, const char *const *argv, const size_t *argvlen, char **owned_out,
              size_t *owned_out_len) {
    int rc = rx_template_format($self, argv + 1, argvlen + 1, (size_t)(argc - 1), owned_out,
                                owned_out_len);
    if (rc != RX_OK) {
      *owned_out = NULL;
      rxg_note(rc, rc == RX_EINVAL ? "template: one non-empty value per placeholder is needed"
                                   : NULL);
    }
  }
}

/* ------------------------------------------------------------ rx_timers */

%rename(Timers) rxg_timers;
typedef struct rxg_timers {} rxg_timers;

%extend rxg_timers {
  rxg_timers(const char *url, const char *queue_name) {
    char err[256];
    rx_timers *t = rx_timers_new(url, queue_name, err, sizeof err);
    if (!t) {
      rxg_note_new_failed(err);
      if (strstr(err, "timer set name") || strstr(err, "queue name")) rxg_last.code = RX_EINVAL;
    }
    return t;
  }
  ~rxg_timers() { rx_timers_free($self); }

  void set_option(const char *option, const char *value) {
    rxg_note_timers($self, rx_timers_set($self, option, value));
  }
  const char *name() { return rx_timers_name($self); }

  /* Returns [status, armed, due_ms]: armed 1 when the timer was not armed.
   * flags: SCHED_AT (when_ms is an epoch deadline). */
  int touch(const char *timer_id, size_t timer_id_len, long long when_ms, int flags,
            const char *payload, size_t payload_len, int *armed, long long *due_ms) {
    return rxg_note_timers($self, rx_timers_touch_ex($self, timer_id, timer_id_len, when_ms,
                                                     flags, payload, payload_len, armed,
                                                     due_ms));
  }
  /* 0, or RX_NOMATCH when the timer was not armed. */
  int stop(const char *timer_id, size_t timer_id_len) {
    return rxg_note_timers($self, rx_timers_stop($self, timer_id, timer_id_len));
  }
  void batch_add(const char *timer_id, size_t timer_id_len, long long when_ms,
                 const char *payload, size_t payload_len) {
    rxg_note_timers($self, rx_timers_batch_add($self, timer_id, timer_id_len, when_ms, payload,
                                               payload_len));
  }
  size_t batch_count() { return rx_timers_batch_count($self); }
  /* 0, or RX_EINTR/RX_WOKEN when it was interrupted before it could run
   * (Ruby: another thread's time slice; send again). */
  int batch_send() { return rxg_note_timers($self, rx_timers_batch_send($self)); }
  /* Returns [status, armed, due_ms] of touch i of the sent batch. */
  int batch_result(size_t i, int *armed, long long *due_ms) {
    return rxg_note(rx_timers_batch_result($self, i, armed, due_ms), "no such batch result");
  }
  void batch_clear() { rx_timers_batch_clear($self); }

  /* Returns [status, firings] as job tuples (see Queue.fetch). */
  int watch(int timeout_ms, rx_job *jobs, size_t max_jobs, size_t *n_jobs) {
    return rxg_note_timers($self, rx_timers_watch($self, max_jobs, timeout_ms, jobs, n_jobs));
  }
  /* Settling a firing: the queue's calls on the timers' queue. */
  int ack(const char *token) { return rxg_note_timers($self, rx_timers_ack($self, token)); }
  int ack_many(const char *tokens, size_t tokens_len, size_t *acked) {
    int rc = rx_queue_ack_many(rx_timers_queue($self), tokens, tokens_len, acked);
    if (rc == RX_ESTALE) {
      rxg_note(RX_OK, NULL);
      return rc;
    }
    return rxg_note_timers($self, rc);
  }
  int retry(const char *token, long long delay_ms, const char *error, size_t error_len,
            int *dead) {
    *dead = 0;
    return rxg_note_timers($self, rx_queue_retry(rx_timers_queue($self), token, delay_ms,
                                                 error, error_len, dead));
  }
  int fail(const char *token, const char *error, size_t error_len) {
    return rxg_note_timers($self, rx_queue_fail(rx_timers_queue($self), token, error,
                                                error_len));
  }
  int extend(const char *token, long long ms) {
    return rxg_note_timers($self, rx_queue_extend(rx_timers_queue($self), token, ms));
  }
  int stats(rx_queue_stats *stats) {
    memset(stats, 0, sizeof *stats);
    return rxg_note_timers($self, rx_queue_stats_get(rx_timers_queue($self), stats));
  }
  void wakeup() { rx_timers_wakeup($self); }
  const char *warning() { return rx_queue_warning(rx_timers_queue($self)); }
  int err() { return rx_timers_err($self); }
  const char *errstr() { return rx_timers_errstr($self); }
}

/* ------------------------------------------------------------ rx_bridge */

%rename(Bridge) rxg_bridge;
typedef struct rxg_bridge {} rxg_bridge;

%extend rxg_bridge {
  /* shadow nil/None: "shadow:" + tpl. flags: BRIDGE_KEEP. */
  rxg_bridge(const char *tpl, size_t tpl_len, const char *shadow_or_default, size_t shadow_len,
             int flags) {
    char err[256];
    rx_bridge *b = rx_bridge_new(tpl, tpl_len, shadow_or_default, shadow_len, flags, err,
                                 sizeof err);
    if (!b) rxg_note(strstr(err, "out of memory") ? RX_ENOMEM : RX_EINVAL, err);
    return b;
  }
  ~rxg_bridge() { rx_bridge_free($self); }

  /* The two templates' source texts (bytes). */
  void key_template(const char **bytes_out, size_t *bytes_out_len) {
    *bytes_out = rx_template_source(rx_bridge_template($self), bytes_out_len);
  }
  void shadow_template(const char **bytes_out, size_t *bytes_out_len) {
    *bytes_out = rx_template_source(rx_bridge_shadow($self), bytes_out_len);
  }
  size_t count() { return rx_template_count(rx_bridge_template($self)); }
  /* Subscribes sub to the expired events of db (< 0: every database). */
  int subscribe(rxg_sub *sub, int db) {
    return rxg_note_sub(sub, rx_bridge_subscribe($self, sub, db));
  }
  /* Returns [status, key, captures, value]: status 0 for an expired key of
   * the template (value nil/None when the shadow key did not exist), or
   * RX_NOMATCH (the rest nil/None) for any other notification. The shadow
   * key is read, and deleted, on conn. */
  int take(rxg_conn *conn, const char *channel, size_t channel_len, const char *message,
           size_t message_len, const char **key_out, size_t *key_out_len, rx_capture *caps,
           size_t max_caps, size_t *n_caps, const char **value_out, size_t *value_out_len) {
    rx_expiry e;
    int rc = rx_bridge_take($self, conn, channel, channel_len, message, message_len, &e);
    *n_caps = 0;
    if (rc == RX_OK) {
      *key_out = e.key;
      *key_out_len = e.key_len;
      *n_caps = e.ncaps < max_caps ? e.ncaps : max_caps;
      memcpy(caps, e.caps, *n_caps * sizeof *caps);
      *value_out = e.value;
      *value_out_len = e.value_len;
    }
    return rxg_note_conn(conn, rc);
  }
}

/* ------------------------------------------------------------ claims */

%inline %{
/* Returns [status, won]: won 1 for the one caller that claimed (name, id)
 * (SET rx:claim:{name}:id NX PX ttl_ms), 0 for every other. */
static int claim_once(rxg_conn *conn, const char *name, size_t name_len, const char *claim_id,
                      size_t claim_id_len, long long ttl_ms, int *won) {
  *won = 0;
  return rxg_note_conn(conn, rx_claim_once(conn, name, name_len, claim_id, claim_id_len, ttl_ms,
                                           won));
}
%}

/* ------------------------------------------------------------ rx_cluster */

%inline %{
/* 1 when url names a Redis Cluster (several hosts, or cluster=yes): the test
 * rx_sub_new and rx_queue_new use, so the Client decides as they do. */
static bool is_cluster_url(const char *url) { return rx_url_is_cluster(url) != 0; }

/* The hash slot of a key (bytes), as CLUSTER KEYSLOT computes it. */
static int keyslot(const char *key_name, size_t key_name_len) {
  return rx_cluster_keyslot(key_name, key_name_len);
}
%}

%rename(Cluster) rxg_cluster;
typedef struct rxg_cluster {} rxg_cluster;

%newobject rxg_cluster::describe;
%newobject rxg_cluster::notify_ensure;

%extend rxg_cluster {
  /* Parses the URL (a seed list); does not connect (see rx_cluster_new). */
  rxg_cluster(const char *url) {
    char err[256];
    rx_cluster *c = rx_cluster_new(url, err, sizeof err);
    if (!c) rxg_note_new_failed(err);
    return c;
  }
  ~rxg_cluster() { rx_cluster_free($self); }

  void set_option(const char *option, const char *value) {
    rxg_note_cluster($self, rx_cluster_set($self, option, value));
  }
  /* Loads the topology now (rx_cluster_refresh): 0, or RX_WOKEN/RX_EINTR. */
  int connect() { return rxg_note_cluster($self, rx_cluster_refresh($self)); }
  bool is_connected() { return rx_cluster_is_connected($self) != 0; }

  /* As Conn.command / Conn.call, routed by the key's slot. */
  int command(int argc, const char *const *argv, const size_t *argvlen, rx_reply **reply) {
    *reply = NULL;
    return rxg_note_cluster($self, rx_cluster_command($self, reply, argc, argv, argvlen));
  }
  int call(int argc, const char *const *argv, const size_t *argvlen, rx_reply **reply) {
    *reply = NULL;
    return rxg_note_cluster($self, rx_cluster_call($self, reply, argc, argv, argvlen));
  }

  /* Returns [total, nodes]: the number of nodes whose role is in which
   * (CLUSTER_MASTERS | CLUSTER_REPLICAS) and up to max_nodes of them as
   * (host, port, id, is_master, failed, [(first, last), ...]) copies;
   * total > max_nodes means the list was cut short (ask again with more).
   * A load woken or interrupted returns total -1 with an empty list. */
  int nodes(int which, rx_cluster_node *nodes, size_t max_nodes, size_t *n_nodes) {
    int rc = rx_cluster_nodes($self, which, nodes, max_nodes);
    *n_nodes = 0;
    if (rc < 0) return rxg_note_cluster($self, rc);
    int err = rx_cluster_err($self);
    if (rc == 0 && (err == RX_WOKEN || err == RX_EINTR)) {
      rxg_note(err, NULL);
      return -1;
    }
    *n_nodes = (size_t)rc < max_nodes ? (size_t)rc : max_nodes;
    rxg_note(RX_OK, NULL);
    return rc;
  }

  /* Returns [moved, ask, retries, refreshes] since the handle was made. */
  void stats(long long *moved, long long *ask, long long *retries, long long *refreshes) {
    rx_cluster_stats st;
    rx_cluster_get_stats($self, &st);
    *moved = st.moved;
    *ask = st.ask;
    *retries = st.retries;
    *refreshes = st.refreshes;
  }

  /* Makes sure notify-keyspace-events has every flag on every node; returns
   * the flags now in force on the first master (rx_cluster_notify_ensure),
   * or nil/None when the call was woken up or interrupted. */
  char *notify_ensure(const char *flags) {
    char *buf = malloc(128);
    if (!buf) {
      rxg_note(RX_ENOMEM, NULL);
      return NULL;
    }
    buf[0] = '\0';
    int rc = rxg_note_cluster($self, rx_cluster_notify_ensure($self, flags, buf, 128));
    if (rc != RX_OK) {
      /* An error is raised; woken or interrupted gives nil/None. */
      free(buf);
      return NULL;
    }
    return buf;
  }

  void wakeup() { rx_cluster_wakeup($self); }
  int err() { return rx_cluster_err($self); }
  const char *errstr() { return rx_cluster_errstr($self); }
  /* The seed list with the password replaced by "***". */
  char *describe() {
    char *buf = malloc(512);
    if (!buf) {
      rxg_note(RX_ENOMEM, NULL);
      return NULL;
    }
    return (char *)rx_cluster_describe($self, buf, 512);
  }
}
