// `fields` partial-response spec (reference §3): locator grammar in extended mode, e.g.
//   count,nextHref,build(id,number,buildType(id,name,type),changes($locator(count:5),change(id,comment)))
// Patterns: `$short` (default for items in lists), `$long` (default for single entities), `*` (all fields,
// nested ones in short form), `**` (everything, recursively), `-` (nothing), `$optional` (accepted, no-op),
// `$locator(...)` (filter of a nested collection). Unknown names are ignored silently.
// Default-value elision: in default modes booleans equal to false are omitted; a field listed explicitly
// (or `*`) is emitted even when false.
import { parseLocator } from './locator.ts';

export type Mode = 'short' | 'long' | 'all' | 'allDeep' | 'none' | 'explicit';

export class Fields {
  private constructor(
    readonly mode: Mode,
    /** explicit names → nested spec text ('' = given without parentheses) */
    private readonly items: Map<string, string>,
    /** base pattern combined with an explicit list, e.g. `$short,buildType(type)` */
    private readonly base: 'short' | 'long' | 'all' | null,
  ) {}

  static readonly SHORT = new Fields('short', new Map(), null);
  static readonly LONG = new Fields('long', new Map(), null);
  static readonly NONE = new Fields('none', new Map(), null);
  static readonly ALL = new Fields('all', new Map(), null);
  static readonly ALL_DEEP = new Fields('allDeep', new Map(), null);

  static parse(text: string | undefined | null, dflt: Fields): Fields {
    if (text === undefined || text === null || text === '') return dflt;
    switch (text) {
      case '$short':
        return Fields.SHORT;
      case '$long':
        return Fields.LONG;
      case '*':
        return Fields.ALL;
      case '**':
        return Fields.ALL_DEEP;
      case '-':
        return Fields.NONE;
    }
    const loc = parseLocator(text, true);
    const items = new Map<string, string>();
    if (loc.single !== null) {
      // `(a,b)` — a fully parenthesised spec: unwrap.
      return Fields.parse(loc.single, dflt);
    }
    let base: 'short' | 'long' | 'all' | null = null;
    for (const [name, values] of loc.dims) {
      if (name === '$short') base = 'short';
      else if (name === '$long') base = 'long';
      else if (name === '*') base = 'all';
      else items.set(name, values[values.length - 1] ?? '');
    }
    if (items.size === 0 && base !== null) {
      return base === 'short' ? Fields.SHORT : base === 'long' ? Fields.LONG : Fields.ALL;
    }
    return new Fields('explicit', items, base);
  }

  /** Is the field rendered? `dShort`/`dLong` = TeamCity's defaults for the short/long form. */
  inc(name: string, dShort: boolean, dLong: boolean): boolean {
    switch (this.mode) {
      case 'short':
        return dShort;
      case 'long':
        return dLong;
      case 'all':
      case 'allDeep':
        return true;
      case 'none':
        return false;
      case 'explicit':
        if (this.items.has(name)) return true;
        if (this.base === 'all') return true;
        if (this.base === 'long') return dLong;
        if (this.base === 'short') return dShort;
        return false;
    }
  }

  /** Listed explicitly (or via `*`): then false/zero values are emitted rather than elided. */
  explicit(name: string): boolean {
    return this.mode === 'all' || this.mode === 'allDeep' || this.items.has(name) || this.base === 'all';
  }

  /**
   * Fields for a nested entity. Explicit `name(spec)` wins; otherwise the entity's defaults: `whenShort` when this
   * level is short (or `*`, or the name was listed without a nested spec), `whenLong` when this level is long.
   */
  nested(name: string, whenShort: Fields = Fields.SHORT, whenLong: Fields = Fields.SHORT, whenAll?: Fields): Fields {
    if (this.mode === 'allDeep') return Fields.ALL_DEEP;
    if (this.mode === 'explicit' && this.items.has(name)) {
      const spec = this.items.get(name) ?? '';
      return spec === '' ? whenShort : Fields.parse(spec, whenShort);
    }
    if (this.mode === 'long' || (this.mode === 'explicit' && this.base === 'long')) return whenLong;
    if (this.mode === 'all' || (this.mode === 'explicit' && this.base === 'all')) return whenAll ?? whenShort;
    return whenShort;
  }

  /** `$locator(...)` of a nested collection spec. */
  locator(): string | undefined {
    const v = this.items.get('$locator');
    return v === undefined || v === '' ? undefined : v;
  }

  has(name: string): boolean {
    return this.items.has(name);
  }
}
