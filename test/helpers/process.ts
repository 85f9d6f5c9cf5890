// Runs Tessera as a real process from its sources (`node --import tsx src/main.ts`, as `npm run dev` does;
// `npm start` runs the same code compiled to dist/, which the bench's CI smoke run exercises).
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { smtpEnv } from './smtp.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A port that was free a moment ago (the kernel picks it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export interface TesseraProcess {
  child: ChildProcess;
  output(): string;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
}

export function spawnTessera(env: Record<string, string>, args: string[] = []): TesseraProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return {
    child,
    output: () => out,
    exited,
    async waitFor(pattern, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (!pattern.test(out)) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}; output:\n${out}`);
        if (child.exitCode !== null) throw new Error(`process exited (${child.exitCode}) before ${pattern}; output:\n${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

/** What every spawned Tessera of a test needs: a free port, its data directory and database, and the test SMTP server. */
export async function processEnv(o: {
  dbUrl: string;
  dataDir: string;
  smtpPort: number;
}): Promise<{ env: Record<string, string>; base: string }> {
  const port = await freePort();
  return {
    base: `http://127.0.0.1:${port}`,
    env: {
      TESSERA_PORT: String(port),
      TESSERA_DATA_DIR: o.dataDir,
      TESSERA_DB_URL: o.dbUrl,
      TESSERA_SERVER_NAME: 'is.test',
      ...smtpEnv(o.smtpPort),
    },
  };
}
