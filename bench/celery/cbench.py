"""The Celery suite's client: a Python Celery client against whichever
worker serves the `celery` queue (errand's C worker or a Python Celery one),
broker and result backend on one Redis database.

    CBENCH_REDIS=redis://127.0.0.1:PORT/0 /usr/bin/python3 cbench.py drain -n N -- WORKER CMD...
    ... cbench.py rtt -n N -- WORKER CMD...

drain  sends N add(i, i) (untimed, the worker not yet started), starts the
       worker and times until the backend holds N results (DBSIZE, looked
       at every 5 ms): tasks/s, from the start and from the first result (the
       worker's start-up left out). Then checks the first 200 results.
rtt    starts the worker, warms up, then add.delay(...).get() N times in a
       row: p50 and p99 in ms.
Prints "R<TAB>key<TAB>value" lines. Also the app a Python worker loads
(-A cbench): its `add` is the Python twin of examples/tasks.c's.
"""
import os
import signal
import subprocess
import sys
import time

import redis
from celery import Celery

URL = os.environ.get('CBENCH_REDIS', 'redis://127.0.0.1:6379/0')
app = Celery('cbench', broker=URL, backend=URL)
app.conf.update(worker_hijack_root_logger=False)


@app.task(name='add')
def add(a, b):
    return a + b


def result(key, value):
    print('R\t%s\t%.6g' % (key, value), flush=True)


def start(cmd):
    log = open(os.environ.get('CBENCH_LOG', os.devnull), 'ab')
    return subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)


def stop(p):
    try:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(60)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def drain(n, cmd, r):
    r.flushdb()
    rs = [app.send_task('add', args=[i, i]) for i in range(n)]
    base = r.dbsize()
    t0 = time.time()
    p = start(cmd)
    try:
        deadline = t0 + float(os.environ.get('CBENCH_MAX_S', '300'))
        first = None
        while time.time() < deadline:
            got = r.dbsize() - base
            if got and first is None:
                first = (time.time(), got)
            if got >= n:
                break
            time.sleep(0.005)
        dt = time.time() - t0
        done = r.dbsize() - base
    finally:
        stop(p)
    result('drain_per_s', done / dt)
    # from the first result on: the worker's start-up left out
    if first and done > first[1]:
        result('drain_steady_per_s', (done - first[1]) / (t0 + dt - first[0]))
    result('drain_done', done)
    ok = sum(1 for i, x in enumerate(rs[:200]) if x.get(timeout=10) == 2 * i)
    result('drain_checked', ok)


def rtt(n, cmd, r):
    r.flushdb()
    p = start(cmd)
    try:
        for _ in range(50):
            app.send_task('add', args=[1, 1]).get(timeout=60)
        lat = []
        for i in range(n):
            t = time.perf_counter()
            v = app.send_task('add', args=[i, 1]).get(timeout=60)
            lat.append((time.perf_counter() - t) * 1000)
            assert v == i + 1
    finally:
        stop(p)
    lat.sort()
    result('rtt_p50_ms', lat[len(lat) // 2])
    result('rtt_p99_ms', lat[min(len(lat) - 1, int(len(lat) * 0.99))])


def main():
    what, n = sys.argv[1], int(sys.argv[3])
    cmd = sys.argv[sys.argv.index('--') + 1:]
    r = redis.Redis.from_url(URL)
    {'drain': drain, 'rtt': rtt}[what](n, cmd, r)


if __name__ == '__main__':
    main()
