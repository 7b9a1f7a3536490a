import type { SluiceError, StreamEvent } from '../src/index.js';

export function recorder() {
  const log = {
    messages: [] as any[],
    events: [] as StreamEvent[],
    statuses: [] as string[],
    errors: [] as SluiceError[],
    closes: 0,
  };
  const callbacks = {
    handleMessage: (d: unknown, e: StreamEvent) => {
      log.messages.push(d);
      log.events.push(e);
    },
    handleError: (e: Error) => log.errors.push(e as SluiceError),
    handleClose: () => log.closes++,
    onStatusChange: (s: string) => log.statuses.push(s),
  };
  return { log, callbacks };
}
