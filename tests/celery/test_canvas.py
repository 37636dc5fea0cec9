"""Nested canvases a Python Celery client sends, their tasks run by
`errand worker --celery`: a group or chord as the next step of a chain, as
a link or inside a chord; a chain as a link, a chord body or a group's task;
several links and errbacks sent as one group; a link of an unknown type.

First the wire: for each canvas the messages the C worker publishes after
its first task are compared with those Celery 5.2 itself publishes for the
same step (captured here by doing what Celery's worker does on success,
celery/app/trace.py: the links' and the next chain step's apply_async with
the result), and the chord size key with set_chord_size's. Then the values:
each canvas run to the end by the C worker."""
import base64
import json

from celery import chain, chord, group, signature
from celery.canvas import _chain

from celhelp import check, run_main, wait_for


def sig(app, name, *args, **opts):
    return signature(name, args=args, app=app, **opts)


def decode(raw):
    env = json.loads(raw)
    args, kwargs, embed = json.loads(base64.b64decode(env['body']))
    h = env['headers']
    return {'id': h['id'], 'task': h['task'], 'root_id': h['root_id'],
            'parent_id': h['parent_id'], 'group': h['group'], 'group_index': h['group_index'],
            'args': args, 'kwargs': kwargs, 'embed': embed,
            'routing_key': env['properties']['delivery_info']['routing_key']}


def drain(r, key):
    out = []
    while True:
        raw = r.rpop(key)
        if raw is None:
            return out
        out.append(raw)


def python_step(app, msg, retval):
    """What Celery's worker sends when the task of msg returns retval."""
    emb = msg['embed']
    for cb in emb.get('callbacks') or []:
        signature(cb, app=app).apply_async((retval,), parent_id=msg['id'],
                                           root_id=msg['root_id'])
    steps = emb.get('chain')
    if steps:
        nxt = signature(steps.pop(), app=app)
        nxt.apply_async((retval,), chain=steps, parent_id=msg['id'], root_id=msg['root_id'])


def sizes(r, before=()):
    return sorted((r.get(k), r.ttl(k) > 80000) for k in r.keys('celery-taskset-meta-*.s')
                  if k not in before)


def unname_groups(msgs):
    """msgs with each group id replaced by its rank of first appearance."""
    text = json.dumps(msgs)
    for i, g in enumerate(dict.fromkeys(m['group'] for m in msgs)):
        text = text.replace(g, 'group-%d' % i)
    return json.loads(text)


def compare(env, app, make, what, same_group_id=True, ngroups=1):
    """Sends make() with its first task on queue 'first' and the rest on
    'held'; captures what Python publishes after that task, then lets the C
    worker (serving 'first' only) run it and compares its messages."""
    r = env.r
    before = set(r.keys('celery-taskset-meta-*.s'))
    res = make().apply_async()
    first = decode(r.lindex('first', 0))
    # another app: the results its sends return must not touch the client's
    python_step(env.app(), first, 2)
    py = sorted((decode(m) for m in drain(r, 'held')), key=lambda m: m['id'])
    py_sizes = sizes(r, before)
    for k in r.keys('celery-taskset-meta-*.s'):
        if k not in before:
            r.delete(k)
    check(py, '%s: Celery publishes %d messages' % (what, len(py)))
    w = env.worker('-Q', 'first', log='first.log')
    wait_for(lambda: r.llen('held') == len(py), 60, what + ': the C worker publishes them')
    check(env.stop(w) == 0, what + ': the worker serving it stops cleanly')
    raw = drain(r, 'held')
    c = sorted((decode(m) for m in raw), key=lambda m: m['id'])
    check(sizes(r, before) == py_sizes, '%s: the chord size as set_chord_size writes it (%r)' %
          (what, py_sizes))
    check([m['id'] for m in c] == [m['id'] for m in py], what + ': the same task ids')
    groups = {m['group'] for m in c}
    check(len(groups) == ngroups and None not in groups,
          '%s: the parts share %d group id(s)' % (what, ngroups))
    if same_group_id:
        check(groups == {m['group'] for m in py}, what + ': the group id Celery gives them')
    else:  # the ids differ (below); where each appears must not
        c, py = unname_groups(c), unname_groups(py)
    for k in ('task', 'args', 'kwargs', 'root_id', 'parent_id', 'group_index', 'routing_key',
              'embed'):
        diff = [(x[k], y[k]) for x, y in zip(c, py) if x[k] != y[k]]
        check(not diff, '%s: %s as Celery writes it (%r)' % (
            what, k, diff[0] if diff else [m[k] for m in c]))
    compare.kept.extend(raw)
    return res


def wire(env, app):
    held = {'queue': 'held'}

    def group_in_chain():
        return chain(sig(app, 'add', 1, 1, queue='first'),
                     group(sig(app, 'add', 10, **held), sig(app, 'add', 20, **held)))

    def chord_in_chain():
        return chain(sig(app, 'add', 1, 1, queue='first'),
                     chord([sig(app, 'add', 1, **held), sig(app, 'add', 2, **held)],
                           sig(app, 'xsum', **held)))

    def link_group():
        g = group(sig(app, 'add', 10, **held), sig(app, 'add', 20, **held))
        wire.link_group_result = g.freeze()
        s = sig(app, 'add', 1, 1, queue='first')
        s.link(g)
        return s

    def chord_in_header():
        return chain(sig(app, 'add', 1, 1, queue='first'),
                     chord([sig(app, 'add', 1, **held),
                            chord([sig(app, 'add', 1, **held), sig(app, 'add', 2, **held)],
                                  sig(app, 'xsum', **held))],
                           sig(app, 'xsum', **held)))

    out = [(group_in_chain, 'a group after a task in a chain', True, 1),
           (chord_in_chain, 'a chord after a task in a chain', False, 1),
           (link_group, 'a link that is a group', True, 1),
           (chord_in_header, 'a chord in the header of a chord after a task', False, 2)]
    # Celery's worker draws a new group id for a chord it sends; errand takes
    # the one the client gave the header (stable when a task runs again).
    compare.kept = []
    sent = [(compare(env, app, f, what, same, n), what) for f, what, same, n in out]
    for m in reversed(compare.kept):  # back, in their order, for the worker that runs them
        env.r.lpush('held', m)
    return sent


def run(env):
    app = env.app()
    r = env.r
    sent = wire(env, app)
    w = env.worker('-P', 'threads', '-c', '4', '-Q', 'celery,held')
    check(sent[0][0].get(timeout=60) == [12, 22], 'a group after a task in a chain: [12, 22]')
    check(sent[1][0].get(timeout=60) == 7, 'a chord after a task in a chain: 7')
    check(wire.link_group_result.get(timeout=60) == [12, 22], 'a link that is a group: [12, 22]')
    check(sent[3][0].get(timeout=60) == 10, 'a chord in the header of a chord after a task: 10')

    # the values, run by the C worker alone
    res = chain(sig(app, 'add', 1, 1), group(sig(app, 'add', 10), sig(app, 'add', 20))) \
        .apply_async()
    check(res.get(timeout=60) == [12, 22], 'chain(add(1, 1), group(add(10), add(20))): [12, 22]')
    metas = [json.loads(r.get('celery-task-meta-' + x.id)) for x in res.results]
    check(all(m['group_id'] == res.id for m in metas), 'the group\'s results name its id')

    res = chain(sig(app, 'add', 1, 1), chord([sig(app, 'add', 1), sig(app, 'add', 2)],
                                             sig(app, 'xsum'))).apply_async()
    check(res.get(timeout=60) == 7, 'chain(add(1, 1), chord([add(1), add(2)], xsum())): 7')
    wait_for(lambda: not r.keys('celery-taskset-meta-*'), 30, 'the chord keys go after')
    check(True, 'the chord\'s join keys (.j, .t, .s) are gone after')

    res = chain(sig(app, 'add', 1, 1), chord([sig(app, 'add', 1), sig(app, 'add', 2)],
                                             sig(app, 'xsum')), sig(app, 'add', 100)).apply_async()
    check(res.get(timeout=60) == 107, 'a chain after a chord in a chain (the body a chain): 107')

    res = chain(sig(app, 'add', 5, 6), group(chain(sig(app, 'add', 1), sig(app, 'add', 2)),
                                             sig(app, 'add', 3))).apply_async()
    check(res.get(timeout=60) == [14, 14], 'a chain inside a group after a task: [14, 14]')

    res = chain(sig(app, 'add', 1, 1), group(sig(app, 'add', 5, 5, immutable=True),
                                             sig(app, 'add', 1))).apply_async()
    check(res.get(timeout=60) == [10, 3], 'an immutable task in such a group gets no result')

    res = chord([sig(app, 'add', 1, 1), sig(app, 'add', 2, 2)],
                chain(sig(app, 'xsum'), sig(app, 'add', 1))).apply_async()
    check(res.get(timeout=60) == 7, 'a chord whose body is a chain: 7')

    res = chord([sig(app, 'add', 1, 1), sig(app, 'fail', 'part')],
                chain(sig(app, 'xsum'), sig(app, 'add', 1))).apply_async()
    meta = wait_for(lambda: r.get('celery-task-meta-' + res.id), 60, 'the chain body fails')
    meta = json.loads(meta)
    check(meta['status'] == 'FAILURE' and meta['result']['exc_type'] == 'ChordError',
          'a failed part fails a chain body with ChordError where the client waits')

    s = sig(app, 'add', 1, 1)
    s.link(chain(sig(app, 'add', 2), sig(app, 'add', 3, task_id='link-chain-2')))
    s.apply_async().get(timeout=60)
    check(app.AsyncResult('link-chain-2').get(timeout=60) == 7, 'a link that is a chain: 7')

    s = sig(app, 'add', 1, 1)
    s.link(chord([sig(app, 'add', 1), sig(app, 'add', 2)],
                 sig(app, 'xsum', task_id='link-chord-body')))
    s.apply_async().get(timeout=60)
    check(app.AsyncResult('link-chord-body').get(timeout=60) == 7, 'a link that is a chord: 7')

    s = sig(app, 'add', 1, 1)  # a chain as Celery's chain() would not build it
    s.link(_chain([group(sig(app, 'add', 1), sig(app, 'add', 2)),
                   sig(app, 'xsum', task_id='group-then-task')]))
    s.apply_async().get(timeout=60)
    check(app.AsyncResult('group-then-task').get(timeout=60) == 7,
          'a group followed by a task in a linked chain runs as a chord: 7')

    s = sig(app, 'add', 1, 1)
    s.link(chain(sig(app, 'add', 2), sig(app, 'add', 3, task_id='chain-errback'),
                 link_error=[sig(app, 'add', 0, 0, task_id='chain-eb', immutable=True)]))
    s.link(sig(app, 'add', 1000))
    s.apply_async().get(timeout=60)
    check(app.AsyncResult('chain-errback').get(timeout=60) == 7,
          'a linked chain with an errback among two links: 7')

    res = chain(sig(app, 'add', 1, 1),
                chord([sig(app, 'add', 1),
                       chord([sig(app, 'add', 1), sig(app, 'add', 2)], sig(app, 'xsum'))],
                      sig(app, 'xsum'))).apply_async()
    check(res.get(timeout=60) == 10, 'a chord inside a chord\'s header: xsum([3, 3 + 4]) = 10')

    s = sig(app, 'add', 1, 1)
    s.link(sig(app, 'add', 10, task_id='two-links-1'))
    s.link(sig(app, 'add', 20, task_id='two-links-2'))
    s.apply_async().get(timeout=60)
    a, b = app.AsyncResult('two-links-1'), app.AsyncResult('two-links-2')
    check(a.get(timeout=60) == 12 and b.get(timeout=60) == 22, 'two links both run')
    ga = json.loads(r.get('celery-task-meta-two-links-1'))['group_id']
    gb = json.loads(r.get('celery-task-meta-two-links-2'))['group_id']
    check(ga and ga == gb, 'several links are sent as one group, as Celery\'s worker sends them')

    eb = sig(app, 'fail', 'x')
    eb.link_error(sig(app, 'add', 1, 2, task_id='errback-a', immutable=True))
    eb.link_error(group(sig(app, 'add', 3, 4, task_id='errback-b', immutable=True)))
    eb.apply_async()
    a, b = app.AsyncResult('errback-a'), app.AsyncResult('errback-b')
    check(a.get(timeout=60) == 3 and b.get(timeout=60) == 7, 'errbacks run, a group too')
    ga = json.loads(r.get('celery-task-meta-errback-a'))['group_id']
    gb = json.loads(r.get('celery-task-meta-errback-b'))['group_id']
    check(ga and ga == gb, 'errbacks are sent as one group, as Celery\'s backend sends them')

    check('is not sent' not in env.log() + env.log('first.log'), 'nothing was left unsent')
    s = sig(app, 'add', 1, 1)
    s.link({'task': 'add', 'args': [1], 'kwargs': {}, 'options': {}, 'subtask_type': 'odd',
            'immutable': False})
    check(s.apply_async().get(timeout=60) == 2, 'a task whose link is of an unknown type runs')
    line = wait_for(lambda: [ln for ln in env.log().splitlines() if 'is not sent' in ln], 30,
                    'the odd link logged')
    check(len(line) == 1 and 'odd' in line[0],
          'a link of an unknown type is logged as not sent, in one line (%r)' % line)

    check(env.stop(w) == 0, 'the worker stops cleanly')
    check(r.hlen('unacked') == 0 and r.llen('errand.celery.rejected') == 0,
          'every message acked, none set aside')
    logs = env.log() + env.log('first.log')
    check('runtime error' not in logs and 'Sanitizer' not in logs,
          'no sanitizer report in the workers\' logs')


if __name__ == '__main__':
    run_main(run)
