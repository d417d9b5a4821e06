// The Doorways playground page: one Discord channel, drawn from the local fake Discord's state
// and its change feed. Everything a person does is a POST to the playground's API, which acts
// through the fake's driver; the real bot answers over the real protocols.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { me: null, people: [], commands: [], messages: new Map(), bot: null };
const REACTIONS = ["🎲", "✉️", "👍", "❤️", "😂", "🔥"];
const COLORS = ["#5865f2", "#eb459e", "#3ba55c", "#faa61a", "#ed4245", "#9b59b6"];
let events = null;
let notices = 0;

// --- who am I -------------------------------------------------------------------------------

function currentUser() {
  const asked = new URLSearchParams(location.search).get("user");
  if (asked) sessionStorage.setItem("doorways-user", asked);
  return sessionStorage.getItem("doorways-user") || "ada";
}

async function api(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user: state.me.name, ...body }),
  });
  let data = {};
  try { data = await response.json(); } catch (e) { data = { error: response.statusText }; }
  if (!response.ok || data.error) throw new Error(data.error || response.statusText);
  return data;
}

async function load() {
  const response = await fetch(`/api/state?user=${encodeURIComponent(currentUser())}`);
  const data = await response.json();
  if (data.error) { sessionStorage.removeItem("doorways-user"); return load(); }
  state.me = data.me; state.people = data.people; state.commands = data.commands;
  state.messages = new Map(data.messages.map((m) => [m.id, m]));
  $("channel-name").textContent = data.channel.name;
  $("guild-name").textContent = data.guild;
  document.title = `#${data.channel.name} · Doorways playground`;
  setBot(data.bot.connected, data.bot.name);
  const banner = $("banner");
  banner.hidden = !data.banner.text;
  banner.textContent = data.banner.text || "";
  const select = $("user-select");
  select.replaceChildren(...state.people.map((p) => {
    const option = new Option(p.name + (p.admin ? " (admin: Manage Server)" : ""), p.name);
    option.selected = p.name === state.me.name;
    return option;
  }));
  renderAll(true);
  listen();
}

function setBot(connected, name) {
  state.bot = name || state.bot;
  const status = $("bot-status");
  status.textContent = `${state.bot} ${connected ? "online" : "offline"}`;
  status.classList.toggle("online", connected);
}

function listen() {
  if (events) events.close();
  events = new EventSource(`/api/events?user=${encodeURIComponent(state.me.name)}`);
  let opened = false;
  events.onopen = () => { if (opened) load(); opened = true; };  // catch up after a reconnect
  events.onmessage = (e) => {
    const event = JSON.parse(e.data);
    if (event.kind === "message") { state.messages.set(event.message.id, event.message); render(event.message); }
    else if (event.kind === "delete") { state.messages.delete(event.id); $(`m${event.id}`)?.remove(); }
    else if (event.kind === "commands") { state.commands = event.commands; updateComposer(); }
    else if (event.kind === "bot") setBot(event.connected);
  };
}

// --- messages -------------------------------------------------------------------------------

function compareIds(a, b) {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

function renderAll(scroll) {
  const list = $("messages");
  list.replaceChildren();
  [...state.messages.values()].sort((a, b) => compareIds(a.id, b.id)).forEach((m) => render(m, false));
  if (scroll) list.scrollTop = list.scrollHeight;
}

function render(m, scroll = true) {
  const list = $("messages");
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 120;
  const node = messageNode(m);
  const old = $(`m${m.id}`);
  if (old) old.replaceWith(node);
  else {
    const after = [...list.children].find((c) => c.dataset.id && compareIds(c.dataset.id, m.id) > 0);
    list.insertBefore(node, after || null);
  }
  if (scroll && nearBottom) list.scrollTop = list.scrollHeight;
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function avatar(name) {
  let hash = 0;
  for (const c of name) hash = (hash * 31 + c.charCodeAt(0)) >>> 0;
  return el("div", { className: "avatar", style: `background:${COLORS[hash % COLORS.length]}` },
    name.slice(0, 1).toUpperCase());
}

function nameOf(id) {
  const person = state.people.find((p) => p.id === id);
  if (person) return person.name;
  for (const m of state.messages.values()) if (m.author.id === id) return m.author.username;
  return "someone";
}

function messageNode(m) {
  const node = el("article", { id: `m${m.id}`, className: "msg" + (m.ephemeral ? " ephemeral" : "") });
  node.dataset.id = m.id;
  const meta = m.interaction_metadata;
  if (meta && meta.name) {
    node.append(el("div"), el("div", { className: "context" }, "↳ ",
      el("b", {}, meta.user.username), ` used /${meta.name}`));
  } else if (m.reference_id) {
    const ref = state.messages.get(m.reference_id);
    node.append(el("div"), el("div", { className: "context" }, "↳ replying to ",
      el("b", {}, ref ? ref.author.username : "a message")));
  }
  const body = el("div", { className: "body" });
  body.append(el("div", { className: "head" },
    el("span", { className: "name" }, m.author.username),
    m.author.bot ? el("span", { className: "tag" }, "APP") : null,
    el("span", { className: "time" }, new Date(m.timestamp).toLocaleTimeString()),
    m.edited_timestamp ? el("span", { className: "edited" }, "(edited)") : null));
  if (m.loading) body.append(el("div", { className: "loading" }, `${m.author.username} is thinking…`));
  if (m.content) body.append(el("div", { className: "content", innerHTML: markdown(m.content) }));
  const files = el("div", { className: "attachments" });
  for (const a of m.attachments) {
    const image = (a.content_type || "").startsWith("image/") || /\.(png|jpe?g|gif|webp)$/i.test(a.filename);
    files.append(image
      ? el("a", { href: a.url, target: "_blank" }, el("img", { src: a.url, alt: a.filename, title: a.filename }))
      : el("a", { className: "file", href: a.url, target: "_blank" }, `📄 ${a.filename}`));
  }
  if (m.attachments.length) body.append(files);
  for (const row of m.components || []) body.append(componentRow(m, row));
  if (m.reactions && m.reactions.length) {
    body.append(el("div", { className: "reactions" }, ...m.reactions.map((r) => {
      const emoji = r.emoji.id ? `${r.emoji.name}:${r.emoji.id}` : r.emoji.name;
      const chip = el("button", { className: "reaction" + (r.me ? " me" : ""), title: `react with ${r.emoji.name}` },
        `${r.emoji.name} ${r.count}`);
      chip.onclick = () => act(() => api("/api/react", { message_id: m.id, emoji, remove: r.me }));
      return chip;
    })));
  }
  if (m.ephemeral) {
    const dismiss = el("a", {}, "Dismiss message");
    dismiss.onclick = () => { state.messages.delete(m.id); node.remove(); };
    body.append(el("div", { className: "note" }, "👁 Only you can see this · ", dismiss));
  }
  node.append(avatar(m.author.username), body);
  if (!m.ephemeral && !m.local) node.append(tools(m));
  return node;
}

function componentRow(m, row) {
  const items = row.type === 1 ? row.components : [row];
  return el("div", { className: "row" }, ...items.filter((c) => c.type === 2).map((c) => {
    const label = [c.emoji ? c.emoji.name : "", c.label || ""].join(" ").trim();
    if (c.style === 5) return el("a", { className: "button", href: c.url, target: "_blank" }, label);
    const button = el("button", { className: `button s${c.style || 2}`, disabled: !!c.disabled }, label);
    button.dataset.customId = c.custom_id;
    button.onclick = () => act(() => api("/api/click", { message_id: m.id, custom_id: c.custom_id }));
    return button;
  }));
}

function tools(m) {
  const bar = el("div", { className: "tools" });
  const react = el("button", { title: "Add Reaction" }, "🙂+");
  const apps = el("button", { title: "Apps" }, "⋯ Apps");
  react.onclick = () => openMenu(bar, el("div", { className: "emojis" }, ...REACTIONS.map((e) => {
    const b = el("button", { title: `react with ${e}` }, e);
    b.onclick = () => { closeMenus(); act(() => api("/api/react", { message_id: m.id, emoji: e })); };
    return b;
  })));
  apps.onclick = () => {
    const commands = state.commands.filter((c) => c.type === 3);
    openMenu(bar, ...(commands.length ? commands.map((c) => {
      const b = el("button", {}, c.name);
      b.onclick = () => { closeMenus(); act(() => api("/api/context", { message_id: m.id, name: c.name })); };
      return b;
    }) : [el("div", { className: "muted" }, "no message commands")]));
  };
  bar.append(react, apps);
  return bar;
}

function openMenu(bar, ...items) {
  closeMenus();
  bar.classList.add("open");
  bar.append(el("div", { className: "menu" }, ...items));
}

function closeMenus() {
  document.querySelectorAll(".tools .menu").forEach((menu) => menu.remove());
  document.querySelectorAll(".tools.open").forEach((bar) => bar.classList.remove("open"));
}
document.addEventListener("click", (e) => { if (!e.target.closest(".tools")) closeMenus(); });

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

// Discord's basic markdown: code blocks, inline code, bold, italics, underline, mentions.
function markdown(text) {
  const parts = text.split(/(```[\s\S]*?```|`[^`\n]+`)/g);
  return parts.map((part) => {
    if (part.startsWith("```") && part.length >= 6) {
      const code = part.slice(3, -3).replace(/^[a-z]*\n/, "");
      return `<pre><code>${escapeHtml(code)}</code></pre>`;
    }
    if (part.startsWith("`") && part.endsWith("`") && part.length >= 2) {
      return `<code>${escapeHtml(part.slice(1, -1))}</code>`;
    }
    return escapeHtml(part)
      .replace(/\*\*(.+?)\*\*/g, "<b>$1</b>")
      .replace(/__(.+?)__/g, "<u>$1</u>")
      .replace(/(^|[^*])\*([^*\n]+)\*/g, "$1<i>$2</i>")
      .replace(/&lt;@!?(\d+)&gt;/g, (_, id) => `<span class="mention">@${escapeHtml(nameOf(id))}</span>`)
      .replace(/&lt;t:(\d+)(:[a-zA-Z])?&gt;/g, (_, t) => new Date(Number(t) * 1000).toLocaleTimeString())
      .replace(/(^|\n)-# ([^\n]*)/g, '$1<small class="subtext">$2</small>');
  }).join("");
}

// A message only this page shows (a refusal by Discord's client, an error).
function notice(text) {
  const m = {
    id: `9${String(Date.now()).padStart(19, "0")}${notices++}`, local: true, ephemeral: true,
    author: { username: "Playground", bot: true, id: "0" }, content: text, attachments: [],
    components: [], reactions: [], timestamp: new Date().toISOString(),
  };
  state.messages.set(m.id, m);
  render(m);
}

async function act(call) {
  try {
    const result = await call();
    if (result && result.modal) openModal(result.modal, result.id);
  } catch (error) {
    notice(error.message);
  }
}

// --- modals ---------------------------------------------------------------------------------

function openModal(modal, interactionId) {
  const dialog = $("modal");
  $("modal-title").textContent = modal.title;
  const fields = [];
  const walk = (components, label) => {
    for (const c of components) {
      if (c.type === 1) walk(c.components, label);
      else if (c.type === 18) walk([c.component], c.label);
      else if (c.type === 4) fields.push({ ...c, label: c.label || label || c.custom_id });
    }
  };
  walk(modal.components);
  $("modal-fields").replaceChildren(...fields.map((f) => {
    const input = el(f.style === 2 ? "textarea" : "input", { name: f.custom_id, value: f.value || "", required: f.required !== false });
    return el("div", {}, el("label", {}, f.label), input);
  }));
  $("modal-cancel").onclick = () => dialog.close();
  $("modal-form").onsubmit = (e) => {
    e.preventDefault();
    const values = {};
    for (const f of fields) values[f.custom_id] = $("modal-form").elements[f.custom_id].value;
    dialog.close();
    act(() => api("/api/modal", { interaction_id: interactionId, values }));
  };
  dialog.showModal();
}

// --- the composer ---------------------------------------------------------------------------

const input = $("input");
let choices = [];      // what the popup offers: {label, desc, apply()}
let active = -1;       // the highlighted choice (-1: none; Enter then sends)
let completing = 0;    // the latest autocomplete request

// "/imagine a | b:0.5 seed:3": the first option takes the text before any "name:" of another.
function parse(text) {
  const match = /^\/(\S*)(\s?)([\s\S]*)$/.exec(text);
  if (!match) return null;
  const command = state.commands.find((c) => c.type === 1 && c.name === match[1]);
  const result = { word: match[1], command, started: !!match[2], options: {}, spans: {}, focused: null };
  if (!command || !result.started) return result;
  const names = command.options.map((o) => o.name);
  const base = 1 + match[1].length + 1;
  const rest = match[3];
  const found = [];
  if (names.length) {
    const pattern = new RegExp(`(^|\\s)(${names.map((n) => n.replace(/[^\w-]/g, "")).join("|")}):`, "g");
    let hit;
    while ((hit = pattern.exec(rest))) found.push({ name: hit[2], at: hit.index + hit[1].length, start: hit.index + hit[0].length });
  }
  const first = command.options[0];
  if (first && (!found.length || found[0].at > 0)) found.unshift({ name: first.name, at: 0, start: 0 });
  found.forEach((f, i) => {
    const end = i + 1 < found.length ? found[i + 1].at : rest.length;
    result.options[f.name] = rest.slice(f.start, end).trim();
    result.spans[f.name] = [base + f.start, base + end];
  });
  result.focused = found.length ? found[found.length - 1].name : null;
  return result;
}

function updateComposer() {
  const parsed = parse(input.value);
  const hint = $("hint");
  hint.replaceChildren();
  if (!parsed) { showChoices([]); return; }
  if (!parsed.started || !parsed.command) {
    const matching = state.commands.filter((c) => c.type === 1 && c.name.startsWith(parsed.word));
    showChoices(matching.map((c) => ({
      label: `/${c.name}`, desc: c.description,
      apply: () => { input.value = `/${c.name} `; updateComposer(); },
    })), "commands");
    if (parsed.started && !parsed.command) hint.append(el("span", { className: "error" }, `no command /${parsed.word}`));
    return;
  }
  const command = parsed.command;
  for (const o of command.options) {
    const given = o.name in parsed.options;
    const span = el("span", {
      className: "opt" + (o.name === parsed.focused ? " focused" : given ? " given" : ""),
      title: o.description,
    }, `${o.name}${o.required ? "" : "?"}`);
    hint.append(span);
  }
  const focused = command.options.find((o) => o.name === parsed.focused);
  if (focused) hint.append(el("span", { className: "muted" }, ` — ${focused.name}: ${focused.description}`));
  suggestValues(parsed, focused);
}

function replaceValue(parsed, name, value) {
  const [start, end] = parsed.spans[name];
  input.value = input.value.slice(0, start) + value + input.value.slice(end);
  input.focus();
  updateComposer();
}

async function suggestValues(parsed, option) {
  const ticket = ++completing;
  if (!option) { showChoices([]); return; }
  const typed = parsed.options[option.name] || "";
  const unused = parsed.command.options.filter((o) => !(o.name in parsed.options));
  const more = unused.map((o) => ({
    label: `${o.name}:`, desc: o.description,
    apply: () => { input.value = input.value.replace(/\s*$/, " ") + `${o.name}:`; input.focus(); updateComposer(); },
  }));
  if (option.choices) {
    const fitting = option.choices.filter((c) => c.name.toLowerCase().includes(typed.toLowerCase()));
    showChoices(fitting.map((c) => ({ label: c.name, desc: "", apply: () => replaceValue(parsed, option.name, String(c.value)) })).concat(more), option.name);
    return;
  }
  if (!option.autocomplete) { showChoices(typed ? more : [], "options"); return; }
  await new Promise((resolve) => setTimeout(resolve, 200));
  if (ticket !== completing) return;
  try {
    const { choices: offered } = await api("/api/autocomplete", { name: parsed.command.name, focused: option.name, options: parsed.options });
    if (ticket !== completing) return;
    showChoices(offered.map((c) => ({ label: c.name, desc: "", apply: () => replaceValue(parsed, option.name, String(c.value)) })).concat(typed ? more : []), option.name);
  } catch (error) {
    if (ticket === completing) showChoices(typed ? more : [], "options");
  }
}

function showChoices(list, title) {
  choices = list;
  active = -1;
  const popup = $("popup");
  popup.hidden = !list.length;
  popup.replaceChildren(el("div", { className: "popup-title" }, title || ""), ...list.map((c, i) => {
    const row = el("div", { className: "choice" }, el("span", {}, c.label), el("span", { className: "desc" }, c.desc));
    row.onmousedown = (e) => { e.preventDefault(); c.apply(); };
    row.dataset.index = i;
    return row;
  }));
}

function highlight(index) {
  active = (index + choices.length) % choices.length;
  document.querySelectorAll("#popup .choice").forEach((row, i) => row.classList.toggle("active", i === active));
  document.querySelector("#popup .choice.active")?.scrollIntoView({ block: "nearest" });
}

async function send() {
  const parsed = parse(input.value);
  if (!parsed) { notice("The playground has no plain chat: type / and a command, e.g. /entrance heaven | hell"); return; }
  if (!parsed.command) { notice(`There is no command /${parsed.word}.`); return; }
  const missing = parsed.command.options.filter((o) => o.required && !parsed.options[o.name]);
  if (missing.length) { notice(`/${parsed.command.name} needs ${missing.map((o) => o.name).join(", ")}.`); return; }
  const options = Object.fromEntries(Object.entries(parsed.options).filter(([, v]) => v !== ""));
  input.value = "";
  updateComposer();
  completing++;
  await act(() => api("/api/command", { name: parsed.command.name, options }));
}

input.addEventListener("input", updateComposer);
input.addEventListener("keydown", (e) => {
  const open = !$("popup").hidden && choices.length;
  if (e.key === "ArrowDown" && open) { e.preventDefault(); highlight(active + 1); }
  else if (e.key === "ArrowUp" && open) { e.preventDefault(); highlight(active - 1); }
  else if (e.key === "Tab" && open) { e.preventDefault(); choices[Math.max(active, 0)].apply(); }
  else if (e.key === "Escape") showChoices([]);
  else if (e.key === "Enter") {
    e.preventDefault();
    const parsed = parse(input.value);
    if (open && (active >= 0 || (parsed && !parsed.started))) choices[Math.max(active, 0)].apply();
    else send();
  }
});

$("user-select").addEventListener("change", (e) => {
  sessionStorage.setItem("doorways-user", e.target.value);
  const url = new URL(location.href);
  url.searchParams.set("user", e.target.value);
  history.replaceState(null, "", url);
  load();
});

load();
