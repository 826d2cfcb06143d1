"use client";
// The frame of every view: navigation, the session, and the sign-in form when a key is needed.

import Link from "next/link";
import { usePathname } from "next/navigation";
import { useState, type FormEvent, type ReactNode } from "react";

import { SessionProvider, useSession } from "@/lib/session";

const VIEWS: [string, string][] = [
  ["/", "Live"],
  ["/reviews/", "Reviews"],
  ["/rules/", "Rules and lists"],
  ["/models/", "Models and drift"],
  ["/audit/", "Audit"],
];

function SignIn() {
  const session = useSession();
  const [key, setKey] = useState("");
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const typed = key;
    setKey("");
    void session.signIn(typed);
  };
  return (
    <form id="signin" className="card signin" onSubmit={submit}>
      <h2>Sign in</h2>
      <p>An API key with the analyst scope. It stays in this page&apos;s memory and buys a short-lived session.</p>
      <input id="signin-key" type="password" autoComplete="off" value={key} onChange={(e) => setKey(e.target.value)} placeholder="API key" />
      <button type="submit">Sign in</button>
      <p id="signin-status" className="error">{session.error}</p>
    </form>
  );
}

function Frame({ children }: { children: ReactNode }) {
  const session = useSession();
  const path = usePathname();
  return (
    <>
      <header>
        <h1>fraudguard</h1>
        <nav>
          {VIEWS.map(([href, label]) => (
            <Link key={href} href={href} className={path === href ? "active" : ""}>
              {label}
            </Link>
          ))}
        </nav>
        <span id="session" className={`status ${session.state === "ready" ? "on" : "off"}`}>
          {session.state === "ready" ? (session.auth === "off" ? "open (no keys)" : "signed in") : session.state}
        </span>
        {session.state === "ready" && session.auth === "on" ? (
          <button className="link" onClick={session.signOut}>sign out</button>
        ) : null}
      </header>
      <main>{session.state === "signed-out" ? <SignIn /> : session.state === "ready" ? children : <p>connecting…</p>}</main>
    </>
  );
}

export function Shell({ children }: { children: ReactNode }) {
  return (
    <SessionProvider>
      <Frame>{children}</Frame>
    </SessionProvider>
  );
}
