/* test.h — a tiny assertion header for the C tests.
 *
 * Each test file defines static void test_x(void) functions and runs them
 * from main() with RUN(test_x). A failed CHECK prints file:line and the
 * expression, marks the file failed, and returns from the test function.
 * At the end, main() returns TEST_REPORT(): it prints
 * "N passed, N failed" and exits non-zero on any failure. */
#ifndef REACTIS_TEST_H
#define REACTIS_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t__passed, t__failed, t__cur_failed;

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "  FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);      \
      t__cur_failed = 1;                                                     \
      return;                                                                \
    }                                                                        \
  } while (0)

/* CHECK with a printf-style explanation shown on failure. */
#define CHECKF(cond, ...)                                                    \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "  FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);      \
      fprintf(stderr, __VA_ARGS__);                                          \
      fputc('\n', stderr);                                                   \
      t__cur_failed = 1;                                                     \
      return;                                                                \
    }                                                                        \
  } while (0)

#define CHECK_EQ_INT(a, b)                                                   \
  do {                                                                       \
    long long t__a = (long long)(a), t__b = (long long)(b);                  \
    if (t__a != t__b) {                                                      \
      fprintf(stderr, "  FAIL %s:%d: %s == %s (%lld != %lld)\n", __FILE__,   \
              __LINE__, #a, #b, t__a, t__b);                                 \
      t__cur_failed = 1;                                                     \
      return;                                                                \
    }                                                                        \
  } while (0)

/* Binary-safe comparison of (ptr, len) with a memory block. */
#define CHECK_MEM(p, plen, q, qlen)                                          \
  CHECK((size_t)(plen) == (size_t)(qlen) &&                                  \
        ((size_t)(plen) == 0 || memcmp((p), (q), (size_t)(plen)) == 0))

#define CHECK_STR(a, b) CHECKF(strcmp((a), (b)) == 0, "\"%s\" != \"%s\"", (a), (b))

#define RUN(fn)                                                              \
  do {                                                                       \
    t__cur_failed = 0;                                                       \
    fprintf(stderr, "- %s\n", #fn);                                          \
    fn();                                                                    \
    if (t__cur_failed)                                                       \
      t__failed++;                                                           \
    else                                                                     \
      t__passed++;                                                           \
  } while (0)

#define TEST_REPORT()                                                        \
  (printf("%d passed, %d failed\n", t__passed, t__failed), t__failed ? 1 : 0)

#endif
