/* bindings/python.i — the Python half of reactis.i: typemaps and error glue.
 *
 * Included by reactis.i only when SWIG runs with -python. Binary data is
 * Python bytes both ways (str is accepted on input and sent as UTF-8); it is
 * never passed through SWIG's char * conversions, which stop at a NUL.
 *
 * Input buffers are held through the buffer protocol (or the str's cached
 * UTF-8 form) for the whole call, so they stay valid and unmodified while the
 * GIL is released; a bytearray cannot be resized while it is exported.
 */

%{
/* The callable registered by the reactis package: factory(code, name,
 * message) returns an exception instance of the right reactis.Error
 * subclass. Without one (cimpl used alone) errors are RuntimeError. */
static PyObject *rxg_py_error_factory = NULL;

/* A new exception instance for status `code` with message msg[0..len). */
static PyObject *rxg_py_error(int code, const char *msg, size_t len) {
  PyObject *text = PyUnicode_DecodeUTF8(msg, (Py_ssize_t)len, "replace");
  if (!text) return NULL;
  PyObject *exc;
  if (rxg_py_error_factory) {
    exc = PyObject_CallFunction(rxg_py_error_factory, "isO", code,
                                rx_errname(code), text);
  } else {
    exc = PyObject_CallFunction(PyExc_RuntimeError, "(isO)", code,
                                rx_errname(code), text);
  }
  Py_DECREF(text);
  return exc;
}

static void rxg_py_raise(int code, const char *msg) {
  PyObject *exc = rxg_py_error(code, msg, strlen(msg));
  if (!exc) return; /* the factory's own error is set */
  PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
  Py_DECREF(exc);
}

#define RXG_RAISE(code, msg) rxg_py_raise((code), (msg))
/* Runs the Python signal handlers of signals that interrupted the wait; a
 * handler that raised (KeyboardInterrupt, SystemExit) makes this -1. */
#define RXG_CHECK_SIGNALS() PyErr_CheckSignals()

static PyObject *rxg_py_bytes_or_none(const char *p, size_t n) {
  if (!p) Py_RETURN_NONE;
  return PyBytes_FromStringAndSize(p, (Py_ssize_t)n);
}

/* A reply tree as Python values: bulk string -> bytes, status -> str,
 * integer -> int, nil -> None, array -> list, error -> an exception
 * instance (not raised: inside arrays, e.g. EXEC, it is one element). */
static PyObject *rxg_py_reply(const rx_reply *r) {
  switch (r->type) {
  case RX_REPLY_STRING:
    return PyBytes_FromStringAndSize(r->str, (Py_ssize_t)r->len);
  case RX_REPLY_STATUS:
    return PyUnicode_DecodeUTF8(r->str, (Py_ssize_t)r->len, "surrogateescape");
  case RX_REPLY_INTEGER:
    return PyLong_FromLongLong(r->integer);
  case RX_REPLY_NIL:
    Py_RETURN_NONE;
  case RX_REPLY_ERROR:
    return rxg_py_error(RX_EREPLY, r->str, r->len);
  case RX_REPLY_ARRAY: {
    if (r->elements > (size_t)PY_SSIZE_T_MAX) return PyErr_NoMemory();
    PyObject *list = PyList_New((Py_ssize_t)r->elements);
    if (!list) return NULL;
    for (size_t i = 0; i < r->elements; i++) {
      PyObject *item = r->element[i] ? rxg_py_reply(r->element[i])
                                     : (Py_INCREF(Py_None), Py_None);
      if (!item) {
        Py_DECREF(list);
        return NULL;
      }
      PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    return list;
  }
  default:
    PyErr_Format(PyExc_SystemError, "reactis: unknown reply type %d", r->type);
    return NULL;
  }
}

/* (kind, pattern, channel, data, gap_start_ms, gap_end_ms, reconnects),
 * copying the borrowed strings. */
static PyObject *rxg_py_event(const rx_event *ev) {
  return Py_BuildValue("(iNNNLLi)", ev->kind,
                       rxg_py_bytes_or_none(ev->pattern, ev->pattern_len),
                       rxg_py_bytes_or_none(ev->channel, ev->channel_len),
                       rxg_py_bytes_or_none(ev->data, ev->data_len),
                       ev->gap_start_ms, ev->gap_end_ms, ev->reconnects);
}

/* Points p and n at the bytes of a str (UTF-8) or a bytes-like object. When a
 * buffer was taken, *have_view is set and the caller releases view. */
static int rxg_py_get_bytes(PyObject *o, const char **p, size_t *n,
                            Py_buffer *view, int *have_view) {
  *have_view = 0;
  if (PyUnicode_Check(o)) {
    Py_ssize_t len;
    const char *s = PyUnicode_AsUTF8AndSize(o, &len);
    if (!s) return -1;
    *p = s;
    *n = (size_t)len;
    return 0;
  }
  if (PyObject_CheckBuffer(o)) {
    if (PyObject_GetBuffer(o, view, PyBUF_SIMPLE) != 0) return -1;
    *have_view = 1;
    *p = view->buf ? (const char *)view->buf : "";
    *n = (size_t)view->len;
    return 0;
  }
  PyErr_Format(PyExc_TypeError, "expected bytes or str, not %.100s",
               Py_TYPE(o)->tp_name);
  return -1;
}
%}

/* Registers the exception factory (called once by reactis/errors.py). */
%inline %{
static void set_error_factory(PyObject *factory) {
  if (factory == Py_None) factory = NULL;
  Py_XINCREF(factory);
  Py_XSETREF(rxg_py_error_factory, factory);
}
%}

/* ------------------------------------------------------------ bytes in */

%typemap(in) (const char *RX_BYTES, size_t RX_LEN) (Py_buffer view, int have_view = 0) {
  const char *p;
  size_t n;
  if (rxg_py_get_bytes($input, &p, &n, &view, &have_view) != 0) SWIG_fail;
  $1 = ($1_ltype)p;
  $2 = n;
}
%typemap(freearg) (const char *RX_BYTES, size_t RX_LEN) {
  if (have_view$argnum) PyBuffer_Release(&view$argnum);
}

%typemap(in) (const char *RX_BYTES_OR_NONE, size_t RX_LEN) (Py_buffer view, int have_view = 0) {
  if ($input == Py_None) {
    $1 = NULL;
    $2 = 0;
  } else {
    const char *p;
    size_t n;
    if (rxg_py_get_bytes($input, &p, &n, &view, &have_view) != 0) SWIG_fail;
    $1 = ($1_ltype)p;
    $2 = n;
  }
}
%typemap(freearg) (const char *RX_BYTES_OR_NONE, size_t RX_LEN) {
  if (have_view$argnum) PyBuffer_Release(&view$argnum);
}

/* ------------------------------------------------------------ text in */

/* URLs, option names and values, flags: str (UTF-8) or bytes, no NUL. */
%typemap(in) const char *RX_TEXT {
  const char *s = NULL;
  Py_ssize_t len = 0;
  if (PyUnicode_Check($input)) {
    s = PyUnicode_AsUTF8AndSize($input, &len);
    if (!s) SWIG_fail;
  } else if (PyBytes_Check($input)) {
    s = PyBytes_AS_STRING($input);
    len = PyBytes_GET_SIZE($input);
  } else {
    PyErr_Format(PyExc_TypeError, "expected str, not %.100s",
                 Py_TYPE($input)->tp_name);
    SWIG_fail;
  }
  if (strlen(s) != (size_t)len) {
    PyErr_SetString(PyExc_ValueError, "embedded NUL character");
    SWIG_fail;
  }
  $1 = ($1_ltype)s;
}

/* ------------------------------------------------------------ argv in */

/* A sequence of bytes-like or str arguments (the reactis package turns ints
 * and floats into their decimal text before). The items are pinned in a
 * tuple so another thread cannot free them while the GIL is released. */
%typemap(in) (int RX_ARGC, const char *const *RX_ARGV, const size_t *RX_ARGVLEN)
    (PyObject *items = NULL, Py_buffer *views = NULL, Py_ssize_t nviews = 0,
     const char **ptrs = NULL, size_t *lens = NULL) {
  if (PyUnicode_Check($input) || PyBytes_Check($input) || PyByteArray_Check($input)) {
    PyErr_SetString(PyExc_TypeError,
                    "expected a sequence of command arguments, not one string");
    SWIG_fail;
  }
  items = PySequence_Tuple($input);
  if (!items) SWIG_fail;
  Py_ssize_t n = PyTuple_GET_SIZE(items);
  if (n == 0) {
    PyErr_SetString(PyExc_ValueError, "a command needs at least one argument");
    SWIG_fail;
  }
  if (n > INT_MAX) {
    PyErr_SetString(PyExc_OverflowError, "too many command arguments");
    SWIG_fail;
  }
  ptrs = malloc((size_t)n * sizeof *ptrs);
  lens = malloc((size_t)n * sizeof *lens);
  views = calloc((size_t)n, sizeof *views);
  if (!ptrs || !lens || !views) {
    PyErr_NoMemory();
    SWIG_fail;
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    int have_view = 0;
    if (rxg_py_get_bytes(PyTuple_GET_ITEM(items, i), &ptrs[i], &lens[i],
                         &views[nviews], &have_view) != 0) {
      if (PyErr_ExceptionMatches(PyExc_TypeError)) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError,
                     "command argument %zd: expected bytes or str, not %.100s",
                     i, Py_TYPE(PyTuple_GET_ITEM(items, i))->tp_name);
      }
      SWIG_fail;
    }
    if (have_view) nviews++;
  }
  $1 = (int)n;
  $2 = ($2_ltype)ptrs;
  $3 = ($3_ltype)lens;
}
%typemap(freearg) (int RX_ARGC, const char *const *RX_ARGV, const size_t *RX_ARGVLEN) {
  for (Py_ssize_t i = 0; i < nviews$argnum; i++) PyBuffer_Release(&views$argnum[i]);
  free(views$argnum);
  free(ptrs$argnum);
  free(lens$argnum);
  Py_XDECREF(items$argnum);
}

/* ------------------------------------------------------------ results out */

%typemap(in, numinputs=0) rx_reply **RX_REPLY_OUT (rx_reply *tmp = NULL) {
  $1 = &tmp;
}
%typemap(argout) rx_reply **RX_REPLY_OUT {
  PyObject *o;
  if (tmp$argnum) {
    o = rxg_py_reply(tmp$argnum);
    rx_reply_free(tmp$argnum);
    tmp$argnum = NULL;
    if (!o) SWIG_fail;
  } else {
    Py_INCREF(Py_None);
    o = Py_None;
  }
  $result = SWIG_AppendOutput($result, o);
}
/* Frees the reply also when the call failed before argout ran. */
%typemap(freearg) rx_reply **RX_REPLY_OUT {
  rx_reply_free(tmp$argnum);
}

%typemap(in, numinputs=0) rx_event *RX_EVENT_OUT (rx_event tmp) {
  $1 = &tmp;
}
%typemap(argout) rx_event *RX_EVENT_OUT {
  PyObject *o;
  if (result == RX_OK) {
    o = rxg_py_event($1);
    if (!o) SWIG_fail;
  } else {
    Py_INCREF(Py_None);
    o = Py_None;
  }
  $result = SWIG_AppendOutput($result, o);
}

%typemap(in) (rx_event *RX_EVENTS_OUT, size_t RX_MAX, size_t *RX_N_OUT)
    (rx_event *evs = NULL, size_t nev = 0) {
  long long max = PyLong_AsLongLong($input);
  if (max == -1 && PyErr_Occurred()) SWIG_fail;
  if (max < 1 || max > 65536) {
    PyErr_SetString(PyExc_ValueError, "max_events must be 1..65536");
    SWIG_fail;
  }
  evs = calloc((size_t)max, sizeof *evs);
  if (!evs) {
    PyErr_NoMemory();
    SWIG_fail;
  }
  $1 = evs;
  $2 = (size_t)max;
  $3 = &nev;
}
%typemap(argout) (rx_event *RX_EVENTS_OUT, size_t RX_MAX, size_t *RX_N_OUT) {
  PyObject *list = PyList_New(0);
  if (!list) SWIG_fail;
  for (size_t i = 0; result == RX_OK && i < nev$argnum; i++) {
    PyObject *o = rxg_py_event(&evs$argnum[i]);
    if (!o || PyList_Append(list, o) != 0) {
      Py_XDECREF(o);
      Py_DECREF(list);
      SWIG_fail;
    }
    Py_DECREF(o);
  }
  $result = SWIG_AppendOutput($result, list);
}
%typemap(freearg) (rx_event *RX_EVENTS_OUT, size_t RX_MAX, size_t *RX_N_OUT) {
  free(evs$argnum);
}

/* A parsed notification replaces the status as the result: (space, db,
 * type, event, key) or None. */
%typemap(in, numinputs=0) rx_key_event *RX_KEY_EVENT_OUT (rx_key_event tmp) {
  memset(&tmp, 0, sizeof tmp);
  $1 = &tmp;
}
%typemap(argout) rx_key_event *RX_KEY_EVENT_OUT {
  Py_XDECREF($result);
  if (result == RX_OK) {
    $result = Py_BuildValue("(iiiNN)", $1->space, $1->db, $1->type,
                            rxg_py_bytes_or_none($1->event, $1->event_len),
                            rxg_py_bytes_or_none($1->key, $1->key_len));
    if (!$result) SWIG_fail;
  } else {
    Py_INCREF(Py_None);
    $result = Py_None;
  }
}

%typemap(in, numinputs=0) long long *RX_LL_OUT (long long tmp = 0) {
  $1 = &tmp;
}
%typemap(argout) long long *RX_LL_OUT {
  $result = SWIG_AppendOutput($result, PyLong_FromLongLong(*$1));
}

%typemap(in, numinputs=0) int *RX_INT_OUT (int tmp = 0) {
  $1 = &tmp;
}
%typemap(argout) int *RX_INT_OUT {
  $result = SWIG_AppendOutput($result, PyLong_FromLong(*$1));
}

%typemap(in, numinputs=0) size_t *RX_SIZE_OUT (size_t tmp = 0) {
  $1 = &tmp;
}
%typemap(argout) size_t *RX_SIZE_OUT {
  $result = SWIG_AppendOutput($result, PyLong_FromSize_t(*$1));
}

/* ------------------------------------------------------------ queue */

/* Tokens and "after" cursors: text, or None for "none"/"all". */
%typemap(in) const char *RX_TEXT_OR_NONE {
  if ($input == Py_None) {
    $1 = NULL;
  } else {
    const char *s = NULL;
    Py_ssize_t len = 0;
    if (PyUnicode_Check($input)) {
      s = PyUnicode_AsUTF8AndSize($input, &len);
      if (!s) SWIG_fail;
    } else if (PyBytes_Check($input)) {
      s = PyBytes_AS_STRING($input);
      len = PyBytes_GET_SIZE($input);
    } else {
      PyErr_Format(PyExc_TypeError, "expected str or None, not %.100s",
                   Py_TYPE($input)->tp_name);
      SWIG_fail;
    }
    if (strlen(s) != (size_t)len) {
      PyErr_SetString(PyExc_ValueError, "embedded NUL character");
      SWIG_fail;
    }
    $1 = ($1_ltype)s;
  }
}

%typemap(in, numinputs=0) (char *RX_CSTR_OUT, size_t RX_CSTR_OUT_LEN)
    (char buf[RX_QUEUE_ID_MAX + 1]) {
  buf[0] = '\0';
  $1 = buf;
  $2 = sizeof buf;
}
%typemap(argout) (char *RX_CSTR_OUT, size_t RX_CSTR_OUT_LEN) {
  $result = SWIG_AppendOutput($result, PyBytes_FromString(buf$argnum));
}

%typemap(in, numinputs=0) (const char **RX_BYTES_OUT, size_t *RX_BYTES_OUT_LEN)
    (const char *p = NULL, size_t n = 0) {
  $1 = ($1_ltype)&p;
  $2 = &n;
}
%typemap(argout) (const char **RX_BYTES_OUT, size_t *RX_BYTES_OUT_LEN) {
  $result = SWIG_AppendOutput($result, rxg_py_bytes_or_none(p$argnum, n$argnum));
}

%{
/* (id, payload, attempt, failures, crashes, due_ms, enqueued_ms,
 * delivered_ms, error, token), copying the borrowed strings. */
static PyObject *rxg_py_job(const rx_job *j) {
  return Py_BuildValue("(NNiiiLLLNs)",
                       rxg_py_bytes_or_none(j->id, j->id_len),
                       rxg_py_bytes_or_none(j->payload, j->payload_len),
                       j->attempt, j->failures, j->crashes, j->due_ms,
                       j->enqueued_ms, j->delivered_ms,
                       rxg_py_bytes_or_none(j->error ? j->error : "", j->error_len),
                       j->token);
}
%}

%typemap(in) (rx_job *RX_JOBS_OUT, size_t RX_MAX, size_t *RX_N_OUT)
    (rx_job *jobs = NULL, size_t njobs = 0) {
  long long max = PyLong_AsLongLong($input);
  if (max == -1 && PyErr_Occurred()) SWIG_fail;
  if (max < 1 || max > 1000) {
    PyErr_SetString(PyExc_ValueError, "the number of jobs must be 1..1000");
    SWIG_fail;
  }
  jobs = calloc((size_t)max, sizeof *jobs);
  if (!jobs) {
    PyErr_NoMemory();
    SWIG_fail;
  }
  $1 = jobs;
  $2 = (size_t)max;
  $3 = &njobs;
}
%typemap(argout) (rx_job *RX_JOBS_OUT, size_t RX_MAX, size_t *RX_N_OUT) {
  PyObject *list = PyList_New(0);
  if (!list) SWIG_fail;
  for (size_t i = 0; result == RX_OK && i < njobs$argnum; i++) {
    PyObject *o = rxg_py_job(&jobs$argnum[i]);
    if (!o || PyList_Append(list, o) != 0) {
      Py_XDECREF(o);
      Py_DECREF(list);
      SWIG_fail;
    }
    Py_DECREF(o);
  }
  $result = SWIG_AppendOutput($result, list);
}
%typemap(freearg) (rx_job *RX_JOBS_OUT, size_t RX_MAX, size_t *RX_N_OUT) {
  free(jobs$argnum);
}

%typemap(in, numinputs=0) rx_queue_stats *RX_STATS_OUT (rx_queue_stats tmp) {
  $1 = &tmp;
}
%typemap(argout) rx_queue_stats *RX_STATS_OUT {
  PyObject *d = Py_BuildValue(
      "{s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:L}",
      "scheduled", $1->scheduled, "ready", $1->ready, "in_flight", $1->in_flight,
      "dead", $1->dead, "lag_ms", $1->lag_ms, "consumers", $1->consumers,
      "next_due_ms", $1->next_due_ms, "now_ms", $1->now_ms, "acked", $1->acked,
      "failures", $1->failures, "crashes", $1->crashes, "dead_total", $1->dead_total);
  if (!d) SWIG_fail;
  $result = SWIG_AppendOutput($result, d);
}

/* ------------------------------------------------------------ templates */

/* Captures of a template match: the input is the most to return (1..65536);
 * the output a list of bytes copies, or None unless the status is OK. */
%typemap(in) (rx_capture *RX_CAPS_OUT, size_t RX_MAX, size_t *RX_N_OUT)
    (rx_capture *caps = NULL, size_t ncaps = 0) {
  long long max = PyLong_AsLongLong($input);
  if (max == -1 && PyErr_Occurred()) SWIG_fail;
  if (max < 1 || max > 65536) {
    PyErr_SetString(PyExc_ValueError, "the number of captures must be 1..65536");
    SWIG_fail;
  }
  caps = calloc((size_t)max, sizeof *caps);
  if (!caps) {
    PyErr_NoMemory();
    SWIG_fail;
  }
  $1 = caps;
  $2 = (size_t)max;
  $3 = &ncaps;
}
%typemap(argout) (rx_capture *RX_CAPS_OUT, size_t RX_MAX, size_t *RX_N_OUT) {
  PyObject *o;
  if (result == RX_OK) {
    o = PyList_New((Py_ssize_t)ncaps$argnum);
    if (!o) SWIG_fail;
    for (size_t i = 0; i < ncaps$argnum; i++) {
      PyObject *b = PyBytes_FromStringAndSize(caps$argnum[i].ptr, (Py_ssize_t)caps$argnum[i].len);
      if (!b) {
        Py_DECREF(o);
        SWIG_fail;
      }
      PyList_SET_ITEM(o, (Py_ssize_t)i, b);
    }
  } else {
    Py_INCREF(Py_None);
    o = Py_None;
  }
  $result = SWIG_AppendOutput($result, o);
}
%typemap(freearg) (rx_capture *RX_CAPS_OUT, size_t RX_MAX, size_t *RX_N_OUT) {
  free(caps$argnum);
}

/* Bytes the core allocated for the caller (rx_free): copied, then freed. */
%typemap(in, numinputs=0) (char **RX_OWNED_OUT, size_t *RX_OWNED_OUT_LEN)
    (char *p = NULL, size_t n = 0) {
  $1 = &p;
  $2 = &n;
}
%typemap(argout) (char **RX_OWNED_OUT, size_t *RX_OWNED_OUT_LEN) {
  PyObject *o = rxg_py_bytes_or_none(p$argnum, n$argnum);
  if (!o) SWIG_fail;
  $result = SWIG_AppendOutput($result, o);
}
%typemap(freearg) (char **RX_OWNED_OUT, size_t *RX_OWNED_OUT_LEN) {
  rx_free(p$argnum);
}

/* ------------------------------------------------------------ cluster */

%{
/* (host, port, id, is_master, failed, [(first, last), ...]) of one node,
 * copying the borrowed strings and ranges (valid only until the handle's
 * next call). */
static PyObject *rxg_py_node(const rx_cluster_node *n) {
  PyObject *ranges = PyList_New((Py_ssize_t)n->range_count);
  if (!ranges) return NULL;
  for (size_t i = 0; i < n->range_count; i++) {
    PyObject *r = Py_BuildValue("(ii)", n->ranges[2 * i], n->ranges[2 * i + 1]);
    if (!r) {
      Py_DECREF(ranges);
      return NULL;
    }
    PyList_SET_ITEM(ranges, (Py_ssize_t)i, r);
  }
  PyObject *host = PyUnicode_DecodeUTF8(n->host ? n->host : "", (Py_ssize_t)strlen(n->host ? n->host : ""),
                                        "surrogateescape");
  if (!host) {
    Py_DECREF(ranges);
    return NULL;
  }
  return Py_BuildValue("(NisNNN)", host, n->port, n->id ? n->id : "",
                       PyBool_FromLong(n->is_master), PyBool_FromLong(n->failed), ranges);
}
%}

/* The input is the most nodes to return (1..65536); the output a list of
 * node tuples. */
%typemap(in) (rx_cluster_node *RX_NODES_OUT, size_t RX_MAX, size_t *RX_N_OUT)
    (rx_cluster_node *nodes = NULL, size_t nnodes = 0) {
  long long max = PyLong_AsLongLong($input);
  if (max == -1 && PyErr_Occurred()) SWIG_fail;
  if (max < 1 || max > 65536) {
    PyErr_SetString(PyExc_ValueError, "the number of nodes must be 1..65536");
    SWIG_fail;
  }
  nodes = calloc((size_t)max, sizeof *nodes);
  if (!nodes) {
    PyErr_NoMemory();
    SWIG_fail;
  }
  $1 = nodes;
  $2 = (size_t)max;
  $3 = &nnodes;
}
%typemap(argout) (rx_cluster_node *RX_NODES_OUT, size_t RX_MAX, size_t *RX_N_OUT) {
  PyObject *list = PyList_New(0);
  if (!list) SWIG_fail;
  for (size_t i = 0; i < nnodes$argnum; i++) {
    PyObject *o = rxg_py_node(&nodes$argnum[i]);
    if (!o || PyList_Append(list, o) != 0) {
      Py_XDECREF(o);
      Py_DECREF(list);
      SWIG_fail;
    }
    Py_DECREF(o);
  }
  $result = SWIG_AppendOutput($result, list);
}
%typemap(freearg) (rx_cluster_node *RX_NODES_OUT, size_t RX_MAX, size_t *RX_N_OUT) {
  free(nodes$argnum);
}
