"use client";
// Who the console acts as. The key is kept in memory only (a reload asks for it again); the
// session token it buys is renewed before it expires and is all that requests carry.

import { createContext, useCallback, useContext, useEffect, useRef, useState, type ReactNode } from "react";

import { ApiError, openSession, setKey, setToken } from "./api";

type State = "starting" | "signed-out" | "ready";

interface SessionValue {
  state: State;
  auth: "on" | "off" | null;
  error: string;
  token: string | null;
  signIn: (key: string) => Promise<void>;
  signOut: () => void;
}

const SessionContext = createContext<SessionValue | null>(null);

export function SessionProvider({ children }: { children: ReactNode }) {
  const [state, setState] = useState<State>("starting");
  const [auth, setAuth] = useState<"on" | "off" | null>(null);
  const [error, setError] = useState("");
  const [token, setTokenState] = useState<string | null>(null);
  const key = useRef<string | null>(null);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const renew = useRef<() => void>(() => undefined); // the next session, before this one ends

  const start = useCallback(async (candidate: string | null): Promise<void> => {
    if (timer.current) clearTimeout(timer.current);
    try {
      const session = await openSession(candidate);
      key.current = candidate;
      setKey(candidate);
      setToken(session.token);
      setTokenState(session.token);
      setAuth(session.auth);
      setError("");
      setState("ready");
      if (session.token && session.expires) {
        const ms = Math.max(10_000, (session.expires * 1000 - Date.now()) * 0.8);
        timer.current = setTimeout(() => renew.current(), ms);
      }
    } catch (e) {
      key.current = null;
      setKey(null);
      setToken(null);
      setTokenState(null);
      setAuth("on");
      setState("signed-out");
      if (candidate !== null && e instanceof ApiError) {
        setError(e.status === 403 ? "this key lacks the analyst scope" : "unknown or revoked key");
      } else if (!(e instanceof ApiError)) {
        setError("the service does not answer");
      }
    }
  }, []);

  useEffect(() => {
    renew.current = () => void start(key.current);
    const first = setTimeout(() => void start(null), 0);
    return () => {
      clearTimeout(first);
      if (timer.current) clearTimeout(timer.current);
    };
  }, [start]);

  const value: SessionValue = {
    state,
    auth,
    error,
    token,
    signIn: (k: string) => start(k.trim()),
    signOut: () => {
      key.current = null;
      setKey(null);
      setToken(null);
      setTokenState(null);
      setState("signed-out");
    },
  };
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

export function useSession(): SessionValue {
  const value = useContext(SessionContext);
  if (value === null) throw new Error("useSession outside SessionProvider");
  return value;
}
