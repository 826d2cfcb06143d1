"use client";
// The review queue: REVIEW decisions waiting for an analyst, oldest first; each opens its case.

import { useCallback, useState } from "react";

import { CaseLink, reasonText } from "@/components/decisions";
import { get } from "@/lib/api";
import { num, when } from "@/lib/format";
import { useResource } from "@/lib/resource";
import type { Review } from "@/lib/types";

interface Page {
  items: Review[];
  open: number;
  resolved: number;
}

export default function Reviews() {
  const [status, setStatus] = useState("open");
  const load = useCallback(() => get<Page>(`/v1/reviews?status=${status}&limit=100`), [status]);
  const { data: page, error } = useResource(load, 5000);
  return (
    <section className="card">
      <h2>Reviews</h2>
      <p>
        <select id="review-status" value={status} onChange={(e) => setStatus(e.target.value)}>
          {["open", "resolved", "fraud", "legit"].map((s) => <option key={s}>{s}</option>)}
        </select>{" "}
        {page ? <span className="muted">{num(page.open)} open, {num(page.resolved)} resolved</span> : null}
      </p>
      <p className="error">{error}</p>
      <table id="reviews">
        <thead><tr><th>transaction</th><th>time</th><th>score</th><th>amount</th><th>reasons and rules</th><th>status</th></tr></thead>
        <tbody>
          {(page?.items ?? []).map((item) => (
            <tr key={item.transaction_id}>
              <td><CaseLink id={item.transaction_id} /></td>
              <td>{when(item.time_ms)}</td>
              <td>{num(item.score, 3)}</td>
              <td>{num(item.amount, 2)}</td>
              <td className="reasons">{reasonText(item)}</td>
              <td>{item.status}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
