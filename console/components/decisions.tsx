// A decision's reasons and rules as text (never markup: ids and reasons come from outside).

import Link from "next/link";

import { num } from "@/lib/format";
import type { HeldDecision } from "@/lib/types";

export function reasonText(item: Pick<HeldDecision, "reasons" | "rules">): string {
  const parts = (item.reasons ?? []).map((r) => `${r.feature}=${num(r.value, 2)} (+${num(r.contribution, 2)})`);
  for (const rule of item.rules ?? []) parts.push(`rule ${rule}`);
  return parts.join("; ") || "–";
}

export function CaseLink({ id }: { id: string }) {
  return <Link href={`/case/?id=${encodeURIComponent(id)}`} className="case-link">{id}</Link>;
}

export function Badge({ decision }: { decision: string }) {
  return <span className={`badge ${decision}`}>{decision}</span>;
}
