export { createSSEConnection, DEFAULT_SSE_URL, parseRetryAfter } from './sse.js';
export { createSSEConnection as default } from './sse.js';
export { createWSConnection, WSConnection, DEFAULT_WS_URL, resolveWSUrl, generateRequestId, withAccessToken } from './ws.js';
export {
  createDeliveryScheduler,
  mergeAgentDeltas,
  defaultRequestFrame,
  type DeliveryScheduler,
  type SchedulerOptions,
  type FrameRequester,
} from './scheduler.js';
export { Backoff, mulberry32, type BackoffOptions } from './backoff.js';
export { DeliveryFilter, parseSequence, coalescedRange } from './delivery.js';
export { SluiceError } from './errors.js';
export {
  AIStreamController,
  applyBatch,
  toStreamMessage,
  initialState,
  type AIStreamOptions,
  type AIStreamState,
  type ShareLink,
  type StreamMessage,
} from './store.js';
export type {
  BaseConfig,
  ConnectionStatus,
  SSEConfig,
  StreamEvent,
  WSConfig,
  WebSocketInstance,
  WebSocketLike,
} from './types.js';
