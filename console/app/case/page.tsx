"use client";
// A case: the decision, each top feature beside the card's own normal, the card's and the
// terminal's recent decisions, and the verdict with a note. Exportable as JSON or CSV.

import { useSearchParams } from "next/navigation";
import { Suspense, useCallback, useState, type FormEvent } from "react";

import { Badge, CaseLink } from "@/components/decisions";
import { call, get } from "@/lib/api";
import { csvField, download, num, when } from "@/lib/format";
import { errorText, useResource } from "@/lib/resource";
import type { CaseFile, HeldDecision } from "@/lib/types";

function History({ id, rows }: { id: string; rows: HeldDecision[] }) {
  return (
    <table id={id}>
      <thead><tr><th>transaction</th><th>time</th><th>amount</th><th>decision</th><th>score</th><th>label</th></tr></thead>
      <tbody>
        {rows.slice(0, 20).map((r) => (
          <tr key={r.transaction_id}>
            <td><CaseLink id={r.transaction_id} /></td>
            <td>{when(r.time_ms)}</td>
            <td>{num(r.amount, 2)}</td>
            <td><Badge decision={r.decision} /></td>
            <td>{num(r.score, 3)}</td>
            <td>{r.label ? (r.label.is_fraud ? "fraud" : "legit") : "–"}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function asCsv(c: CaseFile): string {
  const tx = c.transaction;
  const lines = [["section", "name", "value", "normal_median", "normal_low", "normal_high", "unusual", "contribution"]];
  for (const [k, v] of Object.entries({ transaction_id: tx.transaction_id, time: when(tx.time_ms), amount: tx.amount, decision: tx.decision, score: tx.score, model_version: tx.model_version, policy_version: tx.policy_version, rules: (tx.rules ?? []).join(" ") })) {
    lines.push(["transaction", k, String(v), "", "", "", "", ""]);
  }
  for (const f of c.features) {
    lines.push(["feature", f.feature, String(f.value ?? ""), String(f.normal?.median ?? ""), String(f.normal?.low ?? ""), String(f.normal?.high ?? ""), String(f.unusual ?? ""), String(f.contribution)]);
  }
  for (const r of c.card_history) {
    lines.push(["card_history", r.transaction_id, String(r.amount), "", "", "", "", r.decision]);
  }
  return lines.map((row) => row.map(csvField).join(",")).join("\n") + "\n";
}

function Case({ id }: { id: string }) {
  const load = useCallback(() => get<CaseFile>(`/v1/cases/${encodeURIComponent(id)}`), [id]);
  const { data: found, error, reload } = useResource(load);
  const [note, setNote] = useState("");
  const [analyst, setAnalyst] = useState("analyst");
  const [status, setStatus] = useState("");

  const resolve = async (e: FormEvent, outcome: "fraud" | "legit") => {
    e.preventDefault();
    try {
      await call(`/v1/reviews/${encodeURIComponent(id)}`, { method: "POST", body: { outcome, analyst, note } });
      setStatus(`resolved as ${outcome}`);
      await reload();
    } catch (err) {
      setStatus(errorText(err));
    }
  };

  if (error) return <p className="error" id="case-error">{error}</p>;
  if (!found) return <p>loading…</p>;
  const tx = found.transaction;
  const review = found.review;
  return (
    <>
      <section className="card">
        <h2>Case <span id="case-id">{tx.transaction_id}</span> <Badge decision={tx.decision} /></h2>
        <p>
          {when(tx.time_ms)} · amount {num(tx.amount, 2)} · score <b id="case-score">{num(tx.score, 3)}</b> · model {tx.model_version} · policy v{tx.policy_version}
        </p>
        <p>rules that fired: <span id="case-rules">{(tx.rules ?? []).join(", ") || "none"}</span></p>
        <p className="muted">card {tx.card.slice(0, 12)}… · terminal {tx.terminal.slice(0, 12)}… (digests: the service keeps no card number)</p>
        <p>
          <button onClick={() => download(`case-${tx.transaction_id}.json`, "application/json", JSON.stringify(found, null, 2))}>export JSON</button>{" "}
          <button onClick={() => download(`case-${tx.transaction_id}.csv`, "text/csv", asCsv(found))}>export CSV</button>
        </p>
      </section>
      <section className="card">
        <h2>Top features beside the card&apos;s normal</h2>
        <p className="muted">normal: median (10th–90th percentile) of the card&apos;s {num(found.card_normal.transactions)} earlier held transactions, replayed through the feature engine</p>
        <table id="case-features">
          <thead><tr><th>feature</th><th>this transaction</th><th>card&apos;s normal</th><th>usual range</th><th>contribution</th></tr></thead>
          <tbody>
            {found.features.map((f) => (
              <tr key={f.feature} className={f.unusual ? "unusual" : ""}>
                <td>{f.feature}</td>
                <td>{num(f.value, 2)}</td>
                <td>{f.normal ? num(f.normal.median, 2) : f.own ? "no earlier transaction held" : "not per card"}</td>
                <td>{f.normal ? `${num(f.normal.low, 2)} – ${num(f.normal.high, 2)}` : "–"}</td>
                <td>+{num(f.contribution, 3)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      <section className="card">
        <h2>Verdict</h2>
        {review === null ? (
          <p>not a review (decided {tx.decision})</p>
        ) : review.status !== "open" ? (
          <p id="review-status">resolved as {review.status} by {review.analyst}{review.note ? `: ${review.note}` : ""}</p>
        ) : (
          <form id="resolve" onSubmit={(e) => void resolve(e, "fraud")}>
            <input id="resolve-analyst" value={analyst} maxLength={64} onChange={(e) => setAnalyst(e.target.value)} />
            <textarea id="resolve-note" value={note} maxLength={1000} placeholder="note" onChange={(e) => setNote(e.target.value)} />
            <button type="submit" className="resolve-fraud">fraud</button>{" "}
            <button type="button" className="resolve-legit" onClick={(e) => void resolve(e, "legit")}>legit</button>
          </form>
        )}
        <p id="resolve-status">{status}</p>
      </section>
      <section className="grid2">
        <div className="card"><h2>The card&apos;s recent decisions</h2><History id="card-history" rows={found.card_history} /></div>
        <div className="card"><h2>The terminal&apos;s recent decisions</h2><History id="terminal-history" rows={found.terminal_history} /></div>
      </section>
    </>
  );
}

function CaseFromQuery() {
  const id = useSearchParams().get("id");
  return id ? <Case key={id} id={id} /> : <p>no case chosen: open one from the reviews or the live view</p>;
}

export default function CasePage() {
  return (
    <Suspense fallback={<p>loading…</p>}>
      <CaseFromQuery />
    </Suspense>
  );
}
