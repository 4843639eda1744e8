// Server-side HTML with escaping by default: `html` is a tagged template whose interpolations are
// escaped unless they are already SafeHtml (another `html` result, or `raw()` for markup we wrote).
// Pages render only a shell (no tenant data); anything that comes from a request or a user goes
// through here.

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;', '`': '&#96;' };

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(value: string | number | boolean | null | undefined): string {
  const text = value === undefined || value === null ? '' : String(value);
  return text.replace(/[&<>"'`]/g, (c) => ESCAPES[c] ?? c);
}

export class SafeHtml {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

/** Markup written by us, never by a user. */
export function raw(markup: string): SafeHtml {
  return new SafeHtml(markup);
}

type Interpolation = SafeHtml | string | number | boolean | undefined | null | readonly Interpolation[];

function isList(value: Interpolation): value is readonly Interpolation[] {
  return Array.isArray(value);
}

function render(value: Interpolation): string {
  if (value instanceof SafeHtml) return value.value;
  if (isList(value)) return value.map(render).join('');
  return escapeHtml(value);
}

export function html(strings: TemplateStringsArray, ...values: Interpolation[]): SafeHtml {
  let out = strings[0] ?? '';
  values.forEach((v, i) => {
    out += render(v) + (strings[i + 1] ?? '');
  });
  return new SafeHtml(out);
}
