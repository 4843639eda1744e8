// Input shapes of the admin API (zod). Objects are strict: an unknown field is a 400, so a typo never
// silently does nothing. Secrets are accepted here and go straight to encryption; they are never echoed.
import { z } from 'zod';
import { isSafeText, UNSAFE_TEXT_MESSAGE } from '../../sync/rules.ts';

/** Backfills reach back to 2010 at the earliest. */
export const EARLIEST_BACKFILL = new Date('2010-01-01T00:00:00Z');
export const DEFAULT_BACKFILL_DAYS = 90;
const MAX_BACKFILL_DAYS = 365 * 17;

export const serverIdSchema = z.uuid();

const httpUrl = z
  .string()
  .trim()
  .min(1)
  .max(2000)
  .refine((u) => {
    try {
      const p = new URL(u);
      return p.protocol === 'https:' || p.protocol === 'http:';
    } catch {
      return false;
    }
  }, 'must be an absolute https:// URL of the TeamCity server');

export const authSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('basic'),
    username: z.string().trim().min(1, 'is required').max(255),
    password: z.string().min(1, 'is required').max(1024),
  }),
  z.strictObject({
    type: z.literal('token'),
    token: z.string().trim().min(1, 'is required').max(4096),
  }),
]);

const name = z.string().trim().min(1, 'is required').max(200).refine(isSafeText, UNSAFE_TEXT_MESSAGE);

export const createServerSchema = z.strictObject({
  name,
  url: httpUrl,
  auth: authSchema,
  /** How far back history is sent: days before now (0 = none); default 90. */
  backfillDays: z.int().min(0).max(MAX_BACKFILL_DAYS).optional(),
});

/** The connection test takes the same body; a name is optional. */
export const testServerSchema = createServerSchema.extend({ name: name.optional() });

export const patchServerSchema = z
  .strictObject({
    name: name.optional(),
    url: httpUrl.optional(),
    auth: authSchema.optional(),
    paused: z.boolean().optional(),
  })
  .refine((b) => Object.values(b).some((v) => v !== undefined), 'give at least one of name, url, auth, paused');

export const backfillSchema = z.strictObject({
  since: z
    .string()
    .refine((s) => /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(s) && !Number.isNaN(Date.parse(s)), 'must be an ISO 8601 date, e.g. 2025-01-31 or 2025-01-31T12:00:00Z')
    .transform((s) => new Date(s))
    .refine((d) => d.getTime() >= EARLIEST_BACKFILL.getTime(), 'must not be before 2010-01-01')
    .refine((d) => d.getTime() <= Date.now() + 60_000, 'must not be in the future'),
});

export const activityQuerySchema = z.strictObject({
  serverId: serverIdSchema.optional(),
  issueKey: z
    .string()
    .trim()
    .regex(/^[A-Za-z][A-Za-z0-9_]{1,9}-[1-9]\d{0,17}$/, 'must be an issue key such as ABC-123')
    .transform((s) => s.toUpperCase())
    .optional(),
  outcome: z.enum(['accepted', 'rejected']).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  /** Paging: only entries older than this activity id. */
  before: z.coerce.number().int().min(1).optional(),
  jwt: z.string().optional(),
});

export const issueKeyParamSchema = z.strictObject({
  issueKey: z
    .string()
    .trim()
    .regex(/^[A-Za-z][A-Za-z0-9_]{1,9}-[1-9]\d{0,17}$/, 'must be an issue key such as ABC-123')
    .transform((s) => s.toUpperCase()),
});

export const projectIdParamSchema = z.strictObject({
  projectId: z.string().regex(/^[1-9]\d{0,17}$/, 'must be a numeric Jira project id'),
});

export type CreateServerInput = z.infer<typeof createServerSchema>;
export type PatchServerInput = z.infer<typeof patchServerSchema>;
