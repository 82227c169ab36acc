// Runs a real Prometheus (Debian's /usr/bin/prometheus) on loopback for tests: it scrapes
// the given targets every second, evaluates the given rule files every second, and answers
// PromQL through its HTTP API. Use it to prove that dashboards' queries and alerts work on
// what a real exporter serves, end to end. Every wait is a poll with a deadline.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';

/** Where Debian puts the Prometheus server. */
export const PROMETHEUS_BIN = process.env.PROMETHEUS_BIN ?? '/usr/bin/prometheus';

/** One scrape target. */
export interface ScrapeTarget {
  /** Full URL of the metrics endpoint, e.g. http://127.0.0.1:9090/metrics. */
  url: string;
  /** Job name (default "mailrelay"). Targets with the same job share a scrape config. */
  job?: string;
  /** Labels attached to every series of this target, like a ServiceMonitor's relabelings would (namespace, pod, mailrelay). */
  labels?: Record<string, string>;
}

/** Options of startPrometheus. */
export interface StartPrometheusOptions {
  scrapeTargets: ScrapeTarget[];
  /** Absolute paths of Prometheus rule files. */
  ruleFiles?: string[];
  /** Scrape and rule evaluation interval (default "1s"). */
  interval?: string;
  /** How long to wait for the server to become ready (default 30 s). */
  readyTimeoutMs?: number;
}

/** One element of an instant vector. */
export interface Sample {
  metric: Record<string, string>;
  value: number;
}

/** A running Prometheus. */
export interface PrometheusHandle {
  /** Base URL, e.g. http://127.0.0.1:41234. */
  url: string;
  /** Evaluates an instant query now. Throws on a query error (bad PromQL). */
  query(expr: string): Promise<Sample[]>;
  /** Polls a query until `until` holds for its result (default: non-empty); throws with the last result after the deadline. */
  waitFor(expr: string, opts?: { until?: (samples: Sample[]) => boolean; timeoutMs?: number }): Promise<Sample[]>;
  /** Names of the alerts firing now. */
  firingAlerts(): Promise<string[]>;
  /** When every rule group was last evaluated (ms since the epoch; the oldest of the groups), from /api/v1/rules. */
  lastRuleEvaluation(): Promise<number>;
  /** Prometheus' own log output so far (for failure messages). */
  log(): string;
  /** Stops the server and removes its data. */
  close(): Promise<void>;
}

/** A TCP port that was free a moment ago (Prometheus cannot report the port it bound for :0). */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every 100 ms until it returns true; throws `what` after the deadline. */
export async function pollUntil(check: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await pause(100);
  }
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

async function stop(child: ChildProcess): Promise<void> {
  if (exited(child)) return;
  const done = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const deadline = Date.now() + 10_000;
  while (!exited(child) && Date.now() < deadline) await Promise.race([done, pause(100)]);
  if (!exited(child)) {
    child.kill('SIGKILL');
    await done;
  }
}

function config(opts: StartPrometheusOptions): object {
  const interval = opts.interval ?? '1s';
  const jobs = new Map<string, { job_name: string; metrics_path: string; scheme: string; static_configs: object[] }>();
  for (const t of opts.scrapeTargets) {
    const u = new URL(t.url);
    const job = t.job ?? 'mailrelay';
    const key = `${job} ${u.protocol} ${u.pathname}`;
    let sc = jobs.get(key);
    if (!sc) {
      if ([...jobs.values()].some((j) => j.job_name === job)) throw new Error(`targets of job ${job} must share scheme and path`);
      sc = { job_name: job, metrics_path: u.pathname, scheme: u.protocol.replace(':', ''), static_configs: [] };
      jobs.set(key, sc);
    }
    sc.static_configs.push({ targets: [u.host], labels: t.labels ?? {} });
  }
  return {
    global: { scrape_interval: interval, evaluation_interval: interval, scrape_timeout: interval },
    rule_files: opts.ruleFiles ?? [],
    scrape_configs: [...jobs.values()],
  };
}

/** Starts Prometheus on a free loopback port and waits until it is ready. */
export async function startPrometheus(opts: StartPrometheusOptions): Promise<PrometheusHandle> {
  const dir = await mkdtemp(join(tmpdir(), 'mailrelay-prometheus-'));
  const configFile = join(dir, 'prometheus.yml');
  await writeFile(configFile, stringify(config(opts)));
  let output = '';
  let child: ChildProcess | undefined;
  let url = '';
  try {
    // The port may be taken between freePort() and Prometheus binding it; try again then.
    for (let attempt = 0; attempt < 3 && !url; attempt++) {
      const port = await freePort();
      const c = spawn(PROMETHEUS_BIN, [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${join(dir, `data-${attempt}`)}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ], { stdio: ['ignore', 'pipe', 'pipe'] });
      child = c;
      c.stdout?.on('data', (d: Buffer) => { output += d.toString(); });
      c.stderr?.on('data', (d: Buffer) => { output += d.toString(); });
      const base = `http://127.0.0.1:${port}`;
      const deadline = Date.now() + (opts.readyTimeoutMs ?? 30_000);
      while (Date.now() < deadline && !exited(c)) {
        try {
          const res = await fetch(`${base}/-/ready`);
          if (res.ok) {
            url = base;
            break;
          }
        } catch {
          // not listening yet
        }
        await pause(50);
      }
      if (url) break;
      await stop(c);
      if (!/address already in use/.test(output)) throw new Error(`prometheus did not become ready:\n${output}`);
    }
    if (!url || !child) throw new Error(`prometheus found no free port:\n${output}`);
  } catch (err) {
    if (child) await stop(child);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const proc = child;

  const query = async (expr: string): Promise<Sample[]> => {
    const res = await fetch(`${url}/api/v1/query?${new URLSearchParams({ query: expr })}`);
    const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] } };
    if (body.status !== 'success' || !body.data) throw new Error(`query ${expr} failed: ${body.error ?? res.status}`);
    if (body.data.resultType !== 'vector') throw new Error(`query ${expr} returned a ${body.data.resultType}, not an instant vector`);
    return body.data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
  };

  return {
    url,
    query,
    async waitFor(expr, w = {}) {
      const until = w.until ?? ((s: Sample[]) => s.length > 0);
      const deadline = Date.now() + (w.timeoutMs ?? 30_000);
      let last: Sample[] = [];
      for (;;) {
        last = await query(expr);
        if (until(last)) return last;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${expr}; last result: ${JSON.stringify(last)}\nprometheus log:\n${output}`);
        if (exited(proc)) throw new Error(`prometheus exited:\n${output}`);
        await pause(100);
      }
    },
    async firingAlerts() {
      const s = await query('ALERTS{alertstate="firing"}');
      return [...new Set(s.map((x) => x.metric.alertname ?? ''))].sort();
    },
    async lastRuleEvaluation() {
      const res = await fetch(`${url}/api/v1/rules`);
      const body = (await res.json()) as { data?: { groups?: { lastEvaluation?: string }[] } };
      const times = (body.data?.groups ?? []).map((g) => Date.parse(g.lastEvaluation ?? ''));
      return times.length === 0 || times.some(Number.isNaN) ? 0 : Math.min(...times);
    },
    log: () => output,
    async close() {
      await stop(proc);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
