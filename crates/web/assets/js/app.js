// Entry point: the page router (history API), the top bar (theme, time zone, user) and login.
import { api, setUnauthorizedHandler, setCsrf, ApiError } from "./api.js";
import { el, settings, browserZone, displayZone, toast } from "./util.js";

const view = document.getElementById("view");
const topbar = document.getElementById("topbar");
let cleanup = null;
let me = null;

/** Page modules by the first path segment; loaded on first use. */
const PAGES = {
  "": () => import("./search.js"),
  search: () => import("./search.js"),
  call: () => import("./flow.js"),
  tail: () => import("./tail.js"),
  dashboard: () => import("./dashboard.js"),
  admin: () => import("./admin.js"),
};

function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
  settings.set("theme", theme);
}

function setupTheme() {
  const stored = settings.get("theme", null);
  const prefersLight = window.matchMedia && window.matchMedia("(prefers-color-scheme: light)").matches;
  applyTheme(stored || (prefersLight ? "light" : "dark"));
  document.getElementById("theme-toggle").addEventListener("click", () => {
    applyTheme(document.documentElement.dataset.theme === "dark" ? "light" : "dark");
  });
}

function setupZones() {
  const select = document.getElementById("tz-select");
  const local = browserZone();
  const zones = new Set(["UTC", local]);
  const all = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  const current = displayZone();
  select.append(el("option", { value: "UTC" }, "UTC"));
  if (local !== "UTC") select.append(el("option", { value: local }, `${local} (browser)`));
  for (const z of all) if (!zones.has(z)) select.append(el("option", { value: z }, z));
  if (![...select.options].some((o) => o.value === current)) select.append(el("option", { value: current }, current));
  select.value = current;
  select.addEventListener("change", () => {
    settings.set("tz", select.value);
    toast(`Times shown in ${select.value}`);
    route();
  });
}

/** Internal navigation without a page load. */
export function navigate(url, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  route();
}

function isInternal(a) {
  if (!a || a.target || a.hasAttribute("download") || a.origin !== location.origin) return false;
  const p = a.pathname;
  return !p.startsWith("/api/") && !p.startsWith("/assets/");
}

document.addEventListener("click", (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest("a");
  if (!isInternal(a)) return;
  e.preventDefault();
  navigate(a.pathname + a.search + a.hash);
});
window.addEventListener("popstate", () => route());

function showLogin(message) {
  if (cleanup) cleanup();
  cleanup = null;
  me = null;
  topbar.hidden = true;
  const error = el("div", { class: "error", id: "login-error", role: "alert" }, message || "");
  const user = el("input", { name: "username", id: "login-username", autocomplete: "username", required: true, autofocus: true });
  const pass = el("input", { name: "password", id: "login-password", type: "password", autocomplete: "current-password", required: true });
  const submit = el("button", { class: "btn primary", type: "submit", id: "login-submit" }, "Log in");
  const form = el("form", { class: "login", id: "login-form" },
    el("h1", {}, logo(), "hepstack"),
    el("label", {}, "User", user),
    el("label", {}, "Password", pass),
    submit, error);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    submit.disabled = true;
    error.textContent = "";
    try {
      await api("/login", { method: "POST", body: { username: user.value, password: pass.value } });
      const back = new URLSearchParams(location.search).get("next");
      navigate(back && back.startsWith("/") && !back.startsWith("//") ? back : "/search", { replace: true });
    } catch (err) {
      error.textContent = err instanceof ApiError ? err.message : String(err);
      pass.select();
    } finally {
      submit.disabled = false;
    }
  });
  view.replaceChildren(el("div", { class: "login-wrap" }, form));
  document.title = "Log in · hepstack";
  user.focus();
}

function logo() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  const p = document.createElementNS(ns, "path");
  p.setAttribute("d", "M3 12h4l3-8 4 16 3-8h4");
  svg.append(p);
  return svg;
}

function toLogin() {
  const here = location.pathname + location.search;
  const next = location.pathname === "/login" ? "" : `?next=${encodeURIComponent(here)}`;
  history.replaceState(null, "", "/login" + next);
  showLogin("Your session has ended; please log in.");
}

async function ensureSession() {
  if (me) return true;
  try {
    me = await api("/me", { quietAuth: true });
    setCsrf(me.csrf_token);
    document.getElementById("whoami").textContent = me.username + (me.admin ? " (admin)" : "");
    document.querySelector('.mainnav a[data-page="admin"]').hidden = !me.admin;
    return true;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return false;
    throw e;
  }
}

async function route() {
  const path = location.pathname;
  if (path === "/login") {
    // Already logged in (e.g. back button): go on to the search.
    if (await ensureSession().catch(() => false)) return navigate("/search", { replace: true });
    return showLogin();
  }
  let ok;
  try {
    ok = await ensureSession();
  } catch (e) {
    view.replaceChildren(el("div", { class: "banner" }, `Cannot reach the server: ${e.message}`));
    return;
  }
  if (!ok) return toLogin();
  topbar.hidden = false;
  const segments = path.split("/").filter(Boolean);
  const first = segments[0] || "";
  const loader = PAGES[first];
  for (const a of document.querySelectorAll(".mainnav a")) {
    a.classList.toggle("active", a.dataset.page === (first || "search") || (first === "call" && a.dataset.page === "search"));
  }
  if (cleanup) cleanup();
  cleanup = null;
  if (!loader) {
    view.replaceChildren(el("div", { class: "empty" }, "No such page. ", el("a", { href: "/search" }, "Go to search")));
    return;
  }
  const mod = await loader();
  const result = await mod.render(view, { segments, params: new URLSearchParams(location.search), navigate, me });
  cleanup = typeof result === "function" ? result : null;
}

document.getElementById("logout").addEventListener("click", async () => {
  try {
    await api("/logout", { method: "POST", quietAuth: true });
  } catch {
    /* the session may already be gone */
  }
  me = null;
  setCsrf(null);
  history.pushState(null, "", "/login");
  showLogin("Logged out.");
});

setUnauthorizedHandler(() => toLogin());
setupTheme();
setupZones();
route();
