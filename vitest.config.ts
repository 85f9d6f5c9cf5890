import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Holds the document's errcodes to what the suite's servers answered (a whole, passing run only).
    globalSetup: ['test/helpers/errcodeCoverage.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Integration files each open their own databases; two workers match the two cores.
    maxWorkers: 2,
  },
});
