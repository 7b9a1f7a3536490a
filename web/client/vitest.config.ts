import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Web Crypto as a global on Node 18 too (see test/setup.ts).
    setupFiles: ['test/setup.ts'],
  },
});
