"""Python tasks for a Python Celery worker that a C client calls
(test_client.py). CEL_URL names the broker and backend."""
import os

from celery import Celery

URL = os.environ['CEL_URL']
app = Celery('client_tasks', broker=URL, backend=URL)


@app.task(name='add')
def add(a, b):
    return a + b


@app.task(name='boom')
def boom(msg):
    raise ValueError(msg)
