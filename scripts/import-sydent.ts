// npm run import-sydent -- --sydent-config sydent.conf [...]: the command lives in src/sydent/cli.ts, so that the
// built package runs it too (node dist/src/sydent/cli.js). docs/moving-from-sydent.md.
import { run } from '../src/sydent/cli.js';

await run();
