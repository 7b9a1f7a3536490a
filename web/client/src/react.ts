/**
 * useAIStream(): the seed's hook (messages, isConnected, isLoading, error,
 * status, sendMessage, disconnect) plus stop(), attach(), latencyMs,
 * requestId and errorCode. State lives in an AIStreamController and reaches
 * React through useSyncExternalStore, at most once per animation frame.
 */
import { useEffect, useState, useSyncExternalStore } from 'react';
import { AIStreamController, type AIStreamOptions, type AIStreamState, type ShareLink } from './store.js';

export type { AIStreamOptions, AIStreamState, ShareLink, StreamMessage } from './store.js';
export { AIStreamController } from './store.js';

export interface UseAIStream extends AIStreamState {
  sendMessage: (query: string, agentType?: string) => Promise<void>;
  disconnect: () => void;
  stop: () => Promise<void>;
  attach: (requestId: string, fromEventId?: string | number) => void;
  createShareLink: (requestId?: string) => Promise<ShareLink>;
}

/** Options are read once, when the component mounts. */
export function useAIStream(options?: AIStreamOptions): UseAIStream {
  const [controller] = useState(() => new AIStreamController(options));
  const state = useSyncExternalStore(controller.subscribe, controller.getSnapshot, controller.getSnapshot);
  // Close the connection on unmount (the run itself goes on, as in the seed).
  useEffect(() => () => controller.disconnect(), [controller]);
  return {
    ...state,
    sendMessage: controller.sendMessage,
    disconnect: controller.disconnect,
    stop: controller.stop,
    attach: controller.attach,
    createShareLink: controller.createShareLink,
  };
}

export default useAIStream;
