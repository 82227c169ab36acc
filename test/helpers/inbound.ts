// Test support for inbound (not used in production): an in-memory MessageSink whose
// behaviour is chosen by recipient address, a listener started with test defaults and a
// captured log, and throwaway TLS and users files.
//
// Sink grammar (by the local part of any recipient, KumoMTA maildir-sink style):
//   nospace-…@   the sink reads the body, then rejects with kind 'no_space'
//   ioerror-…@   the sink reads the body, then rejects with kind 'io'
//   slow-…@      the sink reads the body, then waits for release() before resolving
//   anything else is stored and resolves at once.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import bcrypt from 'bcryptjs';
import { pino } from 'pino';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { InboundSchema } from '../../relay/config.ts';
import { createRelayMetrics } from '../../relay/metrics.ts';
import type { RelayMetrics } from '../../relay/metrics.ts';
import { startInbound } from '../../relay/inbound/server.ts';
import type { InboundServer, StartInboundOptions } from '../../relay/inbound/server.ts';
import type { InboundEnvelope, MessageSink, SinkErrorKind } from '../../relay/inbound/types.ts';

/** One message the sink stored. */
export interface StoredMessage {
  id: string;
  envelope: InboundEnvelope;
  body: Buffer;
}

/** What happened in the sink, in order (for asserting reply ordering). */
export type SinkEvent = { type: 'body-read' | 'resolved' | 'rejected'; id?: string };

/** An in-memory MessageSink that follows the recipient grammar above. */
export class MemorySink implements MessageSink {
  readonly messages: StoredMessage[] = [];
  readonly events: SinkEvent[] = [];
  private seq = 0;
  private gates: (() => void)[] = [];

  /** Stores the message after reading the whole body, or fails as the recipients ask. */
  async accept(envelope: InboundEnvelope, body: AsyncIterable<Buffer>): Promise<{ id: string }> {
    const chunks: Buffer[] = [];
    for await (const c of body) chunks.push(c);
    this.events.push({ type: 'body-read' });
    const locals = envelope.recipients.map((r) => r.address.split('@')[0] ?? '');
    const fail = (kind: SinkErrorKind): never => {
      this.events.push({ type: 'rejected' });
      throw Object.assign(new Error(`memory sink: ${kind}`), { kind });
    };
    if (locals.some((l) => l.startsWith('nospace'))) fail('no_space');
    if (locals.some((l) => l.startsWith('ioerror'))) fail('io');
    if (locals.some((l) => l.startsWith('slow'))) await new Promise<void>((resolve) => this.gates.push(resolve));
    const id = `MEM${++this.seq}`;
    this.messages.push({ id, envelope, body: Buffer.concat(chunks) });
    this.events.push({ type: 'resolved', id });
    return { id };
  }

  /** Number of accepts waiting for release(). */
  waiting(): number {
    return this.gates.length;
  }

  /** Lets every waiting slow accept resolve. */
  release(): void {
    const g = this.gates;
    this.gates = [];
    for (const open of g) open();
  }
}

/** A pino logger whose JSON lines are collected in `lines`. */
export function captureLogger(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'debug' }, dest), lines };
}

/** A running test listener with its sink, metrics and log. */
export interface TestInbound {
  server: InboundServer;
  port: number;
  sink: MemorySink;
  metrics: RelayMetrics;
  logs: Record<string, unknown>[];
  close(): Promise<void>;
}

/** Starts inbound on 127.0.0.1, port 0, relaying for 127.0.0.1/32, no rDNS, with `over` applied. */
export async function startTestInbound(
  over: Partial<z.input<typeof InboundSchema>> = {},
  extra: Partial<Omit<StartInboundOptions, 'config' | 'log' | 'metrics'>> = {},
): Promise<TestInbound> {
  const config = InboundSchema.parse({ host: '127.0.0.1', port: 0, hostname: 'relay.test', relayNetworks: ['127.0.0.1/32'], ...over });
  const sink = new MemorySink();
  const metrics = createRelayMetrics(undefined, { defaultMetrics: false });
  const { log, lines } = captureLogger();
  const server = await startInbound({ sink, reverseDns: false, ...extra, config, metrics, log });
  return { server, port: server.port, sink, metrics, logs: lines, close: () => server.close() };
}

/** A temp dir with a self-signed P-256 certificate (CN localhost) as cert.pem and key.pem. */
export function writeTlsFiles(): { dir: string; certFile: string; keyFile: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'inbound-tls-'));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ], { stdio: 'pipe', timeout: 30_000 });
  return { dir, certFile, keyFile, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A temp users file with bcrypt (cost 4) hashes of the given passwords. */
export function writeUsersFile(users: Record<string, string>): { file: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'inbound-users-'));
  const file = join(dir, 'users');
  const text = Object.entries(users).map(([u, pw]) => `${u}:${bcrypt.hashSync(pw, 4)}`).join('\n');
  writeFileSync(file, `# test users\n${text}\n`);
  return { file, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Lines of SMTP replies in a transcript that must carry an enhanced code (RFC 2034 §3). */
export function repliesMissingEnhancedCode(replies: readonly string[]): string[] {
  return replies.filter((r) => {
    const first = r.split('\r\n')[0] ?? '';
    const code = Number(first.slice(0, 3));
    if (code >= 300 && code < 400) return false;
    return r.split('\r\n').some((line) => !/^([245])\d\d[ -]\1\.\d{1,3}\.\d{1,3} /.test(line));
  });
}
