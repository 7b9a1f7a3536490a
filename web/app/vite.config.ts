import { defineConfig } from 'vite';

// No @vitejs/plugin-react: esbuild compiles JSX with the automatic runtime.
export default defineConfig({
  esbuild: { jsx: 'automatic' },
  resolve: {
    // sluice-client is a file: dependency (a symlink); its own node_modules must not
    // bring a second React into the bundle.
    dedupe: ['react', 'react-dom'],
  },
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: false },
  server: { proxy: { '/AutoAgent': 'http://127.0.0.1:8080', '/v1': 'http://127.0.0.1:8080' } },
});
