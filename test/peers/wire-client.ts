// A minimal line-level SMTP client for the peers' own tests: writes exactly the bytes
// it is given and reads replies exactly as the server wrote them, so a test can assert
// on the wire format (codes, enhanced codes, separators) without a client library in
// between that normalises or retries.
import net from 'node:net';
import tls from 'node:tls';

/** A connected wire-level client. */
export interface WireClient {
  /** Every byte received from the server so far (across a STARTTLS upgrade: plaintext of both layers). */
  received(): Buffer;
  /** Writes `line` followed by CRLF. */
  send(line: string): void;
  /** Writes raw bytes as they are. */
  write(bytes: string | Buffer): void;
  /** Resolves with the next complete reply (a multi-line reply's lines joined with CRLF, no final CRLF); rejects on timeout or close. */
  readReply(timeoutMs?: number): Promise<string>;
  /** Resolves with the next `n` bytes received, exactly; rejects on timeout or close. */
  readBytes(n: number, timeoutMs?: number): Promise<Buffer>;
  /** Sends `line` and resolves with its reply. */
  command(line: string, timeoutMs?: number): Promise<string>;
  /** Resolves once the server closed the connection; rejects after `timeoutMs`. */
  closed(timeoutMs?: number): Promise<void>;
  /** True once the connection is closed. */
  isClosed(): boolean;
  /** Upgrades the connection to TLS (after a 220 to STARTTLS); certificates are not verified. */
  startTls(): Promise<void>;
  /** Destroys the socket. */
  destroy(): void;
}

/** Connects to `host:port` (from `localAddress` when given) and returns a WireClient; does not read the greeting. */
export async function connectWire(port: number, host = '127.0.0.1', opts: { localAddress?: string } = {}): Promise<WireClient> {
  let socket: net.Socket = net.connect({ port, host, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const all: Buffer[] = [];
  let pending = Buffer.alloc(0);
  let isClosed = false;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const attach = (s: net.Socket): void => {
    s.on('data', (chunk: Buffer) => {
      all.push(chunk);
      pending = Buffer.concat([pending, chunk]);
      notify();
    });
    s.on('close', () => {
      isClosed = true;
      notify();
    });
    s.on('error', () => {
      /* surfaced as close */
    });
  };
  attach(socket);

  // Waits until `take` can extract something from `pending`, bounded by timeoutMs.
  const until = async <T>(take: () => T | undefined, timeoutMs: number, what: string): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const got = take();
      if (got !== undefined) return got;
      if (isClosed) throw new Error(`wire-client: connection closed while waiting for ${what}; pending ${JSON.stringify(pending.toString('latin1'))}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`wire-client: no ${what} within ${timeoutMs} ms; pending ${JSON.stringify(pending.toString('latin1'))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  };

  const takeReply = (): string | undefined => {
    const lines: string[] = [];
    let pos = 0;
    for (let i = 0; i < 10_000; i++) {
      const nl = pending.indexOf('\r\n', pos);
      if (nl < 0) return undefined;
      const line = pending.subarray(pos, nl).toString('latin1');
      pos = nl + 2;
      lines.push(line);
      if (!/^\d{3}-/.test(line)) {
        pending = pending.subarray(pos);
        return lines.join('\r\n');
      }
    }
    throw new Error('wire-client: reply with more than 10000 lines');
  };

  const client: WireClient = {
    received: () => Buffer.concat(all),
    send(line) {
      socket.write(`${line}\r\n`);
    },
    write(bytes) {
      socket.write(bytes);
    },
    readReply(timeoutMs = 5000) {
      return until(takeReply, timeoutMs, 'reply');
    },
    readBytes(n, timeoutMs = 5000) {
      return until(
        () => {
          if (pending.length < n) return undefined;
          const out = pending.subarray(0, n);
          pending = pending.subarray(n);
          return Buffer.from(out);
        },
        timeoutMs,
        `${n} bytes`,
      );
    },
    async command(line, timeoutMs = 5000) {
      client.send(line);
      return client.readReply(timeoutMs);
    },
    async closed(timeoutMs = 5000) {
      await until(() => (isClosed ? true : undefined), timeoutMs, 'close');
    },
    isClosed: () => isClosed,
    async startTls() {
      const plain = socket;
      plain.removeAllListeners('data');
      plain.removeAllListeners('close');
      const secure = tls.connect({ socket: plain, rejectUnauthorized: false, servername: 'localhost' });
      await new Promise<void>((resolve, reject) => {
        secure.once('secureConnect', resolve);
        secure.once('error', reject);
      });
      socket = secure;
      attach(secure);
    },
    destroy() {
      socket.destroy();
    },
  };
  return client;
}
