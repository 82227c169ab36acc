// The relay's config schema: the ONE contract between the operator (which renders it
// into a ConfigMap) and the relay (which validates it at start). Defined once, here.
// Every object is strict: an unknown key (a typo) is an error that names it, never a
// silently applied default. Durations are in seconds, sizes in bytes. Secrets are never
// inline: the config names files (mounted from Kubernetes Secrets), so a rendered
// ConfigMap holds no secret.
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { parse as parseYaml } from 'yaml';
import { parseCidr } from './net/cidr.ts';

const seconds = (def: number) => z.number().positive().default(def);
const port = z.number().int().min(0).max(65535);

const cidr = z.string().refine((s) => parseCidr(s) !== null, { message: 'not a valid CIDR (e.g. 10.0.0.0/8 or fd00::/8)' });

/** TLS policy for outbound connections: RFC 3207 STARTTLS (opportunistic or required), implicit TLS (RFC 8314), or none. */
export const TlsPolicySchema = z.enum(['opportunistic', 'required', 'implicit', 'none']);
/** Outbound TLS policy. */
export type TlsPolicy = z.infer<typeof TlsPolicySchema>;

/** What to do with a 5.2.2 "mailbox full" (RFC 3463 calls it a persistent transient failure): bounce now, or retry until maxAge. */
export const OverQuotaPolicySchema = z.enum(['bounce', 'retry']);

/** RFC 5321 §4.5.3.2 client timeouts, in seconds (defaults are the RFC's minimums). */
export const TimeoutsSchema = z.strictObject({
  connect: seconds(30).describe('TCP connect timeout'),
  greeting: seconds(300).describe('initial 220 greeting (§4.5.3.2.1: 5 minutes)'),
  command: seconds(300).describe('EHLO/MAIL/RCPT/RSET replies (§4.5.3.2.2-3: 5 minutes)'),
  dataInit: seconds(120).describe('354 reply to DATA (§4.5.3.2.4: 2 minutes)'),
  dataBlock: seconds(180).describe('each write of message data (§4.5.3.2.5: 3 minutes)'),
  dataTerm: seconds(600).describe('reply to the final dot or BDAT LAST (§4.5.3.2.6: 10 minutes)'),
  idle: seconds(30).describe('an idle pooled connection is closed after this long'),
});

/** Per-destination overrides (keyed by recipient domain, or "*" for all). */
export const DestinationSchema = z.strictObject({
  maxRecipientsPerTransaction: z.number().int().min(1).max(10000).optional().describe('split recipients into transactions of at most this many'),
  concurrency: z.number().int().min(1).max(1000).optional().describe('simultaneous connections to this destination'),
});

/** Outbound delivery: routing, pipelining, limits, retries. */
export const DeliverySchema = z.strictObject({
  mode: z.enum(['smarthost', 'mx']).default('mx').describe('send everything to one smarthost, or to each domain\'s MX hosts'),
  smarthost: z.strictObject({
    host: z.string().min(1).describe('smarthost hostname or address; its certificate must be valid for this name (or, for an address, carry it as an IP SAN)'),
    port: port.default(587).describe('smarthost port'),
    tls: TlsPolicySchema.default('required').describe('TLS policy towards the smarthost; required and implicit verify its certificate (chain and name), opportunistic only records the result'),
    caFile: z.string().min(1).optional().describe('PEM CA bundle the smarthost certificate must chain to, instead of the default CAs (Mozilla\'s list in Node, plus NODE_EXTRA_CA_CERTS); e.g. a private CA from a Secret'),
    serverName: z.string().min(1).optional().describe('name the certificate is checked against and sent as SNI, when it differs from host (e.g. host is an address)'),
    insecureSkipVerify: z.boolean().default(false).describe('do NOT verify the smarthost certificate: anyone who can intercept the connection can read the mail and the credentials. Logged as a warning at start; for tests only'),
    auth: z.strictObject({
      username: z.string().min(1).optional().describe('SMTP AUTH user (or usernameFile)'),
      usernameFile: z.string().min(1).optional().describe('file holding the user name (mounted from the same Secret as the password)'),
      passwordFile: z.string().min(1).describe('file holding the password (mounted from a Secret)'),
    }).refine((a) => (a.username === undefined) !== (a.usernameFile === undefined), {
      message: 'set exactly one of username and usernameFile',
    }).optional().describe('SMTP AUTH PLAIN/LOGIN credentials for the smarthost; sent only over TLS whose certificate was verified (or insecureSkipVerify), never in cleartext'),
  }).refine((sh) => sh.auth === undefined || sh.tls !== 'none', {
    message: 'credentials are never sent in cleartext: with auth, tls must be required, implicit or opportunistic (which then needs a verified STARTTLS)', path: ['tls'],
  }).optional(),
  mxPort: port.default(25).describe('port used for MX delivery (25 in production; tests use a loopback port)'),
  tls: TlsPolicySchema.default('opportunistic').describe('TLS policy for MX delivery (RFC 7435 opportunistic by default: MX certificates are rarely valid for the MX name)'),
  tlsVerify: z.boolean().default(false).describe('MX delivery: with tls required or implicit, verify the certificate chain and the MX host name, deferring with 4.7.5 on failure; with opportunistic the result is only counted. MTA-STS enforce verifies regardless'),
  extraCaFile: z.string().min(1).optional().describe('PEM CA certificates trusted in addition to the default CAs for MX certificates and MTA-STS policy servers (a private or test CA)'),
  mtaSts: z.strictObject({
    enabled: z.boolean().default(true).describe('apply MTA-STS (RFC 8461) policies of recipient domains in MX delivery: enforce delivers only to listed MX hosts over verified TLS, testing only counts'),
    cacheSize: z.number().int().min(1).max(1_000_000).default(10_000).describe('policies kept (least recently used dropped first); persisted in the spool directory across restarts'),
    fetchTimeout: seconds(10).describe('longest wait for a policy over HTTPS; after it the domain is treated as having no new policy (a cached one still applies)'),
    port: port.default(443).describe('HTTPS port of mta-sts.<domain> (443 in production; tests use a loopback port)'),
  }).default({ enabled: true, cacheSize: 10_000, fetchTimeout: 10, port: 443 }).describe('MTA-STS for MX delivery; no effect in smarthost mode'),
  dnsServers: z.array(z.string()).default([]).describe('DNS servers ("ip" or "ip:port") for MX lookups; empty = system resolver'),
  heloName: z.string().optional().describe('name sent in EHLO/HELO; defaults to the relay hostname'),
  pipelining: z.boolean().default(true).describe('use PIPELINING (RFC 2920) when the remote offers it'),
  chunking: z.boolean().default(true).describe('use CHUNKING/BDAT (RFC 3030) when the remote offers it'),
  maxRecipientsPerTransaction: z.number().int().min(1).max(10000).default(100).describe('recipients per transaction before splitting (RFC 5321 §4.5.3.1.8 requires servers to take at least 100)'),
  concurrencyPerDestination: z.number().int().min(1).max(1000).default(10).describe('simultaneous connections per destination'),
  maxMessagesPerConnection: z.number().int().min(1).default(100).describe('transactions on one connection before it is closed'),
  destinations: z.record(z.string(), DestinationSchema).default({}).describe('per-destination overrides, keyed by domain'),
  timeouts: TimeoutsSchema.default(TimeoutsSchema.parse({})),
  retry: z.strictObject({
    schedule: z.array(z.number().positive()).min(1).default([60, 300, 900, 1800, 3600, 7200, 14400]).describe('delays between attempts in seconds; the last repeats'),
    jitter: z.number().min(0).max(1).default(0.2).describe('random fraction added to or taken from each delay, so retries do not stampede'),
    maxAge: seconds(5 * 24 * 3600).describe('after this long a deferred recipient bounces with 4.4.7'),
  }).default({ schedule: [60, 300, 900, 1800, 3600, 7200, 14400], jitter: 0.2, maxAge: 5 * 24 * 3600 }),
  overQuotaPolicy: OverQuotaPolicySchema.default('bounce').describe('5.2.2 over quota: bounce at once or retry as a persistent transient failure'),
  dkim: z.strictObject({
    domain: z.string().min(1).describe('d= domain of the signature'),
    selector: z.string().min(1).describe('s= selector; the public key is published at <selector>._domainkey.<domain>'),
    keyFile: z.string().min(1).describe('PEM private key (RSA 2048+ or Ed25519) mounted from a Secret'),
  }).optional().describe('DKIM-sign outgoing mail before the first attempt'),
}).refine((d) => d.mode !== 'smarthost' || d.smarthost !== undefined, {
  message: 'mode "smarthost" needs delivery.smarthost.host', path: ['smarthost'],
});

/** What the relay does with an SPF result (RFC 7208 §8): refuse `fail` at MAIL, tag the message, or only count. */
export const SpfPolicySchema = z.enum(['reject', 'tag', 'record']);
/** SPF policy name. */
export type SpfPolicy = z.infer<typeof SpfPolicySchema>;

/** SPF (RFC 7208) sender verification of inbound MAIL FROM and HELO identities. */
export const SpfSchema = z.strictObject({
  enabled: z.boolean().default(false).describe('check the SPF record of the MAIL FROM (and HELO) domain of each transaction'),
  policy: SpfPolicySchema.default('reject').describe('reject: 550 5.7.23 on "fail", 451 4.7.24 on "temperror", Authentication-Results header on the rest; tag: header on every result, 451 4.7.24 on "temperror"; record: metric and log only (RFC 7372 codes)'),
  skipTrusted: z.boolean().default(true).describe('clients in relayNetworks and authenticated clients are not checked'),
  checkHelo: z.boolean().default(true).describe('also check the HELO identity (RFC 7208 §2.3); a HELO "fail" is treated like a MAIL FROM "fail"'),
  rejectPermerror: z.boolean().default(false).describe('under policy reject, also refuse "permerror" (broken SPF records) with 550 5.7.24; otherwise they are accepted and recorded'),
  dnsTimeoutMs: z.number().int().min(10).max(60_000).default(5000).describe('longest wait for one DNS answer; a lookup that takes longer is a temperror'),
  checkBudgetMs: z.number().int().min(10).max(120_000).default(20_000).describe('longest time one check may take over all its lookups (RFC 7208 §4.6.4 asks for a limit that allows at least 20 s); beyond it the result is temperror'),
  maxQueriesPerCheck: z.number().int().min(10).max(1000).default(100).describe('DNS queries one check may make in all (the RFC 7208 §4.6.4 term limits still allow ~200 through mx/ptr address lookups); more is a permerror'),
  dnsServers: z.array(z.string()).default([]).describe('DNS servers ("ip" or "ip:port") for SPF lookups; empty = system resolver'),
  cacheSize: z.number().int().min(1).max(1_000_000).default(10_000).describe('DNS answers kept in the SPF cache (least recently used dropped first)'),
  cacheTtl: seconds(300).describe('longest time an answer stays cached; shorter record TTLs are honoured where Node reports them (A/AAAA); NXDOMAIN/NODATA stay at most 60 s, failures 5 s'),
});

/** PROXY protocol (HAProxy's spec, v1 and v2) on the inbound listener. */
export const ProxyProtocolSchema = z.strictObject({
  trustedNetworks: z.array(cidr).min(1).describe('load balancer networks (CIDRs): a connection from them must start with a PROXY header (v1 or v2), and its client address is believed; a connection from anywhere else that sends one is refused with 421 4.7.0'),
  headerTimeout: seconds(10).describe('time a trusted load balancer has to send the header after connecting; then 421 4.4.2'),
});

/** Inbound SMTP listener, relay policy and limits. */
export const InboundSchema = z.strictObject({
  host: z.string().default('0.0.0.0').describe('address the SMTP listener binds'),
  port: port.default(2525).describe('SMTP listener port'),
  implicitTls: z.boolean().default(false).describe('TLS from the first byte (RFC 8314) instead of STARTTLS'),
  hostname: z.string().optional().describe('name in the greeting and Received headers; defaults to the OS hostname'),
  tls: z.strictObject({
    certFile: z.string().min(1).describe('PEM certificate chain (tls.crt of a cert-manager Secret)'),
    keyFile: z.string().min(1).describe('PEM private key (tls.key)'),
  }).optional().describe('enables STARTTLS (or implicit TLS) with this certificate'),
  relayNetworks: z.array(cidr).default([]).describe('client networks allowed to relay without AUTH; empty means none (never an open relay)'),
  authUsersFile: z.string().optional().describe('file of "user:hash" lines (bcrypt or argon2) for SMTP AUTH PLAIN/LOGIN'),
  requireTlsForAuth: z.boolean().default(true).describe('offer AUTH only over TLS (RFC 4954 §4), unless the client is loopback'),
  maxMessageSize: z.number().int().positive().default(25 * 1024 * 1024).describe('SIZE limit in bytes (RFC 1870)'),
  maxRecipients: z.number().int().min(1).default(1000).describe('recipients per message; more get 452 4.5.3'),
  maxConnections: z.number().int().min(1).default(1000).describe('simultaneous inbound sessions'),
  maxConnectionsPerIp: z.number().int().min(1).default(100).describe('simultaneous sessions per client IP'),
  socketTimeout: seconds(300).describe('idle time before an inbound session is closed (RFC 5321 §4.5.3.2.7)'),
  connectionRatePerIp: z.number().positive().default(10).describe('new sessions per second a client IP (IPv6: its /64) may open, sustained; more get 421 4.7.0. Clients in relayNetworks are exempt'),
  connectionBurstPerIp: z.number().int().min(1).default(50).describe('new sessions a client IP may open at once before connectionRatePerIp applies (token bucket size)'),
  maxCommandsPerSession: z.number().int().min(10).default(20_000).describe('commands one session may send; then 421 4.7.0. Leave room for (maxRecipients + 3) per message times the messages a client sends per connection'),
  commandTimeout: seconds(300).describe('time a client has to send a complete command line after our last reply, however it trickles its bytes (RFC 5321 §4.5.3.2.7); then 421 4.4.2'),
  dataTimeout: seconds(600).describe('time a client has from the 354 reply to the final dot, in total; then 421 4.4.2'),
  maxLineLength: z.number().int().min(998).default(998).describe('longest line of message data, without its CRLF (RFC 5322 §2.1.1: 998); a longer one gets 554 5.6.0 after the final dot'),
  maxHeaderSize: z.number().int().min(1024).default(256 * 1024).describe('largest header section of a message in bytes; a larger one gets 552 5.3.4 after the final dot'),
  spf: SpfSchema.default(SpfSchema.parse({})).describe('SPF sender verification (RFC 7208)'),
  greetingDelay: z.number().min(0).max(30).default(0).describe('seconds to wait before the 220 greeting for clients outside relayNetworks; one that sends anything meanwhile is refused with 421 4.5.0 (an early talker, RFC 5321 §4.3.1). 0 greets at once, right for a submission relay whose clients are on relayNetworks or authenticate; clients on relayNetworks are never paused'),
  proxyProtocol: ProxyProtocolSchema.optional().describe('PROXY protocol v1/v2 from load balancers: the client address comes from the header, so relayNetworks, the per-IP limits and Received headers see the real client'),
});

/** The full relay configuration. */
export const RelayConfigSchema = z.strictObject({
  workers: z.number().int().min(1).max(64).default(1).describe('relay processes: each takes its share of SMTP sessions (one listening port, handed out in turn), has a spool shard of its own and delivers it; a primary process supervises them and serves HTTP (docs/adr/0007-workers.md). Per-relay limits (connections, rates, concurrencyPerDestination) are divided between them. Match the CPU cores the relay may use'),
  inbound: InboundSchema.default(InboundSchema.parse({})),
  spool: z.strictObject({
    dir: z.string().min(1).default('/var/spool/mailrelay').describe('spool directory (a PersistentVolume in Kubernetes)'),
    fsync: z.boolean().default(true).describe('fsync before replying 250; only turn off for tests'),
  }).default({ dir: '/var/spool/mailrelay', fsync: true }),
  delivery: DeliverySchema.default(DeliverySchema.parse({})),
  dsn: z.strictObject({
    from: z.string().default('MAILER-DAEMON').describe('local part (or full address) bounces are sent from, with a null reverse-path'),
    delayNotice: z.boolean().default(false).describe('send a delay DSN once a recipient has been deferred for delayAfter seconds'),
    delayAfter: seconds(4 * 3600).describe('deferral age that triggers the delay DSN'),
  }).default({ from: 'MAILER-DAEMON', delayNotice: false, delayAfter: 4 * 3600 }),
  http: z.strictObject({
    host: z.string().default('0.0.0.0').describe('address for /metrics, /healthz, /readyz, /drain and the queue API (/api/v1/queue)'),
    port: port.default(9090).describe('HTTP port for metrics, health, drain and the queue API'),
    drainTokenFile: z.string().min(1).optional().describe('file with the bearer token that /drain and the queue API require from callers that are not trusted loopback; without it only loopback may use them'),
    trustLoopback: z.boolean().default(true).describe('loopback callers (the preStop hook, kubectl exec, port-forward) need no token; turn off when other containers share the pod\'s network namespace'),
  }).default({ host: '0.0.0.0', port: 9090, trustLoopback: true }),
  drain: z.strictObject({
    timeout: seconds(60).describe('on SIGTERM, how long to keep delivering before exit'),
  }).default({ timeout: 60 }),
  log: z.strictObject({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info').describe('pino log level; logs are JSON lines on stdout'),
  }).default({ level: 'info' }),
  terminationMessagePath: z.string().min(1).default('/dev/termination-log')
    .describe('file the relay writes why it stopped to when it cannot run (a damaged or unwritable spool, a bad key), if the file exists: Kubernetes\' terminationMessagePath, which the kubelet shows in the pod status and the operator in its conditions'),
});

/** A validated relay config, every default filled in. */
export type RelayConfig = z.infer<typeof RelayConfigSchema>;
/** A relay config as written by a user or rendered by the operator: defaults may be omitted. */
export type RelayConfigInput = z.input<typeof RelayConfigSchema>;

/** A config problem, with the dotted path of the field at fault. */
export class ConfigError extends Error {
  constructor(readonly issues: { path: string; message: string }[]) {
    super(`invalid relay config:\n${issues.map((i) => `  ${i.path || '(root)'}: ${i.message}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Validates a parsed config object, filling defaults; throws ConfigError naming every bad field. */
export function parseRelayConfig(input: unknown): RelayConfig {
  const r = RelayConfigSchema.safeParse(input ?? {});
  if (r.success) return r.data;
  throw new ConfigError(r.error.issues.flatMap((i) => {
    const path = i.path.map(String).join('.');
    // One issue per unknown key, so each typo is named on its own line with where it sits.
    if (i.code === 'unrecognized_keys') return i.keys.map((k) => ({ path, message: `unknown key "${k}"${path ? ` in ${path}` : ''}` }));
    return [{ path, message: i.message }];
  }));
}

/** Reads a YAML or JSON config file and validates it. */
export async function loadRelayConfig(file: string): Promise<RelayConfig> {
  const text = await readFile(file, 'utf8');
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ConfigError([{ path: '', message: `${file}: not valid YAML/JSON: ${(err as Error).message}` }]);
  }
  return parseRelayConfig(doc);
}

/** The schema as JSON Schema, for docs/config.md and for editors. */
export function relayConfigJsonSchema(): unknown {
  return z.toJSONSchema(RelayConfigSchema, { io: 'input' });
}
