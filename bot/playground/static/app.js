// The Doorways playground page: a Discord channel and the person's direct messages, drawn from
// the local fake Discord's state and its changes, which come over one WebSocket per tab.
// Everything a person does is a request on that socket; the playground acts through the
// fake's driver and the real bot answers over the real protocols.
"use strict";

const $ = (id) => document.getElementById(id);
const REACTIONS = ["🎲", "✉️", "👍", "❤️", "😂", "🔥"];
const COLORS = ["#5865f2", "#eb459e", "#3ba55c", "#faa61a", "#ed4245", "#9b59b6"];
const DISCORD_EPOCH = 1420070400000n;
const NOT_RUNNING = "The playground is not running — start it with `make run`.";
const state = {
  me: null, people: [], roles: [], commands: [], hidden: [], messages: new Map(),
  channel: null, dm: null, guild: null, view: "channel", bot: null, timeoutMs: 10000, unread: 0,
  permissions: [],
};
let notices = 0;

// --- the socket -----------------------------------------------------------------------------

let socket = null;
let nextRequest = 1;
let retries = 0;
const requests = new Map();  // id -> {resolve, reject, timer}

function currentUser() {
  const asked = new URLSearchParams(location.search).get("user");
  if (asked) sessionStorage.setItem("doorways-user", asked);
  return sessionStorage.getItem("doorways-user") || "ada";
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/api/socket?user=${encodeURIComponent(currentUser())}`);
  socket = ws;
  ws.onmessage = (e) => { if (ws === socket) receive(JSON.parse(e.data)); };
  ws.onclose = () => {
    if (ws !== socket) return;  // replaced on purpose (another person chosen)
    socket = null;
    setOffline(true);
    for (const [id, pending] of requests) { clearTimeout(pending.timer); pending.reject(new Error(NOT_RUNNING)); requests.delete(id); }
    setTimeout(connect, Math.min(5000, 500 * 2 ** retries++));
  };
}

function reconnect() {
  const old = socket;
  socket = null;
  if (old) old.close();
  connect();
}

function receive(event) {
  if (event.kind === "state") { retries = 0; setOffline(false); load(event); }
  else if (event.kind === "unknown_person") { sessionStorage.removeItem("doorways-user"); reconnect(); }
  else if (event.kind === "message") upsert(event.message);
  else if (event.kind === "delete") remove(event.id);
  else if (event.kind === "commands") { state.commands = event.commands; state.hidden = event.hidden; updateComposer(); }
  else if (event.kind === "bot") setBot(event.connected);
  else if (event.kind === "permissions") { state.permissions = event.permissions; renderPermissions(); }
  else if (event.kind === "reply") {
    const pending = requests.get(event.id);
    if (!pending) return;
    requests.delete(event.id);
    clearTimeout(pending.timer);
    if (event.error) pending.reject(new Error(event.error));
    else pending.resolve(event);
  }
}

// One request on the socket; its reply, or an error a person can read.
function request(action, body) {
  return new Promise((resolve, reject) => {
    if (!socket || socket.readyState !== WebSocket.OPEN || !state.me) { reject(new Error(NOT_RUNNING)); return; }
    const id = nextRequest++;
    const seconds = Math.round(state.timeoutMs / 1000);
    const timer = setTimeout(() => {
      requests.delete(id);
      reject(new Error(`No answer within ${seconds} s: the playground or the bot is stuck (its terminal may say why). Try again.`));
    }, state.timeoutMs);
    requests.set(id, { resolve, reject, timer });
    socket.send(JSON.stringify({ id, action, ...body }));
  });
}

function setOffline(offline) {
  const bar = $("offline");
  bar.hidden = !offline;
  bar.innerHTML = offline ? `${markdown(NOT_RUNNING)} <span class="muted">Reconnecting…</span>` : "";
  if (offline) setBot(false);
}

function load(data) {
  const switched = !state.me || state.me.name !== data.me.name;
  state.me = data.me; state.people = data.people; state.roles = data.roles;
  state.commands = data.commands; state.hidden = data.hidden; state.timeoutMs = data.timeout_ms;
  state.channel = data.channel; state.dm = data.dm; state.guild = data.guild;
  const local = [...state.messages.values()].filter((m) => m.local && !switched);
  state.messages = new Map([...data.messages, ...local].map((m) => [m.id, m]));
  if (switched) { state.unread = 0; state.view = "channel"; }
  $("channel-name").textContent = data.channel.name;
  $("guild-name").textContent = data.guild.name;
  setBot(data.bot.connected, data.bot.name);
  state.permissions = data.bot_permissions;
  renderPermissions();
  const banner = $("banner");
  banner.hidden = !data.banner.text;
  banner.textContent = data.banner.text || "";
  $("user-select").replaceChildren(...state.people.map((p) => {
    const option = new Option(p.name + (p.admin ? " (admin: Manage Server)" : ""), p.name);
    option.selected = p.name === state.me.name;
    return option;
  }));
  show(state.view);
}

function setBot(connected, name) {
  state.bot = name || state.bot;
  const status = $("bot-status");
  status.textContent = `${state.bot || "the bot"} ${connected ? "online" : "offline"}`;
  status.classList.toggle("online", connected);
}

// The bot's permissions in the channel, as a server admin sees them in the channel's settings:
// the admin can deny one and watch the bot refuse (or, mid-painting, send the picture by DM).
function renderPermissions() {
  const admin = state.me && state.me.admin;
  $("perms-title").textContent = `${state.bot || "the bot"} in #${state.channel.name}`;
  $("perms-list").replaceChildren(...state.permissions.map((p) => {
    const box = el("input", { type: "checkbox", checked: p.allowed, disabled: !admin });
    box.onchange = () => act(async () => {
      try {
        await request("bot_permission", { name: p.name, allowed: box.checked });
      } finally {
        renderPermissions();  // what the server says, also when it refused
      }
    });
    return el("label", { className: "perm", title: p.why }, box, el("span", {}, p.name));
  }));
  $("perms-note").textContent = admin ? "" : "only an admin (mod) can change these";
}

// --- places: the channel and the direct messages --------------------------------------------

function viewChannelId() {
  return state.view === "dm" ? state.dm.id : state.channel.id;
}

function show(view) {
  state.view = view;
  if (view === "dm") state.unread = 0;
  $("to-channel").classList.toggle("active", view === "channel");
  $("to-dm").classList.toggle("active", view === "dm");
  $("view-icon").textContent = view === "dm" ? "✉️" : "#";
  $("view-name").textContent = view === "dm" ? `${state.bot} · Direct messages` : state.channel.name;
  $("view-note").textContent = view === "dm" ? `only ${state.me.name} and ${state.bot} see these` : state.guild.name;
  document.title = `${view === "dm" ? "Direct messages" : "#" + state.channel.name} · Doorways playground`;
  const input = $("input");
  input.disabled = view === "dm";
  input.placeholder = view === "dm"
    ? `${state.bot}'s commands work in #${state.channel.name}; here it sends you pictures and answers`
    : "Type / for commands: /entrance heaven | hell";
  updateUnread();
  renderAll();
}

function updateUnread() {
  const badge = $("dm-unread");
  badge.hidden = !state.unread;
  badge.textContent = String(state.unread);
}

$("to-channel").onclick = () => show("channel");
$("to-dm").onclick = () => show("dm");

// --- following the bottom, like Discord -----------------------------------------------------

const scroller = $("messages");
let stuck = true;  // at the bottom: stay there as messages come and pictures load

function atBottom() {
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 8;
}

function toBottom() {
  scroller.scrollTop = scroller.scrollHeight;
  stuck = true;
  $("jump").hidden = true;
}

let lastTop = 0;
scroller.addEventListener("scroll", () => {
  if (atBottom()) { stuck = true; $("jump").hidden = true; }
  else if (scroller.scrollTop < lastTop) stuck = false;  // scrolled up (not: the view shrank)
  lastTop = scroller.scrollTop;
});
// Pictures that finish loading, edits that grow, the composer growing: stay at the bottom if
// there; otherwise the browser's scroll anchoring keeps what is being read in place.
const follow = new ResizeObserver(() => { if (stuck) toBottom(); });
follow.observe($("list"));
follow.observe(scroller);
$("jump").onclick = toBottom;

// --- messages -------------------------------------------------------------------------------

// Messages sort by snowflake (time); a local notice carries one made from its own time.
function orderOf(m) {
  return m.order || m.id;
}

function compareIds(a, b) {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

function upsert(m) {
  const isNew = !state.messages.has(m.id);
  state.messages.set(m.id, m);
  if (m.channel_id !== viewChannelId()) {
    if (isNew && m.channel_id === state.dm.id) { state.unread++; updateUnread(); }
    return;
  }
  render(m, isNew);
}

function remove(id) {
  state.messages.delete(id);
  $(`m${id}`)?.remove();
}

function renderAll() {
  const here = viewChannelId();
  $("list").replaceChildren(...[...state.messages.values()]
    .filter((m) => m.channel_id === here)
    .sort((a, b) => compareIds(orderOf(a), orderOf(b)))
    .map(messageNode));
  toBottom();
}

function render(m, isNew) {
  const wasStuck = stuck;
  const list = $("list");
  const node = messageNode(m);
  const old = $(`m${m.id}`);
  if (old) old.replaceWith(node);
  else {
    const key = orderOf(m);
    const after = [...list.children].find((c) => compareIds(c.dataset.order, key) > 0);
    list.insertBefore(node, after || null);
  }
  if (wasStuck) toBottom();
  else if (isNew) $("jump").hidden = false;
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
  node.dataset.order = orderOf(m);
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
    // width and height reserve the picture's place before it loads, so nothing jumps.
    const size = a.width && a.height ? { width: a.width, height: a.height } : {};
    files.append(image
      ? el("a", { href: a.url, target: "_blank" }, el("img", { src: a.url, alt: a.filename, title: a.filename, ...size }))
      : el("a", { className: "file", href: a.url, target: "_blank" }, `📄 ${a.filename}`));
  }
  if (m.attachments.length) body.append(files);
  for (const row of m.components || []) body.append(componentRow(m, row));
  if (m.reactions && m.reactions.length) {
    body.append(el("div", { className: "reactions" }, ...m.reactions.map((r) => {
      const emoji = r.emoji.id ? `${r.emoji.name}:${r.emoji.id}` : r.emoji.name;
      const chip = el("button", { className: "reaction" + (r.me ? " me" : ""), title: `react with ${r.emoji.name}` },
        `${r.emoji.name} ${r.count}`);
      chip.onclick = () => act(() => request("react", { message_id: m.id, emoji, remove: r.me }));
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
    button.onclick = () => act(() => request("click", { message_id: m.id, custom_id: c.custom_id }));
    return button;
  }));
}

function tools(m) {
  const bar = el("div", { className: "tools" });
  const react = el("button", { title: "Add Reaction" }, "🙂+");
  const apps = el("button", { title: "Apps" }, "⋯ Apps");
  react.onclick = () => openMenu(bar, el("div", { className: "emojis" }, ...REACTIONS.map((e) => {
    const b = el("button", { title: `react with ${e}` }, e);
    b.onclick = () => { closeMenus(); act(() => request("react", { message_id: m.id, emoji: e })); };
    return b;
  })));
  apps.onclick = () => {
    const commands = state.commands.filter((c) => c.type === 3);
    openMenu(bar, ...(commands.length ? commands.map((c) => {
      const b = el("button", {}, c.name);
      b.onclick = () => { closeMenus(); act(() => request("context", { message_id: m.id, name: c.name })); };
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

// A link to a message of this server (as /history gives) opens it on this page.
function jumpTo(messageId) {
  const m = state.messages.get(messageId);
  if (!m) { notice("That message is not on this page (deleted, or someone else's)."); return; }
  if (m.channel_id !== viewChannelId()) show(m.channel_id === state.dm.id ? "dm" : "channel");
  const node = $(`m${messageId}`);
  stuck = false;
  node.scrollIntoView({ block: "center" });
  node.classList.add("highlight");
  setTimeout(() => node.classList.remove("highlight"), 2500);
}
document.addEventListener("click", (e) => {
  const link = e.target.closest("a[data-jump]");
  if (link) { e.preventDefault(); jumpTo(link.dataset.jump); }
});

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

// Discord's markdown, the parts the bot uses: code blocks and inline code, backslash escapes,
// bold, italics, underline, links, mentions, timestamps and -# subtext.
function markdown(text) {
  const kept = [];
  const keep = (html) => `\uE000${kept.push(html) - 1}\uE001`;
  // A message link (Copy Message Link, jump_url) opens the message on this page.
  const link = (label, url) => {
    const message = /^https:\/\/discord\.com\/channels\/(?:\d+|@me)\/(\d+)\/(\d+)$/.exec(url);
    if (!message) return keep(`<a href="${escapeHtml(url)}" target="_blank" rel="noopener">${label || escapeHtml(url)}</a>`);
    const place = message[1] === state.dm?.id ? "Direct messages" : `#${state.channel?.name}`;
    return keep(`<a class="jump" href="#m${message[2]}" data-jump="${message[2]}">${label || `${place} › message`}</a>`);
  };
  // Left to right: a code block, an escaped character, inline code (an escaped ` opens none).
  const plain = text.replace(/```(?:[a-z]*\n)?([\s\S]*?)```|\\([^\w\s])|`([^`\n]+)`/g, (_, block, escaped, code) => {
    if (block !== undefined) return keep(`<pre><code>${escapeHtml(block)}</code></pre>`);
    if (escaped !== undefined) return keep(escapeHtml(escaped));
    return keep(`<code>${escapeHtml(code)}</code>`);
  });
  const html = escapeHtml(plain)
    .replace(/\[([^\]\n]+)\]\((https?:\/\/[^\s)]+)\)/g, (_, label, url) => link(label, url.replace(/&amp;/g, "&")))
    .replace(/https?:\/\/[^\s<]+[^\s<.,:;)]/g, (url) => link("", url.replace(/&amp;/g, "&")))
    .replace(/\*\*(.+?)\*\*/g, "<b>$1</b>")
    .replace(/__(.+?)__/g, "<u>$1</u>")
    .replace(/(^|[^*])\*([^*\n]+)\*/g, "$1<i>$2</i>")
    .replace(/(^|[^\w])_([^_\n]+)_(?!\w)/g, "$1<i>$2</i>")
    .replace(/&lt;@!?(\d+)&gt;/g, (_, id) => `<span class="mention">@${escapeHtml(nameOf(id))}</span>`)
    .replace(/&lt;t:(\d+)(:[a-zA-Z])?&gt;/g, (_, t) => new Date(Number(t) * 1000).toLocaleTimeString())
    .replace(/(^|\n)-# ([^\n]*)/g, '$1<small class="subtext">$2</small>');
  return html.replace(/\uE000(\d+)\uE001/g, (_, i) => kept[Number(i)]);
}

// A message only this page shows (a refusal by Discord's client, an error), in time order.
function notice(text) {
  const now = BigInt(Date.now());
  const m = {
    id: `local${notices++}`, order: String(((now - DISCORD_EPOCH) << 22n) + BigInt(notices % 4096)),
    local: true, ephemeral: true, channel_id: viewChannelId(),
    author: { username: "Playground", bot: true, id: "0" }, content: text, attachments: [],
    components: [], reactions: [], timestamp: new Date().toISOString(),
  };
  upsert(m);
}

async function act(call) {
  try {
    const result = await call();
    if (result && result.modal) openModal(result.modal, result.interaction_id);
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
    act(() => request("modal", { interaction_id: interactionId, values }));
  };
  dialog.showModal();
}

// --- the composer ---------------------------------------------------------------------------

const input = $("input");
const NESTED = [1, 2];  // subcommand, subcommand group
const PEOPLE_TYPES = [6, 9];  // user, mentionable
const ROLE_TYPES = [8, 9];    // role, mentionable
let choices = [];      // what the popup offers: {label, desc, apply()}
let active = -1;       // the highlighted choice (-1: none; Enter then sends)
let completing = 0;    // the latest autocomplete request

// "/admin quota target:ben daily_images:3", "/imagine a | b:0.5 seed:3": words after the
// command pick its group and subcommand; then the first option takes the text before any
// "name:" of another.
function parse(text) {
  const match = /^\/(\S*)(\s?)([\s\S]*)$/.exec(text);
  if (!match) return null;
  const command = state.commands.find((c) => c.type === 1 && c.name === match[1]);
  const result = {
    word: match[1], command, started: !!match[2] || !!command, path: [], schema: [],
    options: {}, spans: {}, focused: null, picking: null,
  };
  if (!command) return result;
  let schema = command.options;
  let rest = match[3];
  let base = 1 + match[1].length + match[2].length;
  while (schema.some((o) => NESTED.includes(o.type))) {
    const step = /^(\S*)(\s?)/.exec(rest);
    const nested = schema.filter((o) => NESTED.includes(o.type));
    const chosen = nested.find((o) => o.name === step[1]);
    if (!chosen) { result.picking = { word: step[1], offered: nested, at: base }; return result; }
    result.path.push(chosen);
    schema = chosen.options || [];
    rest = rest.slice(step[0].length);
    base += step[0].length;
  }
  result.schema = schema;
  const names = schema.map((o) => o.name);
  const found = [];
  if (names.length) {
    const pattern = new RegExp(`(^|\\s)(${names.map((n) => n.replace(/[^\w-]/g, "")).join("|")}):`, "g");
    let hit;
    while ((hit = pattern.exec(rest))) found.push({ name: hit[2], at: hit.index + hit[1].length, start: hit.index + hit[0].length });
  }
  const first = schema[0];
  // The first option is focused as soon as a space follows the command, as in Discord.
  if (first && (rest.trim() || /\s$/.test(text)) && (!found.length || found[0].at > 0)) found.unshift({ name: first.name, at: 0, start: 0 });
  found.forEach((f, i) => {
    const end = i + 1 < found.length ? found[i + 1].at : rest.length;
    result.options[f.name] = rest.slice(f.start, end).trim();
    result.spans[f.name] = [base + f.start, base + end];
  });
  result.focused = found.length ? found[found.length - 1].name : null;
  return result;
}

function pathText(parsed) {
  return ["/" + parsed.command.name, ...parsed.path.map((o) => o.name)].join(" ");
}

function hiddenReason(word) {
  const hidden = state.hidden.find((h) => h.type === 1 && h.name === word);
  if (!hidden) return null;
  const can = state.people.filter((p) => p.admin).map((p) => p.name);
  return `${hidden.reason}, which ${state.me.name} does not have` + (can.length ? ` (${can.join(", ")} has it: choose them under “acting as” to try it).` : ".");
}

function updateComposer() {
  const parsed = parse(input.value);
  const hint = $("hint");
  hint.replaceChildren();
  if (!parsed) { showChoices([]); return; }
  if (!parsed.command) {
    const matching = state.commands.filter((c) => c.type === 1 && c.name.startsWith(parsed.word));
    showChoices(matching.map((c) => ({
      label: `/${c.name}`, desc: c.description,
      apply: () => { input.value = `/${c.name} `; updateComposer(); },
    })), "commands");
    if (parsed.started) hint.append(el("span", { className: "error" }, hiddenReason(parsed.word) || `no command /${parsed.word}`));
    return;
  }
  if (parsed.picking) {
    const { word, offered, at } = parsed.picking;
    const matching = offered.filter((o) => o.name.startsWith(word));
    showChoices(matching.map((o) => ({
      label: `${pathText(parsed)} ${o.name}`, desc: o.description,
      apply: () => {
        const head = input.value.slice(0, at);
        input.value = (/\s$/.test(head) ? head : head + " ") + o.name + " ";
        input.focus();
        updateComposer();
      },
    })), "subcommands");
    if (!matching.length) hint.append(el("span", { className: "error" }, `${pathText(parsed)} has no subcommand ${word}`));
    return;
  }
  for (const o of parsed.schema) {
    const given = o.name in parsed.options;
    hint.append(el("span", {
      className: "opt" + (o.name === parsed.focused ? " focused" : given ? " given" : ""),
      title: o.description,
    }, `${o.name}${o.required ? "" : "?"}`));
  }
  const focused = parsed.schema.find((o) => o.name === parsed.focused);
  if (focused) hint.append(el("span", { className: "muted" }, ` — ${focused.name}: ${focused.description}`));
  else if (!parsed.schema.length) hint.append(el("span", { className: "muted" }, `${pathText(parsed)} — Enter sends it`));
  suggestValues(parsed, focused);
}

function replaceValue(parsed, name, value) {
  const [start, end] = parsed.spans[name];
  input.value = input.value.slice(0, start) + value + input.value.slice(end);
  input.focus();
  updateComposer();
}

function pickFrom(parsed, option, names) {
  return names.map((name) => ({ label: name, desc: "", apply: () => replaceValue(parsed, option.name, name) }));
}

async function suggestValues(parsed, option) {
  const ticket = ++completing;
  const unused = parsed.schema.filter((o) => !(o.name in parsed.options));
  const more = unused.map((o) => ({
    label: `${o.name}:`, desc: o.description,
    apply: () => { input.value = input.value.replace(/\s*$/, " ") + `${o.name}:`; input.focus(); updateComposer(); },
  }));
  if (!option) { showChoices(input.value.endsWith(" ") ? more : [], "options"); return; }
  const typed = (parsed.options[option.name] || "").toLowerCase();
  const named = [];
  if (PEOPLE_TYPES.includes(option.type)) named.push(...state.people.map((p) => p.name));
  if (ROLE_TYPES.includes(option.type)) named.push(...state.roles);
  if (named.length) {
    showChoices(pickFrom(parsed, option, named.filter((n) => n.toLowerCase().includes(typed))).concat(more), option.name);
    return;
  }
  if (option.choices) {
    const fitting = option.choices.filter((c) => c.name.toLowerCase().includes(typed));
    showChoices(fitting.map((c) => ({ label: c.name, desc: "", apply: () => replaceValue(parsed, option.name, String(c.value)) })).concat(more), option.name);
    return;
  }
  if (!option.autocomplete) { showChoices(typed ? more : [], "options"); return; }
  await new Promise((resolve) => setTimeout(resolve, 200));
  if (ticket !== completing) return;
  try {
    const { choices: offered } = await request("autocomplete", { ...target(parsed), focused: option.name, options: parsed.options });
    if (ticket !== completing) return;
    showChoices(offered.map((c) => ({ label: c.name, desc: "", apply: () => replaceValue(parsed, option.name, String(c.value)) })).concat(typed ? more : []), option.name);
  } catch (error) {
    if (ticket === completing) showChoices(typed ? more : [], "options");
  }
}

// The command, group and subcommand of a request, as the server takes them.
function target(parsed) {
  const path = parsed.path.map((o) => o.name);
  const group = parsed.path.length === 2 ? path[0] : null;
  return { name: parsed.command.name, group, subcommand: path[path.length - 1] || null };
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

let sending = 0;
function setSending(change, what) {
  sending += change;
  const line = $("sending");
  line.hidden = !sending;
  line.textContent = sending ? `Sending ${what}…` : "";
}

async function send() {
  const parsed = parse(input.value);
  if (!parsed) { notice("The playground has no plain chat: type / and a command, e.g. /entrance heaven | hell"); return; }
  if (!parsed.command) { notice(hiddenReason(parsed.word) || `There is no command /${parsed.word}.`); return; }
  if (parsed.picking) {
    notice(`${pathText(parsed)} needs a subcommand: ${parsed.picking.offered.map((o) => o.name).join(", ")}.`);
    return;
  }
  const missing = parsed.schema.filter((o) => o.required && !parsed.options[o.name]);
  if (missing.length) { notice(`${pathText(parsed)} needs ${missing.map((o) => o.name).join(", ")}.`); return; }
  const options = Object.fromEntries(Object.entries(parsed.options).filter(([, v]) => v !== ""));
  const what = pathText(parsed);
  input.value = "";
  updateComposer();
  completing++;
  setSending(1, what);
  try {
    await act(() => request("command", { ...target(parsed), options }));
  } finally {
    setSending(-1, what);
  }
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
    const choosing = parsed && (!parsed.command || parsed.picking);
    if (open && (active >= 0 || choosing)) choices[Math.max(active, 0)].apply();
    else send();
  }
});

$("user-select").addEventListener("change", (e) => {
  sessionStorage.setItem("doorways-user", e.target.value);
  const url = new URL(location.href);
  url.searchParams.set("user", e.target.value);
  history.replaceState(null, "", url);
  reconnect();
});

connect();
