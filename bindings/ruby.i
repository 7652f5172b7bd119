/* bindings/ruby.i — the Ruby half of reactis.i: typemaps, errors and the GVL.
 *
 * Included by reactis.i only when SWIG runs with -ruby. It supplies what
 * reactis.i's header comment lists (the RX_* typemaps, RXG_RAISE,
 * RXG_CHECK_SIGNALS) and one thing SWIG has no feature for in Ruby:
 * releasing the GVL around the calls that block on the network.
 *
 * Binary data is a Ruby String both ways. On input its bytes are taken as
 * they are, whatever its encoding; on output strings from Redis are binary
 * (ASCII-8BIT) and text the library makes (messages, URLs) is UTF-8. Binary
 * data never goes through SWIG's char * conversions, which stop at a NUL.
 *
 * Memory: every temporary a typemap needs is owned by Ruby (a frozen string,
 * ALLOCV), because errors are raised with a longjmp that skips the freearg
 * typemaps; nothing leaks when a call raises.
 *
 * ---------------------------------------------------------------- the GVL
 * Ruby threads share one lock; a C call that blocks while holding it stops
 * every other thread, and one that blocks without an unblocking function
 * cannot be stopped by Ctrl-C, SIGTERM or Thread#kill (qpid-proton's ruby.i
 * hit exactly that). So each core function that can wait on the network is
 * redirected, by a function-like macro defined below, to a trampoline that
 * runs it through rb_nogvl() with an unblocking function ("ubf") calling the
 * handle's wakeup (rx_conn_wakeup, rx_sub_wakeup, rx_queue_wakeup), which is
 * async-signal-safe. The list is the %thread list of reactis.i, at the level
 * of the core functions those methods call; the %extend bodies stay shared.
 *
 * When Ruby interrupts such a call (a signal for the main thread,
 * Thread#kill, Thread#raise, Timeout), the ubf wakes the core, which returns
 * RX_WOKEN; the trampoline reports it as RX_EINTR, and the shared %exception
 * then calls rb_thread_check_ints() (RXG_CHECK_SIGNALS), which runs trap
 * handlers, raises Interrupt or kills the thread, after the glue function
 * has finished, so nothing is left half done. A wakeup the application asked
 * for itself (Sub#wakeup) stays RX_WOKEN. rb_nogvl is called with
 * RB_NOGVL_INTR_FAIL, so Ruby never raises from inside it with a reply in
 * hand: interrupts are checked only where the glue can afford them.
 *
 * A signal can reach the core twice: poll() returns EINTR, and the ubf also
 * writes to the wakeup pipe. That byte then stays and cuts the handle's next
 * wait short (RX_WOKEN); the core has no call to clear it. The Ruby classes
 * take an RX_WOKEN they did not ask for as "look again" (Subscriber, Queue
 * fetches), run a queue or timer call that does not wait again on RX_WOKEN
 * or RX_EINTR (those come only before its command is written), and
 * Reactis::Client replaces a handle whose command was interrupted, since its
 * link is in an unknown state anyway.
 */

/* reactis.i marks the blocking methods with Python's %thread/%nothread,
 * which SWIG knows only for Python; here they are inert features, and the
 * GVL is released by the trampolines below instead. */
#define %nothread %feature("rxg_nothread")
#define %thread %feature("rxg_nothread", "0")

/* %import of reactis.h shows SWIG rx_allocator, never wrapped. */
%warnfilter(801) rx_allocator;

%{
#include <ruby/thread.h>

/* ------------------------------------------------------------ errors */

/* An exception instance for status `code` with message msg[0..len): built by
 * Reactis::Error.from_status(code, name, message) (lib/reactis/errors.rb),
 * which picks the subclass; RuntimeError when that is not loaded. The
 * message is copied into a Ruby string first: it may live in the
 * thread-local slot that Ruby code run by from_status could overwrite. */
static VALUE rxg_rb_error(int code, const char *msg, size_t len) {
  VALUE text = rb_utf8_str_new(msg, (long)len);
  VALUE name = rb_utf8_str_new_cstr(rx_errname(code));
  ID reactis = rb_intern("Reactis"), error = rb_intern("Error");
  ID from_status = rb_intern("from_status");
  if (rb_const_defined(rb_cObject, reactis)) {
    VALUE mod = rb_const_get(rb_cObject, reactis);
    if (RB_TYPE_P(mod, T_MODULE) && rb_const_defined_at(mod, error)) {
      VALUE cls = rb_const_get_at(mod, error);
      if (rb_respond_to(cls, from_status))
        return rb_funcall(cls, from_status, 3, INT2NUM(code), name, text);
    }
  }
  return rb_exc_new_str(rb_eRuntimeError,
                        rb_sprintf("%" PRIsVALUE " (%" PRIsVALUE ")", text, name));
}

static void rxg_rb_raise(int code, const char *msg) {
  rb_exc_raise(rxg_rb_error(code, msg, strlen(msg)));
}

#define RXG_RAISE(code, msg) rxg_rb_raise((code), (msg))
/* Runs the trap handlers of signals that interrupted the wait and acts on
 * Thread#kill/#raise; raises (longjmp) when one of them does, else 0. */
#define RXG_CHECK_SIGNALS() (rb_thread_check_ints(), 0)

/* ------------------------------------------------------------ strings */

static VALUE rxg_rb_bin(const char *p, size_t n) {
  return p ? rb_str_new(p, (long)n) : Qnil; /* rb_str_new: ASCII-8BIT */
}

/* The bytes of a String (or an object with to_str), pinned for the call: a
 * frozen string, so another thread that changes the original while this
 * one waits without the GVL makes itself a copy instead (copy on write). */
static VALUE rxg_rb_bytes_pin(VALUE v) {
  StringValue(v); /* TypeError for anything else */
  return rb_str_new_frozen(v);
}

/* Text without NUL (URLs, option names and values, flags): a private,
 * NUL-terminated copy. */
static VALUE rxg_rb_text_pin(VALUE v) {
  StringValue(v);
  if (memchr(RSTRING_PTR(v), '\0', (size_t)RSTRING_LEN(v)))
    rb_raise(rb_eArgError, "string contains null byte");
  return rb_str_new(RSTRING_PTR(v), RSTRING_LEN(v));
}

/* ------------------------------------------------------------ replies */

/* A reply tree as Ruby values: bulk string -> binary String, status ->
 * String (UTF-8), integer -> Integer, nil -> nil, array -> Array, error ->
 * a Reactis::ReplyError (subclass) instance, not raised: inside an array
 * (EXEC) it is one element. */
static VALUE rxg_rb_reply(const rx_reply *r) {
  if (!r) return Qnil;
  switch (r->type) {
  case RX_REPLY_STRING:
    return rb_str_new(r->str, (long)r->len);
  case RX_REPLY_STATUS:
    return rb_utf8_str_new(r->str, (long)r->len);
  case RX_REPLY_INTEGER:
    return LL2NUM(r->integer);
  case RX_REPLY_NIL:
    return Qnil;
  case RX_REPLY_ERROR:
    return rxg_rb_error(RX_EREPLY, r->str, r->len);
  case RX_REPLY_ARRAY: {
    VALUE a = rb_ary_new_capa((long)r->elements);
    for (size_t i = 0; i < r->elements; i++) rb_ary_push(a, rxg_rb_reply(r->element[i]));
    return a;
  }
  default:
    rb_raise(rb_eRuntimeError, "reactis: unknown reply type %d", r->type);
  }
  return Qnil;
}

static VALUE rxg_rb_reply_protected(VALUE r) { return rxg_rb_reply((const rx_reply *)r); }

/* Converts and frees a reply; the reply is freed also when the conversion
 * raises (then the exception goes on after the free). */
static VALUE rxg_rb_take_reply(rx_reply **rp) {
  rx_reply *r = *rp;
  int state = 0;
  *rp = NULL;
  if (!r) return Qnil;
  VALUE v = rb_protect(rxg_rb_reply_protected, (VALUE)r, &state);
  rx_reply_free(r);
  if (state) rb_jump_tag(state);
  return v;
}

/* [kind, pattern, channel, data, gap_start_ms, gap_end_ms, reconnects],
 * copying the borrowed strings. */
static VALUE rxg_rb_event(const rx_event *ev) {
  VALUE a = rb_ary_new_capa(7);
  rb_ary_push(a, INT2NUM(ev->kind));
  rb_ary_push(a, rxg_rb_bin(ev->pattern, ev->pattern_len));
  rb_ary_push(a, rxg_rb_bin(ev->channel, ev->channel_len));
  rb_ary_push(a, rxg_rb_bin(ev->data, ev->data_len));
  rb_ary_push(a, LL2NUM(ev->gap_start_ms));
  rb_ary_push(a, LL2NUM(ev->gap_end_ms));
  rb_ary_push(a, INT2NUM(ev->reconnects));
  return a;
}

/* ------------------------------------------------------------ the GVL */

/* One blocking core call, run without the GVL. `run` calls the core
 * function with the fields; `wake` is the handle's wakeup. */
typedef struct rxg_rb_call {
  int (*run)(struct rxg_rb_call *);
  void (*wake)(struct rxg_rb_call *);
  void *h;
  const void *p[3];
  size_t n[3];
  int i;
  long long ll;
  void *out[4];
  int rc;
  int ran;         /* the core function returned (atomic) */
  int ruby_woke;   /* the ubf woke the core (atomic) */
} rxg_rb_call;

static void *rxg_rb_nogvl_run(void *arg) {
  rxg_rb_call *c = (rxg_rb_call *)arg;
  c->rc = c->run(c);
  __atomic_store_n(&c->ran, 1, __ATOMIC_SEQ_CST);
  return NULL;
}

/* The unblocking function: called by Ruby from another thread, or from the
 * signal handler for the main thread (RB_NOGVL_UBF_ASYNC_SAFE), so it only
 * stores a flag and writes to the core's wakeup pipe. A call that has
 * already returned is not woken: its wakeup would stay in the pipe and cut
 * the handle's next wait short. */
static void rxg_rb_ubf(void *arg) {
  rxg_rb_call *c = (rxg_rb_call *)arg;
  if (__atomic_load_n(&c->ran, __ATOMIC_SEQ_CST)) return;
  __atomic_store_n(&c->ruby_woke, 1, __ATOMIC_SEQ_CST);
  c->wake(c);
}

/* Runs c without the GVL. Returns the core's status, except that a wakeup
 * by Ruby (the unblocking function) becomes RX_EINTR, which makes the
 * %exception check Ruby's interrupts. An interrupt already pending before
 * the call could start is handled first, and then the call runs. */
static int rxg_rb_blocking(rxg_rb_call *c) {
  for (;;) {
    c->rc = RX_EINTR;
    c->ran = 0;
    c->ruby_woke = 0;
    rb_nogvl(rxg_rb_nogvl_run, c, rxg_rb_ubf, c,
             RB_NOGVL_INTR_FAIL | RB_NOGVL_UBF_ASYNC_SAFE);
    if (__atomic_load_n(&c->ran, __ATOMIC_SEQ_CST)) break;
    /* Ruby had an interrupt pending, so the call did not run at all. It may
     * be only another thread's time slice: let Ruby handle it (this raises
     * for Thread#kill, Thread#raise and signal exceptions) and try again,
     * rather than report an interruption that did not happen. */
    rb_thread_check_ints();
  }
  if (c->rc == RX_WOKEN && __atomic_load_n(&c->ruby_woke, __ATOMIC_SEQ_CST))
    return RX_EINTR;
  return c->rc;
}

static void rxg_rb_wake_conn(rxg_rb_call *c) { rx_conn_wakeup((rx_conn *)c->h); }
static void rxg_rb_wake_sub(rxg_rb_call *c) { rx_sub_wakeup((rx_sub *)c->h); }
/* A queue waits on its waiter connection (rx_queue_wakeup). Its command
 * connection ignores wakeups while it reads a script's reply (that reply
 * must be read), so it is woken only when it is not connected: then the
 * call may be connecting, which a wakeup does cut short. */
static void rxg_rb_wake_queue(rxg_rb_call *c) {
  rx_queue *q = (rx_queue *)c->h;
  rx_queue_wakeup(q);
  if (!rx_conn_is_connected(rx_queue_conn(q))) rx_conn_wakeup(rx_queue_conn(q));
}

/* The trampolines. Each pair is defined before the macro that redirects the
 * core function's name to it, so its own call reaches the real function. */
#define RXG_RB_START(runfn, wakefn, handle)                                   \
  rxg_rb_call c;                                                              \
  memset(&c, 0, sizeof c);                                                    \
  c.run = (runfn);                                                            \
  c.wake = (wakefn);                                                          \
  c.h = (void *)(handle)

static int rxg_rb_run_conn_connect(rxg_rb_call *c) {
  return rx_conn_connect((rx_conn *)c->h);
}
static int rxg_rb_conn_connect(rx_conn *h) {
  RXG_RB_START(rxg_rb_run_conn_connect, rxg_rb_wake_conn, h);
  return rxg_rb_blocking(&c);
}

static int rxg_rb_run_conn_command(rxg_rb_call *c) {
  return rx_conn_command((rx_conn *)c->h, (rx_reply **)c->out[0], c->i,
                         (const char *const *)c->p[0], (const size_t *)c->p[1]);
}
static int rxg_rb_conn_command(rx_conn *h, rx_reply **reply, int argc,
                               const char *const *argv, const size_t *argvlen) {
  RXG_RB_START(rxg_rb_run_conn_command, rxg_rb_wake_conn, h);
  c.out[0] = reply;
  c.i = argc;
  c.p[0] = argv;
  c.p[1] = argvlen;
  return rxg_rb_blocking(&c);
}

static int rxg_rb_run_conn_call(rxg_rb_call *c) {
  return rx_conn_call((rx_conn *)c->h, (rx_reply **)c->out[0], c->i,
                      (const char *const *)c->p[0], (const size_t *)c->p[1]);
}
static int rxg_rb_conn_call(rx_conn *h, rx_reply **reply, int argc,
                            const char *const *argv, const size_t *argvlen) {
  RXG_RB_START(rxg_rb_run_conn_call, rxg_rb_wake_conn, h);
  c.out[0] = reply;
  c.i = argc;
  c.p[0] = argv;
  c.p[1] = argvlen;
  return rxg_rb_blocking(&c);
}

static int rxg_rb_run_conn_get_reply(rxg_rb_call *c) {
  return rx_conn_get_reply((rx_conn *)c->h, (rx_reply **)c->out[0]);
}
static int rxg_rb_conn_get_reply(rx_conn *h, rx_reply **reply) {
  RXG_RB_START(rxg_rb_run_conn_get_reply, rxg_rb_wake_conn, h);
  c.out[0] = reply;
  return rxg_rb_blocking(&c);
}

static int rxg_rb_run_conn_publish(rxg_rb_call *c) {
  return rx_conn_publish((rx_conn *)c->h, (const char *)c->p[0], c->n[0],
                         (const char *)c->p[1], c->n[1], (long long *)c->out[0]);
}
static int rxg_rb_conn_publish(rx_conn *h, const char *channel, size_t channel_len,
                               const char *message, size_t message_len,
                               long long *receivers) {
  RXG_RB_START(rxg_rb_run_conn_publish, rxg_rb_wake_conn, h);
  c.p[0] = channel;
  c.n[0] = channel_len;
  c.p[1] = message;
  c.n[1] = message_len;
  c.out[0] = receivers;
  return rxg_rb_blocking(&c);
}

static int rxg_rb_run_notify_ensure(rxg_rb_call *c) {
  return rx_notify_ensure((rx_conn *)c->h, (const char *)c->p[0], (char *)c->out[0],
                          c->n[0]);
}
static int rxg_rb_notify_ensure(rx_conn *h, const char *flags, char *effective,
                                size_t effective_len) {
  RXG_RB_START(rxg_rb_run_notify_ensure, rxg_rb_wake_conn, h);
  c.p[0] = flags;
  c.out[0] = effective;
  c.n[0] = effective_len;
  return rxg_rb_blocking(&c);
}

static int rxg_rb_run_sub_connect(rxg_rb_call *c) {
  return rx_sub_connect((rx_sub *)c->h);
}
static int rxg_rb_sub_connect(rx_sub *h) {
  RXG_RB_START(rxg_rb_run_sub_connect, rxg_rb_wake_sub, h);
  return rxg_rb_blocking(&c);
}

/* The six (un)subscribe calls share one shape: handle, bytes, length. */
#define RXG_RB_SUB_NAME_CALL(verb)                                            \
  static int rxg_rb_run_sub_##verb(rxg_rb_call *c) {                          \
    return rx_sub_##verb((rx_sub *)c->h, (const char *)c->p[0], c->n[0]);     \
  }                                                                           \
  static int rxg_rb_sub_##verb(rx_sub *h, const char *name, size_t len) {     \
    RXG_RB_START(rxg_rb_run_sub_##verb, rxg_rb_wake_sub, h);                  \
    c.p[0] = name;                                                            \
    c.n[0] = len;                                                             \
    return rxg_rb_blocking(&c);                                               \
  }
RXG_RB_SUB_NAME_CALL(subscribe)
RXG_RB_SUB_NAME_CALL(psubscribe)
RXG_RB_SUB_NAME_CALL(ssubscribe)
RXG_RB_SUB_NAME_CALL(unsubscribe)
RXG_RB_SUB_NAME_CALL(punsubscribe)
RXG_RB_SUB_NAME_CALL(sunsubscribe)

static int rxg_rb_run_sub_next(rxg_rb_call *c) {
  return rx_sub_next((rx_sub *)c->h, c->i, (rx_event *)c->out[0]);
}
static int rxg_rb_sub_next(rx_sub *h, int timeout_ms, rx_event *ev) {
  RXG_RB_START(rxg_rb_run_sub_next, rxg_rb_wake_sub, h);
  c.i = timeout_ms;
  c.out[0] = ev;
  return rxg_rb_blocking(&c);
}

static int rxg_rb_run_sub_next_batch(rxg_rb_call *c) {
  return rx_sub_next_batch((rx_sub *)c->h, c->i, (rx_event *)c->out[0], c->n[0],
                           (size_t *)c->out[1]);
}
static int rxg_rb_sub_next_batch(rx_sub *h, int timeout_ms, rx_event *evs, size_t max,
                                 size_t *n) {
  RXG_RB_START(rxg_rb_run_sub_next_batch, rxg_rb_wake_sub, h);
  c.i = timeout_ms;
  c.out[0] = evs;
  c.n[0] = max;
  c.out[1] = n;
  *n = 0;
  return rxg_rb_blocking(&c);
}

/* ---- the queue (queue.h) */

static int rxg_rb_run_queue_schedule(rxg_rb_call *c) {
  return rx_queue_schedule((rx_queue *)c->h, (const char *)c->p[0], c->n[0],
                           (const char *)c->p[1], c->n[1], c->ll, c->i,
                           (char *)c->out[0], c->n[2], (int *)c->out[1],
                           (long long *)c->out[2]);
}
static int rxg_rb_queue_schedule(rx_queue *h, const char *id, size_t id_len,
                                 const char *payload, size_t payload_len,
                                 long long when_ms, int flags, char *out_id,
                                 size_t out_id_len, int *outcome, long long *due_ms) {
  RXG_RB_START(rxg_rb_run_queue_schedule, rxg_rb_wake_queue, h);
  c.p[0] = id;
  c.n[0] = id_len;
  c.p[1] = payload;
  c.n[1] = payload_len;
  c.ll = when_ms;
  c.i = flags;
  c.out[0] = out_id;
  c.n[2] = out_id_len;
  c.out[1] = outcome;
  c.out[2] = due_ms;
  return rxg_rb_blocking(&c);
}

static int rxg_rb_run_queue_batch_send(rxg_rb_call *c) {
  return rx_queue_batch_send((rx_queue *)c->h);
}
static int rxg_rb_queue_batch_send(rx_queue *h) {
  RXG_RB_START(rxg_rb_run_queue_batch_send, rxg_rb_wake_queue, h);
  return rxg_rb_blocking(&c);
}

#define RXG_RB_QUEUE_ID_CALL(verb)                                            \
  static int rxg_rb_run_queue_##verb(rxg_rb_call *c) {                        \
    return rx_queue_##verb((rx_queue *)c->h, (const char *)c->p[0], c->n[0]); \
  }                                                                           \
  static int rxg_rb_queue_##verb(rx_queue *h, const char *id, size_t len) {   \
    RXG_RB_START(rxg_rb_run_queue_##verb, rxg_rb_wake_queue, h);              \
    c.p[0] = id;                                                              \
    c.n[0] = len;                                                             \
    return rxg_rb_blocking(&c);                                               \
  }
RXG_RB_QUEUE_ID_CALL(cancel)
RXG_RB_QUEUE_ID_CALL(run_now)

static int rxg_rb_run_queue_reschedule(rxg_rb_call *c) {
  return rx_queue_reschedule((rx_queue *)c->h, (const char *)c->p[0], c->n[0], c->ll,
                             c->i);
}
static int rxg_rb_queue_reschedule(rx_queue *h, const char *id, size_t len,
                                   long long when_ms, int flags) {
  RXG_RB_START(rxg_rb_run_queue_reschedule, rxg_rb_wake_queue, h);
  c.p[0] = id;
  c.n[0] = len;
  c.ll = when_ms;
  c.i = flags;
  return rxg_rb_blocking(&c);
}

static int rxg_rb_run_queue_fetch(rxg_rb_call *c) {
  return rx_queue_fetch((rx_queue *)c->h, c->n[0], c->i, (rx_job *)c->out[0],
                        (size_t *)c->out[1]);
}
static int rxg_rb_queue_fetch(rx_queue *h, size_t max, int timeout_ms, rx_job *jobs,
                              size_t *n) {
  RXG_RB_START(rxg_rb_run_queue_fetch, rxg_rb_wake_queue, h);
  c.n[0] = max;
  c.i = timeout_ms;
  c.out[0] = jobs;
  c.out[1] = n;
  if (n) *n = 0;
  return rxg_rb_blocking(&c);
}

static int rxg_rb_run_queue_ack_many_fetch(rxg_rb_call *c) {
  return rx_queue_ack_many_fetch((rx_queue *)c->h, (const char *)c->p[0], c->n[0],
                                 (size_t *)c->out[0], c->n[1], c->i, (rx_job *)c->out[1],
                                 (size_t *)c->out[2]);
}
static int rxg_rb_queue_ack_many_fetch(rx_queue *h, const char *tokens, size_t len,
                                       size_t *acked, size_t max, int timeout_ms, rx_job *jobs,
                                       size_t *n) {
  RXG_RB_START(rxg_rb_run_queue_ack_many_fetch, rxg_rb_wake_queue, h);
  c.p[0] = tokens;
  c.n[0] = len;
  c.n[1] = max;
  c.i = timeout_ms;
  c.out[0] = acked;
  c.out[1] = jobs;
  c.out[2] = n;
  if (acked) *acked = 0;
  if (n) *n = 0;
  return rxg_rb_blocking(&c);
}

static int rxg_rb_run_queue_ack(rxg_rb_call *c) {
  return rx_queue_ack((rx_queue *)c->h, (const char *)c->p[0]);
}
static int rxg_rb_queue_ack(rx_queue *h, const char *token) {
  RXG_RB_START(rxg_rb_run_queue_ack, rxg_rb_wake_queue, h);
  c.p[0] = token;
  return rxg_rb_blocking(&c);
}

static int rxg_rb_run_queue_ack_many(rxg_rb_call *c) {
  return rx_queue_ack_many((rx_queue *)c->h, (const char *)c->p[0], c->n[0],
                           (size_t *)c->out[0]);
}
static int rxg_rb_queue_ack_many(rx_queue *h, const char *tokens, size_t len,
                                 size_t *acked) {
  RXG_RB_START(rxg_rb_run_queue_ack_many, rxg_rb_wake_queue, h);
  c.p[0] = tokens;
  c.n[0] = len;
  c.out[0] = acked;
  return rxg_rb_blocking(&c);
}

static int rxg_rb_run_queue_retry(rxg_rb_call *c) {
  return rx_queue_retry((rx_queue *)c->h, (const char *)c->p[0], c->ll,
                        (const char *)c->p[1], c->n[1], (int *)c->out[0]);
}
static int rxg_rb_queue_retry(rx_queue *h, const char *token, long long delay_ms,
                              const char *error, size_t error_len, int *dead) {
  RXG_RB_START(rxg_rb_run_queue_retry, rxg_rb_wake_queue, h);
  c.p[0] = token;
  c.ll = delay_ms;
  c.p[1] = error;
  c.n[1] = error_len;
  c.out[0] = dead;
  return rxg_rb_blocking(&c);
}

static int rxg_rb_run_queue_fail(rxg_rb_call *c) {
  return rx_queue_fail((rx_queue *)c->h, (const char *)c->p[0], (const char *)c->p[1],
                       c->n[1]);
}
static int rxg_rb_queue_fail(rx_queue *h, const char *token, const char *error,
                             size_t error_len) {
  RXG_RB_START(rxg_rb_run_queue_fail, rxg_rb_wake_queue, h);
  c.p[0] = token;
  c.p[1] = error;
  c.n[1] = error_len;
  return rxg_rb_blocking(&c);
}

static int rxg_rb_run_queue_extend(rxg_rb_call *c) {
  return rx_queue_extend((rx_queue *)c->h, (const char *)c->p[0], c->ll);
}
static int rxg_rb_queue_extend(rx_queue *h, const char *token, long long ms) {
  RXG_RB_START(rxg_rb_run_queue_extend, rxg_rb_wake_queue, h);
  c.p[0] = token;
  c.ll = ms;
  return rxg_rb_blocking(&c);
}

static int rxg_rb_run_queue_dead_list(rxg_rb_call *c) {
  return rx_queue_dead_list((rx_queue *)c->h, (const char *)c->p[0], c->n[0],
                            (size_t *)c->out[0]);
}
static int rxg_rb_queue_dead_list(rx_queue *h, const char *after, size_t max, size_t *n) {
  RXG_RB_START(rxg_rb_run_queue_dead_list, rxg_rb_wake_queue, h);
  c.p[0] = after;
  c.n[0] = max;
  c.out[0] = n;
  if (n) *n = 0;
  return rxg_rb_blocking(&c);
}

static int rxg_rb_run_queue_dead_requeue(rxg_rb_call *c) {
  return rx_queue_dead_requeue((rx_queue *)c->h, (const char *)c->p[0], c->ll,
                               (size_t *)c->out[0]);
}
static int rxg_rb_queue_dead_requeue(rx_queue *h, const char *token, long long delay_ms,
                                     size_t *count) {
  RXG_RB_START(rxg_rb_run_queue_dead_requeue, rxg_rb_wake_queue, h);
  c.p[0] = token;
  c.ll = delay_ms;
  c.out[0] = count;
  return rxg_rb_blocking(&c);
}

static int rxg_rb_run_queue_dead_purge(rxg_rb_call *c) {
  return rx_queue_dead_purge((rx_queue *)c->h, (const char *)c->p[0],
                             (size_t *)c->out[0]);
}
static int rxg_rb_queue_dead_purge(rx_queue *h, const char *token, size_t *count) {
  RXG_RB_START(rxg_rb_run_queue_dead_purge, rxg_rb_wake_queue, h);
  c.p[0] = token;
  c.out[0] = count;
  return rxg_rb_blocking(&c);
}

static int rxg_rb_run_queue_stats_get(rxg_rb_call *c) {
  return rx_queue_stats_get((rx_queue *)c->h, (rx_queue_stats *)c->out[0]);
}
static int rxg_rb_queue_stats_get(rx_queue *h, rx_queue_stats *st) {
  RXG_RB_START(rxg_rb_run_queue_stats_get, rxg_rb_wake_queue, h);
  c.out[0] = st;
  return rxg_rb_blocking(&c);
}

/* Freeing a queue handle may remove its consumer from the group, a round
 * trip. Queue#close disposes of it through rb_nogvl with RUBY_UBF_IO (a
 * signal to the thread makes the core's poll() return EINTR: the handle's
 * own wakeup cannot be used on memory being freed). When the garbage
 * collector frees it instead, the GVL cannot be released: the timeouts are
 * cut short first, so a dead server stalls the collector for a moment only. */
static void *rxg_rb_nogvl_queue_free(void *q) {
  rx_queue_free((rx_queue *)q);
  return NULL;
}
static void rxg_rb_queue_free_in_gc(rx_queue *q) {
  if (!q) return;
  rx_queue_set(q, "timeout", "1");
  rx_queue_set(q, "connect_timeout", "1");
  rx_queue_free(q);
}

/* ---- timers, the expiry bridge and claims (timer.h) */

/* Timers wait on their queue: woken as a queue is (rxg_rb_wake_queue). */
static void rxg_rb_wake_timers(rxg_rb_call *c) {
  rxg_rb_call q = *c;
  q.h = rx_timers_queue((rx_timers *)c->h);
  rxg_rb_wake_queue(&q);
}

static int rxg_rb_run_timers_touch_ex(rxg_rb_call *c) {
  return rx_timers_touch_ex((rx_timers *)c->h, (const char *)c->p[0], c->n[0], c->ll, c->i,
                            (const char *)c->p[1], c->n[1], (int *)c->out[0],
                            (long long *)c->out[1]);
}
static int rxg_rb_timers_touch_ex(rx_timers *h, const char *id, size_t id_len, long long when_ms,
                                  int flags, const char *data, size_t data_len, int *armed,
                                  long long *due_ms) {
  RXG_RB_START(rxg_rb_run_timers_touch_ex, rxg_rb_wake_timers, h);
  c.p[0] = id;
  c.n[0] = id_len;
  c.ll = when_ms;
  c.i = flags;
  c.p[1] = data;
  c.n[1] = data_len;
  c.out[0] = armed;
  c.out[1] = due_ms;
  return rxg_rb_blocking(&c);
}

static int rxg_rb_run_timers_stop(rxg_rb_call *c) {
  return rx_timers_stop((rx_timers *)c->h, (const char *)c->p[0], c->n[0]);
}
static int rxg_rb_timers_stop(rx_timers *h, const char *id, size_t id_len) {
  RXG_RB_START(rxg_rb_run_timers_stop, rxg_rb_wake_timers, h);
  c.p[0] = id;
  c.n[0] = id_len;
  return rxg_rb_blocking(&c);
}

static int rxg_rb_run_timers_batch_send(rxg_rb_call *c) {
  return rx_timers_batch_send((rx_timers *)c->h);
}
static int rxg_rb_timers_batch_send(rx_timers *h) {
  RXG_RB_START(rxg_rb_run_timers_batch_send, rxg_rb_wake_timers, h);
  return rxg_rb_blocking(&c);
}

static int rxg_rb_run_timers_watch(rxg_rb_call *c) {
  return rx_timers_watch((rx_timers *)c->h, c->n[0], c->i, (rx_job *)c->out[0],
                         (size_t *)c->out[1]);
}
static int rxg_rb_timers_watch(rx_timers *h, size_t max, int timeout_ms, rx_job *jobs,
                               size_t *n) {
  RXG_RB_START(rxg_rb_run_timers_watch, rxg_rb_wake_timers, h);
  c.n[0] = max;
  c.i = timeout_ms;
  c.out[0] = jobs;
  c.out[1] = n;
  *n = 0;
  return rxg_rb_blocking(&c);
}

static int rxg_rb_run_timers_ack(rxg_rb_call *c) {
  return rx_timers_ack((rx_timers *)c->h, (const char *)c->p[0]);
}
static int rxg_rb_timers_ack(rx_timers *h, const char *token) {
  RXG_RB_START(rxg_rb_run_timers_ack, rxg_rb_wake_timers, h);
  c.p[0] = token;
  return rxg_rb_blocking(&c);
}

/* The bridge reads the shadow key on a connection: woken as it is. */
static int rxg_rb_run_bridge_take(rxg_rb_call *c) {
  return rx_bridge_take((rx_bridge *)c->out[1], (rx_conn *)c->h, (const char *)c->p[0], c->n[0],
                        (const char *)c->p[1], c->n[1], (rx_expiry *)c->out[0]);
}
static int rxg_rb_bridge_take(rx_bridge *b, rx_conn *h, const char *channel, size_t channel_len,
                              const char *message, size_t message_len, rx_expiry *out) {
  RXG_RB_START(rxg_rb_run_bridge_take, rxg_rb_wake_conn, h);
  c.out[1] = b;
  c.p[0] = channel;
  c.n[0] = channel_len;
  c.p[1] = message;
  c.n[1] = message_len;
  c.out[0] = out;
  memset(out, 0, sizeof *out);
  return rxg_rb_blocking(&c);
}

static int rxg_rb_run_claim_once(rxg_rb_call *c) {
  return rx_claim_once((rx_conn *)c->h, (const char *)c->p[0], c->n[0], (const char *)c->p[1],
                       c->n[1], c->ll, (int *)c->out[0]);
}
static int rxg_rb_claim_once(rx_conn *h, const char *name, size_t name_len, const char *id,
                             size_t id_len, long long ttl_ms, int *won) {
  RXG_RB_START(rxg_rb_run_claim_once, rxg_rb_wake_conn, h);
  c.p[0] = name;
  c.n[0] = name_len;
  c.p[1] = id;
  c.n[1] = id_len;
  c.ll = ttl_ms;
  c.out[0] = won;
  return rxg_rb_blocking(&c);
}

/* As for queues: freed without the GVL by dispose, with short timeouts by
 * the garbage collector. */
static void *rxg_rb_nogvl_timers_free(void *t) {
  rx_timers_free((rx_timers *)t);
  return NULL;
}
static void rxg_rb_timers_free_in_gc(rx_timers *t) {
  if (!t) return;
  rx_timers_set(t, "timeout", "1");
  rx_timers_set(t, "connect_timeout", "1");
  rx_timers_free(t);
}

/* From here on, the glue's calls of these names go through the GVL
 * trampolines above. */
#define rx_conn_connect(h) rxg_rb_conn_connect(h)
#define rx_conn_command(h, r, n, v, l) rxg_rb_conn_command(h, r, n, v, l)
#define rx_conn_call(h, r, n, v, l) rxg_rb_conn_call(h, r, n, v, l)
#define rx_conn_get_reply(h, r) rxg_rb_conn_get_reply(h, r)
#define rx_conn_publish(h, c, cl, m, ml, n) rxg_rb_conn_publish(h, c, cl, m, ml, n)
#define rx_notify_ensure(h, f, e, el) rxg_rb_notify_ensure(h, f, e, el)
#define rx_sub_connect(h) rxg_rb_sub_connect(h)
#define rx_sub_subscribe(h, p, n) rxg_rb_sub_subscribe(h, p, n)
#define rx_sub_psubscribe(h, p, n) rxg_rb_sub_psubscribe(h, p, n)
#define rx_sub_ssubscribe(h, p, n) rxg_rb_sub_ssubscribe(h, p, n)
#define rx_sub_unsubscribe(h, p, n) rxg_rb_sub_unsubscribe(h, p, n)
#define rx_sub_punsubscribe(h, p, n) rxg_rb_sub_punsubscribe(h, p, n)
#define rx_sub_sunsubscribe(h, p, n) rxg_rb_sub_sunsubscribe(h, p, n)
#define rx_sub_next(h, t, e) rxg_rb_sub_next(h, t, e)
#define rx_sub_next_batch(h, t, e, m, n) rxg_rb_sub_next_batch(h, t, e, m, n)
#define rx_queue_schedule(h, i, il, p, pl, w, f, o, ol, oc, d)                \
  rxg_rb_queue_schedule(h, i, il, p, pl, w, f, o, ol, oc, d)
#define rx_queue_batch_send(h) rxg_rb_queue_batch_send(h)
#define rx_queue_cancel(h, i, l) rxg_rb_queue_cancel(h, i, l)
#define rx_queue_run_now(h, i, l) rxg_rb_queue_run_now(h, i, l)
#define rx_queue_reschedule(h, i, l, w, f) rxg_rb_queue_reschedule(h, i, l, w, f)
#define rx_queue_fetch(h, m, t, j, n) rxg_rb_queue_fetch(h, m, t, j, n)
#define rx_queue_ack(h, t) rxg_rb_queue_ack(h, t)
#define rx_queue_ack_many(h, t, l, a) rxg_rb_queue_ack_many(h, t, l, a)
#define rx_queue_ack_many_fetch(h, t, l, a, m, ms, j, n)                      \
  rxg_rb_queue_ack_many_fetch(h, t, l, a, m, ms, j, n)
#define rx_queue_retry(h, t, d, e, el, x) rxg_rb_queue_retry(h, t, d, e, el, x)
#define rx_queue_fail(h, t, e, el) rxg_rb_queue_fail(h, t, e, el)
#define rx_queue_extend(h, t, ms) rxg_rb_queue_extend(h, t, ms)
#define rx_queue_dead_list(h, a, m, n) rxg_rb_queue_dead_list(h, a, m, n)
#define rx_queue_dead_requeue(h, t, d, n) rxg_rb_queue_dead_requeue(h, t, d, n)
#define rx_queue_dead_purge(h, t, n) rxg_rb_queue_dead_purge(h, t, n)
#define rx_queue_stats_get(h, s) rxg_rb_queue_stats_get(h, s)
/* The destructor of reactis.i runs from the garbage collector. */
#define rx_queue_free(h) rxg_rb_queue_free_in_gc(h)
#define rx_timers_touch_ex(h, i, il, w, f, d, dl, a, du)                        \
  rxg_rb_timers_touch_ex(h, i, il, w, f, d, dl, a, du)
#define rx_timers_stop(h, i, l) rxg_rb_timers_stop(h, i, l)
#define rx_timers_batch_send(h) rxg_rb_timers_batch_send(h)
#define rx_timers_watch(h, m, t, j, n) rxg_rb_timers_watch(h, m, t, j, n)
#define rx_timers_ack(h, t) rxg_rb_timers_ack(h, t)
#define rx_bridge_take(b, h, c, cl, m, ml, o) rxg_rb_bridge_take(b, h, c, cl, m, ml, o)
#define rx_claim_once(h, n, nl, i, il, t, w) rxg_rb_claim_once(h, n, nl, i, il, t, w)
#define rx_timers_free(h) rxg_rb_timers_free_in_gc(h)

/* ------------------------------------------------------------ disposal */

static VALUE rxg_rb_cimpl_class(const char *name) {
  VALUE mod = rb_const_get(rb_const_get(rb_cObject, rb_intern("Reactis")), rb_intern("Cimpl"));
  return rb_const_get_at(mod, rb_intern(name));
}
%}

%rename("disposed?") disposed;
%inline %{
/* Frees the C handle of a Conn, Sub or Queue now, instead of when the
 * garbage collector finds the object (Client#close, Subscriber#close,
 * Queue#close). The object's pointer becomes NULL, so the collector's free
 * function and any later method see a released object. The Ruby classes call
 * it only when no thread is inside a call on the handle. A queue is freed
 * without the GVL (it may remove its consumer from the group, a round trip);
 * RUBY_UBF_IO interrupts that with a signal to the thread, since the
 * handle's own wakeup cannot be used on memory being freed. */
static void dispose(VALUE obj) {
  if (!RB_TYPE_P(obj, T_DATA))
    rb_raise(rb_eTypeError, "expected a Reactis::Cimpl handle");
  void *h = DATA_PTR(obj);
  if (rb_obj_is_kind_of(obj, rxg_rb_cimpl_class("Conn"))) {
    DATA_PTR(obj) = NULL;
    rx_conn_free((rx_conn *)h);
  } else if (rb_obj_is_kind_of(obj, rxg_rb_cimpl_class("Sub"))) {
    DATA_PTR(obj) = NULL;
    rx_sub_free((rx_sub *)h);
  } else if (rb_obj_is_kind_of(obj, rxg_rb_cimpl_class("Queue"))) {
    DATA_PTR(obj) = NULL;
    if (h) rb_nogvl(rxg_rb_nogvl_queue_free, h, RUBY_UBF_IO, NULL, 0);
  } else if (rb_obj_is_kind_of(obj, rxg_rb_cimpl_class("Timers"))) {
    DATA_PTR(obj) = NULL;
    if (h) rb_nogvl(rxg_rb_nogvl_timers_free, h, RUBY_UBF_IO, NULL, 0);
  } else {
    rb_raise(rb_eTypeError, "expected a Reactis::Cimpl handle");
  }
}

/* True once dispose freed the handle. */
static bool disposed(VALUE obj) {
  return !RB_TYPE_P(obj, T_DATA) || DATA_PTR(obj) == NULL;
}
%}

/* ------------------------------------------------------------ draining */

%{
#include <ruby/encoding.h>

static ID rxg_rb_id_kind, rxg_rb_id_pattern, rxg_rb_id_channel, rxg_rb_id_data;
static VALUE rxg_rb_sym_pmessage, rxg_rb_sym_smessage;

/* A frozen String of the bytes, binary or in encoding enc (NULL: binary).
 * The string is new, so it has no singleton class to freeze as well:
 * setting the flag is all rb_obj_freeze would do that matters. */
static VALUE rxg_rb_frozen(const char *p, size_t n, rb_encoding *enc) {
  VALUE s = enc ? rb_enc_str_new(p, (long)n, enc) : rb_str_new(p, (long)n);
  RB_OBJ_FREEZE_RAW(s);
  return s;
}

/* The frozen String in cache[slot] when it holds these bytes in encoding
 * index encidx, else a new one, kept there for the next message. A backlog
 * is mostly one channel (and one pattern): sharing one frozen String saves
 * an allocation per message, and frozen Strings cannot tell the difference. */
static VALUE rxg_rb_cached(VALUE cache, long slot, const char *p, size_t n, rb_encoding *enc,
                           int encidx) {
  VALUE s = RARRAY_AREF(cache, slot);
  if (RB_TYPE_P(s, T_STRING) && (size_t)RSTRING_LEN(s) == n && ENCODING_GET(s) == encidx &&
      memcmp(RSTRING_PTR(s), p, n) == 0)
    return s;
  s = rxg_rb_frozen(p, n, enc);
  rb_ary_store(cache, slot, s);
  return s;
}
%}

%init %{
  rxg_rb_id_kind = rb_intern("@kind");
  rxg_rb_id_pattern = rb_intern("@pattern");
  rxg_rb_id_channel = rb_intern("@channel");
  rxg_rb_id_data = rb_intern("@data");
  rxg_rb_sym_pmessage = ID2SYM(rb_intern("pmessage"));
  rxg_rb_sym_smessage = ID2SYM(rb_intern("smessage"));
%}

%inline %{
/* The drain of Reactis::Subscriber: one call without the GVL reads up to
 * max events (what is buffered, or waits up to timeout_ms for the first),
 * and the Ruby objects are made here, so no Ruby code runs per message.
 * Strings are frozen, binary or in encoding enc (an Encoding, or nil);
 * channels and patterns come from cache (an Array of two slots the caller
 * keeps between calls; see rxg_rb_cached).
 *
 * Each message becomes an instance of klass (Reactis::Message) with only
 * the instance variables it needs (@channel and @data; @kind and @pattern
 * when not :message). Any other event (a gap) is the event Array of
 * next_batch ([kind, pattern, channel, data, gap_start_ms, gap_end_ms,
 * reconnects]), for the Ruby side to turn into a Message and log.
 *
 * Returns [status, events, number of such Arrays]; events is a new Array,
 * empty unless the status is OK. A new Array is young, so filling it costs
 * no write barrier work, where appending to a long-lived one did. */
static VALUE sub_drain(VALUE sub, int timeout_ms, long max, VALUE klass, VALUE enc,
                       VALUE cache) {
  if (!RB_TYPE_P(sub, T_DATA) || !rb_obj_is_kind_of(sub, rxg_rb_cimpl_class("Sub")))
    rb_raise(rb_eTypeError, "expected a Reactis::Cimpl::Sub");
  rx_sub *h = (rx_sub *)DATA_PTR(sub);
  if (!h) rb_raise(rb_eRuntimeError, "This Reactis::Cimpl::Sub has been freed");
  if (!RB_TYPE_P(klass, T_CLASS) || FL_TEST(klass, FL_SINGLETON))
    rb_raise(rb_eTypeError, "expected a Class");
  /* The allocator looked up once, not per message as rb_obj_alloc does
   * (it walks the ancestors each time): klass is a plain class, checked
   * here, so calling it is what rb_obj_alloc would do. */
  rb_alloc_func_t alloc = rb_get_alloc_func(klass);
  if (!alloc) rb_raise(rb_eTypeError, "allocator undefined for %" PRIsVALUE, klass);
  Check_Type(cache, T_ARRAY);
  rb_check_frozen(cache);
  if (RARRAY_LEN(cache) < 2) rb_raise(rb_eArgError, "the cache needs two slots");
  if (max < 1 || max > 65536) rb_raise(rb_eArgError, "max_events must be 1..65536");
  rb_encoding *e = NIL_P(enc) ? NULL : rb_to_encoding(enc);
  int encidx = e ? rb_enc_to_index(e) : rb_ascii8bit_encindex();
  VALUE tmpbuf = 0;
  /* Not cleared: the core fills every field of the events it returns. */
  rx_event *evs = ALLOCV_N(rx_event, tmpbuf, max);
  size_t n = 0;
  int rc = rx_sub_next_batch(h, timeout_ms, evs, (size_t)max, &n);
  long others = 0;
  VALUE out;
  if (rc == RX_OK) {
    out = rb_ary_new_capa((long)n);
    for (size_t i = 0; i < n; i++) {
      const rx_event *ev = &evs[i];
      if ((ev->kind != RX_EV_MESSAGE && ev->kind != RX_EV_PMESSAGE &&
           ev->kind != RX_EV_SMESSAGE) || !ev->channel) {
        rb_ary_push(out, rxg_rb_event(ev)); /* a gap */
        others++;
        continue;
      }
      VALUE ch = rxg_rb_cached(cache, 0, ev->channel, ev->channel_len, e, encidx);
      VALUE data = rxg_rb_frozen(ev->data ? ev->data : "", ev->data_len, e);
      VALUE m = alloc(klass);
      rb_ivar_set(m, rxg_rb_id_channel, ch);
      rb_ivar_set(m, rxg_rb_id_data, data);
      if (ev->kind == RX_EV_PMESSAGE) {
        rb_ivar_set(m, rxg_rb_id_kind, rxg_rb_sym_pmessage);
        if (ev->pattern)
          rb_ivar_set(m, rxg_rb_id_pattern,
                      rxg_rb_cached(cache, 1, ev->pattern, ev->pattern_len, e, encidx));
      } else if (ev->kind == RX_EV_SMESSAGE) {
        rb_ivar_set(m, rxg_rb_id_kind, rxg_rb_sym_smessage);
      }
      rb_ary_push(out, m);
    }
  } else {
    out = rb_ary_new();
  }
  ALLOCV_END(tmpbuf);
  /* What the shared %exception does (it does not cover the functions of
   * this file, which come before it): raise an error status, run Ruby's
   * interrupts on RX_EINTR. */
  rxg_note_sub(h, rc);
  if (rxg_last.code < 0) RXG_RAISE(rxg_last.code, rxg_last.msg);
  if (rc == RX_EINTR) (void)RXG_CHECK_SIGNALS();
  VALUE res = rb_ary_new_capa(3);
  rb_ary_push(res, INT2NUM(rc));
  rb_ary_push(res, out);
  rb_ary_push(res, LONG2NUM(others));
  return res;
}
%}

/* ------------------------------------------------------------ text out */

/* Text the library makes (version, messages, redacted URLs) as UTF-8. */
%typemap(out) const char *, char * {
  $result = $1 ? rb_utf8_str_new_cstr((const char *)$1) : Qnil;
}

/* ------------------------------------------------------------ bytes in */

%typemap(in) (const char *RX_BYTES, size_t RX_LEN) (VALUE pin = Qnil) {
  pin = rxg_rb_bytes_pin($input);
  $1 = ($1_ltype)RSTRING_PTR(pin);
  $2 = (size_t)RSTRING_LEN(pin);
}
%typemap(freearg) (const char *RX_BYTES, size_t RX_LEN) "RB_GC_GUARD(pin$argnum);"

%typemap(in) (const char *RX_BYTES_OR_NONE, size_t RX_LEN) (VALUE pin = Qnil) {
  if (NIL_P($input)) {
    $1 = NULL;
    $2 = 0;
  } else {
    pin = rxg_rb_bytes_pin($input);
    $1 = ($1_ltype)RSTRING_PTR(pin);
    $2 = (size_t)RSTRING_LEN(pin);
  }
}
%typemap(freearg) (const char *RX_BYTES_OR_NONE, size_t RX_LEN) "RB_GC_GUARD(pin$argnum);"

/* ------------------------------------------------------------ text in */

%typemap(in) const char *RX_TEXT (VALUE pin = Qnil) {
  pin = rxg_rb_text_pin($input);
  $1 = ($1_ltype)RSTRING_PTR(pin);
}
%typemap(freearg) const char *RX_TEXT "RB_GC_GUARD(pin$argnum);"

/* ------------------------------------------------------------ argv in */

/* An Array of Strings (Reactis::Client turns numbers and symbols into
 * text before). The arguments are copied into one buffer owned by Ruby
 * (ALLOCV), so nothing another thread does to the strings while this one
 * waits without the GVL can reach the core, and nothing leaks on a raise. */
%typemap(in) (int RX_ARGC, const char *const *RX_ARGV, const size_t *RX_ARGVLEN)
    (VALUE tmpbuf = 0) {
  VALUE ary = $input;
  if (!RB_TYPE_P(ary, T_ARRAY))
    rb_raise(rb_eTypeError, "expected an Array of command arguments, not %" PRIsVALUE,
             rb_obj_class(ary));
  long n = RARRAY_LEN(ary);
  if (n == 0) rb_raise(rb_eArgError, "a command needs at least one argument");
  if (n > INT_MAX / 2) rb_raise(rb_eRangeError, "too many command arguments");
  size_t total = 0;
  for (long i = 0; i < n; i++) {
    VALUE s = RARRAY_AREF(ary, i);
    if (!RB_TYPE_P(s, T_STRING))
      rb_raise(rb_eTypeError, "command argument %ld: expected a String, not %" PRIsVALUE,
               i, rb_obj_class(s));
    total += (size_t)RSTRING_LEN(s) + 1;
  }
  size_t head = (size_t)n * (sizeof(char *) + sizeof(size_t));
  char *mem = (char *)ALLOCV(tmpbuf, head + total);
  const char **ptrs = (const char **)mem;
  size_t *lens = (size_t *)(mem + (size_t)n * sizeof(char *));
  char *bytes = mem + head;
  for (long i = 0; i < n; i++) {
    VALUE s = RARRAY_AREF(ary, i);
    size_t len = (size_t)RSTRING_LEN(s);
    if (bytes + len + 1 > mem + head + total) /* the Array changed meanwhile */
      rb_raise(rb_eRuntimeError, "command arguments changed during the call");
    memcpy(bytes, RSTRING_PTR(s), len);
    bytes[len] = '\0';
    ptrs[i] = bytes;
    lens[i] = len;
    bytes += len + 1;
  }
  $1 = (int)n;
  $2 = ($2_ltype)ptrs;
  $3 = ($3_ltype)lens;
}
%typemap(freearg) (int RX_ARGC, const char *const *RX_ARGV, const size_t *RX_ARGVLEN) {
  RB_GC_GUARD(tmpbuf$argnum);
  ALLOCV_END(tmpbuf$argnum);
}

/* ------------------------------------------------------------ results out */

%typemap(in, numinputs=0) rx_reply **RX_REPLY_OUT (rx_reply *tmp = NULL) {
  $1 = &tmp;
}
%typemap(argout) rx_reply **RX_REPLY_OUT {
  $result = SWIG_Ruby_AppendOutput($result, rxg_rb_take_reply(&tmp$argnum));
}
/* A reply that argout did not take (a raise before it) is freed here; the
 * core hands out no reply with an error status, so a raise leaks nothing. */
%typemap(freearg) rx_reply **RX_REPLY_OUT {
  rx_reply_free(tmp$argnum);
}

%typemap(in, numinputs=0) rx_event *RX_EVENT_OUT (rx_event tmp) {
  $1 = &tmp;
}
%typemap(argout) rx_event *RX_EVENT_OUT {
  $result = SWIG_Ruby_AppendOutput($result, result == RX_OK ? rxg_rb_event($1) : Qnil);
}

%typemap(in) (rx_event *RX_EVENTS_OUT, size_t RX_MAX, size_t *RX_N_OUT)
    (VALUE tmpbuf = 0, size_t nev = 0) {
  long max = NUM2LONG($input);
  if (max < 1 || max > 65536) rb_raise(rb_eArgError, "max_events must be 1..65536");
  $1 = ALLOCV_N(rx_event, tmpbuf, max);
  memset($1, 0, (size_t)max * sizeof(rx_event));
  $2 = (size_t)max;
  $3 = &nev;
}
%typemap(argout) (rx_event *RX_EVENTS_OUT, size_t RX_MAX, size_t *RX_N_OUT) {
  VALUE list = rb_ary_new_capa(result == RX_OK ? (long)nev$argnum : 0);
  for (size_t i = 0; result == RX_OK && i < nev$argnum; i++)
    rb_ary_push(list, rxg_rb_event(&$1[i]));
  $result = SWIG_Ruby_AppendOutput($result, list);
}
%typemap(freearg) (rx_event *RX_EVENTS_OUT, size_t RX_MAX, size_t *RX_N_OUT) {
  RB_GC_GUARD(tmpbuf$argnum);
  ALLOCV_END(tmpbuf$argnum);
}

/* A parsed notification replaces the status as the result: [space, db,
 * type, event, key] with binary strings, or nil. */
%typemap(in, numinputs=0) rx_key_event *RX_KEY_EVENT_OUT (rx_key_event tmp) {
  memset(&tmp, 0, sizeof tmp);
  $1 = &tmp;
}
%typemap(argout) rx_key_event *RX_KEY_EVENT_OUT {
  if (result == RX_OK) {
    VALUE a = rb_ary_new_capa(5);
    rb_ary_push(a, INT2NUM($1->space));
    rb_ary_push(a, INT2NUM($1->db));
    rb_ary_push(a, INT2NUM($1->type));
    rb_ary_push(a, rxg_rb_bin($1->event, $1->event_len));
    rb_ary_push(a, rxg_rb_bin($1->key, $1->key_len));
    $result = a;
  } else {
    $result = Qnil;
  }
}

%typemap(in, numinputs=0) long long *RX_LL_OUT (long long tmp = 0) {
  $1 = &tmp;
}
%typemap(argout) long long *RX_LL_OUT {
  $result = SWIG_Ruby_AppendOutput($result, LL2NUM(*$1));
}

%typemap(in, numinputs=0) int *RX_INT_OUT (int tmp = 0) {
  $1 = &tmp;
}
%typemap(argout) int *RX_INT_OUT {
  $result = SWIG_Ruby_AppendOutput($result, INT2NUM(*$1));
}

%typemap(in, numinputs=0) size_t *RX_SIZE_OUT (size_t tmp = 0) {
  $1 = &tmp;
}
%typemap(argout) size_t *RX_SIZE_OUT {
  $result = SWIG_Ruby_AppendOutput($result, SIZET2NUM(*$1));
}

/* ------------------------------------------------------------ queue */

/* Tokens and "after" cursors: text, or nil for "none"/"all". */
%typemap(in) const char *RX_TEXT_OR_NONE (VALUE pin = Qnil) {
  if (NIL_P($input)) {
    $1 = NULL;
  } else {
    pin = rxg_rb_text_pin($input);
    $1 = ($1_ltype)RSTRING_PTR(pin);
  }
}
%typemap(freearg) const char *RX_TEXT_OR_NONE "RB_GC_GUARD(pin$argnum);"

%typemap(in, numinputs=0) (char *RX_CSTR_OUT, size_t RX_CSTR_OUT_LEN)
    (char buf[RX_QUEUE_ID_MAX + 1]) {
  buf[0] = '\0';
  $1 = buf;
  $2 = sizeof buf;
}
%typemap(argout) (char *RX_CSTR_OUT, size_t RX_CSTR_OUT_LEN) {
  $result = SWIG_Ruby_AppendOutput($result, rb_str_new_cstr(buf$argnum));
}

%typemap(in, numinputs=0) (const char **RX_BYTES_OUT, size_t *RX_BYTES_OUT_LEN)
    (const char *p = NULL, size_t n = 0) {
  $1 = ($1_ltype)&p;
  $2 = &n;
}
%typemap(argout) (const char **RX_BYTES_OUT, size_t *RX_BYTES_OUT_LEN) {
  $result = SWIG_Ruby_AppendOutput($result, rxg_rb_bin(p$argnum, n$argnum));
}

%{
/* [id, payload, attempt, failures, crashes, due_ms, enqueued_ms,
 * delivered_ms, error, token], copying the borrowed strings. */
static VALUE rxg_rb_job(const rx_job *j) {
  VALUE a = rb_ary_new_capa(10);
  rb_ary_push(a, rxg_rb_bin(j->id, j->id_len));
  rb_ary_push(a, rxg_rb_bin(j->payload ? j->payload : "", j->payload_len));
  rb_ary_push(a, INT2NUM(j->attempt));
  rb_ary_push(a, INT2NUM(j->failures));
  rb_ary_push(a, INT2NUM(j->crashes));
  rb_ary_push(a, LL2NUM(j->due_ms));
  rb_ary_push(a, LL2NUM(j->enqueued_ms));
  rb_ary_push(a, LL2NUM(j->delivered_ms));
  rb_ary_push(a, rxg_rb_bin(j->error ? j->error : "", j->error ? j->error_len : 0));
  rb_ary_push(a, rb_utf8_str_new_cstr(j->token));
  return a;
}
%}

%typemap(in) (rx_job *RX_JOBS_OUT, size_t RX_MAX, size_t *RX_N_OUT)
    (VALUE tmpbuf = 0, size_t njobs = 0) {
  long max = NUM2LONG($input);
  if (max < 1 || max > 1000) rb_raise(rb_eArgError, "the number of jobs must be 1..1000");
  $1 = ALLOCV_N(rx_job, tmpbuf, max);
  memset($1, 0, (size_t)max * sizeof(rx_job));
  $2 = (size_t)max;
  $3 = &njobs;
}
%typemap(argout) (rx_job *RX_JOBS_OUT, size_t RX_MAX, size_t *RX_N_OUT) {
  VALUE list = rb_ary_new_capa(result == RX_OK ? (long)njobs$argnum : 0);
  for (size_t i = 0; result == RX_OK && i < njobs$argnum; i++)
    rb_ary_push(list, rxg_rb_job(&$1[i]));
  $result = SWIG_Ruby_AppendOutput($result, list);
}
%typemap(freearg) (rx_job *RX_JOBS_OUT, size_t RX_MAX, size_t *RX_N_OUT) {
  RB_GC_GUARD(tmpbuf$argnum);
  ALLOCV_END(tmpbuf$argnum);
}

/* The counters as a Hash with Symbol keys. */
%typemap(in, numinputs=0) rx_queue_stats *RX_STATS_OUT (rx_queue_stats tmp) {
  memset(&tmp, 0, sizeof tmp);
  $1 = &tmp;
}
%typemap(argout) rx_queue_stats *RX_STATS_OUT {
  VALUE h = rb_hash_new();
#define RXG_RB_STAT(f) rb_hash_aset(h, ID2SYM(rb_intern(#f)), LL2NUM($1->f))
  RXG_RB_STAT(scheduled);
  RXG_RB_STAT(ready);
  RXG_RB_STAT(in_flight);
  RXG_RB_STAT(dead);
  RXG_RB_STAT(lag_ms);
  RXG_RB_STAT(consumers);
  RXG_RB_STAT(next_due_ms);
  RXG_RB_STAT(now_ms);
  RXG_RB_STAT(acked);
  RXG_RB_STAT(failures);
  RXG_RB_STAT(crashes);
  RXG_RB_STAT(dead_total);
#undef RXG_RB_STAT
  $result = SWIG_Ruby_AppendOutput($result, h);
}

/* ------------------------------------------------------------ templates */

/* Captures of a template match: the input is the most to return (1..65536);
 * the output an Array of binary Strings, or nil unless the status is OK. */
%typemap(in) (rx_capture *RX_CAPS_OUT, size_t RX_MAX, size_t *RX_N_OUT)
    (VALUE tmpbuf = 0, size_t ncaps = 0) {
  long max = NUM2LONG($input);
  if (max < 1 || max > 65536) rb_raise(rb_eArgError, "the number of captures must be 1..65536");
  $1 = ALLOCV_N(rx_capture, tmpbuf, max);
  memset($1, 0, (size_t)max * sizeof(rx_capture));
  $2 = (size_t)max;
  $3 = &ncaps;
}
%typemap(argout) (rx_capture *RX_CAPS_OUT, size_t RX_MAX, size_t *RX_N_OUT) {
  VALUE o = Qnil;
  if (result == RX_OK) {
    o = rb_ary_new_capa((long)ncaps$argnum);
    for (size_t i = 0; i < ncaps$argnum; i++) rb_ary_push(o, rxg_rb_bin($1[i].ptr, $1[i].len));
  }
  $result = SWIG_Ruby_AppendOutput($result, o);
}
%typemap(freearg) (rx_capture *RX_CAPS_OUT, size_t RX_MAX, size_t *RX_N_OUT) {
  RB_GC_GUARD(tmpbuf$argnum);
  ALLOCV_END(tmpbuf$argnum);
}

/* Bytes the core allocated for the caller (rx_free): copied, then freed. */
%typemap(in, numinputs=0) (char **RX_OWNED_OUT, size_t *RX_OWNED_OUT_LEN)
    (char *p = NULL, size_t n = 0) {
  $1 = &p;
  $2 = &n;
}
%typemap(argout) (char **RX_OWNED_OUT, size_t *RX_OWNED_OUT_LEN) {
  char *owned = p$argnum;
  p$argnum = NULL;
  VALUE o = owned ? rb_str_new(owned, (long)n$argnum) : Qnil;
  rx_free(owned);
  $result = SWIG_Ruby_AppendOutput($result, o);
}
%typemap(freearg) (char **RX_OWNED_OUT, size_t *RX_OWNED_OUT_LEN) {
  rx_free(p$argnum);
}

/* ================================================================ cluster
 * Redis Cluster (cluster.h): the GVL trampolines of the rx_cluster calls
 * that wait on the network, the node-list typemap and disposal. Kept in one
 * section of its own, after everything else, as the rest of this file does
 * for the other handles: the ubf is rx_cluster_wakeup, which wakes whichever
 * node connection the call waits on (they share one wakeup pipe). */

%{
static void rxg_rb_wake_cluster(rxg_rb_call *c) { rx_cluster_wakeup((rx_cluster *)c->h); }

static int rxg_rb_run_cluster_refresh(rxg_rb_call *c) {
  return rx_cluster_refresh((rx_cluster *)c->h);
}
static int rxg_rb_cluster_refresh(rx_cluster *h) {
  RXG_RB_START(rxg_rb_run_cluster_refresh, rxg_rb_wake_cluster, h);
  return rxg_rb_blocking(&c);
}

static int rxg_rb_run_cluster_command(rxg_rb_call *c) {
  return rx_cluster_command((rx_cluster *)c->h, (rx_reply **)c->out[0], c->i,
                            (const char *const *)c->p[0], (const size_t *)c->p[1]);
}
static int rxg_rb_cluster_command(rx_cluster *h, rx_reply **reply, int argc,
                                  const char *const *argv, const size_t *argvlen) {
  RXG_RB_START(rxg_rb_run_cluster_command, rxg_rb_wake_cluster, h);
  c.out[0] = reply;
  c.i = argc;
  c.p[0] = argv;
  c.p[1] = argvlen;
  return rxg_rb_blocking(&c);
}

static int rxg_rb_run_cluster_call(rxg_rb_call *c) {
  return rx_cluster_call((rx_cluster *)c->h, (rx_reply **)c->out[0], c->i,
                         (const char *const *)c->p[0], (const size_t *)c->p[1]);
}
static int rxg_rb_cluster_call(rx_cluster *h, rx_reply **reply, int argc,
                               const char *const *argv, const size_t *argvlen) {
  RXG_RB_START(rxg_rb_run_cluster_call, rxg_rb_wake_cluster, h);
  c.out[0] = reply;
  c.i = argc;
  c.p[0] = argv;
  c.p[1] = argvlen;
  return rxg_rb_blocking(&c);
}

/* rx_cluster_nodes returns a count, not a status: a wakeup by Ruby shows
 * as 0 nodes with rx_cluster_err() RX_WOKEN, which the glue turns into
 * Interrupted (Ruby then acts on its pending interrupt at its next check).
 * So the trampoline returns the count as it is, never the RX_WOKEN ->
 * RX_EINTR translation of rxg_rb_blocking, which would misread 2 nodes. */
static int rxg_rb_run_cluster_nodes(rxg_rb_call *c) {
  return rx_cluster_nodes((rx_cluster *)c->h, c->i, (rx_cluster_node *)c->out[0], c->n[0]);
}
static int rxg_rb_cluster_nodes(rx_cluster *h, int which, rx_cluster_node *out, size_t max) {
  RXG_RB_START(rxg_rb_run_cluster_nodes, rxg_rb_wake_cluster, h);
  c.i = which;
  c.out[0] = out;
  c.n[0] = max;
  rxg_rb_blocking(&c);
  return c.rc;
}

static int rxg_rb_run_cluster_notify_ensure(rxg_rb_call *c) {
  return rx_cluster_notify_ensure((rx_cluster *)c->h, (const char *)c->p[0], (char *)c->out[0],
                                  c->n[0]);
}
static int rxg_rb_cluster_notify_ensure(rx_cluster *h, const char *flags, char *effective,
                                        size_t effective_len) {
  RXG_RB_START(rxg_rb_run_cluster_notify_ensure, rxg_rb_wake_cluster, h);
  c.p[0] = flags;
  c.out[0] = effective;
  c.n[0] = effective_len;
  return rxg_rb_blocking(&c);
}

#define rx_cluster_refresh(h) rxg_rb_cluster_refresh(h)
#define rx_cluster_command(h, r, n, v, l) rxg_rb_cluster_command(h, r, n, v, l)
#define rx_cluster_call(h, r, n, v, l) rxg_rb_cluster_call(h, r, n, v, l)
#define rx_cluster_nodes(h, w, o, m) rxg_rb_cluster_nodes(h, w, o, m)
#define rx_cluster_notify_ensure(h, f, e, el) rxg_rb_cluster_notify_ensure(h, f, e, el)

/* [host, port, id, is_master, failed, [[first, last], ...]] of one node,
 * copying the borrowed strings and ranges. */
static VALUE rxg_rb_node(const rx_cluster_node *n) {
  VALUE ranges = rb_ary_new_capa((long)n->range_count);
  for (size_t i = 0; i < n->range_count; i++)
    rb_ary_push(ranges, rb_assoc_new(INT2NUM(n->ranges[2 * i]), INT2NUM(n->ranges[2 * i + 1])));
  VALUE a = rb_ary_new_capa(6);
  rb_ary_push(a, rb_utf8_str_new_cstr(n->host ? n->host : ""));
  rb_ary_push(a, INT2NUM(n->port));
  rb_ary_push(a, rb_utf8_str_new_cstr(n->id ? n->id : ""));
  rb_ary_push(a, n->is_master ? Qtrue : Qfalse);
  rb_ary_push(a, n->failed ? Qtrue : Qfalse);
  rb_ary_push(a, ranges);
  return a;
}
%}

/* The input is the most nodes to return (1..65536); the output an Array
 * of node Arrays. */
%typemap(in) (rx_cluster_node *RX_NODES_OUT, size_t RX_MAX, size_t *RX_N_OUT)
    (VALUE tmpbuf = 0, size_t nnodes = 0) {
  long max = NUM2LONG($input);
  if (max < 1 || max > 65536) rb_raise(rb_eArgError, "the number of nodes must be 1..65536");
  $1 = ALLOCV_N(rx_cluster_node, tmpbuf, max);
  memset($1, 0, (size_t)max * sizeof(rx_cluster_node));
  $2 = (size_t)max;
  $3 = &nnodes;
}
%typemap(argout) (rx_cluster_node *RX_NODES_OUT, size_t RX_MAX, size_t *RX_N_OUT) {
  VALUE list = rb_ary_new_capa((long)nnodes$argnum);
  for (size_t i = 0; i < nnodes$argnum; i++) rb_ary_push(list, rxg_rb_node(&$1[i]));
  $result = SWIG_Ruby_AppendOutput($result, list);
}
%typemap(freearg) (rx_cluster_node *RX_NODES_OUT, size_t RX_MAX, size_t *RX_N_OUT) {
  RB_GC_GUARD(tmpbuf$argnum);
  ALLOCV_END(tmpbuf$argnum);
}

%rename("cluster_disposed?") cluster_disposed;
%inline %{
/* Frees the C handle of a Cluster now (Client#close), as dispose does for
 * the other handles; the object's pointer becomes NULL. Closing the node
 * connections does not wait on the network. */
static void cluster_dispose(VALUE obj) {
  if (!RB_TYPE_P(obj, T_DATA) || !rb_obj_is_kind_of(obj, rxg_rb_cimpl_class("Cluster")))
    rb_raise(rb_eTypeError, "expected a Reactis::Cimpl::Cluster");
  rx_cluster *h = (rx_cluster *)DATA_PTR(obj);
  DATA_PTR(obj) = NULL;
  rx_cluster_free(h);
}

static bool cluster_disposed(VALUE obj) {
  return !RB_TYPE_P(obj, T_DATA) || DATA_PTR(obj) == NULL;
}
%}
