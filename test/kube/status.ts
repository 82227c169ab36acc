// metav1.Status error responses, worded as the real API server words them.

/** One entry of Status.details.causes. */
export interface StatusCause {
  reason: string;
  message: string;
  field?: string;
}

/** A metav1.Status object. */
export interface Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Success' | 'Failure';
  message?: string;
  reason?: string;
  details?: { name?: string; group?: string; kind?: string; uid?: string; causes?: StatusCause[]; retryAfterSeconds?: number };
  code: number;
}

/** An error carrying the Status the server answers with. */
export class ApiError extends Error {
  /** Wraps a Status; the HTTP code is status.code. */
  constructor(readonly status: Status, readonly headers: Record<string, string> = {}) {
    super(status.message ?? status.reason ?? 'error');
  }
}

/** Builds a failure Status. */
export function failure(code: number, reason: string, message: string, details?: Status['details']): Status {
  const s: Status = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
  if (details) s.details = details;
  return s;
}

/** "configmaps" or "statefulsets.apps": the qualified resource used in messages. */
export function qualified(group: string, resource: string): string {
  return group === '' ? resource : `${resource}.${group}`;
}

/** 404 NotFound for a named object. */
export function notFound(group: string, resource: string, name: string): ApiError {
  return new ApiError(failure(404, 'NotFound', `${qualified(group, resource)} "${name}" not found`, { name, group: group || undefined, kind: resource }));
}

/** 409 AlreadyExists on create. */
export function alreadyExists(group: string, resource: string, name: string): ApiError {
  return new ApiError(failure(409, 'AlreadyExists', `${qualified(group, resource)} "${name}" already exists`, { name, group: group || undefined, kind: resource }));
}

/** 409 Conflict for a stale resourceVersion. */
export function staleConflict(group: string, resource: string, name: string): ApiError {
  return new ApiError(failure(409, 'Conflict',
    `Operation cannot be fulfilled on ${qualified(group, resource)} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
    { name, group: group || undefined, kind: resource }));
}

/** 409 Conflict for a precondition (uid) mismatch or another conflicting state. */
export function conflict(group: string, resource: string, name: string, why: string): ApiError {
  return new ApiError(failure(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(group, resource)} "${name}": ${why}`,
    { name, group: group || undefined, kind: resource }));
}

/** 422 Invalid with field causes; kind is the Kind ("StatefulSet"), message as "StatefulSet.apps "x" is invalid: ...". */
export function invalid(group: string, kind: string, name: string, causes: StatusCause[]): ApiError {
  const gk = group === '' ? kind : `${kind}.${group}`;
  const parts = causes.map((c) => (c.field ? `${c.field}: ${c.message}` : c.message));
  const joined = parts.length === 1 ? parts[0] : `[${parts.join(', ')}]`;
  return new ApiError(failure(422, 'Invalid', `${gk} "${name}" is invalid: ${joined}`, { name, group: group || undefined, kind, causes }));
}

/** 400 BadRequest. */
export function badRequest(message: string): ApiError {
  return new ApiError(failure(400, 'BadRequest', message));
}

/** 405 MethodNotAllowed. */
export function methodNotAllowed(message: string): ApiError {
  return new ApiError(failure(405, 'MethodNotAllowed', message));
}

/** 415 UnsupportedMediaType. */
export function unsupportedMediaType(message: string): ApiError {
  return new ApiError(failure(415, 'UnsupportedMediaType', message));
}

/** 403 Forbidden (e.g. creating in a terminating namespace). */
export function forbidden(group: string, resource: string, name: string, why: string): ApiError {
  return new ApiError(failure(403, 'Forbidden', `${qualified(group, resource)} "${name}" is forbidden: ${why}`, { name, group: group || undefined, kind: resource }));
}

/** 410 Expired Status used as a watch ERROR event object. */
export function expired(requested: number, oldest: number): Status {
  return failure(410, 'Expired', `too old resource version: ${requested} (${oldest})`);
}

/** The Success Status a DELETE returns when the object is gone at once. */
export function deletedStatus(group: string, resource: string, name: string, uid: string | undefined): Status {
  const details: Status['details'] = { name, kind: resource };
  if (group) details.group = group;
  if (uid) details.uid = uid;
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details, code: 200 };
}

/** Formats a value as Go's field.Invalid prints it: strings quoted, others as JSON. */
export function fmtValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === undefined) return 'null';
  if (typeof v === 'object' && v !== null) return Array.isArray(v) ? `[]interface {}{...}` : `map[string]interface {}{...}`;
  return String(v);
}
