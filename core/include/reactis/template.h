/* reactis/template.h — key and channel name templates.
 *
 * A template such as "user:{user_id}:notifications", "SELLER:{id}" or
 * "last_connection_time_of_device{device}" is compiled once and then used to
 * match names (getting the captures), to format names from values, and to
 * derive the glob pattern for PSUBSCRIBE or SCAN.
 *
 * Syntax: literal bytes, and placeholders "{name}" with name made of
 * [A-Za-z0-9_] starting with a letter or '_'. "{{" and "}}" stand for literal
 * braces (so a Redis hash tag is written "rx:{{{queue}}}:ready"). Two
 * placeholders may not touch ("{a}{b}" cannot be split), and a name may appear
 * once. Templates and names are binary-safe.
 *
 * Matching: every placeholder matches one or more bytes. When a literal that
 * follows a placeholder occurs more than once, the placeholder takes the
 * shortest span that lets the whole name match ("{a}:{b}" on "x:y:z" gives
 * a = "x", b = "y:z"), like a glob. */
#ifndef REACTIS_TEMPLATE_H
#define REACTIS_TEMPLATE_H

#include "reactis/reactis.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rx_template rx_template;

/* A capture: a span of the matched name (borrowed: valid while it is). */
typedef struct rx_capture {
  const char *ptr;
  size_t len;
} rx_capture;

/* Compiles a template of len bytes. NULL on a malformed template (the
 * message, with the byte offset, goes to errstr) or no memory. */
RX_EXTERN rx_template *rx_template_new(const char *tpl, size_t len, char *errstr,
                                       size_t errstr_len);
RX_EXTERN void rx_template_free(rx_template *t);

/* Number of placeholders, and the name of placeholder i (borrowed from t;
 * NULL when i is out of range). */
RX_EXTERN size_t rx_template_count(const rx_template *t);
RX_EXTERN const char *rx_template_name(const rx_template *t, size_t i, size_t *len);
/* Index of the placeholder called name, or -1. */
RX_EXTERN int rx_template_index(const rx_template *t, const char *name, size_t len);

/* Matches name against t. On 0, caps[i] holds placeholder i for i < max (pass
 * max >= rx_template_count). RX_NOMATCH when the name does not fit. */
RX_EXTERN int rx_template_match(const rx_template *t, const char *name, size_t len,
                                rx_capture *caps, size_t max);

/* Formats a name: values[i] (lens[i] bytes) for placeholder i, n values.
 * On 0, *out is a new NUL-terminated string of *out_len bytes (free with
 * rx_free). RX_EINVAL when n is not rx_template_count or a value is empty. */
RX_EXTERN int rx_template_format(const rx_template *t, const char *const *values,
                                 const size_t *lens, size_t n, char **out, size_t *out_len);

/* The glob pattern that matches every name the template can match: literal
 * parts with the glob characters * ? [ ] \ escaped, each placeholder "*".
 * Borrowed from t, NUL-terminated, *len bytes (may be NULL). */
RX_EXTERN const char *rx_template_glob(const rx_template *t, size_t *len);

/* The template's source text (borrowed). */
RX_EXTERN const char *rx_template_source(const rx_template *t, size_t *len);

#ifdef __cplusplus
}
#endif

#endif
