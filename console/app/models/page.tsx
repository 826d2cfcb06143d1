"use client";
// Models and drift: the served model and its shadow, the thresholds, and how far the scores
// and each feature have moved from the model's reference window (PSI, computed by the service).

import { useCallback } from "react";

import { Bars } from "@/components/charts";
import { get } from "@/lib/api";
import { num, pct } from "@/lib/format";
import { useResource } from "@/lib/resource";
import type { Drift, Live } from "@/lib/types";

interface ModelView {
  version: string;
  shadow_version: string | null;
  thresholds: { review: number; block: number };
  card: Record<string, unknown>;
}

interface DriftView extends Drift {
  replicas: Record<string, { state: string; reference: number; window: number; alert_psi: number; version: string | null }>;
}

function scalar(value: unknown): boolean {
  return ["string", "number", "boolean"].includes(typeof value);
}

export default function Models() {
  const load = useCallback(
    () => Promise.all([get<ModelView>("/v1/model"), get<DriftView>("/v1/drift"), get<Live>("/v1/live")]),
    [],
  );
  const { data, error } = useResource(load, 5000);
  const [model, drift, live] = data ?? [null, null, null];
  const bound = Object.values(drift?.replicas ?? {})[0]?.alert_psi ?? 0.2;
  const psi = Object.entries(drift?.psi ?? {}).sort((a, b) => b[1] - a[1]);
  return (
    <>
      <p className="error">{error}</p>
      <section className="card">
        <h2>Served model</h2>
        {model ? (
          <table id="model">
            <tbody>
              <tr><th>version</th><td id="served-version">{model.version}</td></tr>
              <tr><th>shadow</th><td>{model.shadow_version ?? "none"}</td></tr>
              <tr><th>thresholds</th><td>REVIEW &gt; {num(model.thresholds.review, 3)}, BLOCK &gt; {num(model.thresholds.block, 3)}</td></tr>
              <tr><th>shadow agreement</th><td>{pct(live?.shadow.agreement)} of {num(live?.shadow.compared)} compared</td></tr>
              {Object.entries(model.card).filter(([k, v]) => scalar(v) && k !== "version").map(([k, v]) => (
                <tr key={k}><th>{k}</th><td>{String(v)}</td></tr>
              ))}
            </tbody>
          </table>
        ) : <p>loading…</p>}
      </section>
      <section className="card">
        <h2>Drift <span id="drift" className={`badge ${drift?.state ?? ""}`}>{drift?.state ?? "–"}</span></h2>
        <p className="muted">
          Each deciding replica compares its newest transactions with the first ones its model scored (PSI per column;
          above {bound} is a significant shift). {drift?.over.length ? `Past the bound: ${drift.over.join(", ")}.` : ""}
        </p>
        {psi.length ? <Bars values={psi} bound={bound} /> : <p>warming up: a replica reports once its reference and window are full</p>}
        <table>
          <thead><tr><th>replica</th><th>state</th><th>model</th><th>reference</th><th>window</th></tr></thead>
          <tbody>
            {Object.entries(drift?.replicas ?? {}).map(([name, r]) => (
              <tr key={name}><td>{name}</td><td>{r.state}</td><td>{r.version ?? "–"}</td><td>{num(r.reference)}</td><td>{num(r.window)}</td></tr>
            ))}
          </tbody>
        </table>
      </section>
    </>
  );
}
