"""Celery's remote control answered by `errand worker --celery`: ping,
inspect active/reserved/registered/stats, a destination honoured, the
`celery status` command listing the C worker, an unknown command answered
with an error; and a revoke that outlives the worker that heard it (kept in
errand.celery.revoked), refused by the next C worker, and handed to a
Python worker's mingle at its start."""
import os
import socket
import subprocess
import sys
import time

from celhelp import check, run_main, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))


def node_of(app, pid):
    name = 'errand.%d@%s' % (pid, socket.gethostname())

    def answered():
        return any(name in reply for reply in app.control.ping(timeout=1.0))
    wait_for(answered, 120, 'the C worker answers app.control.ping')
    return name


def run(env):
    app = env.app()
    r = env.r
    w = env.worker('-P', 'threads', '-c', '2')
    name = node_of(app, w.pid)
    replies = app.control.ping(timeout=1.0)
    check({name: {'ok': 'pong'}} in replies,
          'app.control.ping includes {%r: {"ok": "pong"}} (%r)' % (name, replies))
    check(app.control.ping(destination=[name], timeout=5.0) == [{name: {'ok': 'pong'}}],
          'a ping sent to the C worker by name is answered')
    check(app.control.ping(destination=['nobody@nowhere'], timeout=1.0) == [],
          'a ping for another node is not answered')

    # named: the reply is awaited until it comes (up to the timeout), not for the whole timeout
    ins = app.control.inspect(destination=[name], timeout=10.0)
    reg = wait_for(lambda: (ins.registered() or {}).get(name), 60, 'registered')
    check('add' in reg and 'sleep' in reg and not any(n.startswith('errand.') for n in reg),
          'inspect registered lists the C tasks, not errand\'s internal ones (%r)' % reg)

    res = app.send_task('sleep', args=[6])

    def active():
        tasks = (ins.active() or {}).get(name) or []
        return [t for t in tasks if t['id'] == res.id]
    t = wait_for(active, 60, 'the running sleep task in inspect active')[0]
    check(t['name'] == 'sleep' and t['type'] == 'sleep' and t['args'] == [6] and
          t['kwargs'] == {} and t['hostname'] == name and t['worker_pid'] == w.pid and
          t['time_start'] and t['delivery_info']['routing_key'] == 'celery',
          'inspect active shows the running task as Celery\'s Request.info (%r)' % t)
    reserved = (ins.reserved() or {}).get(name)
    check(isinstance(reserved, list) and all(x['id'] != res.id for x in reserved),
          'inspect reserved answers a list without the running task (%r)' % reserved)
    stats = (ins.stats() or {}).get(name) or {}
    check(stats.get('pid') == w.pid and stats.get('total', {}).get('sleep', 0) >= 1 and
          stats.get('pool', {}).get('max-concurrency') == 2,
          'inspect stats has the pid, the total by task, the pool (%r)' % stats)
    res.get(timeout=60)
    conf = (ins.conf() or {}).get(name) or {}
    check('error' in conf, 'a command it does not answer gets an error reply (%r)' % conf)

    penv = dict(os.environ, CEL_URL=env.url, PYTHONPATH=HERE)
    p = subprocess.run([sys.executable, '-m', 'celery', '-A', 'mixed_tasks', 'status'],
                       env=penv, cwd=HERE, capture_output=True, text=True, timeout=120)
    check(p.returncode == 0 and name in p.stdout and '1 node online' in p.stdout,
          'celery status lists the C worker and exits 0 (%d: %r %r)' % (
              p.returncode, p.stdout, p.stderr[-300:]))
    p = subprocess.run([sys.executable, '-m', 'celery', '-A', 'mixed_tasks', 'inspect', 'ping',
                        '-d', name], env=penv, cwd=HERE, capture_output=True, text=True,
                       timeout=120)
    check(p.returncode == 0 and 'pong' in p.stdout,
          'celery inspect ping -d <node> is answered (%d: %r)' % (p.returncode, p.stdout))

    # a revoke outlives the worker that heard it
    rid, rid2 = 'revoked-before-restart', 'revoked-for-python'
    app.control.revoke(rid2)
    reply = app.control.revoke(rid, reply=True, destination=[name], timeout=5.0)
    check(reply == [{name: {'ok': 'tasks %s flagged as revoked' % rid}}],
          'a revoke is answered as a Python worker answers it (%r)' % reply)
    check(r.zscore('errand.celery.revoked', rid) is not None,
          'the revoked id is kept in errand.celery.revoked')
    check(rid in (ins.revoked() or {}).get(name, []), 'inspect revoked lists it')
    check(env.stop(w) == 0, 'the first C worker stops')
    late = app.send_task('add', args=[1, 2], task_id=rid)
    # Celery forgets a revoke after 10800 s and keeps at most 50,000
    now = time.time()
    r.zadd('errand.celery.revoked', {'expired-revoke': now - 20000})
    r.zadd('errand.celery.revoked', {'bulk-%d' % i: now - 1000 - i / 10.0 for i in range(50010)})
    old = app.send_task('add', args=[3, 4], task_id='expired-revoke')
    w2 = env.worker('-P', 'threads', '-c', '2', log='worker2.log')
    try:
        late.get(timeout=60)
        check(False, 'a task revoked before the worker started raises')
    except Exception as e:
        check(type(e).__name__ == 'TaskRevokedError' and late.state == 'REVOKED',
              'a C worker started after the revoke ends the task REVOKED (%r)' % e)
    after = app.send_task('add', args=[2, 2])
    check(after.get(timeout=60) == 4, 'other tasks still run')
    check(old.get(timeout=60) == 7, 'a revoke older than 10800 s holds no more')
    name2 = node_of(app, w2.pid)

    # a mingle: a Python worker starting asks the others for their revokes
    t0, mono = time.time(), time.monotonic()
    hello = app.control.inspect(destination=[name2], timeout=5.0).hello(
        'other@host', {'revoked-by-python': mono - 60})
    known = ((hello or {}).get(name2) or {}).get('revoked') or {}
    check(rid in known and rid2 in known and abs(known[rid2] - mono) < 120,
          'hello answers the revokes in force, timed by the monotonic clock (%r)' % hello)
    score = r.zscore('errand.celery.revoked', 'revoked-by-python')
    check(score is not None and abs(score - (t0 - 60)) < 5,
          'the revokes a hello carries are kept, at their own time (%r)' % score)
    check(r.zscore('errand.celery.revoked', 'expired-revoke') is None and
          r.zcard('errand.celery.revoked') == 50000 and
          r.zscore('errand.celery.revoked', 'bulk-50009') is None and
          r.zscore('errand.celery.revoked', rid) is not None,
          'the set is trimmed as Celery trims its revokes: expired, then the oldest past 50,000 '
          '(%d)' % r.zcard('errand.celery.revoked'))
    plog = open(os.path.join(env.dir, 'py.log'), 'ab')
    py = subprocess.Popen([sys.executable, '-m', 'celery', '-A', 'mixed_tasks', 'worker', '-P',
                           'solo', '-Q', 'pyonly', '-n', 'py@%h', '--without-heartbeat',
                           '--without-gossip', '-l', 'info'],
                          env=penv, cwd=HERE, stdout=plog, stderr=plog)
    env.procs.append(py)
    pyname = 'py@' + socket.gethostname()
    wait_for(lambda: any(pyname in x for x in app.control.ping(timeout=1.0)), 120,
             'the Python worker answers a ping')
    check('mingle: sync with 1 nodes' in env.log('py.log'),
          'the Python worker synced with the C worker at its start')
    pyres = app.send_task('mark', args=[env.port, 0], task_id=rid2, queue='pyonly')
    try:
        pyres.get(timeout=60)
        check(False, 'the Python worker refuses a task the C worker knew revoked')
    except Exception as e:
        check(type(e).__name__ == 'TaskRevokedError',
              'a Python worker started later refuses what the C worker knew revoked (%r)' % e)
    env.stop(py)
    check(env.stop(w2) == 0, 'the second C worker stops cleanly')


if __name__ == '__main__':
    run_main(run)
