// Composition root: config -> logger -> store (migrated) -> keys -> app -> listen + workers.
import { loadConfig, ConfigError } from './config.js';
import { startService } from './service.js';
import { createLogger } from './util/logger.js';

async function main(): Promise<void> {
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
  const log = createLogger(config.log.level);
  const service = await startService(config, { log });
  log.info('tessera listening', {
    url: service.url,
    publicBaseUrl: config.server.publicBaseUrl,
    serverName: config.server.name,
    database: service.deps.store.dialect,
    v1: config.server.v1Enabled,
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
