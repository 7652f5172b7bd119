/* reactis — Redis as a dependable backbone for reactive workers.
 *
 * This header holds what every part of the library shares: the version, the
 * one table of status codes, and the allocation hooks. It also includes the
 * public header of every area, so applications need only this one.
 *
 * Status convention (everywhere in the API):
 *   0          RX_OK, it worked;
 *   positive   a normal outcome that is not an error (a timeout, a wakeup,
 *              a signal interrupted the wait);
 *   negative   an error; the handle's rx_*_errstr() says what happened.
 */
#ifndef REACTIS_REACTIS_H
#define REACTIS_REACTIS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define RX_EXTERN __declspec(dllexport)
#elif defined(__GNUC__)
#define RX_EXTERN __attribute__((visibility("default")))
#else
#define RX_EXTERN
#endif

#define RX_VERSION_MAJOR 0
#define RX_VERSION_MINOR 1
#define RX_VERSION_PATCH 0
#define RX_VERSION_STRING "0.1.0"

/* The library's version at run time, "MAJOR.MINOR.PATCH". */
RX_EXTERN const char *rx_version(void);

/* Every status code, its value and its message. Positive values are normal
 * outcomes; negative values are errors. Wrappers map each negative code to a
 * typed exception, so new codes go at the end of their group and existing
 * values never change. */
#define RX_STATUS_MAP(XX)                                                      \
  XX(OK, 0, "success")                                                         \
  XX(TIMEOUT, 1, "timed out waiting (a normal outcome)")                       \
  XX(WOKEN, 2, "woken up by rx_*_wakeup() from another thread")                \
  XX(EINTR, 3, "interrupted by a signal")                                      \
  XX(NOMATCH, 4, "no match (a normal outcome)")                                \
  XX(ENOMEM, -1, "out of memory")                                              \
  XX(EINVAL, -2, "invalid argument")                                           \
  XX(EURL, -3, "malformed Redis URL")                                          \
  XX(ERESOLVE, -4, "host name could not be resolved")                          \
  XX(ECONNECT, -5, "could not connect to the server")                          \
  XX(ETIMEDOUT, -6, "the server did not answer in time")                       \
  XX(EIO, -7, "the connection was lost")                                       \
  XX(EPROTO, -8, "protocol error: the peer does not speak RESP")               \
  XX(EAUTH, -9, "authentication failed")                                       \
  XX(ETLS, -10, "TLS handshake or I/O failed")                                 \
  XX(ETLSVERIFY, -11, "the server's TLS certificate could not be verified")    \
  XX(EREPLY, -12, "the server replied with an error")                          \
  XX(EWRONGTYPE, -13, "a key holds a value of the wrong type")                 \
  XX(ENOPERM, -14, "the ACL user lacks permission for this command")          \
  XX(ECONFIG, -15, "CONFIG is not allowed on this server")                     \
  XX(EOOM, -16, "the server is out of memory (maxmemory reached)")             \
  XX(ENOSCRIPT, -17, "the server does not know the script")                    \
  XX(ETOOBIG, -18, "the payload is larger than the configured maximum")        \
  XX(ESTATE, -19, "the handle is closed or in the wrong state for this call")  \
  XX(ESTALE, -20, "the delivery is stale: the message was reclaimed")          \
  XX(ENOTFOUND, -21, "no such message")                                        \
  XX(ESYS, -22, "system call failed")                                          \
  XX(EREADONLY, -23, "the server is a read-only replica")                      \
  XX(ELOADING, -24, "the server is loading its dataset")                       \
  XX(EBUSY, -25, "the server is busy running a script")                        \
  XX(ECLUSTER, -26, "Redis Cluster: not a cluster, or no node serves the slot")

typedef enum rx_status {
#define RX__STATUS_ENUM(name, value, msg) RX_##name = value,
  RX_STATUS_MAP(RX__STATUS_ENUM)
#undef RX__STATUS_ENUM
  RX__STATUS_END = -27
} rx_status;

/* The fixed message of a status code ("timed out waiting ..."); a static
 * string, never NULL, also for codes this version does not know. */
RX_EXTERN const char *rx_strerror(int status);

/* The name of a status code without the prefix ("ETIMEDOUT", "OK"), a static
 * string; "UNKNOWN" for codes this version does not know. */
RX_EXTERN const char *rx_errname(int status);

/* Allocation hooks. Every allocation of the library goes through these. Set
 * them once, before any other call; any hook left NULL keeps the libc one.
 * Allocation failures are checked everywhere and reported as RX_ENOMEM. */
typedef struct rx_allocator {
  void *(*malloc_fn)(size_t size);
  void *(*calloc_fn)(size_t count, size_t size);
  void *(*realloc_fn)(void *ptr, size_t size);
  void (*free_fn)(void *ptr);
} rx_allocator;

RX_EXTERN void rx_set_allocator(const rx_allocator *a);

/* Frees memory the library allocated and handed to the caller (the
 * out-strings some calls document as "free with rx_free"). */
RX_EXTERN void rx_free(void *ptr);

/* Milliseconds since the Unix epoch (wall clock), and a monotonic clock in
 * milliseconds for deadlines. */
RX_EXTERN long long rx_now_ms(void);
RX_EXTERN long long rx_monotonic_ms(void);

#ifdef __cplusplus
}
#endif

#include "reactis/conn.h"
#include "reactis/cluster.h"
#include "reactis/keyspace.h"
#include "reactis/sub.h"
#include "reactis/template.h"
#include "reactis/queue.h"
#include "reactis/timer.h"

#endif
