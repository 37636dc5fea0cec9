"""A C client (a store URL with ?protocol=celery, through `errand send`,
`status` and `result`, which use er_send, er_status and er_result) calling
Python tasks run by a Python Celery worker: values, failures (ER_EFAIL with
the exception's type and message), countdown; the message it writes has
the headers and properties of the one Celery's send_task writes (captured
here), and it reads the result key a Python worker writes."""
import json
import os
import subprocess
import sys

from celhelp import check, run_main, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))


def errand(env, *a, store=None):
    store = store or env.url + '?protocol=celery'
    p = subprocess.run([env.opts.errand] + list(a) + ['--store', store],
                       capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout.strip(), p.stderr.strip()


def run(env):
    r = env.r
    app = env.app()
    # the wire: what errand writes beside what Celery writes
    app.send_task('add', args=[1, 2])
    py = json.loads(r.rpop('celery'))
    rc, out, err = errand(env, 'send', 'add', '--args', '[1, 2]')
    check(rc == 0 and len(out) == 36, 'errand send prints the id (%s)' % err)
    c = json.loads(r.rpop('celery'))
    check(set(c) == set(py), 'the envelope has Celery\'s keys')
    check(set(c['headers']) == set(py['headers']), 'the headers are Celery\'s (%s)' %
          sorted(set(py['headers']) ^ set(c['headers'])))
    check(set(c['properties']) == set(py['properties']), 'the properties are Celery\'s')
    check(c['headers']['id'] == out and c['properties']['delivery_info'] ==
          py['properties']['delivery_info'], 'the id and delivery_info as Celery sets them')
    rc, out, err = errand(env, 'send', 'nosuch', '--args', '[]', '--name', 'x')
    check(rc != 0 and 'not Celery' in err, 'a task name is refused in one line (%s)' % err)

    penv = dict(os.environ, CEL_URL=env.url, PYTHONPATH=HERE)
    plog = open(os.path.join(env.dir, 'py.log'), 'ab')
    w = subprocess.Popen([sys.executable, '-m', 'celery', '-A', 'client_tasks', 'worker', '-P',
                          'solo', '--without-heartbeat', '--without-gossip', '--without-mingle',
                          '-l', 'warning'], env=penv, cwd=HERE, stdout=plog, stderr=plog)
    env.procs.append(w)

    rc, out, err = errand(env, 'send', 'add', '--args', '[2, 3]', '--wait', '--timeout', '60')
    check(rc == 0 and out == '5', 'a Python task\'s value (%r %r)' % (out, err))
    rc, out, err = errand(env, 'send', 'boom', '--args', '["bad input"]', '--wait',
                          '--timeout', '60')
    check(rc == 1 and 'ValueError: bad input' in err,
          'a Python exception is a failure with its type and message (%r)' % err)
    rc, tid, err = errand(env, 'send', 'add', '--args', '[20, 22]', '--countdown', '1')
    rc, out, err = errand(env, 'result', tid, '--wait', '--timeout', '60')
    check(rc == 0 and out == '42', 'a countdown task\'s result by id')
    rc, out, err = errand(env, 'status', tid)
    st = json.loads(out)
    check(rc == 0 and st['state'] == 'SUCCESS' and st['id'] == tid, 'its status is SUCCESS')
    meta = json.loads(r.get('celery-task-meta-' + tid))
    check(meta['result'] == 42, 'read from the result key the Python worker wrote')
    rc, out, err = errand(env, 'status', '0f0f0f0f-0000-4000-8000-000000000000')
    check(rc == 0 and json.loads(out)['state'] == 'PENDING',
          'an id without a result is PENDING, as Celery says')
    rc, out, err = errand(env, 'send', 'add', '--args', '[1, 1]',
                          store='sqlite:' + os.path.join(env.dir, 'x.db') + '?protocol=celery')
    check(rc == 2 and 'redis' in err and '\n' not in err,
          'protocol=celery on another store: one line, exit 2 (%r)' % err)
    env.stop(w)


if __name__ == '__main__':
    run_main(run)
