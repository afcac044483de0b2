import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { z } from 'zod';

// args.ts: the small command framework of the CLI. A command declares its
// flags (name, help text, zod schema, default) and positionals; parse()
// merges defaults < --config file < FLOTILLA_* environment < command-line
// flags, validates the result with zod, and names the offending source in
// every error: `--stores: expected a number between 1 and 9`,
// `FLOTILLA_STORES: ...`, `cluster.json: stores: ...`.

/** UsageError: the command line (or env/config) is wrong; the CLI exits with status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface FlagSpec {
  /** name in kebab case, as typed: `data-dir`. */
  name: string;
  type: 'string' | 'boolean';
  short?: string;
  /** placeholder shown in help: `--data-dir DIR`. */
  placeholder?: string;
  description: string;
  /** default as the flag would be typed (validated like any other value). */
  default?: string | boolean;
  /** schema validates the raw value (a string from argv/env, or any JSON value from a config file). */
  schema: z.ZodType;
  /** env: read FLOTILLA_<NAME> too (default true for string flags). */
  env?: boolean;
  /** config: may be set in --config (default true). */
  config?: boolean;
}

export interface PositionalSpec {
  name: string;
  description: string;
  required: boolean;
  /** variadic: the last positional takes every remaining argument (`flotilla txn STEP...`). */
  variadic?: boolean;
}

export interface CommandSpec {
  /** path: ['demo', 'split'] for `flotilla demo split`. */
  path: string[];
  summary: string;
  description?: string;
  flags: FlagSpec[];
  positionals: PositionalSpec[];
  examples?: string[];
}

export interface Parsed {
  /** values by camelCase flag name, validated. */
  values: Record<string, unknown>;
  positionals: string[];
  help: boolean;
}

// ---- flag schemas -----------------------------------------------------------

const fromText = (v: unknown): unknown => (typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v)) ? Number(v) : v);

/** intFlag: an integer in [min, max], from text or a JSON number. */
export function intFlag(min: number, max: number): z.ZodType<number> {
  const msg = `expected a number between ${min} and ${max}`;
  return z.preprocess(fromText, z.number({ message: msg }).int({ message: msg }).min(min, { message: msg }).max(max, { message: msg })) as z.ZodType<number>;
}

/** fractionFlag: a number in (0, 1], from text or a JSON number (a ratio such as --low-space-ratio). */
export function fractionFlag(): z.ZodType<number> {
  const msg = 'expected a number greater than 0 and at most 1';
  return z.preprocess(fromText, z.number({ message: msg }).gt(0, { message: msg }).max(1, { message: msg })) as z.ZodType<number>;
}

/** hostPortFlag: host:port with a port in 0..65535 (0 only when allowZero). */
export function hostPortFlag(allowZero = false): z.ZodType<string> {
  return z.string().refine(
    (v) => {
      const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(v);
      if (!m) return false;
      const port = Number(m[2]);
      return port <= 65535 && (allowZero || port > 0);
    },
    { message: `expected host:port (e.g. 127.0.0.1:20160)${allowZero ? '; port 0 picks a free port' : ''}` },
  );
}

/** hostPortListFlag: host:port[,host:port...]. */
export function hostPortListFlag(): z.ZodType<string> {
  const one = hostPortFlag();
  return z.string().refine((v) => v.split(',').every((a) => one.safeParse(a.trim()).success), { message: 'expected host:port[,host:port...] (e.g. 127.0.0.1:20160)' });
}

export function pathFlag(): z.ZodType<string> {
  return z.string({ message: 'expected a path' }).min(1, { message: 'expected a non-empty path' });
}

export function enumFlag<const T extends readonly [string, ...string[]]>(values: T): z.ZodType<T[number]> {
  return z.enum(values, { message: `expected one of ${values.join(', ')}` }) as unknown as z.ZodType<T[number]>;
}

export function boolFlag(): z.ZodType<boolean> {
  return z.preprocess((v) => (v === 'true' || v === '1' ? true : v === 'false' || v === '0' ? false : v), z.boolean({ message: 'expected true or false' })) as z.ZodType<boolean>;
}

export function textFlag(): z.ZodType<string> {
  return z.string({ message: 'expected text' });
}

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;

/** commonFlags every command accepts. */
export const commonFlags: FlagSpec[] = [
  { name: 'help', short: 'h', type: 'boolean', description: 'show this help and exit', schema: boolFlag(), env: false, config: false },
  { name: 'config', type: 'string', placeholder: 'FILE', description: 'read flag values from a JSON file (keys are flag names; command-line flags and FLOTILLA_* win)', schema: pathFlag(), config: false },
  { name: 'log-level', type: 'string', placeholder: 'LEVEL', description: `log level: ${LOG_LEVELS.join(', ')}`, default: 'info', schema: enumFlag(LOG_LEVELS) },
  { name: 'log-format', type: 'string', placeholder: 'FORMAT', description: 'log lines on stderr: auto (readable on a terminal, JSON otherwise), json, or pretty (readable, through pino-pretty)', default: 'auto', schema: enumFlag(LOG_FORMATS) },
];

// ---- parsing ----------------------------------------------------------------

export const camel = (name: string): string => name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
export const envName = (name: string): string => `FLOTILLA_${name.toUpperCase().replace(/-/g, '_')}`;

/**
 * parse reads argv for one command. Throws UsageError for unknown flags,
 * missing values, bad positionals and values that fail validation; each
 * message names the flag (or env variable, or config file field).
 */
export function parse(spec: CommandSpec, argv: string[], env: NodeJS.ProcessEnv): Parsed {
  const flags = [...spec.flags, ...commonFlags];
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  for (const f of flags) options[f.name] = f.short ? { type: f.type, short: f.short } : { type: f.type };
  const cmd = `flotilla ${spec.path.join(' ')}`;
  let raw: ReturnType<typeof parseArgs>;
  try {
    raw = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    const e = err as Error & { code?: string };
    const m = /'(-{1,2}[^' ]+)/.exec(e.message);
    if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw new UsageError(`unknown flag ${m?.[1] ?? ''} (see ${cmd} --help)`);
    if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') throw new UsageError(`${m?.[1] ?? 'flag'}: ${e.message.includes('missing') ? 'expected a value' : e.message}`);
    throw new UsageError(`${e.message} (see ${cmd} --help)`);
  }
  const help = raw.values['help'] === true;
  if (help) return { values: {}, positionals: raw.positionals, help };

  const maxPositionals = spec.positionals.some((p) => p.variadic === true) ? Infinity : spec.positionals.length;
  if (raw.positionals.length > maxPositionals) {
    throw new UsageError(`unexpected argument ${JSON.stringify(raw.positionals[maxPositionals])} (see ${cmd} --help)`);
  }
  spec.positionals.forEach((p, i) => {
    if (p.required && raw.positionals[i] === undefined) throw new UsageError(`missing <${p.name}> (usage: ${usageLine(spec)})`);
  });

  // Sources, lowest precedence first: default, config file, env, argv.
  const chosen = new Map<string, { value: unknown; source: string }>();
  for (const f of flags) if (f.default !== undefined) chosen.set(f.name, { value: f.default, source: `--${f.name} (default)` });
  const configPath = (raw.values['config'] as string | undefined) ?? env[envName('config')];
  if (configPath) {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(configPath, 'utf8'));
    } catch (err) {
      throw new UsageError(`--config: cannot read ${configPath}: ${(err as Error).message}`);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new UsageError(`--config: ${configPath} must hold a JSON object of flag values`);
    for (const [key, value] of Object.entries(json)) {
      const f = flags.find((x) => x.name === key || camel(x.name) === key);
      if (!f || f.config === false) throw new UsageError(`${configPath}: unknown field ${JSON.stringify(key)} (fields are the flag names of ${cmd})`);
      chosen.set(f.name, { value, source: `${configPath}: ${key}` });
    }
  }
  for (const f of flags) {
    if (f.env === false || (f.env === undefined && f.type === 'boolean')) continue;
    const v = env[envName(f.name)];
    if (v !== undefined && v !== '') chosen.set(f.name, { value: v, source: envName(f.name) });
  }
  for (const f of flags) {
    const v = raw.values[f.name];
    if (v !== undefined) chosen.set(f.name, { value: Array.isArray(v) ? v[v.length - 1] : v, source: `--${f.name}` });
  }

  const values: Record<string, unknown> = {};
  for (const f of flags) {
    const c = chosen.get(f.name);
    if (!c) continue;
    const r = f.schema.safeParse(c.value);
    if (!r.success) throw new UsageError(`${c.source}: ${r.error.issues[0]?.message ?? 'invalid value'}`);
    values[camel(f.name)] = r.data;
  }
  return { values, positionals: raw.positionals, help: false };
}

/** required reads a validated flag that has no default and must be given. */
export function required<T>(p: Parsed, spec: CommandSpec, name: string): T {
  const v = p.values[camel(name)];
  if (v === undefined) throw new UsageError(`--${name} is required (or set ${envName(name)}); see flotilla ${spec.path.join(' ')} --help`);
  return v as T;
}

export function usageLine(spec: CommandSpec): string {
  const pos = spec.positionals.map((p) => (p.required ? `<${p.name}>` : `[${p.name}]`)).join(' ');
  return `flotilla ${spec.path.join(' ')}${pos ? ` ${pos}` : ''} [flags]`;
}

/** helpText renders a command's --help: usage, description, positionals, every flag with its env variable and default. */
export function helpText(spec: CommandSpec): string {
  const lines: string[] = [`Usage: ${usageLine(spec)}`, '', spec.summary];
  if (spec.description) lines.push('', spec.description);
  if (spec.positionals.length > 0) {
    lines.push('', 'Arguments:');
    for (const p of spec.positionals) lines.push(`  ${p.name.padEnd(24)} ${p.description}${p.required ? '' : ' (optional)'}`);
  }
  lines.push('', 'Flags:');
  const all = [...spec.flags, ...commonFlags];
  const leftOf = (f: FlagSpec): string => `${f.short ? `-${f.short}, ` : '    '}--${f.name}${f.type === 'string' ? ` ${f.placeholder ?? 'VALUE'}` : ''}`;
  const width = Math.max(...all.map((f) => leftOf(f).length)) + 2;
  for (const f of all) {
    const left = leftOf(f);
    const extras: string[] = [];
    if (f.default !== undefined && f.type === 'string') extras.push(`default ${String(f.default)}`);
    if (!(f.env === false || (f.env === undefined && f.type === 'boolean'))) extras.push(`env ${envName(f.name)}`);
    lines.push(`  ${left.padEnd(width)} ${f.description}${extras.length > 0 ? ` [${extras.join('; ')}]` : ''}`);
  }
  if (spec.examples && spec.examples.length > 0) {
    lines.push('', 'Examples:');
    for (const e of spec.examples) lines.push(`  ${e}`);
  }
  return lines.join('\n') + '\n';
}
