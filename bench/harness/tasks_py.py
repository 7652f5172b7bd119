"""The no-op job handler for RQ: logs "index due_ms recv_ms" to $BENCH_OUT
(opened once per process; RQ's default Worker forks per job, so there it is
opened per job) and does nothing else."""
import os
import time

_f = None


def handle(payload):
    global _f
    recv = time.time() * 1000.0
    if _f is None or _f_pid != os.getpid():
        _open()
    i, due, _ = payload.split(":", 2)
    _f.write("%s %s %.3f\n" % (i, due, recv))
    _f.flush()


_f_pid = None


def _open():
    global _f, _f_pid
    _f = open(os.environ.get("BENCH_OUT", "/dev/null"), "a")
    _f_pid = os.getpid()
