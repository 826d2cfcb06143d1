"use client";
// The audit log: every change to policy, lists, reviews and the served model, newest first.

import { useEffect, useState } from "react";

import { ApiError, get } from "@/lib/api";
import { when } from "@/lib/format";

interface Entry {
  seq: number;
  at_ms: number;
  key_id: string;
  action: string;
  target: string;
  before: unknown;
  after: unknown;
  comment: string;
}

function brief(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? "–" : text.length > 160 ? `${text.slice(0, 160)}…` : text;
}

export default function Audit() {
  const [entries, setEntries] = useState<Entry[]>([]);
  const [total, setTotal] = useState(0);
  const [error, setError] = useState("");
  useEffect(() => {
    const load = async () => {
      try {
        const first = await get<{ total: number }>("/v1/audit?limit=1", true);
        const offset = Math.max(0, first.total - 200);
        const page = await get<{ entries: Entry[]; total: number }>(`/v1/audit?offset=${offset}&limit=200`, true);
        setEntries([...page.entries].reverse());
        setTotal(page.total);
        setError("");
      } catch (e) {
        setError(e instanceof ApiError && e.status === 403 ? "the audit log needs a key with the admin scope" : e instanceof Error ? e.message : "error");
      }
    };
    const t = setTimeout(() => void load(), 0);
    return () => clearTimeout(t);
  }, []);
  return (
    <section className="card">
      <h2>Audit log <span className="muted">({total} entries, newest first)</span></h2>
      <p className="error">{error}</p>
      <table id="audit">
        <thead><tr><th>#</th><th>when</th><th>key</th><th>action</th><th>target</th><th>before</th><th>after</th><th>comment</th></tr></thead>
        <tbody>
          {entries.map((e) => (
            <tr key={e.seq}>
              <td>{e.seq}</td><td>{when(e.at_ms)}</td><td>{e.key_id}</td><td>{e.action}</td><td>{e.target}</td>
              <td className="json">{brief(e.before)}</td><td className="json">{brief(e.after)}</td><td>{e.comment}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
