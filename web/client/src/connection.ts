/**
 * What SSE and WebSocket transports share: the status machine, reconnection
 * with backoff, resumption (the last dispatched sequence), duplicate-free
 * in-order delivery, stall detection and latency. A transport only runs
 * attempts; each attempt resolves with what should happen next.
 */
import { Backoff } from './backoff.js';
import { DeliveryFilter, parseSequence } from './delivery.js';
import { SluiceError } from './errors.js';
import type { BaseConfig, ConnectionStatus, StreamEvent } from './types.js';

export type AttemptOutcome =
  /** The connection ended (or never opened): try again, after `delayMs` if given. */
  | { kind: 'retry'; error?: SluiceError; delayMs?: number }
  /** The connection finished (closed/failed already reported). */
  | { kind: 'done' };

/** Converts `data.ts` (ms since the epoch; µs values are recognised) to a latency. */
export function latencyOf(data: unknown, now: number): number | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  const ts = (data as { ts?: unknown }).ts;
  if (typeof ts !== 'number' || !Number.isFinite(ts) || ts <= 0) return undefined;
  const ms = ts > 1e14 ? ts / 1000 : ts; // a µs timestamp (the bench workload)
  return now - ms;
}

export function parseData(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

export abstract class ResumableConnection extends AbortController {
  protected readonly config: BaseConfig;
  protected readonly backoff: Backoff;
  protected readonly filter: DeliveryFilter;
  protected readonly stallTimeoutMs: number;
  /** The id sent as Last-Event-ID / lastEventId: the last dispatched event's. */
  protected resumeId: string | undefined;
  /** WHATWG lastEventId: the last id field dispatched (persists across events and reconnections). */
  protected lastIdSeen: string;
  /** true once closed, failed or aborted: nothing is delivered after it. */
  protected finished = false;
  /** true when the current attempt reached `open`. */
  protected opened = false;
  private statusNow: ConnectionStatus | undefined;
  private failures = 0;
  private sleepTimer: ReturnType<typeof setTimeout> | undefined;
  private wake: (() => void) | undefined;
  private stallTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(config: BaseConfig) {
    super();
    this.config = config;
    this.backoff = new Backoff(config.backoff);
    this.stallTimeoutMs = config.stallTimeoutMs ?? 30000;
    const start = config.lastEventId;
    this.resumeId = start === undefined || start === '' ? undefined : String(start);
    this.lastIdSeen = this.resumeId ?? '';
    this.filter = new DeliveryFilter(parseSequence(this.resumeId) ?? 0);
    this.signal.addEventListener('abort', () => this.onAbort(), { once: true });
  }

  /** The current status. */
  get status(): ConnectionStatus | undefined {
    return this.statusNow;
  }

  /** The token for this attempt (getToken, else token), or undefined. */
  protected async token(): Promise<string | undefined> {
    const t = this.config.getToken ? await this.config.getToken() : this.config.token;
    return typeof t === 'string' && t !== '' ? t : undefined;
  }

  /** The id a reconnection resumes after (the last dispatched event's id). */
  get lastEventId(): string | undefined {
    return this.resumeId;
  }

  /** Highest sequence delivered (0: none). */
  get highestDelivered(): number {
    return this.filter.highestDelivered;
  }

  /** One attempt; never throws. */
  protected abstract attempt(): Promise<AttemptOutcome>;
  /** Stop the current attempt at once (abort, stall). */
  protected abstract stopAttempt(reason: 'abort' | 'stall' | 'finish'): void;

  protected start(): void {
    // Run after the caller has the controller (it may abort synchronously).
    queueMicrotask(() => void this.run());
  }

  private async run(): Promise<void> {
    if (this.finished) return;
    this.setStatus('connecting');
    while (!this.finished) {
      this.opened = false;
      const outcome = await this.attempt();
      this.clearStall();
      if (this.finished || outcome.kind === 'done') return;
      let delay: number;
      if (this.opened) {
        delay = outcome.delayMs ?? this.backoff.delay(0);
      } else {
        this.failures++;
        if (this.backoff.exhausted(this.failures)) {
          const last = outcome.error;
          this.fail(
            new SluiceError(
              'attempts_exhausted',
              `gave up after ${this.failures} attempts` + (last ? `: ${last.message}` : ''),
              { cause: last, status: last?.status },
            ),
          );
          return;
        }
        delay = outcome.delayMs ?? this.backoff.delay(this.failures);
      }
      this.setStatus('reconnecting');
      await this.sleep(delay);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.sleepTimer = setTimeout(() => {
        this.sleepTimer = undefined;
        this.wake = undefined;
        resolve();
      }, ms);
    });
  }

  protected setStatus(status: ConnectionStatus): void {
    if (status === 'open') {
      this.opened = true;
      this.failures = 0;
    }
    if (this.statusNow === status) return;
    this.statusNow = status;
    this.config.onStatusChange?.(status);
  }

  /** (Re)arms the stall timer: call on every byte/message received. */
  protected armStall(): void {
    if (this.stallTimeoutMs <= 0 || this.finished) return;
    this.clearStall();
    this.stallTimer = setTimeout(() => {
      this.stallTimer = undefined;
      this.onStallHalf?.();
      this.stallTimer = setTimeout(() => {
        this.stallTimer = undefined;
        if (!this.finished) this.stopAttempt('stall');
      }, this.stallTimeoutMs - Math.floor(this.stallTimeoutMs / 2));
    }, Math.floor(this.stallTimeoutMs / 2));
  }

  /** Called when half the stall timeout passed in silence (WS sends a ping). */
  protected onStallHalf?(): void;

  protected clearStall(): void {
    if (this.stallTimer !== undefined) clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
  }

  /** The server's reconnection hint (`retry:`). */
  protected onRetryHint(ms: number): void {
    this.backoff.setBaseFromServer(ms);
  }

  /**
   * An id was dispatched (WHATWG: the last event ID is set at dispatch, not at
   * the id line; also by a block without data). An empty id clears it (no
   * Last-Event-ID is sent then).
   */
  protected onDispatchedId(id: string): void {
    const seq = parseSequence(id);
    const now = parseSequence(this.resumeId);
    if (seq !== undefined && now !== undefined && seq < now) return; // a replayed duplicate
    this.resumeId = id === '' ? undefined : id;
  }

  /**
   * One dispatched event. Returns false when the connection finished (the
   * transport stops reading).
   */
  protected deliver(ev: StreamEvent): boolean {
    if (this.finished) return false;
    const data = ev.data as Record<string, unknown> | null;
    const obj = typeof data === 'object' && data !== null ? data : undefined;
    if (ev.event === 'error' && obj?.code === 'resume_window_exceeded') {
      const fa = parseSequence(obj.first_available as number);
      this.fail(
        new SluiceError(
          'resume_window_exceeded',
          typeof obj.message === 'string' ? obj.message : 'resume window exceeded',
          { firstAvailable: fa, stream: this.streamName() },
        ),
      );
      return false;
    }
    const c = this.filter.classify(ev.id, ev.data);
    if (!c.deliver) return true;
    ev.firstSeq = c.firstSeq;
    ev.lastSeq = c.lastSeq;
    this.learn(ev);
    try {
      if (this.config.onLatency) {
        const l = latencyOf(ev.data, Date.now());
        if (l !== undefined) this.config.onLatency(l);
      }
      this.config.handleMessage(ev.data, ev);
      if (this.config.messageStatus && obj?.messageType === 'status' && typeof obj.status === 'string')
        this.config.onStatusChange?.(obj.status);
    } catch (e) {
      this.fail(new SluiceError('callback_threw', `handleMessage threw: ${String(e)}`, { cause: e }));
      return false;
    }
    if (this.finished) return false; // aborted from inside handleMessage
    if ((this.config.endOnFinal ?? true) && (ev.event === 'cancelled' || obj?.isFinal === true)) {
      this.close();
      return false;
    }
    return true;
  }

  /** Hook for transports: learn things (requestId) from delivered events. */
  protected learn(_ev: StreamEvent): void {}

  /** The stream this connection follows, when known. */
  protected streamName(): string | undefined {
    return undefined;
  }

  /** Ends normally: closed + handleClose. */
  protected close(): void {
    if (this.finished) return;
    this.finish();
    this.setStatus('closed');
    this.config.handleClose();
  }

  /** Ends for good: failed + handleError. */
  protected fail(error: SluiceError): void {
    if (this.finished) return;
    this.finish();
    this.setStatus('failed');
    this.config.handleError(error);
  }

  private finish(): void {
    this.finished = true;
    this.clearStall();
    if (this.sleepTimer !== undefined) clearTimeout(this.sleepTimer);
    this.sleepTimer = undefined;
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
    this.stopAttempt('finish');
  }

  private onAbort(): void {
    if (this.finished) return;
    this.finish();
    this.stopAttempt('abort');
    this.setStatus('closed');
  }
}
