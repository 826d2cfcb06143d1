// The service's HTTP API as the console calls it. An API key typed into the sign-in form
// stays in this page's memory only; it buys short-lived session tokens (POST /v1/session,
// the analyst scope only), which the console's reads and the live channel carry. A change
// that needs the admin scope (saving rules and lists, reading the audit log) is sent with
// the key itself, in the Authorization header: never in a URL.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(`HTTP ${status}: ${detail}`);
  }
}

export interface Session {
  token: string | null;
  expires: number | null;
  auth: "on" | "off";
}

/** Where the service is: the origin that served the console, less `/dashboard/...`. */
export function serviceBase(): string {
  if (typeof window === "undefined") return "";
  const at = window.location.pathname.indexOf("/dashboard");
  return at > 0 ? window.location.pathname.slice(0, at) : "";
}

let token: string | null = null;
let key: string | null = null;

export function setToken(value: string | null): void {
  token = value;
}

export function setKey(value: string | null): void {
  key = value;
}

export function currentToken(): string | null {
  return token;
}

async function detailOf(resp: Response): Promise<string> {
  try {
    const body = (await resp.json()) as { detail?: unknown };
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) {
      return body.detail
        .map((d: { loc?: unknown[]; msg?: string }) => `${(d.loc ?? []).join(".")}: ${d.msg ?? ""}`)
        .join("; ");
    }
  } catch {
    // not JSON: the status says enough
  }
  return resp.statusText;
}

export async function call<T>(
  path: string,
  init: { method?: string; body?: unknown; headers?: Record<string, string>; admin?: boolean } = {},
): Promise<{ data: T; headers: Headers }> {
  const headers: Record<string, string> = { ...(init.headers ?? {}) };
  const bearer = init.admin && key ? key : token;
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (init.body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(`${serviceBase()}${path}`, {
    method: init.method ?? "GET",
    headers,
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  if (!resp.ok) throw new ApiError(resp.status, await detailOf(resp));
  return { data: (await resp.json()) as T, headers: resp.headers };
}

export async function get<T>(path: string, admin = false): Promise<T> {
  return (await call<T>(path, { admin })).data;
}

/** A session for `key` (or for no key, where the service runs without keys). */
export async function openSession(key: string | null): Promise<Session> {
  const headers: Record<string, string> = key ? { Authorization: `Bearer ${key}` } : {};
  const resp = await fetch(`${serviceBase()}/v1/session`, { method: "POST", headers });
  if (!resp.ok) throw new ApiError(resp.status, await detailOf(resp));
  return (await resp.json()) as Session;
}
