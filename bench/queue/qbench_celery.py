"""Celery's side of the queue benchmark: the same no-op task on Redis.

The module is both the Celery app a worker loads and the benchmark client:

    QBENCH_REDIS=redis://127.0.0.1:PORT /usr/bin/python3 qbench_celery.py enqueue -n N [--batch B]
    ... qbench_celery.py drain -n N [--pool prefork] [-c 2] [--procs 1]
    ... qbench_celery.py rtt -n N [--pool prefork] [-c 2]

Broker: Redis db 0; result backend: Redis db 1 (so a round trip can wait on
AsyncResult.get); QBENCH_CELERY_DB=D moves them to dbs D and D+1 (the Redis
suite shares one server with errand and RQ). Everything else is Celery's
default. Figures are printed as "R<TAB>key<TAB>value" lines, like the C
programs of bench/queue.

enqueue   noop.delay() N times; with --batch B, group(B x noop.s()).apply_async()
          (Celery has no batch send; a group is one call for B messages).
drain     puts N (untimed), starts `celery worker` and times until the result
          backend holds N results (Redis DBSIZE of db 1, looked at every 2 ms).
          Gives up after --max-seconds (default 120) and reports the rate of
          what was done by then, with drain_done < N.
rtt       noop.delay().get() N times with a worker idle, after a warm-up.

Run with /usr/bin/python3: Debian's python3-celery and python3-redis are
visible to it only.
"""
import os
import signal
import subprocess
import sys
import time

from celery import Celery, group

REDIS = os.environ.get("QBENCH_REDIS", "redis://127.0.0.1:6379")
BROKER_DB = int(os.environ.get("QBENCH_CELERY_DB", "0"))
BACKEND_DB = BROKER_DB + 1
app = Celery("qbench_celery", broker=REDIS + "/%d" % BROKER_DB,
             backend=REDIS + "/%d" % BACKEND_DB)
app.conf.update(
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="noop")
def noop():
    return None


def result(key, value):
    print("R\t%s\t%.6g" % (key, value), flush=True)


def opt(name, default):
    argv = sys.argv
    for i in range(2, len(argv) - 1):
        if argv[i] == name:
            return type(default)(argv[i + 1]) if default is not None else argv[i + 1]
    return default


def latency_results(lat):
    lat = sorted(lat)
    n = len(lat)

    def pct(p):
        rank = max(1, min(n, int(p / 100.0 * n + 0.999999)))
        return lat[rank - 1]

    result("p50_ms", 1e3 * pct(50))
    result("p99_ms", 1e3 * pct(99))
    result("mean_ms", 1e3 * sum(lat) / n)
    result("max_ms", 1e3 * lat[-1])


def redis_client(db):
    import redis

    return redis.Redis.from_url(REDIS + "/%d" % db)


def start_worker(pool, conc):
    env = dict(os.environ)
    here = os.path.dirname(os.path.abspath(__file__))
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ in the source tree
    env["PYTHONPATH"] = here + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, "-m", "celery", "-A", "qbench_celery", "worker",
           "--pool", pool, "--concurrency", str(conc), "--loglevel", "WARNING",
           "--without-gossip", "--without-mingle", "--without-heartbeat",
           "-n", "qbench%d@%%h" % start_worker.count]
    start_worker.count += 1
    log = open(os.environ.get("QBENCH_CELERY_LOG", os.devnull), "ab")
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=log, cwd=here)


start_worker.count = 0


def stop_workers(procs):
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def cmd_enqueue(n, batch):
    t0 = time.monotonic()
    if batch <= 1:
        for _ in range(n):
            noop.delay()
    else:
        done = 0
        while done < n:
            k = min(batch, n - done)
            group(noop.s() for _ in range(k)).apply_async()
            done += k
    dt = time.monotonic() - t0
    result("enqueue_rate", n / dt)
    result("enqueue_seconds", dt)


def cmd_drain(n, pool, conc, nprocs, max_s):
    backend = redis_client(BACKEND_DB)
    backend.flushdb()
    done = 0
    while done < n:
        k = min(1000, n - done)
        group(noop.s() for _ in range(k)).apply_async()
        done += k
    queued = redis_client(BROKER_DB).llen("celery")
    if queued != n:
        raise SystemExit("expected %d queued messages, found %d" % (n, queued))
    cpu0 = time.process_time()
    t0 = time.monotonic()
    procs = [start_worker(pool, conc) for _ in range(nprocs)]
    t_first = None
    while True:
        got = backend.dbsize()
        if got and t_first is None:
            t_first = time.monotonic()
        if got >= n:
            break
        if time.monotonic() - t0 > max_s:  # keep the suite's time bounded
            n = got
            break
        if any(p.poll() is not None for p in procs):
            raise SystemExit("a celery worker exited early")
        time.sleep(0.002)
    t_done = time.monotonic()
    cpu1 = time.process_time()
    stop_workers(procs)
    result("drain_rate", n / (t_done - t0))
    result("drain_seconds", t_done - t0)
    result("drain_first_ms", 1e3 * (t_first - t0))
    result("drain_steady_rate", (n - 1) / (t_done - t_first))
    result("harness_cpu_s", cpu1 - cpu0)
    result("drain_done", n)


def cmd_rtt(n, pool, conc):
    procs = [start_worker(pool, conc)]
    try:
        noop.delay().get(timeout=60)  # the worker is up
        for _ in range(100):
            noop.delay().get(timeout=10)
        lat = []
        t_all = time.monotonic()
        for _ in range(n):
            t0 = time.monotonic()
            noop.delay().get(timeout=10)
            lat.append(time.monotonic() - t0)
        t_all = time.monotonic() - t_all
    finally:
        stop_workers(procs)
    latency_results(lat)
    result("rtt_per_second", n / t_all)


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    cmd = sys.argv[1]
    n = opt("-n", 10000)
    pool = opt("--pool", "prefork")
    conc = opt("-c", 2)
    if cmd == "enqueue":
        cmd_enqueue(n, opt("--batch", 1))
    elif cmd == "drain":
        cmd_drain(n, pool, conc, opt("--procs", 1), opt("--max-seconds", 120.0))
    elif cmd == "rtt":
        cmd_rtt(n, pool, conc)
    else:
        raise SystemExit("unknown command " + cmd)


if __name__ == "__main__":
    main()
