// The shapes of the service's answers the console reads (deployments/http/ingress.py).

export type Decision = "LEGIT" | "REVIEW" | "BLOCK";

export interface Reason {
  feature: string;
  value: number | null;
  contribution: number;
}

export interface HeldDecision {
  transaction_id: string;
  time_ms: number;
  amount: number;
  decision: Decision;
  score: number;
  model_version: string;
  policy_version: number;
  card: string;
  terminal: string;
  reasons: Reason[] | null;
  rules: string[] | null;
  label?: { is_fraud: boolean; source: string; labelled_ms: number } | null;
}

export interface Review extends HeldDecision {
  status: "open" | "fraud" | "legit";
  analyst?: string;
  note?: string;
  resolved_ms?: number;
}

export interface Normal {
  median: number;
  low: number;
  high: number;
  transactions: number;
}

export interface CaseFile {
  transaction: HeldDecision;
  review: Review | null;
  card_history: HeldDecision[];
  terminal_history: HeldDecision[];
  features: (Reason & { own: boolean; normal: Normal | null; unusual: boolean | null })[];
  card_normal: { transactions: number; features: Record<string, Normal> };
}

export interface Drift {
  state: "warming" | "ok" | "alert";
  over: string[];
  psi: Record<string, number> | null;
}

export interface Live {
  transactions: number;
  tps: number;
  decisions: Record<Decision, number>;
  latency_ms: { p50: number | null; p99: number | null; requests: number; window_s: number };
  score_histogram: { edges: number[]; counts: number[] };
  timeline: number[][];
  recent_flagged: HeldDecision[];
  drift: Drift;
  shadow: { versions: string[]; compared: number; agreement: number | null; mean_abs_score_diff: number | null };
  outcomes: Record<string, number>;
  reviews: { open: number; oldest: Review[] };
  policy_version: number;
  model: { version: string | null; shadow_version: string | null; thresholds: { review: number; block: number } };
}

export interface Rule {
  id: string;
  when: string;
  action: "BLOCK" | "REVIEW" | "ALLOW";
  description: string;
  enabled: boolean;
}

export interface PolicyView {
  version: number;
  rules: Rule[];
  lists: Record<string, number>;
}

export interface Summary {
  decisions: Record<Decision, number>;
  flag_rate: number;
  frauds_caught: number;
  frauds_missed: number;
  false_alarms: number;
}

export interface Preview {
  rows: number;
  labelled: number;
  current: Summary & { version: number };
  proposed: Summary;
  changed: number;
  changes: Record<string, number>;
  rules: { current: Record<string, { hits: number; changed: number }>; proposed: Record<string, { hits: number; changed: number }> };
}
