"use client";
// Live: what the service decides right now, pushed over the WebSocket once a second.

import { Badge, CaseLink, reasonText } from "@/components/decisions";
import { ScoreHistogram, Timeline } from "@/components/charts";
import { num, pct } from "@/lib/format";
import { useLive } from "@/lib/live";
import { useSession } from "@/lib/session";

export default function LiveView() {
  const session = useSession();
  const { live, link, frames } = useLive(session.token, session.state === "ready");
  return (
    <>
      <p>
        <span id="connection" className={`status ${link === "live" ? "on" : "off"}`}>{link}</span>{" "}
        <span className="muted">frames received: <span id="frames">{frames}</span></span>
      </p>
      {live === null ? (
        <p>waiting for the first snapshot…</p>
      ) : (
        <>
          <section className="tiles">
            <div className="tile"><b id="tps">{num(live.tps, 1)}</b><span>tx/s (5 s)</span></div>
            <div className="tile"><b id="total">{num(live.transactions)}</b><span>decided</span></div>
            <div className="tile"><b id="count-legit">{num(live.decisions.LEGIT)}</b><span>LEGIT</span></div>
            <div className="tile"><b id="count-review">{num(live.decisions.REVIEW)}</b><span>REVIEW</span></div>
            <div className="tile"><b id="count-block">{num(live.decisions.BLOCK)}</b><span>BLOCK</span></div>
            <div className="tile"><b id="latency">{num(live.latency_ms.p50, 1)} / {num(live.latency_ms.p99, 1)}</b><span>ms p50 / p99</span></div>
            <div className="tile"><b id="open-reviews">{num(live.reviews.open)}</b><span>open reviews</span></div>
            <div className="tile"><b id="drift-state" className={live.drift.state}>{live.drift.state}</b><span>drift</span></div>
          </section>
          <section className="grid2">
            <div className="card">
              <h2>Per second, last two minutes</h2>
              <Timeline rows={live.timeline} />
              <p className="legend"><i className="l-all" /> all <i className="l-review" /> REVIEW <i className="l-block" /> BLOCK</p>
            </div>
            <div className="card">
              <h2>Scores (log scale)</h2>
              <ScoreHistogram {...live.score_histogram} review={live.model.thresholds.review} block={live.model.thresholds.block} />
              <p className="muted">
                model <span id="model-version">{live.model.version ?? "–"}</span>, REVIEW &gt; {num(live.model.thresholds.review, 3)}, BLOCK &gt; {num(live.model.thresholds.block, 3)};
                shadow agreement {pct(live.shadow.agreement)}; policy v{live.policy_version}
              </p>
            </div>
          </section>
          <section className="card">
            <h2>Latest flagged</h2>
            <table id="flagged">
              <thead><tr><th>transaction</th><th>decision</th><th>score</th><th>amount</th><th>reasons and rules</th></tr></thead>
              <tbody>
                {live.recent_flagged.slice(0, 15).map((item) => (
                  <tr key={item.transaction_id}>
                    <td><CaseLink id={item.transaction_id} /></td>
                    <td><Badge decision={item.decision} /></td>
                    <td>{num(item.score, 3)}</td>
                    <td>{num(item.amount, 2)}</td>
                    <td className="reasons">{reasonText(item)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </section>
        </>
      )}
    </>
  );
}
