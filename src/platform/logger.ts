// A small leveled logger. Never pass it tokens, keys, client secrets or full addresses.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

/**
 * What an unexpected error may put in the log. Database drivers put the failing values in their
 * messages (duplicate keys, data too long), and those values are tokens, keys and addresses, so
 * for driver errors only the error's name, code and stack frames are logged.
 */
export function loggableError(err: Error): string {
  const e = err as Error & { code?: unknown; errno?: unknown; sqlMessage?: unknown };
  const frames = (e.stack ?? '')
    .split('\n')
    .filter((l) => /^\s+at /.test(l))
    .join('\n');
  if (e.sqlMessage !== undefined || e.errno !== undefined || typeof e.code === 'string') {
    return `${e.name} code=${String(e.code ?? e.errno ?? '?')}\n${frames}`;
  }
  return e.stack ?? `${e.name}: ${e.message}`;
}

function render(fields: LogFields | undefined): string {
  if (!fields) return '';
  return Object.entries(fields)
    .map(([k, v]) => {
      if (v instanceof Error) return ` ${k}=${JSON.stringify(loggableError(v))}`;
      return ` ${k}=${typeof v === 'string' ? JSON.stringify(v) : (JSON.stringify(v) ?? String(v))}`;
    })
    .join('');
}

/** Lines go to stderr as `time LEVEL message key=value...`; `sink` replaces stderr (tests capture it). */
export function createLogger(level: LogLevel = 'info', sink: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Logger {
  const min = ORDER[level];
  const at = (lvl: Exclude<LogLevel, 'silent'>) => (msg: string, fields?: LogFields) => {
    if (ORDER[lvl] < min) return;
    sink(`${new Date().toISOString()} ${lvl.toUpperCase()} ${msg}${render(fields)}`);
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** Shows enough of an address to correlate log lines without revealing it. */
export function redactForLog(address: string): string {
  const at = address.lastIndexOf('@');
  if (at < 0) return `${address.slice(0, 1)}***`;
  return `${address.slice(0, 1)}***@${address.slice(at + 1, at + 2)}***`;
}
