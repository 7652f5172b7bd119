/* proxy.h — a TCP proxy on loopback that a test can break on purpose.
 *
 * It forwards every connection accepted on its port to a target port, in a
 * thread of its own. Modes: PASS forwards; BLACKHOLE keeps every socket open
 * but forwards nothing (a half-open link, a dead router); DROP closes all
 * current connections and refuses new ones by closing them at once (RST);
 * DELAY forwards after holding each chunk for delay_ms. */
#ifndef REACTIS_TEST_PROXY_H
#define REACTIS_TEST_PROXY_H

enum { PROXY_PASS = 0, PROXY_BLACKHOLE = 1, PROXY_DROP = 2, PROXY_DELAY = 3 };

typedef struct rxt_proxy rxt_proxy;

rxt_proxy *rxt_proxy_start(int target_port); /* NULL on failure */
int rxt_proxy_port(const rxt_proxy *p);
void rxt_proxy_mode(rxt_proxy *p, int mode, int delay_ms);
long rxt_proxy_connections(const rxt_proxy *p); /* accepted so far */
void rxt_proxy_stop(rxt_proxy *p);

#endif
