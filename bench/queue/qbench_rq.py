"""RQ's side of the queue benchmark on Redis: the same no-op job.

The module is both the job's home (`qbench_rq.noop`, which an `rq worker`
imports: this directory is put on its PYTHONPATH) and the benchmark client:

    QBENCH_REDIS=redis://127.0.0.1:PORT/DB /usr/bin/python3 qbench_rq.py enqueue -n N [--batch B]
    ... qbench_rq.py drain -n N [--procs 2] [--max-seconds S] [--worker-class C]
    ... qbench_rq.py rtt -n N

The queue is RQ's "default" on the Redis URL given (with its DB). RQ's
defaults everywhere else: its stock Worker, which forks a work horse for every
job, and a result kept 500 s (so finished jobs stay in the finished registry).

enqueue   Queue.enqueue(noop) N times; with --batch B, Queue.enqueue_many of B
          prepared jobs (one Redis pipeline for the B).
drain     puts N (untimed, enqueue_many of 1000), starts --procs `rq worker`
          processes and times until the queue is empty and the finished
          registry holds N (ZCARD, looked at every 2 ms). Gives up after
          --max-seconds (default 120) and reports the rate of what was done
          by then, with drain_done < N. --worker-class rq.worker.SimpleWorker
          runs the jobs in the worker process itself, without a fork each.
rtt       enqueue one job and wait until its status is finished (Job.get_status
          every 0.5 ms: RQ has no result wake-up), N times, with one worker
          idle, after a warm-up.

Figures are printed as "R<TAB>key<TAB>value" lines, like the other programs of
bench/queue. Run with /usr/bin/python3: Debian's python3-rq is visible to it.
"""
import os
import signal
import subprocess
import sys
import time

REDIS = os.environ.get("QBENCH_REDIS", "redis://127.0.0.1:6379/0")


def noop():
    return None


# By name: run as a script, this module is __main__ to the client.
JOB = "qbench_rq.noop"


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


def connect():
    from redis import Redis

    return Redis.from_url(REDIS)


def queue(conn):
    from rq import Queue

    return Queue("default", connection=conn)


def start_worker(worker_class=None):
    env = dict(os.environ)
    here = os.path.dirname(os.path.abspath(__file__))
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ in the source tree
    env["PYTHONPATH"] = here + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, "-m", "rq.cli", "worker", "--url", REDIS, "--quiet",
           "--logging_level", "WARNING", "--disable-job-desc-logging",
           "--name", "qbench%d.%d" % (os.getpid(), start_worker.count), "default"]
    if worker_class:
        cmd[4:4] = ["--worker-class", worker_class]
    start_worker.count += 1
    log = open(os.environ.get("QBENCH_RQ_LOG", os.devnull), "ab")
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=log, cwd=here)


start_worker.count = 0


def stop_workers(procs):
    # SIGTERM twice: RQ's warm shutdown waits for the job, a second is cold.
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def put_many(q, n, batch):
    from rq import Queue

    done = 0
    while done < n:
        k = min(batch, n - done)
        q.enqueue_many([Queue.prepare_data(JOB) for _ in range(k)])
        done += k


def cmd_enqueue(n, batch):
    conn = connect()
    q = queue(conn)
    t0 = time.monotonic()
    if batch <= 1:
        for _ in range(n):
            q.enqueue(JOB)
    else:
        put_many(q, n, batch)
    dt = time.monotonic() - t0
    result("enqueue_rate", n / dt)
    result("enqueue_seconds", dt)


def cmd_drain(n, nprocs, max_s, worker_class):
    from rq.registry import FinishedJobRegistry

    conn = connect()
    q = queue(conn)
    put_many(q, n, 1000)
    if q.count != n:
        raise SystemExit("expected %d queued jobs, found %d" % (n, q.count))
    finished = FinishedJobRegistry(queue=q).key
    cpu0 = time.process_time()
    t0 = time.monotonic()
    procs = [start_worker(worker_class) for _ in range(nprocs)]
    t_first = None
    while True:
        got = conn.zcard(finished)
        if got and t_first is None:
            t_first = time.monotonic()
        if got >= n and q.count == 0:
            break
        if time.monotonic() - t0 > max_s:  # keep the suite's time bounded
            n = got
            break
        if any(p.poll() is not None for p in procs):
            raise SystemExit("an rq worker exited early")
        time.sleep(0.002)
    t_done = time.monotonic()
    cpu1 = time.process_time()
    stop_workers(procs)
    if t_first is None:
        raise SystemExit("no job finished within %g s" % max_s)
    result("drain_rate", n / (t_done - t0))
    result("drain_seconds", t_done - t0)
    result("drain_first_ms", 1e3 * (t_first - t0))
    result("drain_steady_rate", (n - 1) / (t_done - t_first) if t_done > t_first else 0)
    result("harness_cpu_s", cpu1 - cpu0)
    result("drain_done", n)


def wait_finished(job, timeout):
    deadline = time.monotonic() + timeout
    while True:
        st = job.get_status(refresh=True)
        if st == "finished":
            return
        if st in ("failed", "stopped", "canceled"):
            raise SystemExit("job %s ended %s" % (job.id, st))
        if time.monotonic() > deadline:
            raise SystemExit("job %s not done after %g s" % (job.id, timeout))
        time.sleep(0.0005)


def cmd_rtt(n):
    conn = connect()
    q = queue(conn)
    procs = [start_worker()]
    try:
        wait_finished(q.enqueue(JOB), 60)  # the worker is up
        for _ in range(20):
            wait_finished(q.enqueue(JOB), 10)
        lat = []
        t_all = time.monotonic()
        for _ in range(n):
            t0 = time.monotonic()
            wait_finished(q.enqueue(JOB), 10)
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
    if cmd == "enqueue":
        cmd_enqueue(n, opt("--batch", 1))
    elif cmd == "drain":
        cmd_drain(n, opt("--procs", 2), opt("--max-seconds", 120.0), opt("--worker-class", None))
    elif cmd == "rtt":
        cmd_rtt(n)
    else:
        raise SystemExit("unknown command " + cmd)


if __name__ == "__main__":
    main()
