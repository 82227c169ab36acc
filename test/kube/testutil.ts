// Helpers for tests that drive the test API server with @kubernetes/client-node.
import { ApiException } from '@kubernetes/client-node';
import { isObj } from './types.ts';
import type { Obj } from './types.ts';

/** Polls `fn` until it returns a truthy value or the deadline passes (then throws with `what`). */
export async function waitFor<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 5000, intervalMs = 10): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** The HTTP code and decoded Status body of a failed client-node call. */
export interface ApiFailure {
  code: number;
  status: Obj;
}

/** Awaits a call that must fail with an ApiException and returns its code and Status. */
export async function apiFailure(p: Promise<unknown>): Promise<ApiFailure> {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof ApiException)) throw e;
    const raw: unknown = e.body;
    let status: unknown = raw;
    if (typeof raw === 'string') {
      try { status = JSON.parse(raw); } catch { status = { message: raw }; }
    }
    return { code: e.code, status: isObj(status) ? status : {} };
  }
  throw new Error('expected the call to fail, but it succeeded');
}

/** A raw HTTP request to the server (for what client-node cannot send), with the decoded JSON answer. */
export async function rawRequest(url: string, method: string, body?: string, headers: Record<string, string> = {}): Promise<{ code: number; headers: Headers; json: Obj }> {
  const init: RequestInit = { method, headers };
  if (body !== undefined) init.body = body;
  const res = await fetch(url, init);
  const text = await res.text();
  let json: unknown = {};
  try { json = JSON.parse(text); } catch { json = { text }; }
  return { code: res.status, headers: res.headers, json: isObj(json) ? json : { value: json } };
}
