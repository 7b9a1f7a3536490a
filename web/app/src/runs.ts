// Runs started or opened in this browser, kept in localStorage so that a reload
// or another tab lists them again.
import { useCallback, useEffect, useState } from 'react';

export interface RunRecord {
  id: string;
  query: string;
  agentType: string;
  startedAt: number;
  outcome?: 'result' | 'error' | 'cancelled';
  /** A share link's read-only token, for a run opened through one. */
  shareToken?: string;
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

const HASH = /^#\/runs\/([A-Za-z0-9._:-]{1,128})(?:\?access_token=([A-Za-z0-9._~%+/=-]{1,8192}))?$/;

/** The run id in the location hash (#/runs/{id}, or #/runs/{id}?access_token=… for a share link), if any. */
export function runIdFromHash(hash: string): string | undefined {
  const m = HASH.exec(hash);
  return m ? m[1] : undefined;
}

/** The share link's token in the location hash, if any. */
export function shareTokenFromHash(hash: string): string | undefined {
  const m = HASH.exec(hash);
  if (!m || m[2] === undefined) return undefined;
  try {
    return decodeURIComponent(m[2]);
  } catch {
    return undefined;
  }
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

/** A run's address in the page; with a share token, a link that works without a stored token. */
export const runHref = (id: string, shareToken?: string) =>
  shareToken ? `#/runs/${id}?access_token=${encodeURIComponent(shareToken)}` : `#/runs/${id}`;

const TOKEN_KEY = 'sluice.token.v1';

/** The access token typed into the page, remembered per origin (localStorage is per origin). */
export function useStoredToken(): [string, (t: string) => void] {
  const [token, setToken] = useState(() => {
    try {
      return localStorage.getItem(TOKEN_KEY) ?? '';
    } catch {
      return '';
    }
  });
  const set = useCallback((t: string) => {
    const v = t.trim();
    try {
      if (v) localStorage.setItem(TOKEN_KEY, v);
      else localStorage.removeItem(TOKEN_KEY);
    } catch {
      /* storage disabled: the token lives for this page only */
    }
    setToken(v);
  }, []);
  return [token, set];
}
