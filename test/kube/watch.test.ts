// Watches through client-node's Watch and makeInformer: event streams from a
// resourceVersion, selector transitions, 410 Gone after compaction (and the
// informer's relist), bookmarks, timeoutSeconds, and an API server restart.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CoreV1Api, PatchStrategy, Watch, makeInformer, setHeaderOptions } from '@kubernetes/client-node';
import type { V1ConfigMap } from '@kubernetes/client-node';
import { startApiServer } from './apiserver.ts';
import type { ApiServer } from './apiserver.ts';
import { waitFor } from './testutil.ts';

const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

interface Seen { type: string; name?: string; rv?: string; obj: Record<string, unknown> }

/** Starts a client-node Watch collecting events; `done` records how it ended. */
async function collect(server: ApiServer, path: string, query: Record<string, string | number | boolean | undefined>) {
  const events: Seen[] = [];
  const ended: { err: unknown; done: boolean } = { err: undefined, done: false };
  const ctl = await new Watch(server.kubeConfig()).watch(path, query,
    (type: string, obj: Record<string, unknown>) => {
      const meta = obj.metadata as { name?: string; resourceVersion?: string } | undefined;
      events.push({ type, name: meta?.name, rv: meta?.resourceVersion, obj });
    },
    (err: unknown) => { ended.err = err; ended.done = true; });
  return { events, ended, stop: () => ctl.abort() };
}

describe('watch', () => {
  let server: ApiServer;
  let core: CoreV1Api;

  before(async () => {
    server = await startApiServer({ bookmarkIntervalMs: 50 });
    core = server.kubeConfig().makeApiClient(CoreV1Api);
  });
  after(async () => { await server.close(); });

  test('streams ADDED, MODIFIED and DELETED after a list resourceVersion, in revision order', async () => {
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'before' } } });
    const list = await core.listNamespacedConfigMap({ namespace: 'default' });
    const w = await collect(server, '/api/v1/namespaces/default/configmaps', { resourceVersion: list.metadata?.resourceVersion });
    try {
      await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'w1' }, data: { a: '1' } } });
      await core.patchNamespacedConfigMap({ name: 'w1', namespace: 'default', body: { data: { a: '2' } } }, merge);
      await core.deleteNamespacedConfigMap({ name: 'w1', namespace: 'default' });
      await core.createNamespacedConfigMap({ namespace: 'kube-system', body: { metadata: { name: 'elsewhere' } } });
      await waitFor('three events', () => w.events.length >= 3);
      assert.deepEqual(w.events.map((e) => `${e.type} ${e.name}`), ['ADDED w1', 'MODIFIED w1', 'DELETED w1']);
      const rvs = w.events.map((e) => Number(e.rv));
      assert.ok(rvs.every((rv, i) => i === 0 || rv > (rvs[i - 1] ?? 0)), `increasing: ${rvs.join(',')}`);
      assert.equal(w.events[0]?.obj.kind, 'ConfigMap', 'watch objects carry kind');
      assert.equal(server.requestLog.filter((e) => e.verb === 'watch').at(-1)?.resource, 'configmaps');
    } finally {
      w.stop();
    }
  });

  test('without a resourceVersion the watch starts with synthetic ADDED events for what exists', async () => {
    const w = await collect(server, '/api/v1/namespaces/default/configmaps', {});
    try {
      await waitFor('the existing object', () => w.events.some((e) => e.name === 'before'));
      assert.deepEqual(w.events.map((e) => e.type), ['ADDED']);
    } finally {
      w.stop();
    }
  });

  test('label selector: an object that stops matching is DELETED for the watcher, one that starts matching is ADDED', async () => {
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'sel', labels: { app: 'relay' } } } });
    const rv = (await core.listNamespacedConfigMap({ namespace: 'default' })).metadata?.resourceVersion;
    const w = await collect(server, '/api/v1/namespaces/default/configmaps', { resourceVersion: rv, labelSelector: 'app=relay' });
    const one = await collect(server, '/api/v1/namespaces/default/configmaps', { resourceVersion: rv, fieldSelector: 'metadata.name=sel' });
    try {
      await core.patchNamespacedConfigMap({ name: 'sel', namespace: 'default', body: { metadata: { labels: { app: 'other' } } } }, merge);
      await core.patchNamespacedConfigMap({ name: 'sel', namespace: 'default', body: { metadata: { labels: { app: 'relay' } } } }, merge);
      await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'unrelated', labels: { app: 'relay' } } } });
      await waitFor('three events', () => w.events.length >= 3);
      assert.deepEqual(w.events.map((e) => `${e.type} ${e.name}`), ['DELETED sel', 'ADDED sel', 'ADDED unrelated']);
      await waitFor('two events on the single-object watch', () => one.events.length >= 2);
      assert.deepEqual(one.events.map((e) => `${e.type} ${e.name}`), ['MODIFIED sel', 'MODIFIED sel']);
    } finally {
      w.stop();
      one.stop();
    }
  });

  test('after compact(), a watch from an older resourceVersion gets an ERROR event with a 410 Expired Status, inside a 200 stream', async () => {
    const old = (await core.listNamespacedConfigMap({ namespace: 'default' })).metadata?.resourceVersion;
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'after-list' } } });
    server.compact();
    const w = await collect(server, '/api/v1/namespaces/default/configmaps', { resourceVersion: old });
    await waitFor('the watch to end', () => w.ended.done);
    assert.equal(w.ended.err, null, 'the stream ends cleanly after the ERROR event');
    assert.equal(w.events.length, 1);
    assert.equal(w.events[0]?.type, 'ERROR');
    const status = w.events[0]?.obj ?? {};
    assert.equal(status.kind, 'Status');
    assert.equal(status.code, 410);
    assert.equal(status.reason, 'Expired');
    assert.match(String(status.message), /^too old resource version: \d+ \(\d+\)$/);
    assert.equal(server.requestLog.at(-1)?.code, 200);

    const current = await collect(server, '/api/v1/namespaces/default/configmaps', { resourceVersion: String(server.resourceVersion) });
    try {
      await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'post-compact' } } });
      await waitFor('an event from the current revision', () => current.events.length >= 1);
      assert.equal(current.events[0]?.name, 'post-compact');
    } finally {
      current.stop();
    }
  });

  test('BOOKMARK events when allowWatchBookmarks is set, and timeoutSeconds closes the stream', async () => {
    const w = await collect(server, '/api/v1/namespaces/default/configmaps', { resourceVersion: String(server.resourceVersion), allowWatchBookmarks: true, timeoutSeconds: 1 });
    await waitFor('a bookmark', () => w.events.some((e) => e.type === 'BOOKMARK'));
    const bm = w.events.find((e) => e.type === 'BOOKMARK');
    assert.equal(bm?.obj.kind, 'ConfigMap');
    assert.equal(bm?.rv, String(server.resourceVersion));
    await waitFor('timeoutSeconds to close the watch', () => w.ended.done, 5000);
    assert.equal(w.ended.err, null);
  });

  test('makeInformer lists, watches, and relists after a 410 once history is compacted', async () => {
    const path = '/api/v1/namespaces/team-i/configmaps';
    await core.createNamespace({ body: { metadata: { name: 'team-i' } } });
    await core.createNamespacedConfigMap({ namespace: 'team-i', body: { metadata: { name: 'seed' } } });
    const informer = makeInformer(server.kubeConfig(), path, () => core.listNamespacedConfigMap({ namespace: 'team-i' }));
    const seen: string[] = [];
    informer.on('add', (o: V1ConfigMap) => seen.push(`add ${o.metadata?.name}`));
    informer.on('update', (o: V1ConfigMap) => seen.push(`update ${o.metadata?.name}`));
    informer.on('delete', (o: V1ConfigMap) => seen.push(`delete ${o.metadata?.name}`));
    const errors: unknown[] = [];
    informer.on('error', (e: unknown) => errors.push(e));
    await informer.start();
    try {
      await waitFor('the informer watch', () => server.openWatches() === 1);
      await core.createNamespacedConfigMap({ namespace: 'team-i', body: { metadata: { name: 'live' } } });
      await core.patchNamespacedConfigMap({ name: 'live', namespace: 'team-i', body: { data: { x: '1' } } }, merge);
      await waitFor('add and update', () => seen.includes('update live'));
      assert.deepEqual(seen, ['add seed', 'add live', 'update live']);

      // Revisions move on elsewhere; the informer's own resourceVersion falls behind the compaction point.
      await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'elsewhere-i' } } });
      server.compact();
      const logStart = server.requestLog.length;
      server.endWatches();
      await waitFor('relist after 410', () => server.requestLog.slice(logStart).some((e) => e.verb === 'list' && e.namespace === 'team-i'), 10_000);
      await waitFor('the informer to watch again', () => server.openWatches() === 1 && server.requestLog.slice(logStart).filter((e) => e.verb === 'watch').length >= 2, 10_000);
      const calls = server.requestLog.slice(logStart).map((e) => e.verb);
      assert.deepEqual(calls, ['watch', 'list', 'watch'], 'stale watch (410), relist, fresh watch');
      await core.deleteNamespacedConfigMap({ name: 'seed', namespace: 'team-i' });
      await waitFor('delete after relist', () => seen.includes('delete seed'));
      assert.deepEqual(informer.list().map((o) => o.metadata?.name), ['live']);
      assert.deepEqual(errors, []);
    } finally {
      await informer.stop();
    }
  });
});

test('restart: stop() cuts watches, start() on the same port keeps the data, and clients reconnect', async () => {
  const server = await startApiServer();
  const core = server.kubeConfig().makeApiClient(CoreV1Api);
  const port = server.port;
  await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'durable' }, data: { k: 'v' } } });
  const informer = makeInformer(server.kubeConfig(), '/api/v1/namespaces/default/configmaps', () => core.listNamespacedConfigMap({ namespace: 'default' }));
  const seen: string[] = [];
  let restarts = 0;
  let stopped = false;
  informer.on('add', (o: V1ConfigMap) => seen.push(`add ${o.metadata?.name}`));
  // The documented client-node pattern: on error, start the informer again after a pause.
  informer.on('error', () => {
    if (stopped) return;
    restarts++;
    setTimeout(() => { if (!stopped) void informer.start(); }, 50);
  });
  try {
    await informer.start();
    await waitFor('the informer watch', () => server.openWatches() === 1);
    await server.stop();
    assert.equal(server.running, false);
    assert.equal(server.openWatches(), 0);
    // A change lands while this replica is down (as through another API server).
    server.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'while-down', namespace: 'default' } });
    await waitFor('the informer to notice the outage', () => restarts > 0);
    await server.start();
    assert.equal(server.port, port, 'same port after restart');
    const got = await core.readNamespacedConfigMap({ name: 'durable', namespace: 'default' });
    assert.deepEqual(got.data, { k: 'v' }, 'stored objects survive the restart');
    await waitFor('the informer to reconnect and catch up', () => seen.includes('add while-down'), 10_000);
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'after-restart' } } });
    await waitFor('events after the restart', () => seen.includes('add after-restart'));
    assert.deepEqual(seen, ['add durable', 'add while-down', 'add after-restart']);
  } finally {
    stopped = true;
    await informer.stop();
    await server.close();
  }
});
