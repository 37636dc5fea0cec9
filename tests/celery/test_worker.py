"""A Python Celery client calling C tasks run by `errand worker --celery`:
values, failures, ignore_result, countdown kept in Redis, expires, unknown
tasks, invalid messages, revoke, retry, 2,000 round trips, a chain of three,
a chord of ten summed by xsum, links and errbacks, a chord callback sent
after a failed first try, and --track-started."""
import base64
import json
import time

from celery import chain, chord, signature
from celery.exceptions import NotRegistered, TaskRevokedError

from celhelp import check, run_main, wait_for


def run(env):
    app = env.app()
    r = env.r
    import os
    import subprocess
    p = subprocess.run([env.opts.errand, 'worker', '--celery', '--store',
                        'sqlite:' + os.path.join(env.dir, 'x.db'), '-A', env.opts.tasks],
                       capture_output=True, text=True, timeout=60)
    check(p.returncode == 2 and p.stderr.count('\n') == 1 and 'redis' in p.stderr,
          '--celery on a store that is not Redis: one line, exit 2 (%r)' % p.stderr)
    p = subprocess.run([env.opts.errand, 'worker', '--track-started', '--store', env.url, '-A',
                        env.opts.tasks], capture_output=True, text=True, timeout=60)
    check(p.returncode == 2 and p.stderr.count('\n') == 1 and '--celery' in p.stderr,
          '--track-started without --celery: one line, exit 2 (%r)' % p.stderr)
    w = env.worker('-P', 'threads', '-c', '4')

    check(app.send_task('add', args=[2, 3]).get(timeout=30) == 5, 'a value comes back')
    res = app.send_task('add', args=[2, 3])
    res.get(timeout=30)
    meta = json.loads(r.get('celery-task-meta-' + res.id))
    check(meta['status'] == 'SUCCESS' and meta['task_id'] == res.id and
          set(meta) >= {'status', 'result', 'traceback', 'children', 'date_done', 'task_id'},
          'the result key holds what Celery\'s backend writes')
    ttl = r.ttl('celery-task-meta-' + res.id)
    check(80000 < ttl <= 86400, 'the result key has Celery\'s default TTL (a day)')

    try:
        app.send_task('fail', args=['boom']).get(timeout=30)
        check(False, 'a failure raises')
    except RuntimeError as e:
        check(str(e) == 'boom', 'a failure arrives as RuntimeError with its message')
    try:
        app.send_task('add', args=['x']).get(timeout=30)
        check(False, 'a bad argument raises')
    except ValueError as e:
        check('two integers' in str(e), 'ER_EINVAL arrives as ValueError')
    fres = app.send_task('fail', args=['again'])
    try:
        fres.get(timeout=30)
    except RuntimeError:
        pass
    fmeta = json.loads(r.get('celery-task-meta-' + fres.id))
    check(fmeta['status'] == 'FAILURE' and fmeta['result']['exc_type'] == 'RuntimeError' and
          fmeta['result']['exc_module'] == 'builtins' and
          fmeta['result']['exc_message'] == ['again'],
          'the failure names exc_type, exc_module and exc_message')

    ig = app.send_task('add', args=[1, 1], ignore_result=True)
    after = app.send_task('add', args=[1, 2])
    after.get(timeout=30)
    time.sleep(0.3)
    check(r.get('celery-task-meta-' + ig.id) is None, 'ignore_result writes no result')

    # countdown: kept in Redis (errand's delayed set), not in a worker's memory
    t0 = time.time()
    cd = app.send_task('add', args=[4, 4], countdown=3)
    wait_for(lambda: r.zcard('errand.celery.delayed_index') == 1, 10,
             'the countdown message in the delayed set')
    check(r.hlen('unacked') == 0, 'a delayed message is not held unacknowledged')
    check(cd.get(timeout=30) == 8 and time.time() - t0 >= 2.9, 'countdown runs when due')
    check(r.zcard('errand.celery.delayed_index') == 0, 'the delayed set is empty after')

    # expires
    ex = app.send_task('add', args=[1, 1], countdown=2, expires=1)
    try:
        ex.get(timeout=30)
        check(False, 'an expired task raises')
    except TaskRevokedError as e:
        check('expired' in str(e), 'an expired task is REVOKED (TaskRevokedError: expired)')

    # unknown task: rejected as Celery does, the message kept aside
    try:
        app.send_task('no.such.task', args=[]).get(timeout=30)
        check(False, 'an unknown task raises')
    except NotRegistered as e:
        check('no.such.task' in str(e), 'an unknown task fails NotRegistered')
    check(r.llen('errand.celery.rejected') == 1, 'the unknown task\'s message is set aside')

    # a message that is not protocol v2: set aside, the worker goes on
    r.lpush('celery', b'this is not json')
    r.lpush('celery', json.dumps({'body': 'e30=', 'headers': {}, 'properties':
                                  {'delivery_tag': 'x1', 'delivery_info': {}}}))
    check(app.send_task('add', args=[5, 5]).get(timeout=30) == 10,
          'the worker goes on after invalid messages')
    check(r.llen('errand.celery.rejected') == 3 and w.poll() is None,
          'invalid messages are set aside, never crash the worker')
    check(r.hlen('unacked') == 0, 'nothing is left unacknowledged')

    # revoke broadcast (celery control revoke)
    rv = app.send_task('add', args=[1, 1], countdown=3)
    wait_for(lambda: r.zcard('errand.celery.delayed_index') == 1, 10, 'delayed')
    app.control.revoke(rv.id)
    try:
        rv.get(timeout=30)
        check(False, 'a revoked task raises')
    except TaskRevokedError:
        check(True, 'a task revoked by broadcast is REVOKED')
    # a running task revoked: the C task stops at its next check
    pr = app.send_task('progress', args=[5])
    wait_for(lambda: r.hlen('unacked') == 1, 10, 'the long task running')
    time.sleep(0.5)
    app.control.revoke(pr.id)
    try:
        pr.get(timeout=30)
        check(False, 'a revoked running task raises')
    except TaskRevokedError:
        check(True, 'a running task revoked by broadcast stops REVOKED')

    # retry: published again as Celery does, one more retry counted
    fl = app.send_task('flaky', args=[2])
    check(fl.get(timeout=60) == 2, 'a task that asks for retries runs again (retries counted)')

    # progress (update_state PROGRESS)
    pg = app.send_task('progress', args=[2])
    seen = wait_for(lambda: pg.state == 'PROGRESS' and pg.info, 20, 'a PROGRESS state')
    check('progress' in seen, 'progress arrives as the PROGRESS state with its meta')
    pg.get(timeout=30)

    # 2,000 round trips
    t0 = time.time()
    rs = [app.send_task('add', args=[i, i]) for i in range(2000)]
    total = sum(x.get(timeout=120) for x in rs)
    check(total == sum(2 * i for i in range(2000)),
          '2,000 round trips (%.2f s)' % (time.time() - t0))

    # canvas
    c = chain(signature('add', args=[1, 2], app=app), signature('add', args=[3], app=app),
              signature('add', args=[4], app=app)).apply_async()
    check(c.get(timeout=30) == 10, 'a chain of three')
    parent = c.parent
    check(parent.get(timeout=5) == 6 and parent.parent.get(timeout=5) == 3,
          'each link of the chain has its result')
    ch = chord([signature('add', args=[i, i], app=app) for i in range(10)],
               signature('xsum', app=app)).apply_async()
    check(ch.get(timeout=30) == 90, 'a chord of ten summed by xsum')
    check(not r.keys('celery-taskset-meta-*.j'), 'the chord join keys are gone after')
    lk = signature('add', args=[1, 1], app=app)
    lk.link(signature('add', args=[100], app=app, task_id='link-child-1'))
    lk.apply_async().get(timeout=30)
    check(app.AsyncResult('link-child-1').get(timeout=30) == 102, 'a link gets the result')
    eb = signature('fail', args=['x'], app=app)
    eb.link_error(signature('add', args=[7], app=app, task_id='errback-1', immutable=False))
    res = eb.apply_async()
    try:
        res.get(timeout=30)
    except RuntimeError:
        pass
    # the errback gets the failed task's id first (Celery's old-style errback)
    eres = app.AsyncResult('errback-1')
    try:
        eres.get(timeout=30)
    except ValueError:
        pass
    check(eres.state in ('SUCCESS', 'FAILURE'), 'an errback is sent on failure')

    check(env.stop(w) == 0, 'the worker stops cleanly on SIGTERM')
    check(r.hlen('unacked') == 0 and r.zcard('unacked_index') == 0, 'every message acked')
    chord_callback_survives(env, app, r)
    track_started(env, app, r)


def chord_callback_survives(env, app, r):
    """The chord's last part stays unacked until its callback is sent: when
    the callback cannot be sent (its queue's key holds a string, so the
    LPUSH fails), the part comes back after the visibility timeout, runs
    again and sends it then. Nothing consumes `cbq`: the test reads it."""
    r.set('cbq', 'not a list')
    w = env.worker('-P', 'threads', '-c', '2', '--visibility-timeout', '2', log='chord.log')
    chord([signature('add', args=[i, i], app=app) for i in range(3)],
          signature('xsum', app=app).set(queue='cbq')).apply_async()
    wait_for(lambda: 'could not be sent' in env.log('chord.log'), 30, 'the callback fails')
    check(r.hlen('unacked') == 1, 'the last part is still unacked while its callback is unsent')
    r.delete('cbq')
    wait_for(lambda: r.llen('cbq') == 1, 30, 'the callback sent when the part comes back')
    msg = json.loads(r.lindex('cbq', 0))
    body = json.loads(base64.b64decode(msg['body']))
    check(msg['headers']['task'] == 'xsum' and body[0] == [[0, 2, 4]],
          'the callback gets every part\'s result, in order (%r)' % body[0])
    wait_for(lambda: r.hlen('unacked') == 0, 10, 'the last part acked with the callback')
    time.sleep(2.5)  # another visibility timeout: nothing comes back, nothing is sent twice
    check(r.llen('cbq') == 1 and not r.keys('celery-taskset-meta-*.[jts]') and
          r.hlen('unacked') == 0, 'one callback, the join keys gone, nothing unacked')
    check(env.stop(w) == 0, 'the worker stops cleanly')



def track_started(env, app, r):
    """--track-started writes STARTED ({pid, hostname}) when a task starts, as
    Celery's task_track_started; without it a running task reads PENDING."""
    w = env.worker('-P', 'threads', '-c', '2', log='plain.log')
    res = app.send_task('sleep', args=[1.5])
    wait_for(lambda: r.hlen('unacked') == 1, 10, 'the task taken')
    time.sleep(0.5)
    check(res.state == 'PENDING', 'without --track-started, a running task is PENDING')
    res.get(timeout=30)
    check(env.stop(w) == 0, 'the worker stops cleanly')
    w = env.worker('-P', 'threads', '-c', '2', '--track-started', log='started.log')
    res = app.send_task('sleep', args=[1.5])
    wait_for(lambda: res.state == 'STARTED', 10, 'STARTED while it runs')
    info = json.loads(r.get('celery-task-meta-' + res.id))['result']
    check(info['pid'] == w.pid and info['hostname'],
          'STARTED says which process runs it, as Celery\'s (%r)' % info)
    check(res.get(timeout=30) == 1.5 and res.state == 'SUCCESS', 'then SUCCESS')
    ig = app.send_task('sleep', args=[1], ignore_result=True)
    wait_for(lambda: r.hlen('unacked') == 1, 10, 'the ignore_result task taken')
    time.sleep(0.5)
    check(r.get('celery-task-meta-' + ig.id) is None, 'ignore_result: no STARTED either')
    check(env.stop(w) == 0, 'the worker stops cleanly')


if __name__ == '__main__':
    run_main(run)
