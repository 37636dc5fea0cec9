"""The codec against the messages Celery itself writes, captured here from
a Python Celery client on a private redis-server: every header and
property errand reads (id, task, args, kwargs, embed, eta, expires,
retries, time limits, priority and its sub-list, root and parent ids, group,
delivery tag and routing key) as Celery meant it; malformed envelopes
refused with a reason."""
import base64
import datetime
import json
import subprocess

from celery import chain, chord, signature

from celhelp import check, run_main


def decode(env, raw):
    p = subprocess.run([env.opts.tool], input=raw + b'\n', capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def ms(iso):
    d = datetime.datetime.fromisoformat(iso)
    return round(d.timestamp() * 1000)


def run(env):
    r = env.r
    app = env.app()

    def sent(key='celery'):
        raw = r.rpop(key)
        return raw, json.loads(raw)

    app.send_task('add', args=[2, 3], kwargs={'k': [1, {'x': 'é'}]})
    raw, env_ = sent()
    d = decode(env, raw)
    body = json.loads(base64.b64decode(env_['body']))
    check(d['id'] == env_['headers']['id'] and d['task'] == 'add', 'id and task name')
    check(d['args'] == [2, 3] and d['kwargs'] == {'k': [1, {'x': 'é'}]} and d['embed'] == body[2],
          'the base64 body [args, kwargs, embed], UTF-8 intact')
    check(d['tag'] == env_['properties']['delivery_tag'] and d['routing_key'] == 'celery',
          'delivery tag and routing key')
    check(d['root_id'] == d['id'] and d['parent_id'] is None and d['eta_ms'] == 0 and
          d['expires_ms'] == 0 and d['retries'] == 0, 'root id, no parent, no eta or expiry')

    app.send_task('add', args=[1, 1], countdown=30, expires=90, priority=7,
                  time_limit=20, soft_time_limit=10, ignore_result=True)
    raw, env_ = sent('celery\x06\x166')
    d = decode(env, raw)
    h = env_['headers']
    check(d['eta_ms'] == ms(h['eta']) and d['expires_ms'] == ms(h['expires']),
          'eta and expires as Celery wrote them (%s, %s)' % (h['eta'], h['expires']))
    check(d['priority'] == 7, 'priority 7, sent to the sub-list kombu chose for it')
    check(subprocess.run([env.opts.tool, 'list', 'celery', '7'], capture_output=True)
          .stdout == b'celery\x06\x166\n', 'errand names that sub-list as kombu does')
    check(d['hard_ms'] == 20000 and d['soft_ms'] == 10000, 'time limits [hard, soft]')
    check(d['ignore_result'] is True, 'ignore_result')

    c = chain(signature('add', args=[1, 2], app=app), signature('add', args=[3], app=app),
              signature('add', args=[4], app=app)).apply_async()
    raw, env_ = sent()
    d = decode(env, raw)
    ch = d['embed']['chain']
    check(len(ch) == 2 and ch[-1]['args'] == [3] and ch[0]['args'] == [4],
          'a chain: embed.chain holds the rest, next last')
    check(ch[-1]['options']['task_id'] == c.parent.id, 'the next link\'s id as the client knows it')

    chord([signature('add', args=[i, i], app=app) for i in range(3)],
          signature('xsum', app=app)).apply_async()
    parts = [decode(env, r.rpop('celery')) for _ in range(3)]
    check(all(p['group'] for p in parts) and len({p['group'] for p in parts}) == 1,
          'a chord\'s parts share their group')
    check(all(p['embed']['chord']['task'] == 'xsum' for p in parts), 'each carries the callback')
    size = r.get('celery-taskset-meta-%s.s' % parts[0]['group'])
    check(size == b'3', 'the client set the chord size in .s (%r)' % size)

    bad = [b'not json', b'{"headers": {}}', json.dumps({
        'body': 'e30=', 'content-type': 'application/json', 'headers': {'id': 'x', 'task': 't'},
        'properties': {'body_encoding': 'base64'}}).encode(),
        json.dumps({'body': '!!!', 'content-type': 'application/json',
                    'headers': {'id': 'x', 'task': 't'},
                    'properties': {'body_encoding': 'base64'}}).encode(),
        json.dumps({'body': 'W10=', 'content-type': 'application/x-python-serialize',
                    'headers': {'id': 'x', 'task': 't'}, 'properties': {}}).encode()]
    for b in bad:
        d = decode(env, b)
        check('error' in d and d['error'], 'refused with a reason: %s' % d.get('error'))


if __name__ == '__main__':
    run_main(run)
