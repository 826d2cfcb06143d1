// Small SVG charts: a picture where a table says less (score histogram, rates over time, PSI).

import { num } from "@/lib/format";

export function ScoreHistogram({ edges, counts, review, block }: { edges: number[]; counts: number[]; review: number; block: number }) {
  const w = 520, h = 160, pad = 24;
  const logs = counts.map((c) => Math.log10(1 + c));
  const max = Math.max(1e-9, ...logs);
  const bw = (w - pad) / Math.max(1, counts.length);
  return (
    <svg id="score-histogram" viewBox={`0 0 ${w} ${h}`} role="img" aria-label="score histogram (log scale)">
      {counts.map((c, i) => {
        const bh = (logs[i] / max) * (h - 36);
        const edge = edges[i] ?? 0;
        const fill = edge >= block ? "#c62828" : edge >= review ? "#ef6c00" : "#2e7d32";
        return (
          <rect key={i} x={pad + i * bw} y={h - 18 - bh} width={Math.max(1, bw - 2)} height={bh} fill={fill}>
            <title>{`${num(edge, 2)}: ${num(c)}`}</title>
          </rect>
        );
      })}
      <text x={pad} y={h - 4} className="axis">0</text>
      <text x={w / 2} y={h - 4} className="axis">0.5</text>
      <text x={w - 12} y={h - 4} className="axis">1</text>
    </svg>
  );
}

export function Timeline({ rows }: { rows: number[][] }) {
  const w = 520, h = 160, pad = 34;
  if (!rows.length) return <svg id="timeline" viewBox={`0 0 ${w} ${h}`} />;
  const last = rows[rows.length - 1][0];
  const first = last - 119;
  const shown = rows.filter((r) => r[0] >= first);
  const max = Math.max(1, ...shown.map((r) => r[1]));
  const x = (s: number) => pad + ((s - first) / 119) * (w - pad - 6);
  const y = (v: number) => h - 18 - (v / max) * (h - 30);
  const line = (col: number) => shown.map((r, i) => `${i ? "L" : "M"}${x(r[0]).toFixed(1)},${y(r[col]).toFixed(1)}`).join(" ");
  return (
    <svg id="timeline" viewBox={`0 0 ${w} ${h}`} role="img" aria-label="transactions, reviews and blocks per second, last two minutes">
      <line x1={pad} x2={w} y1={y(0)} y2={y(0)} stroke="#d9dee5" />
      <text x={2} y={y(max) + 4} className="axis">{num(max)}</text>
      <text x={2} y={y(0)} className="axis">0</text>
      <path d={line(1)} stroke="#1f77b4" strokeWidth={2} fill="none" />
      <path d={line(2)} stroke="#ef6c00" strokeWidth={1.5} fill="none" />
      <path d={line(3)} stroke="#c62828" strokeWidth={1.5} fill="none" />
    </svg>
  );
}

export function Bars({ values, bound }: { values: [string, number][]; bound: number }) {
  const w = 1100, row = 18, label = 380;
  const max = Math.max(bound * 1.5, ...values.map(([, v]) => v));
  const h = values.length * row + 20;
  const x = (v: number) => label + (v / max) * (w - label - 50);
  return (
    <svg id="psi-bars" viewBox={`0 0 ${w} ${h}`} role="img" aria-label="PSI per column">
      {values.map(([name, v], i) => (
        <g key={name}>
          <text x={label - 6} y={i * row + 12} textAnchor="end" className="axis">{name}</text>
          <rect x={label} y={i * row + 3} width={Math.max(1, x(v) - label)} height={row - 5} fill={v > bound ? "#c62828" : "#1f77b4"} />
          <text x={x(v) + 4} y={i * row + 12} className="axis">{num(v, 3)}</text>
        </g>
      ))}
      <line x1={x(bound)} x2={x(bound)} y1={0} y2={h - 16} stroke="#c62828" strokeDasharray="4 3" />
      <text x={x(bound) + 3} y={h - 4} className="axis">alert {bound}</text>
    </svg>
  );
}
