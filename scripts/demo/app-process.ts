// The app as its own process, exactly as an operator runs it (`tcj start` from source: web + worker,
// embedded PostgreSQL in DATA_DIR). Its output goes to a log file so the demo's console stays readable.
//
// The child gets its own process group: Ctrl-C in the terminal reaches only the demo, which then stops
// the app with SIGTERM (the app shuts down HTTP, the worker, the pool, then PostgreSQL, in that order).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface AppProcess {
  url: string;
  pid: number;
  logFile: string;
  /** SIGTERM, then wait for the exit (SIGKILL to its process group after `graceMs`). Resolves with the exit code. */
  stop(graceMs?: number): Promise<number | null>;
  /** Resolves when the process exits by itself or is stopped. */
  exited: Promise<number | null>;
  /** Resolves once `/readyz` answers 200; rejects if the app exits first or is not ready in time. */
  ready: Promise<void>;
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * The demo's environment minus the app's own configuration: the demo always runs the app on embedded
 * PostgreSQL with a local keyring in its data directory, whatever the shell (or `npm test`, which sets
 * DATABASE_URL) has exported.
 */
function inherited(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of ['DATABASE_URL', 'DATABASE_APP_URL', 'KEYRING_FILE', 'KMS_KEY_ARN', 'APP_KEY', 'SENTRY_DSN', 'SYNC_MAX_BUILD_HOURS']) delete env[k];
  return env;
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * After the app exited: anything left in its process group (a PostgreSQL it had started, if it died
 * without stopping it) gets SIGINT (PostgreSQL's fast shutdown), then SIGKILL after 10 s.
 */
async function sweepGroup(pgid: number): Promise<void> {
  if (!groupAlive(pgid)) return;
  try {
    process.kill(-pgid, 'SIGINT');
  } catch {
    return;
  }
  const deadline = Date.now() + 10_000;
  while (groupAlive(pgid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (groupAlive(pgid)) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

/** Spawns the app; `stop()` works at any time, also while it is still starting. */
export function startApp(opts: { port: number; env: Record<string, string>; logFile: string; readyTimeoutMs?: number }): AppProcess {
  const url = `http://127.0.0.1:${opts.port}`;
  const out = openSync(opts.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'start'], {
      cwd: ROOT,
      env: { ...inherited(), PORT: String(opts.port), BASE_URL: url, ...opts.env },
      stdio: ['ignore', out, out],
      detached: true,
    });
  } finally {
    closeSync(out);
  }
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start the app process');
  let code: number | null | undefined;
  let stopRequested = false;
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (c, signal) => {
      // Killed by our SIGTERM before it installed its handlers (still loading): nothing was running yet.
      code = c ?? (signal === 'SIGTERM' && stopRequested ? 0 : null);
      resolve(code);
    });
  });
  // If the demo itself dies unexpectedly, do not leave the app (and its PostgreSQL) behind.
  const onExit = () => {
    if (code === undefined) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        /* already gone */
      }
    }
  };
  process.once('exit', onExit);

  const stop = async (graceMs = 30_000): Promise<number | null> => {
    if (code !== undefined) {
      await sweepGroup(pid);
      return code;
    }
    stopRequested = true;
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
    let timer: NodeJS.Timeout | undefined;
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        try {
          process.kill(-pid, 'SIGKILL'); // the app's own process group (it and its PostgreSQL)
        } catch {
          /* gone */
        }
        resolve();
      }, graceMs);
    });
    await Promise.race([exited, killed]);
    clearTimeout(timer);
    process.removeListener('exit', onExit);
    const result = await exited;
    await sweepGroup(pid);
    return result;
  };

  // Ready = migrations applied and the database reachable.
  const ready = (async () => {
    const deadline = Date.now() + (opts.readyTimeoutMs ?? 120_000);
    while (true) {
      if (code !== undefined) throw new Error(`the app exited (code ${code}) before it was ready; last lines of ${opts.logFile}:\n${tail(opts.logFile)}`);
      try {
        const r = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2000) });
        if (r.ok) return;
      } catch {
        /* not listening yet */
      }
      if (Date.now() > deadline) {
        await stop(5000);
        throw new Error(`the app was not ready within ${Math.round((opts.readyTimeoutMs ?? 120_000) / 1000)} s; last lines of ${opts.logFile}:\n${tail(opts.logFile)}`);
      }
      await new Promise((r) => setTimeout(r, 300));
    }
  })();
  ready.catch(() => undefined); // handled by whoever awaits it
  return { url, pid, logFile: opts.logFile, stop, exited, ready };
}
