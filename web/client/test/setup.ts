// Browsers (and Node 19+) have Web Crypto as globalThis.crypto; Node 18 has it
// only as require('node:crypto').webcrypto. The client needs it for run ids.
import { webcrypto } from 'node:crypto';

const g = globalThis as { crypto?: unknown };
if (g.crypto === undefined) {
  Object.defineProperty(globalThis, 'crypto', { value: webcrypto, configurable: true, writable: true });
}
