// The JSON API client. The session lives in the HttpOnly cookie set by /api/v1/login, so
// requests only need same-origin credentials; a 401 anywhere sends the user to the login page.

export class ApiError extends Error {
  constructor(status, message, param) {
    super(message);
    this.status = status;
    this.param = param || null;
  }
}

let onUnauthorized = () => {};
let csrfToken = null;

/** The session's CSRF token (from /login or /me), sent on every state-changing request. */
export function setCsrf(token) {
  csrfToken = token || null;
}

/** Registers what happens when the session is gone (the app shows the login page). */
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

/** Builds a query string from an object, skipping empty values; arrays repeat the key. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === null || value === undefined || value === "") continue;
    if (Array.isArray(value)) value.forEach((v) => q.append(key, v));
    else q.append(key, value);
  }
  const s = q.toString();
  return s ? "?" + s : "";
}

/** Calls the API; resolves to the parsed JSON (or text for non-JSON answers). */
export async function api(path, { method = "GET", body, signal, quietAuth = false } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" }, signal };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (method !== "GET" && csrfToken) init.headers["X-CSRF-Token"] = csrfToken;
  let resp;
  try {
    resp = await fetch("/api/v1" + path, init);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, `server unreachable: ${e.message}`);
  }
  const type = resp.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await resp.json().catch(() => null) : await resp.text();
  if (!resp.ok) {
    const message = (data && data.error) || (typeof data === "string" && data) || resp.statusText;
    if (resp.status === 401 && !quietAuth && path !== "/login") onUnauthorized();
    let text = message;
    if (resp.status === 429) {
      const retry = resp.headers.get("Retry-After");
      if (retry) text += ` (retry in ${retry} s)`;
    }
    throw new ApiError(resp.status, text, data && data.param);
  }
  return data;
}

/** URL of an API resource (for links and downloads, which carry the cookie themselves). */
export function apiUrl(path) {
  return "/api/v1" + path;
}
