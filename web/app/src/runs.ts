// Runs started or opened in this browser, kept in localStorage so that a reload
// or another tab lists them again.
import { useCallback, useEffect, useState } from 'react';

export interface RunRecord {
  id: string;
  query: string;
  agentType: string;
  startedAt: number;
  outcome?: 'result' | 'error' | 'cancelled';
}

const KEY = 'sluice.runs.v1';
const MAX = 50;

function load(): RunRecord[] {
  try {
    const v = JSON.parse(localStorage.getItem(KEY) ?? '[]');
    return Array.isArray(v) ? v.filter((r) => r && typeof r.id === 'string') : [];
  } catch {
    return [];
  }
}

function save(runs: RunRecord[]) {
  try {
    localStorage.setItem(KEY, JSON.stringify(runs.slice(0, MAX)));
  } catch {
    /* storage full or disabled: the list lives for this page only */
  }
}

export function useRuns() {
  const [runs, setRuns] = useState<RunRecord[]>(load);
  useEffect(() => {
    const onStorage = (e: StorageEvent) => {
      if (e.key === KEY) setRuns(load());
    };
    window.addEventListener('storage', onStorage);
    return () => window.removeEventListener('storage', onStorage);
  }, []);
  /** Adds the run, or merges the given fields into the one with its id. */
  const upsert = useCallback((run: Partial<RunRecord> & { id: string }) => {
    const current = load();
    const i = current.findIndex((r) => r.id === run.id);
    let next: RunRecord[];
    if (i >= 0) {
      const merged = { ...current[i] };
      for (const [k, val] of Object.entries(run)) if (val !== undefined && val !== '') (merged as any)[k] = val;
      if (JSON.stringify(merged) === JSON.stringify(current[i])) return;
      next = current.slice();
      next[i] = merged;
    } else {
      next = [{ query: '', agentType: '', startedAt: Date.now(), ...run }, ...current];
    }
    save(next);
    setRuns(next);
  }, []);
  const clear = useCallback(() => {
    save([]);
    setRuns([]);
  }, []);
  return { runs, upsert, clear };
}

/** The run id in the location hash (#/runs/{id}), if any. */
export function runIdFromHash(hash: string): string | undefined {
  const m = /^#\/runs\/([A-Za-z0-9._:-]{1,128})$/.exec(hash);
  return m ? m[1] : undefined;
}

export function useHashRunId(): string | undefined {
  const [id, setId] = useState(() => runIdFromHash(window.location.hash));
  useEffect(() => {
    const on = () => setId(runIdFromHash(window.location.hash));
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return id;
}

export const runHref = (id: string) => `#/runs/${id}`;
