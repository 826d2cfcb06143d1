"use client";
// A view's data from the service: loaded once the view mounts, again every `everyMs` if
// given and on `reload`; an error is kept as text for the view to show.

import { useCallback, useEffect, useState } from "react";

import { ApiError } from "./api";

export function errorText(e: unknown): string {
  return e instanceof ApiError ? e.message : "the service does not answer";
}

export function useResource<T>(
  load: () => Promise<T>,
  everyMs?: number,
): { data: T | null; error: string; reload: () => Promise<void> } {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState("");
  const reload = useCallback(async () => {
    try {
      setData(await load());
      setError("");
    } catch (e) {
      setError(errorText(e));
    }
  }, [load]);
  useEffect(() => {
    const first = setTimeout(() => void reload(), 0);
    const every = everyMs ? setInterval(() => void reload(), everyMs) : null;
    return () => {
      clearTimeout(first);
      if (every) clearInterval(every);
    };
  }, [reload, everyMs]);
  return { data, error, reload };
}
