"""Shared by the Celery tests: a redis-server the test starts on a free
loopback port (stopped by its pid), the errand worker, a Celery app.

Run by /usr/bin/python3, which sees Debian's python3-celery and python3-redis.
Arguments: --errand PATH --tasks LIB [--tool PATH]."""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

_T0 = time.time()

import redis
from celery import Celery


def args():
    p = argparse.ArgumentParser()
    p.add_argument('--errand', required=True)
    p.add_argument('--tasks', required=True)
    p.add_argument('--tool')
    p.add_argument('--mark')
    return p.parse_args()


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Env:
    """A private redis-server and the processes a test starts, all stopped
    by pid at the end."""

    def __init__(self, opts):
        self.opts = opts
        self.dir = tempfile.mkdtemp(prefix='errand-celery-')
        self.port = free_port()
        self.procs = []
        self.redis_proc = subprocess.Popen(
            ['redis-server', '--port', str(self.port), '--bind', '127.0.0.1', '--save', '',
             '--appendonly', 'no', '--dir', self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = 'redis://127.0.0.1:%d/0' % self.port
        self.r = redis.Redis(port=self.port)
        for _ in range(200):
            try:
                if self.r.ping():
                    break
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        else:
            raise SystemExit('redis-server did not start')

    def app(self, **transport):
        app = Celery('t', broker=self.url, backend=self.url)
        app.conf.broker_transport_options = transport
        app.conf.result_backend_transport_options = {}
        return app

    def worker(self, *extra, log='worker.log'):
        """Starts `errand worker --celery`; returns the Popen."""
        cmd = [self.opts.errand, 'worker', '--celery', '--store', self.url, '-A',
               self.opts.tasks, '--quiet', '-l', 'info'] + list(extra)
        f = open(os.path.join(self.dir, log), 'ab')
        p = subprocess.Popen(cmd, stdout=f, stderr=f)
        f.close()
        self.procs.append(p)
        return p

    def log(self, name='worker.log'):
        if not os.path.exists(os.path.join(self.dir, name)):
            return ''
        with open(os.path.join(self.dir, name), errors='replace') as f:
            return f.read()

    def stop(self, p, sig=signal.SIGTERM, timeout=60):
        if p.poll() is None:
            p.send_signal(sig)
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            return p.wait()

    def close(self):
        for p in self.procs:
            self.stop(p, signal.SIGKILL)
        self.redis_proc.kill()
        self.redis_proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print('ok -', what, '(%.1f s)' % (time.time() - _T0))
    sys.stdout.flush()


def wait_for(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError('timed out: ' + what)


def run_main(body):
    """Runs body(env) and exits 0, or 1 with the traceback; the process ends
    with os._exit so that Celery's result consumer does not try to reconnect
    to the stopped redis-server at interpreter exit."""
    import traceback
    code = 1
    env = Env(args())
    try:
        body(env)
        code = 0
    except BaseException:
        traceback.print_exc()
        print('worker log:\n' + env.log()[-4000:])
        print('python worker log:\n' + env.log('py.log')[-4000:])
        print('second worker log:\n' + env.log('worker2.log')[-4000:])
        try:
            r = env.r
            print('state: list %d, unacked %d, delayed %d, rejected %d, results %d' % (
                r.llen('celery'), r.hlen('unacked'), r.zcard('errand.celery.delayed_index'),
                r.llen('errand.celery.rejected'), len(r.keys('celery-task-meta-*'))))
        except Exception as e:
            print('state: %s' % e)
    finally:
        env.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
