// The baseline: a bare Koa JSON endpoint, run as its own process like Tessera, so every scenario can be
// reported as a ratio to what Koa itself does on this machine in a run just before.
// Prints `{"port": N}` on stdout once listening.
import Koa from 'koa';

const app = new Koa();
app.use((ctx) => {
  ctx.body = { valid: true };
});
const server = app.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  process.stdout.write(`${JSON.stringify({ port: typeof addr === 'object' && addr ? addr.port : 0 })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
process.on('SIGINT', () => server.close(() => process.exit(0)));
