"""A mixed pool on one queue: a Python Celery worker and a C worker, the C
worker killed -9 mid-batch: its unacknowledged messages come back after the
visibility timeout (restored by whichever consumer looks first: kombu's
restore_visible in the Python worker or the next C worker's), and every task
is done, once but for those the killed worker was running."""
import json
import os
import signal
import subprocess
import sys
import time

from celhelp import check, run_main, wait_for

N = 400
HERE = os.path.dirname(os.path.abspath(__file__))


def run(env):
    r = env.r
    app = env.app(visibility_timeout=5)
    penv = dict(os.environ, CEL_URL=env.url, PYTHONPATH=HERE)
    plog = open(os.path.join(env.dir, 'py.log'), 'ab')
    py = subprocess.Popen([sys.executable, '-m', 'celery', '-A', 'mixed_tasks', 'worker', '-P',
                           'solo', '-Q', 'celery', '--without-heartbeat', '--without-gossip',
                           '--without-mingle', '-l', 'warning'],
                          env=penv, cwd=HERE, stdout=plog, stderr=plog)
    env.procs.append(py)
    wait_for(lambda: app.control.ping(timeout=1.0), 120, 'the Python worker answers a ping')
    extra = ['-A', env.opts.mark, '-c', '4', '--visibility-timeout', '5']
    c1 = env.worker(*extra)
    rs = [app.send_task('mark', args=[env.port, 0.02]) for _ in range(N)]
    wait_for(lambda: r.llen('marked') >= N // 4, 120, 'a quarter of the tasks run')
    c1.send_signal(signal.SIGKILL)
    c1.wait()
    # what was held unacknowledged when it died (the Python worker's too)
    held = set()
    for v in r.hvals('unacked'):
        held.add(json.loads(v)[0]['headers']['id'])
    check(True, 'the C worker killed -9 mid-batch (%d messages unacknowledged)' % len(held))
    c2 = env.worker(*extra, log='worker2.log')
    keys = ['celery-task-meta-' + x.id for x in rs]
    # read from the result keys (AsyncResult.get, one by one, is slow here)
    metas = wait_for(lambda: (lambda v: None if None in v else v)(r.mget(keys)), 300,
                     'every result')
    ids = [json.loads(m)['result'] for m in metas]
    check(ids == [x.id for x in rs], 'every task has its result')
    counts = [int(r.get('mark:' + x.id) or 0) for x in rs]
    check(min(counts) >= 1, 'no task was lost')
    twice = {x.id for x, c in zip(rs, counts) if c > 1}
    check(twice <= held and max(counts) <= 2,
          'only messages held unacknowledged at the kill ran twice (%d), none more than twice'
          % len(twice))
    kinds = r.lrange('marked', 0, -1)
    check(b'c' in kinds and b'py' in kinds,
          'both workers ran tasks (C %d, Python %d)' % (kinds.count(b'c'), kinds.count(b'py')))
    wait_for(lambda: r.hlen('unacked') == 0, 30, 'every message acknowledged')
    check(r.zcard('unacked_index') == 0, 'unacked_index is empty')
    check(env.stop(c2) == 0, 'the second C worker stops cleanly')
    time.sleep(0.1)


if __name__ == '__main__':
    run_main(run)
