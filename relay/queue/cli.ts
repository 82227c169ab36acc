// `mailrelay queue ...`: the queue API from the command line, for a Postfix admin's
// mailq / postqueue -f / postsuper -h -H -d. It talks to one relay over HTTP: loopback by
// default (inside the pod: `kubectl exec POD -- mailrelay queue list`), or --url with the
// drain token (--token-file). `kubectl mailrelay NAME queue ...` runs it in every pod.
import { UsageError, durationFlag, enumFlag, parseFlags } from '../cli/args.ts';
import { answerError, endpointFrom, relayRequest, type RelayEndpoint } from '../cli/client.ts';
import { formatActionResults, formatDetail, formatList } from './view.ts';
import { QUEUE_STATES, type QueueAction, type QueueActionResponse, type QueueListResponse, type QueueMessageDetail, type QueueSelection } from './types.ts';

const CONNECTION = `connection:
      --url URL          the relay's HTTP API (default: $MAILRELAY_URL or http://127.0.0.1:9090)
      --token-file FILE  the drain token, for callers other than loopback
                         (default: $MAILRELAY_TOKEN_FILE; in a pod /etc/mailrelay/secrets/drain/token)
      --json             print the API's JSON answer instead of text
  -h, --help             this text`;

/** Usage of `mailrelay queue` and of each of its subcommands. */
export const QUEUE_USAGE: Record<string, string> = {
  '': `usage: mailrelay queue <list|show|retry|hold|release|delete> [options]

Inspects and changes the spool of a running relay (like mailq, postqueue -f, postsuper).
  list                        messages in the queue (mailq)
  show ID                     one message: envelope, each recipient's state and last reply
  retry ID...|--all|--destination D   deliver deferred recipients now (postqueue -f)
  hold ID...|--all|--destination D    keep messages out of delivery (postsuper -h)
  release ID...|--all|--destination D end a hold (postsuper -H)
  delete ID... [--dsn]        remove messages, silently or bouncing to the sender (postsuper -d)
Every call is written to the relay's log. 'mailrelay queue <command> --help' for details.
`,
  list: `usage: mailrelay queue list [options]

Lists spooled messages, oldest first: ID, STATE (queued, deferred, held), AGE, SIZE,
RCPTS (recipients still to deliver / all), FROM, NEXT (next attempt) and LAST REPLY.

options:
      --state S          queued, deferred or held
      --destination D    messages with a recipient still to deliver at domain D
      --sender S         envelope senders containing S ("<>" for bounces)
      --older-than T     arrived at least T ago (90s, 30m, 4h, 2d)
      --limit N          at most N messages (default 1000)
${CONNECTION}
`,
  show: `usage: mailrelay queue show ID [options]

Prints one message: envelope, state, and every recipient's state, attempts, last reply
and next attempt.

${CONNECTION}
`,
  retry: `usage: mailrelay queue retry (ID...|--all|--destination D) [options]

Makes deferred recipients due now (postqueue -f / -s). Held messages are skipped.

options:
      --all              every message
      --destination D    only recipients at domain D
${CONNECTION}
`,
  hold: `usage: mailrelay queue hold (ID...|--all|--destination D) [options]

Keeps messages in the spool but out of delivery until released (postsuper -h). A held
message does not expire while held; it is never lost.

options:
      --all              every message
      --destination D    messages with a recipient still to deliver at domain D
${CONNECTION}
`,
  release: `usage: mailrelay queue release (ID...|--all|--destination D) [options]

Ends a hold (postsuper -H): the message is delivered on its own schedule again.

options:
      --all              every held message
      --destination D    messages with a recipient still to deliver at domain D
${CONNECTION}
`,
  delete: `usage: mailrelay queue delete ID... [--dsn] [options]

Removes messages from the spool (postsuper -d). Without --dsn nobody is told; with --dsn
the recipients not yet delivered fail, and the sender gets a bounce (RFC 3464, status
5.0.0) where their NOTIFY asks for one.

options:
      --dsn              bounce the undelivered recipients to the sender
${CONNECTION}
`,
};

const connectionFlags = { url: { type: 'string' }, 'token-file': { type: 'string' }, json: { type: 'boolean' } } as const;
const selectionFlags = { all: { type: 'boolean' }, destination: { type: 'string' } } as const;


async function call<T>(ep: RelayEndpoint, method: string, path: string, body?: unknown): Promise<T> {
  const r = await relayRequest(ep, method, path, body);
  if (r.status < 200 || r.status > 299) throw answerError(method, `${ep.url}${path}`, r.status, r.body);
  return r.body as T;
}

/** Runs `mailrelay queue ARGS`; returns the exit code (2 for usage errors, thrown as UsageError). */
export async function queueCommand(argv: string[], out: (text: string) => void = (t) => { process.stdout.write(t); }): Promise<number> {
  const printJson = (v: unknown) => out(`${JSON.stringify(v, null, 2)}\n`);
  const [sub, ...rest] = argv;
  if (sub === undefined || sub.startsWith('-')) {
    if (sub === '-h' || sub === '--help') {
      out(QUEUE_USAGE['']!);
      return 0;
    }
    throw new UsageError(sub === undefined ? 'a command is required' : `unknown option ${sub}`);
  }
  const usage = QUEUE_USAGE[sub];
  if (usage === undefined || sub === '') throw new UsageError(`unknown command ${sub}`);
  const now = Date.now();
  switch (sub) {
    case 'list': {
      const p = parseFlags(rest, { ...connectionFlags, state: { type: 'string' }, destination: { type: 'string' }, sender: { type: 'string' }, 'older-than': { type: 'string' }, limit: { type: 'string' } });
      if (p.help) return (out(usage), 0);
      const v = p.values;
      const q = new URLSearchParams();
      const state = enumFlag('state', v.state, QUEUE_STATES);
      if (state) q.set('state', state);
      const older = durationFlag('older-than', v['older-than']);
      if (older !== undefined) q.set('olderThan', String(older));
      if (v.destination !== undefined) q.set('destination', String(v.destination));
      if (v.sender !== undefined) q.set('sender', String(v.sender));
      if (v.limit !== undefined) {
        if (!/^[1-9]\d*$/.test(String(v.limit))) throw new UsageError(`--limit ${String(v.limit)}: expected a positive whole number`);
        q.set('limit', String(v.limit));
      }
      const ep = endpointFrom(v.url, v['token-file']);
      const qs = q.toString();
      const res = await call<QueueListResponse>(ep, 'GET', `/api/v1/queue${qs ? `?${qs}` : ''}`);
      if (v.json) printJson(res);
      else out(formatList(res, now));
      return 0;
    }
    case 'show': {
      const p = parseFlags(rest, connectionFlags, true);
      if (p.help) return (out(usage), 0);
      if (p.positionals.length !== 1) throw new UsageError(p.positionals.length === 0 ? 'a message id is required' : 'one message id at a time');
      const ep = endpointFrom(p.values.url, p.values['token-file']);
      const res = await call<QueueMessageDetail>(ep, 'GET', `/api/v1/queue/${encodeURIComponent(p.positionals[0]!)}`).catch((err: Error & { status?: number }) => {
        // A missing message reads like a lookup that found nothing, not like a failed request.
        if (err.status === 404) throw new Error(`${p.positionals[0]!}: no such message in the queue`);
        throw err;
      });
      if (p.values.json) printJson(res);
      else out(formatDetail(res, now));
      return 0;
    }
    default: {
      const action = sub as QueueAction;
      const flags = action === 'delete' ? { ...connectionFlags, dsn: { type: 'boolean' } } as const : { ...connectionFlags, ...selectionFlags } as const;
      const p = parseFlags(rest, flags, true);
      if (p.help) return (out(usage), 0);
      const v = p.values as Record<string, unknown>;
      const sel: QueueSelection = {};
      const ways = [p.positionals.length > 0, v.all === true, v.destination !== undefined].filter(Boolean).length;
      if (ways !== 1) {
        throw new UsageError(action === 'delete'
          ? 'give the ids of the messages to delete'
          : 'give message ids, --all, or --destination D (one of them)');
      }
      if (p.positionals.length > 0) sel.ids = p.positionals;
      if (v.all === true) sel.all = true;
      if (v.destination !== undefined) sel.destination = String(v.destination);
      if (v.dsn === true) sel.dsn = true;
      const ep = endpointFrom(v.url, v['token-file']);
      const res = await call<QueueActionResponse>(ep, 'POST', `/api/v1/queue/${action}`, sel);
      if (v.json) printJson(res);
      else out(formatActionResults(res));
      return res.results.some((r) => r.result === 'not_found' || r.result === 'error' || r.result === 'busy') ? 1 : 0;
    }
  }
}
