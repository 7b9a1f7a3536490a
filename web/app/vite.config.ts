import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// sluice-client is the sibling package web/client, built to web/client/dist
// (make builds it first). It is aliased rather than a `file:` dependency: npm 9
// and npm 10+ write different lock files for a linked package, and the lock
// must install with both (Debian 12's npm is 9).
const client = (f: string) => fileURLToPath(new URL(`../client/dist/${f}`, import.meta.url));

// No @vitejs/plugin-react: esbuild compiles JSX with the automatic runtime.
export default defineConfig({
  esbuild: { jsx: 'automatic' },
  resolve: {
    alias: [
      { find: /^sluice-client\/react$/, replacement: client('react.js') },
      { find: /^sluice-client$/, replacement: client('index.js') },
    ],
    // The client's files live outside this package: React must come from here, once.
    dedupe: ['react', 'react-dom'],
  },
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: false },
  server: { proxy: { '/AutoAgent': 'http://127.0.0.1:8080', '/v1': 'http://127.0.0.1:8080' } },
});
