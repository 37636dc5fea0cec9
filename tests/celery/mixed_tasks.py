"""The Python twin of mark_tasks.c, for a Python Celery worker sharing a
queue with a C worker. CEL_URL names the broker and backend."""
import os
import time

import redis
from celery import Celery

URL = os.environ['CEL_URL']
app = Celery('mixed', broker=URL, backend=URL)
app.conf.broker_transport_options = {'visibility_timeout': 5}
app.conf.worker_prefetch_multiplier = 4
_r = redis.Redis.from_url(URL)


@app.task(name='mark', bind=True)
def mark(self, port, secs):
    _r.incr('mark:' + self.request.id)
    _r.rpush('marked', 'py')
    time.sleep(secs)
    return self.request.id
