// pods/exec for the test API server: the WebSocket remote-command protocol
// (v5.channel.k8s.io / v4.channel.k8s.io) the real API server and kubelet speak, so
// `kubectl exec` and @kubernetes/client-node's Exec work against it unchanged. What
// runs is up to the test (a "kubelet" callback, typically a local child process standing
// in for the container); frames, channels and the final Status are the real protocol:
// every binary frame starts with its channel (0 stdin, 1 stdout, 2 stderr, 3 error/status,
// 4 resize), and channel 3 carries a metav1.Status when the command ends.
import type { IncomingMessage } from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { RequestLogEntry } from './types.ts';

/** What an exec request asks for. */
export interface ExecRequest {
  namespace: string;
  pod: string;
  /** The container query parameter ('' when not given). */
  container: string;
  command: string[];
}

/** A started command: its output streams and its exit code. */
export interface ExecProcess {
  stdout: Readable;
  stderr: Readable;
  exitCode: Promise<number>;
}

/** Starts the command for an exec request, or answers why it cannot (e.g. "pod not found") — then the request gets that as a Failure status. */
export type ExecHandler = (req: ExecRequest) => ExecProcess | { error: string; code: number };

const PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io'];
const PATH = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/exec$/;

/** Handles an HTTP upgrade if it is a pods/exec request; returns false to let the caller reject it. */
export function handleExecUpgrade(
  wss: WebSocketServer, handler: ExecHandler | undefined, log: RequestLogEntry[], token: string | undefined,
  req: IncomingMessage, socket: Duplex, head: Buffer,
): boolean {
  const url = new URL(req.url ?? '/', 'http://apiserver');
  const m = PATH.exec(url.pathname);
  if (!m) return false;
  const entry: RequestLogEntry = {
    verb: 'create', group: '', version: 'v1', resource: 'pods', subresource: 'exec',
    namespace: decodeURIComponent(m[1]!), name: decodeURIComponent(m[2]!), method: 'GET', path: url.pathname + url.search, code: 101,
  };
  log.push(entry);
  const refuse = (code: number, text: string) => {
    entry.code = code;
    socket.end(`HTTP/1.1 ${code} ${text}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
  };
  if (token !== undefined && req.headers.authorization !== `Bearer ${token}`) return (refuse(401, 'Unauthorized'), true);
  if (!handler) return (refuse(404, 'Not Found'), true);
  const command = url.searchParams.getAll('command');
  if (command.length === 0) return (refuse(400, 'Bad Request'), true);
  wss.handleUpgrade(req, socket, head, (ws) => run(ws, handler, {
    namespace: entry.namespace!, pod: entry.name!, container: url.searchParams.get('container') ?? '', command,
  }));
  return true;
}

/** A WebSocketServer choosing the newest channel protocol the client offers. */
export function execWebSocketServer(): WebSocketServer {
  return new WebSocketServer({
    noServer: true,
    handleProtocols: (offered) => PROTOCOLS.find((p) => offered.has(p)) ?? false,
  });
}

function frame(channel: number, data: Buffer | string): Buffer {
  const body = typeof data === 'string' ? Buffer.from(data) : data;
  return Buffer.concat([Buffer.from([channel]), body]);
}

function run(ws: WebSocket, handler: ExecHandler, req: ExecRequest): void {
  const status = (s: object) => {
    ws.send(frame(3, JSON.stringify({ metadata: {}, ...s })));
    ws.close(1000);
  };
  let proc: ReturnType<ExecHandler>;
  try {
    proc = handler(req);
  } catch (err) {
    return status({ status: 'Failure', message: (err as Error).message, reason: 'InternalError', code: 500 });
  }
  if ('error' in proc) return status({ status: 'Failure', message: proc.error, reason: proc.code === 404 ? 'NotFound' : 'BadRequest', code: proc.code });
  const p = proc;
  p.stdout.on('data', (d: Buffer) => ws.send(frame(1, d)));
  p.stderr.on('data', (d: Buffer) => ws.send(frame(2, d)));
  const ended = (s: Readable) => new Promise<void>((r) => (s.readableEnded || s.destroyed ? r() : s.once('close', () => r())));
  void Promise.all([p.exitCode, ended(p.stdout), ended(p.stderr)]).then(([code]) => {
    // What the kubelet reports: Success, or NonZeroExitCode with the code as a cause.
    status(code === 0
      ? { status: 'Success' }
      : { status: 'Failure', message: `command terminated with non-zero exit code: exit status ${code}`, reason: 'NonZeroExitCode', details: { causes: [{ reason: 'ExitCode', message: String(code) }] } });
  });
}
