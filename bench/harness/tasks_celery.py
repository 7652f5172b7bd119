"""The Celery app of the harness: one no-op task that logs
"index due_ms recv_ms" to $BENCH_OUT. Broker: the harness's redis-server;
no result backend (ignore_result), everything else Celery's defaults."""
import os
import time

from celery import Celery

_f = None


def make_app(url, queue):
    app = Celery("bench", broker=url)
    app.conf.task_ignore_result = True
    app.conf.task_default_queue = queue
    app.conf.broker_connection_retry_on_startup = True
    app.conf.worker_hijack_root_logger = False

    @app.task(name="bench.handle")
    def handle(payload):
        global _f
        recv = time.time() * 1000.0
        if _f is None:
            _f = open(os.environ.get("BENCH_OUT", "/dev/null"), "a")
        i, due, _ = payload.split(":", 2)
        _f.write("%s %s %.3f\n" % (i, due, recv))
        _f.flush()

    return app, handle
