// Admin pages: users, API tokens (shown once), IP/CIDR aliases; plus the own-password form.
import { api, ApiError } from "./api.js";
import { el, fmtTime, toast, copyText, plural } from "./util.js";

const SECTIONS = [["users", "Users"], ["tokens", "API tokens"], ["aliases", "Aliases"], ["password", "My password"]];

function errorText(e) {
  return e instanceof ApiError ? e.message : String(e);
}

/** Runs an API action from a form, showing its error next to the form. */
async function act(status, fn) {
  status.className = "muted";
  status.textContent = "…";
  try {
    await fn();
    status.textContent = "";
  } catch (e) {
    status.className = "error";
    status.textContent = errorText(e);
  }
}

function table(id, head, rows) {
  return el("table", { class: "grid", id }, el("thead", {}, el("tr", {}, head.map((h) => el("th", {}, h)))), el("tbody", {}, rows));
}

async function usersSection(box, ctx) {
  const list = await api("/users");
  const status = el("span", { role: "alert" });
  const name = el("input", { name: "username", id: "new-username", required: true, autocomplete: "off" });
  const pass = el("input", { name: "password", id: "new-password", type: "password", required: true, minlength: 8, autocomplete: "new-password" });
  const admin = el("input", { type: "checkbox", id: "new-admin" });
  const form = el("form", { class: "form-inline", id: "user-form" },
    el("label", {}, "User name", name), el("label", {}, "Password (8+ characters)", pass),
    el("label", {}, "Admin", admin), el("button", { class: "btn primary", type: "submit" }, "Add user"), status);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    act(status, async () => {
      await api("/users", { method: "POST", body: { username: name.value.trim(), password: pass.value, admin: admin.checked } });
      toast(`User ${name.value} created`);
      ctx.refresh();
    });
  });
  const rows = list.items.map((u) => {
    const rowStatus = el("span", {});
    const toggle = el("button", { class: "btn small", type: "button" }, u.admin ? "Make user" : "Make admin");
    toggle.addEventListener("click", () => act(rowStatus, async () => {
      await api(`/users/${encodeURIComponent(u.username)}`, { method: "PATCH", body: { admin: !u.admin } });
      ctx.refresh();
    }));
    const reset = el("button", { class: "btn small", type: "button" }, "Set password…");
    reset.addEventListener("click", () => {
      const p = prompt(`New password for ${u.username} (8+ characters)`);
      if (p) act(rowStatus, async () => {
        await api(`/users/${encodeURIComponent(u.username)}`, { method: "PATCH", body: { password: p } });
        toast("Password set; the user's sessions ended");
      });
    });
    const del = el("button", { class: "btn small danger", type: "button" }, "Delete");
    del.addEventListener("click", () => {
      if (confirm(`Delete user ${u.username}?`)) act(rowStatus, async () => {
        await api(`/users/${encodeURIComponent(u.username)}`, { method: "DELETE" });
        ctx.refresh();
      });
    });
    return el("tr", {}, el("td", {}, u.username, u.username === ctx.me.username ? el("span", { class: "muted" }, " (you)") : null),
      el("td", {}, u.admin ? "admin" : "user"), el("td", {}, toggle, " ", reset, " ", del, " ", rowStatus));
  });
  box.append(el("div", { class: "card" }, el("h3", {}, "Add a user"), form),
    el("div", { class: "card" }, el("h3", {}, plural(list.items.length, "user")), table("users-table", ["User", "Role", ""], rows)));
}

async function tokensSection(box) {
  const list = await api("/tokens");
  const status = el("span", { role: "alert" });
  const name = el("input", { name: "name", id: "token-name", required: true, placeholder: "grafana, ci-export …" });
  const admin = el("input", { type: "checkbox", id: "token-admin" });
  const days = el("input", { type: "number", id: "token-days", min: "1", max: "3650", placeholder: "never", style: "width:7em" });
  const shown = el("div", { id: "token-created" });
  const form = el("form", { class: "form-inline", id: "token-form" },
    el("label", {}, "Name", name), el("label", {}, "Admin rights", admin), el("label", {}, "Expires in days", days),
    el("button", { class: "btn primary", type: "submit" }, "Create token"), status);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    act(status, async () => {
      const body = { name: name.value.trim(), admin: admin.checked };
      if (days.value) body.expires_in_days = Number(days.value);
      const t = await api("/tokens", { method: "POST", body });
      const copy = el("button", { class: "btn small", type: "button" }, "Copy");
      copy.addEventListener("click", async () => toast((await copyText(t.token)) ? "Token copied" : "Copy failed"));
      shown.replaceChildren(el("p", {}, "The token is shown only this once. Use it as ", el("code", {}, "Authorization: Bearer <token>"), ":"),
        el("div", { class: "row" }, el("div", { class: "secret", id: "token-secret" }, t.token), copy));
      await renderTokens();
    });
  });
  const listBox = el("div", { class: "card" });
  async function renderTokens(given) {
    const data = given || (await api("/tokens"));
    const rows = data.items.map((t) => {
      const rowStatus = el("span", {});
      const revoke = el("button", { class: "btn small danger", type: "button" }, "Revoke");
      revoke.addEventListener("click", () => {
        if (confirm(`Revoke token ${t.name}? Clients using it stop working at once.`)) act(rowStatus, async () => {
          await api(`/tokens/${encodeURIComponent(t.id)}`, { method: "DELETE" });
          await renderTokens();
        });
      });
      const expires = t.expires_us ? fmtTime(t.expires_us, 0) : "never";
      return el("tr", { class: t.expired ? "muted" : "" }, el("td", {}, t.name), el("td", { class: "mono" }, t.id), el("td", {}, t.admin ? "admin" : "user"),
        el("td", { class: "mono" }, fmtTime(t.created_us, 0)), el("td", {}, t.created_by || ""),
        el("td", { class: t.expired ? "mono st-5" : "mono" }, t.expired ? `expired ${expires}` : expires),
        el("td", { class: "mono" }, t.last_used_us ? fmtTime(t.last_used_us, 0) : "never"), el("td", {}, revoke, " ", rowStatus));
    });
    listBox.replaceChildren(el("h3", {}, plural(data.items.length, "token")), table("tokens-table", ["Name", "Id", "Rights", "Created", "By", "Expires", "Last used", ""], rows));
  }
  await renderTokens(list);
  box.append(el("div", { class: "card" }, el("h3", {}, "Create an API token"), form, shown), listBox);
}

async function aliasesSection(box, ctx) {
  const list = await api("/aliases");
  const status = el("span", { role: "alert" });
  const address = el("input", { name: "address", id: "alias-address", required: true, placeholder: "10.0.0.0/24 or 192.0.2.10", class: "mono" });
  const port = el("input", { name: "port", id: "alias-port", type: "number", min: 1, max: 65535, placeholder: "any", class: "mono" });
  const node = el("input", { name: "node", id: "alias-node", placeholder: "any" });
  const name = el("input", { name: "name", id: "alias-name", required: true, placeholder: "SBC-1" });
  let editing = null;
  const submit = el("button", { class: "btn primary", type: "submit" }, "Add alias");
  const form = el("form", { class: "form-inline", id: "alias-form" },
    el("label", {}, "IP or CIDR", address), el("label", {}, "Port", port), el("label", {}, "Node", node), el("label", {}, "Name", name), submit, status);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const body = { address: address.value.trim(), name: name.value.trim() };
    if (port.value) body.port = Number(port.value);
    if (node.value.trim()) body.node = node.value.trim();
    act(status, async () => {
      if (editing !== null) await api(`/aliases/${encodeURIComponent(editing)}`, { method: "PUT", body });
      else await api("/aliases", { method: "POST", body });
      toast(editing !== null ? "Alias saved" : "Alias added");
      ctx.refresh();
    });
  });
  const rows = list.items.map((a) => {
    const rowStatus = el("span", {});
    const edit = el("button", { class: "btn small", type: "button" }, "Edit");
    edit.addEventListener("click", () => {
      editing = a.id;
      address.value = a.address;
      port.value = a.port || "";
      node.value = a.node || "";
      name.value = a.name;
      submit.textContent = "Save alias";
      name.focus();
    });
    const del = el("button", { class: "btn small danger", type: "button" }, "Delete");
    del.addEventListener("click", () => act(rowStatus, async () => {
      await api(`/aliases/${encodeURIComponent(a.id)}`, { method: "DELETE" });
      ctx.refresh();
    }));
    return el("tr", {}, el("td", {}, a.name), el("td", { class: "mono" }, a.address), el("td", { class: "mono" }, a.port || "any"),
      el("td", {}, a.node || "any"), el("td", {}, ctx.me.admin ? [edit, " ", del, " ", rowStatus] : ""));
  });
  if (ctx.me.admin) box.append(el("div", { class: "card" }, el("h3", {}, "Name an address"), el("p", { class: "muted" }, "Aliases name hosts in the search grid and the call flow. The most specific match wins (port and node narrow it)."), form));
  box.append(el("div", { class: "card" }, el("h3", {}, plural(list.items.length, "alias", "aliases")), table("aliases-table", ["Name", "Address", "Port", "Node", ""], rows)));
}

function passwordSection(box) {
  const status = el("span", { role: "alert" });
  const current = el("input", { type: "password", id: "pw-current", required: true, autocomplete: "current-password" });
  const next = el("input", { type: "password", id: "pw-new", required: true, minlength: 8, autocomplete: "new-password" });
  const form = el("form", { class: "form-inline", id: "password-form" },
    el("label", {}, "Current password", current), el("label", {}, "New password", next), el("button", { class: "btn primary", type: "submit" }, "Change password"), status);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    act(status, async () => {
      await api("/me/password", { method: "POST", body: { current_password: current.value, new_password: next.value } });
      current.value = next.value = "";
      toast("Password changed; your other sessions ended");
    });
  });
  box.append(el("div", { class: "card" }, el("h3", {}, "Change my password"), form));
}

export async function render(view, { segments, me, navigate }) {
  const section = SECTIONS.some((s) => s[0] === segments[1]) ? segments[1] : me.admin ? "users" : "aliases";
  document.title = `Admin · ${section} · hepstack`;
  const visible = SECTIONS.filter(([key]) => me.admin || key === "aliases" || key === "password");
  const nav = el("nav", { class: "subnav" }, visible.map(([key, name]) => el("a", { href: `/admin/${key}`, class: key === section ? "on" : null }, name)));
  const box = el("div", { class: "page", id: `admin-${section}` }, el("h2", {}, "Administration"), nav);
  view.replaceChildren(box);
  const ctx = { me, refresh: () => navigate(location.pathname, { replace: true }) };
  try {
    if (section === "users") await usersSection(box, ctx);
    else if (section === "tokens") await tokensSection(box);
    else if (section === "aliases") await aliasesSection(box, ctx);
    else passwordSection(box);
  } catch (e) {
    box.append(el("div", { class: "banner" }, errorText(e)));
  }
}
