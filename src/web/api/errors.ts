// Errors of the admin API: every failure leaves as `{"error": {"code", "message", ...details}}` with a
// 4xx/5xx status (design.md §4). Messages are written for the admin page and never carry secrets or
// internals: zod messages describe the expected shape, not the value received.
import type { z } from 'zod';

export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export interface ValidationIssue {
  path: string;
  message: string;
}

function pathOf(path: readonly PropertyKey[]): string {
  return path.length === 0 ? '(body)' : path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p))).join('.').replace(/\.\[/g, '[');
}

export function validationIssues(error: z.ZodError): ValidationIssue[] {
  return error.issues.slice(0, 20).map((i) => ({ path: pathOf(i.path), message: i.message }));
}

/** 400 `validation_failed`, naming each offending field (`where` = body, query or params). */
export function validationError(where: 'body' | 'query' | 'params', error: z.ZodError): ApiError {
  const issues = validationIssues(error);
  const message = issues.map((i) => `${i.path}: ${i.message}`).join('; ');
  return new ApiError(400, 'validation_failed', `invalid ${where}: ${message}`, { issues });
}

/** Parses with a zod schema; a failure is a 400 naming the fields. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, where: 'body' | 'query' | 'params'): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw validationError(where, r.error);
  return r.data;
}

export const serverNotFound = (): ApiError => new ApiError(404, 'server_not_found', 'no TeamCity server with this id');
export const serverDeleting = (): ApiError =>
  new ApiError(409, 'server_deleting', 'this server is being removed; its builds and deployments are being deleted from Jira');
