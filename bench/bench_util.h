/* bench_util.h — what the stand-alone C benchmarks read from the server
 * they start (tests/support/server.h) and from their own process, in one
 * place. Header-only: static inline, so a benchmark that does not use one
 * of these gets no warning. */
#ifndef RX_BENCH_UTIL_H
#define RX_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "server.h"

/* The number after `field` in an INFO reply, or `dflt` when it is absent. */
static inline double rxb_info_number(rxt_server *s, const char *section, const char *field,
                                     double dflt) {
  const char *a[] = {"INFO", section, NULL};
  char *r = rxt_cmd(s, a);
  double v = dflt;
  if (r) {
    const char *p = strstr(r, field);
    if (p) v = atof(p + strlen(field));
    free(r);
  }
  return v;
}

/* used_memory in bytes, or -1. */
static inline long long rxb_used_memory(rxt_server *s) {
  return (long long)rxb_info_number(s, "memory", "used_memory:", -1);
}

/* CPU seconds the server used (user + sys), to tell its share apart. */
static inline double rxb_server_cpu(rxt_server *s) {
  return rxb_info_number(s, "cpu", "used_cpu_user:", 0) +
         rxb_info_number(s, "cpu", "used_cpu_sys:", 0);
}

/* CPU seconds this process used (user + sys). */
static inline double rxb_client_cpu(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

/* Resets INFO commandstats, so the next read covers one phase only. */
static inline void rxb_reset_stats(rxt_server *s) {
  const char *a[] = {"CONFIG", "RESETSTAT", NULL};
  free(rxt_cmd(s, a));
}

/* usec_per_call of one command since rxb_reset_stats, or -1. */
static inline double rxb_usec_per_call(rxt_server *s, const char *cmd) {
  const char *a[] = {"INFO", "commandstats", NULL};
  char *r = rxt_cmd(s, a);
  double v = -1;
  char pat[64];
  snprintf(pat, sizeof pat, "cmdstat_%s:", cmd);
  if (r) {
    const char *p = strstr(r, pat);
    if (p) p = strstr(p, "usec_per_call=");
    if (p) v = atof(p + strlen("usec_per_call="));
    free(r);
  }
  return v;
}

/* qsort comparator for long long. */
static inline int rxb_cmp_ll(const void *a, const void *b) {
  long long x = *(const long long *)a, y = *(const long long *)b;
  return x < y ? -1 : x > y;
}

#endif
