// Composition root: config -> logger -> database (migrated) and stores -> keys -> app -> listen + scheduled workers.
import { loadConfig, ConfigError, defaults } from './platform/config.js';
import { startService } from './service.js';
import { setFlagsFromString } from 'node:v8';
import { createLogger } from './platform/logger.js';

/** V8's old-generation growing factor; 0 gives V8 back its own heuristic (the flag's default). */
function setHeapGrowingPercent(percent: number): void {
  setFlagsFromString(`--heap-growing-percent=${percent}`);
}

async function main(): Promise<void> {
  // The heap factor (below) is set before the configuration is loaded too, at its default: validating the
  // configuration makes garbage enough that V8 would otherwise size the old generation for the whole run
  // with its own, looser factor.
  setHeapGrowingPercent(defaults().performance.heapGrowingPercent);
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger(config.log.level, undefined, config.log.format);
  // V8 reads this factor each time it sets the next old-generation limit, so setting it at start-up
  // applies to the whole run. V8's own heuristic lets the old generation reach several times its live
  // size under allocation bursts (bulk look-ups); a low factor keeps peak RSS down for little CPU
  // (docs/performance.md). Only the process entry point sets it: it is process-wide.
  setHeapGrowingPercent(config.performance.heapGrowingPercent);
  const service = await startService(config, { log });
  log.info('tessera listening', {
    url: service.url,
    publicBaseUrl: config.server.publicBaseUrl,
    serverName: config.server.name,
    database: service.db.dialect,
    v1: config.server.v1Enabled,
    ...(service.metricsUrl ? { metrics: `${service.metricsUrl}/metrics` } : {}),
  });
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down', { signal });
    service.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error('shutdown failed', { err: err as Error });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`tessera failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
