"""Celery's side of the pipeline benchmark: a chord and a chain of `add`.

The module is both the Celery app a worker loads and the benchmark client:

    PBENCH_REDIS=redis://127.0.0.1:PORT /usr/bin/python3 pbench_celery.py \
        [--fan N] [--chain M] [--timeout S]

It starts one `celery worker --pool prefork -c 2` (errand's workers have the
same shape), waits until it answers, then times each shape from the call that
starts it to its final result:

fan     chord(add.s(i, 0) for i in range(N))(xsum.s()): N tasks, then one
        that sums their results; the value is N(N-1)/2.
chain   chain(add.s(0, 1), add.s(1), ... M in all): M tasks each adding 1
        to the result before; the value is M.

Broker on Redis db D ($PBENCH_CELERY_DB, default 1; the worker reads it
too), result backend on db D+1, both emptied
first; everything else is Celery's default (the Redis backend counts a
chord's finished parts with INCR and its results in a list). Beside each
time, the Redis commands the server ran meanwhile (INFO commandstats: every
client's, scripts' inside them too), so that a task's store cost can be set
beside errand's. Figures are printed as "R<TAB>key<TAB>value" lines.

Run with /usr/bin/python3: Debian's python3-celery and python3-redis are
visible to it only.
"""
import os
import signal
import subprocess
import sys
import time

from celery import Celery, chain, chord

REDIS = os.environ.get("PBENCH_REDIS", "redis://127.0.0.1:6379")


def opt(name, default):
    argv = sys.argv
    for i in range(1, len(argv) - 1):
        if argv[i] == name:
            return type(default)(argv[i + 1])
    return default


BROKER_DB = int(os.environ.get("PBENCH_CELERY_DB", "1"))
app = Celery("pbench_celery", broker=REDIS + "/%d" % BROKER_DB,
             backend=REDIS + "/%d" % (BROKER_DB + 1))
app.conf.update(
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="add")
def add(x, y):
    return x + y


@app.task(name="xsum")
def xsum(numbers):
    return sum(numbers)


def result(key, value):
    print("R\t%s\t%.6g" % (key, value), flush=True)


def redis_client(db):
    import redis

    return redis.Redis.from_url(REDIS + "/%d" % db)


def commands(r):
    """Redis commands run so far: all of them, and EVALSHA calls."""
    total = evalsha = 0
    for name, st in r.info("commandstats").items():
        total += st["calls"]
        if name == "cmdstat_evalsha":
            evalsha = st["calls"]
    return total, evalsha


def start_worker():
    env = dict(os.environ)
    here = os.path.dirname(os.path.abspath(__file__))
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ in the source tree
    env["PYTHONPATH"] = here + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, "-m", "celery", "-A", "pbench_celery", "worker",
           "--pool", "prefork", "--concurrency", "2", "--loglevel", "WARNING",
           "--without-gossip", "--without-mingle", "--without-heartbeat",
           "-n", "pbench@%h"]
    log = open(os.environ.get("PBENCH_CELERY_LOG", os.devnull), "ab")
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=log, cwd=here)


def timed(name, start, want, r, timeout):
    c0 = commands(r)
    t0 = time.monotonic()
    got = start().get(timeout=timeout)
    dt = time.monotonic() - t0
    c1 = commands(r)
    if got != want:
        raise SystemExit("celery %s gave %r, not %r" % (name, got, want))
    result(name + ".seconds", dt)
    # less the two INFO calls of this measurement
    result(name + ".redis_cmds", c1[0] - c0[0] - 1)
    result(name + ".evalsha", c1[1] - c0[1])


def main():
    n_fan = opt("--fan", 10000)
    n_chain = opt("--chain", 1000)
    timeout = opt("--timeout", 600.0)
    r = redis_client(BROKER_DB)
    r.flushdb()
    redis_client(BROKER_DB + 1).flushdb()
    worker = start_worker()
    try:
        add.delay(1, 1).get(timeout=60)  # the worker is up
        for _ in range(20):
            add.delay(1, 1).get(timeout=10)
        if n_fan > 0:
            timed("fan", lambda: chord(add.s(i, 0) for i in range(n_fan))(xsum.s()),
                  n_fan * (n_fan - 1) // 2, r, timeout)
        if n_chain > 0:
            timed("chain", lambda: chain(add.s(0, 1), *[add.s(1) for _ in range(n_chain - 1)])(),
                  n_chain, r, timeout)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


if __name__ == "__main__":
    main()
