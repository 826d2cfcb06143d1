"use client";
// Rules and lists: edit the rules, see what the change would do to the newest decisions
// (POST /v1/policy/preview, nothing stored), then save it as the version it was based on
// (If-Match: a concurrent edit is refused, not overwritten).

import { useCallback, useEffect, useState } from "react";

import { call } from "@/lib/api";
import { num, pct } from "@/lib/format";
import { errorText } from "@/lib/resource";
import type { Preview, Rule, Summary } from "@/lib/types";

interface PolicyView {
  version: number;
  rules: Rule[];
  list_sizes: Record<string, number>;
  rule_failures: Record<string, number>;
}

const EXAMPLE: Rule = { id: "big-night-spend", when: "amount > 500 and night == 1", action: "REVIEW", description: "", enabled: true };

function SummaryRow({ name, s }: { name: string; s: Summary }) {
  return (
    <tr>
      <td>{name}</td>
      <td>{num(s.decisions.LEGIT)}</td>
      <td>{num(s.decisions.REVIEW)}</td>
      <td>{num(s.decisions.BLOCK)}</td>
      <td>{pct(s.flag_rate, 2)}</td>
      <td>{num(s.frauds_caught)}</td>
      <td>{num(s.false_alarms)}</td>
    </tr>
  );
}

function PreviewTable({ p }: { p: Preview }) {
  const hits = Object.entries(p.rules.proposed);
  return (
    <div id="preview">
      <p>
        Over this replica&apos;s newest <b id="preview-rows">{num(p.rows)}</b> decisions ({num(p.labelled)} labelled so far):
        <b id="preview-changed"> {num(p.changed)}</b> would change
        {Object.keys(p.changes).length ? ` (${Object.entries(p.changes).map(([k, v]) => `${k}: ${v}`).join(", ")})` : ""}.
      </p>
      <table>
        <thead><tr><th /><th>LEGIT</th><th>REVIEW</th><th>BLOCK</th><th>flag rate</th><th>frauds caught</th><th>false alarms</th></tr></thead>
        <tbody>
          <SummaryRow name={`in force (v${p.current.version})`} s={p.current} />
          <SummaryRow name="proposed" s={p.proposed} />
        </tbody>
      </table>
      <table id="preview-rules">
        <thead><tr><th>rule or list</th><th>hits</th><th>decisions it changes</th></tr></thead>
        <tbody>
          {hits.map(([id, h]) => (
            <tr key={id}><td>{id}</td><td>{num(h.hits)}</td><td>{num(h.changed)}</td></tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export default function Rules() {
  const [policy, setPolicy] = useState<PolicyView | null>(null);
  const [etag, setEtag] = useState<string | null>(null);
  const [text, setText] = useState("");
  const [comment, setComment] = useState("");
  const [preview, setPreview] = useState<Preview | null>(null);
  const [status, setStatus] = useState("");
  const [listName, setListName] = useState("block_users");
  const [listIds, setListIds] = useState("");

  const load = useCallback(async () => {
    try {
      const { data, headers } = await call<PolicyView>("/v1/policy", { admin: true });
      setPolicy(data);
      setEtag(headers.get("ETag"));
      setText(JSON.stringify(data.rules.length ? data.rules : [EXAMPLE], null, 2));
    } catch (e) {
      setStatus(errorText(e));
    }
  }, []);
  useEffect(() => {
    const first = setTimeout(() => void load(), 0);
    return () => clearTimeout(first);
  }, [load]);

  const parsed = (): Rule[] | null => {
    try {
      const rules = JSON.parse(text) as unknown;
      if (!Array.isArray(rules)) throw new Error("not a list");
      return rules as Rule[];
    } catch {
      setStatus("the rules are not a JSON list");
      return null;
    }
  };

  const runPreview = async () => {
    const rules = parsed();
    if (!rules) return;
    try {
      setPreview((await call<Preview>("/v1/policy/preview", { method: "POST", body: { rules } })).data);
      setStatus("preview ready: nothing is saved yet");
    } catch (e) {
      setPreview(null);
      setStatus(errorText(e));
    }
  };

  const save = async () => {
    const rules = parsed();
    if (!rules) return;
    try {
      const headers: Record<string, string> = etag ? { "If-Match": etag } : {};
      const { data } = await call<PolicyView>("/v1/policy/rules", { method: "PUT", body: { rules, comment }, headers, admin: true });
      setStatus(`saved as version ${data.version}`);
      setPreview(null);
      await load();
    } catch (e) {
      setStatus(errorText(e));
    }
  };

  const editList = async (op: "add" | "remove") => {
    const ids = listIds.split(/[\s,]+/).filter(Boolean);
    if (!ids.length) return;
    try {
      const headers: Record<string, string> = etag ? { "If-Match": etag } : {};
      await call(`/v1/policy/lists/${listName}`, { method: "POST", body: { [op]: ids, comment }, headers, admin: true });
      setListIds("");
      setStatus(`${op === "add" ? "added to" : "removed from"} ${listName}: ${ids.length}`);
      await load();
    } catch (e) {
      setStatus(errorText(e));
    }
  };

  return (
    <>
      <section className="card">
        <h2>Rules <span className="muted">(version <span id="policy-version">{policy?.version ?? "–"}</span>)</span></h2>
        <p className="muted">
          A rule is <code>{"{id, when, action, description, enabled}"}</code>; <code>when</code> is a condition over the
          features&apos; short names and <code>score</code>. Preview first: it shows what the change would have done to the
          newest decisions.
        </p>
        <textarea id="rules-text" className="code" rows={14} value={text} onChange={(e) => { setText(e.target.value); setPreview(null); }} />
        <p>
          <input id="rules-comment" placeholder="comment for the audit log" value={comment} maxLength={500} onChange={(e) => setComment(e.target.value)} />{" "}
          <button id="rules-preview" onClick={() => void runPreview()}>preview</button>{" "}
          <button id="rules-save" onClick={() => void save()} disabled={preview === null}>save</button>
        </p>
        <p id="rules-status">{status}</p>
        {preview ? <PreviewTable p={preview} /> : null}
      </section>
      <section className="card">
        <h2>Lists</h2>
        <p>
          {Object.entries(policy?.list_sizes ?? {}).map(([name, size]) => (
            <span key={name} className="pill">{name}: {num(size)}</span>
          ))}
        </p>
        <p className="muted">Ids are hashed by the service on arrival; a list never holds them in clear.</p>
        <select value={listName} onChange={(e) => setListName(e.target.value)}>
          {Object.keys(policy?.list_sizes ?? {}).map((n) => <option key={n}>{n}</option>)}
        </select>{" "}
        <input placeholder="ids, comma or space separated" value={listIds} onChange={(e) => setListIds(e.target.value)} />{" "}
        <button onClick={() => void editList("add")}>add</button>{" "}
        <button onClick={() => void editList("remove")}>remove</button>
      </section>
    </>
  );
}
