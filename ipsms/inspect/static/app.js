// The ipsms web inspector: every recorded webhook attempt, live, grouped by refid.
//
// Everything a request carries (the text, headers, bodies, even the refid) comes from whoever
// texted the number or posted to the listener. It only ever reaches the page as text nodes
// (textContent, createTextNode, attribute values set through the DOM), never as markup, and
// invisible or control characters are shown as visible escapes, as `ipsms` does on a terminal.

const PAGE = 100;          // attempts per page of GET /api/messages
const MAX_ATTEMPTS = 1000; // attempts held (and drawn) at most: the oldest groups go first
const SEARCH_DELAY = 200;  // ms of quiet typing before a search is sent
const SHOW_CHARS = 100000; // characters of a body or text drawn before "Show all"
const HEX_BYTES = 65536;   // bytes of a binary body drawn as hex before "Show all"
const PRETTY_LIMIT = 262144; // bodies longer than this are shown as sent, not re-indented
const PREVIEW = 160;       // code points of a text in a list row

// ---------------------------------------------------------------------------------------
// Escaping for display: the same characters ipsms's `printable` escapes (ipsms/text.py).

const RANGES = [
  [0x00, 0x1f], [0x7f, 0x9f], [0xad, 0xad], [0x34f, 0x34f], [0x600, 0x605], [0x61c, 0x61c],
  [0x6dd, 0x6dd], [0x70f, 0x70f], [0x890, 0x891], [0x8e2, 0x8e2], [0x115f, 0x1160],
  [0x17b4, 0x17b5], [0x180b, 0x180f], [0x200b, 0x200f], [0x2028, 0x202e], [0x2060, 0x206f],
  [0x2800, 0x2800], [0x3164, 0x3164], [0xd800, 0xdfff], [0xfe00, 0xfe0f], [0xfeff, 0xfeff],
  [0xffa0, 0xffa0], [0xfff0, 0xfffb], [0x110bd, 0x110bd], [0x110cd, 0x110cd],
  [0x13430, 0x1343f], [0x16fe4, 0x16fe4], [0x1bca0, 0x1bca3], [0x1d173, 0x1d17a],
  [0xe0000, 0xe0fff],
];
// The parts an emoji ZWJ sequence joins: pictographs, skin tones and VS16.
const EMOJI = [
  [0xa9, 0xa9], [0xae, 0xae], [0x203c, 0x203c], [0x2049, 0x2049], [0x2122, 0x2122],
  [0x2139, 0x2139], [0x2194, 0x2199], [0x21a9, 0x21aa], [0x231a, 0x23ff], [0x24c2, 0x24c2],
  [0x25aa, 0x27bf], [0x2934, 0x2935], [0x2b05, 0x2b55], [0x3030, 0x3030], [0x303d, 0x303d],
  [0x3297, 0x3297], [0x3299, 0x3299], [0xfe0f, 0xfe0f], [0x1f000, 0x1faff],
];
// What a presentation selector (VS15, VS16) may follow: a character with an emoji form,
// keycap bases included.
const VS_BASE = [...EMOJI.filter(([a]) => a !== 0xfe0f), [0x23, 0x23], [0x2a, 0x2a],
  [0x30, 0x39]];
const ZWJ = 0x200d;
const NAMED = new Map([[0x0a, '\\n'], [0x0d, '\\r'], [0x09, '\\t'], [0x1b, '\\e']]);

function inRanges(ranges, cp) {
  for (const [a, b] of ranges) {
    if (cp >= a && cp <= b) return true;
  }
  return false;
}

const UNSAFE_BMP = new Uint8Array(0x10000);
for (const [a, b] of RANGES) {
  for (let c = a; c <= Math.min(b, 0xffff); c++) UNSAFE_BMP[c] = 1;
}
const unsafe = (cp) => (cp <= 0xffff ? UNSAFE_BMP[cp] === 1 : inRanges(RANGES, cp));
const hex = (n, width) => n.toString(16).padStart(width, '0');

function escapeOf(cp) {
  if (NAMED.has(cp)) return NAMED.get(cp);
  if (cp <= 0x9f) return '\\x' + hex(cp, 2);
  if (cp <= 0xffff) return '\\u' + hex(cp, 4);
  return '\\U' + hex(cp, 8);
}

// `text` as runs [kind, string]: kind '' is text shown as it is, 'ctl' a C0/C1 control,
// 'fmt' a bidi, format or invisible character, 'sur' a lone surrogate, each as its escape.
// `multiline`: false, a newline is only its escape; true, `\n` and a line break (a text as
// sent); 'plain', only a line break (bodies, and the lines of re-indented JSON).
export function escapeRuns(text, multiline = false) {
  const cps = [];   // code points (a lone surrogate as itself)
  const lone = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        cps.push(((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000);
        lone.push(false);
        i++;
        continue;
      }
    }
    cps.push(c);
    lone.push(c >= 0xd800 && c <= 0xdfff);
  }
  const n = cps.length;
  const escaped = new Uint8Array(n);
  for (let k = 0; k < n; k++) {
    const cp = cps[k];
    if (cp === 0x0a && multiline === 'plain') continue;
    if (lone[k] || (unsafe(cp) && cp !== ZWJ && cp !== 0xfe0e && cp !== 0xfe0f)) escaped[k] = 1;
  }
  // One presentation selector right after a character with an emoji form stays.
  for (let k = 0; k < n; k++) {
    const cp = cps[k];
    if (cp === 0xfe0e || cp === 0xfe0f) {
      const keep = k > 0 && !escaped[k - 1] && inRanges(VS_BASE, cps[k - 1]);
      if (!keep) escaped[k] = 1;
    }
  }
  // A zero-width joiner between two emoji parts stays (families, professions, flags).
  for (let k = 0; k < n; k++) {
    if (cps[k] === ZWJ) {
      const keep = k > 0 && k + 1 < n && !escaped[k - 1] && !escaped[k + 1]
        && inRanges(EMOJI, cps[k - 1]) && inRanges(EMOJI, cps[k + 1]);
      if (!keep) escaped[k] = 1;
    }
  }
  const runs = [];
  const push = (kind, s) => {
    const last = runs[runs.length - 1];
    if (last && last[0] === kind) last[1] += s;
    else runs.push([kind, s]);
  };
  for (let k = 0; k < n; k++) {
    const cp = cps[k];
    if (!escaped[k]) {
      push('', String.fromCodePoint(cp));
    } else if (lone[k]) {
      push('sur', '\\u' + hex(cp, 4));
    } else {
      push(cp <= 0x9f ? 'ctl' : 'fmt', escapeOf(cp));
      if (multiline && cp === 0x0a) push('', '\n');
    }
  }
  return runs;
}

// A fragment showing `text` with its escapes; at most `max` UTF-16 units of it (a cut shows
// as an ellipsis), never splitting a surrogate pair.
function show(text, { multiline = false, max = Infinity } = {}) {
  const frag = document.createDocumentFragment();
  if (text === null || text === undefined) return frag;
  let s = String(text);
  let cut = false;
  if (s.length > max) {
    let end = max;
    const c = s.charCodeAt(end - 1);
    if (c >= 0xd800 && c <= 0xdbff) end--;
    s = s.slice(0, end);
    cut = true;
  }
  for (const [kind, part] of escapeRuns(s, multiline)) {
    if (kind === '') {
      frag.append(document.createTextNode(part));
    } else {
      const span = document.createElement('span');
      span.className = `esc esc-${kind}`;
      span.textContent = part;
      frag.append(span);
    }
  }
  if (cut) frag.append(el('span', { class: 'cut', title: 'cut here' }, '…'));
  return frag;
}

// The first `count` code points of `text` (a list row's preview).
function preview(text, count = PREVIEW) {
  if (typeof text !== 'string') return '';
  const head = Array.from(text.slice(0, count * 2 + 2));
  return head.length > count ? head.slice(0, count).join('') + '…' : head.join('');
}

// ---------------------------------------------------------------------------------------
// Bodies.

// A JSON text re-indented token by token: strings, numbers and keys stay exactly as sent
// (a key sent twice stays twice, a long number keeps its digits). `text` must be valid JSON.
export function prettyJson(text) {
  const out = [];
  let depth = 0;
  const pad = () => '\n' + '  '.repeat(Math.min(depth, 24));
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < n && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      out.push(text.slice(i, j + 1));
      i = j + 1;
    } else if (c === '{' || c === '[') {
      let j = i + 1;
      while (j < n && ' \t\n\r'.includes(text[j])) j++;
      if (text[j] === (c === '{' ? '}' : ']')) {
        out.push(c + text[j]);
        i = j + 1;
      } else {
        depth++;
        out.push(c + pad());
        i++;
      }
    } else if (c === '}' || c === ']') {
      depth--;
      out.push(pad() + c);
      i++;
    } else if (c === ',') {
      out.push(',' + pad());
      i++;
    } else if (c === ':') {
      out.push(': ');
      i++;
    } else if (' \t\n\r'.includes(c)) {
      i++;
    } else {
      let j = i;
      while (j < n && !' \t\n\r,:]}'.includes(text[j])) j++;
      out.push(text.slice(i, j));
      i = j;
    }
  }
  return out.join('');
}

function bytesOf(base64) {
  const raw = atob(base64);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

export function hexDump(bytes, max = Infinity) {
  const lines = [];
  const end = Math.min(bytes.length, max);
  for (let off = 0; off < end; off += 16) {
    const row = bytes.subarray(off, Math.min(off + 16, end));
    let hx = '';
    let ascii = '';
    for (let k = 0; k < 16; k++) {
      if (k < row.length) {
        hx += hex(row[k], 2) + (k === 7 ? '  ' : ' ');
        ascii += row[k] >= 0x20 && row[k] < 0x7f ? String.fromCharCode(row[k]) : '.';
      } else {
        hx += k === 7 ? '    ' : '   ';
      }
    }
    lines.push(`${hex(off, 8)}  ${hx} |${ascii}|`);
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------
// DOM helpers. String children become text nodes; data goes through show().

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return node;
}

// User data in its own bidi isolate, escaped.
const data = (text, opts) => el('bdi', { class: 'data' }, show(text, opts));

const $ = (id) => document.getElementById(id);

const pad2 = (n) => String(n).padStart(2, '0');

function localTime(iso, withDate) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const time = `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
  if (withDate === 'full') {
    return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${time}`
      + `.${String(d.getMilliseconds()).padStart(3, '0')}`;
  }
  const now = new Date();
  if (d.toDateString() === now.toDateString()) return time;
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${time}`;
}

const statusClass = (status) => `status s${String(status)[0]}`;

function verdictBadge(verdict) {
  if (!verdict) return null;
  return el('span', { class: `badge v-${verdict}` }, verdict);
}

function plural(n, one, many) {
  return `${n.toLocaleString('en')} ${n === 1 ? one : many}`;
}

// ---------------------------------------------------------------------------------------
// API.

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, signal) {
  let res;
  try {
    res = await fetch(path, {
      signal, cache: 'no-store', credentials: 'same-origin',
      headers: { Accept: 'application/json' },
    });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'the inspector cannot be reached (has ipsms stopped?)');
  }
  if (res.status === 401) {
    throw new ApiError(401, 'not signed in: open the inspector with the URL ipsms printed '
      + '(the one with ?token=)');
  }
  if (!res.ok) {
    let detail = '';
    try {
      const doc = await res.json();
      detail = doc.error_detail || doc.detail || doc.error || '';
    } catch {
      // not JSON: the status says enough
    }
    throw new ApiError(res.status, `${res.status} ${res.statusText}${detail ? ': ' + detail : ''}`);
  }
  return res.json();
}

function messagesUrl(params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== '') query.set(key, String(value));
  }
  return `/api/messages?${query}`;
}

// ---------------------------------------------------------------------------------------
// The model: groups of attempts, one per refid (a request without one is its own group),
// newest group first.

const state = {
  groups: new Map(),   // key -> group
  byId: new Map(),     // attempt id -> item
  order: [],           // groups, newest first (the DOM order)
  nextBefore: null,    // cursor of "Load older"; null when the oldest is shown
  q: '',
  trimmedTop: false,   // newer attempts were dropped to show older ones
  loading: false,      // a (re)load is under way: live events wait
  queued: [],          // live events that came meanwhile
  selected: null,      // {group, id}: id null when the group's row is selected
  maxSeen: 0,          // the newest id seen, for resuming the event stream
  newCount: 0,
  gapped: false,       // the stream left attempts out (a flood): the list is not whole
  listAbort: null,
  generation: 0,
};

let uid = 0;

const groupKey = (item) => (typeof item.refid === 'string' ? `r:${item.refid}` : `i:${item.id}`);

function newestOf(group) {
  let best = null;
  for (const item of group.items.values()) if (!best || item.id > best.id) best = item;
  return best;
}

// Attempts of a group, 1..n (by attempt number, then id).
function attemptsOf(group) {
  return [...group.items.values()].sort(
    (a, b) => (a.attempt ?? 0) - (b.attempt ?? 0) || a.id - b.id);
}

// The search box takes the filters of `messages list` as words: `status:4xx verdict:invalid
// flag:lone_surrogate from:5309 to:+13038675309 refid:3KX9 since:10m until:1h`; the other
// words are text to find in the message.
const FILTERS = ['status', 'verdict', 'flag', 'from', 'to', 'refid', 'since', 'until'];

function parseSearch(q) {
  const filters = {};
  const words = [];
  for (const word of q.split(/\s+/)) {
    const m = /^([a-z]+):(.+)$/.exec(word);
    if (m && FILTERS.includes(m[1])) filters[m[1]] = m[2];
    else if (word) words.push(word);
  }
  return { text: words.join(' '), filters };
}

// The list's query parameters for what the search box says.
function searchParams() {
  const { text, filters } = parseSearch(state.q);
  return { q: text, ...filters };
}

function matchesSearch(item) {
  if (!state.q) return true;
  const { text, filters } = parseSearch(state.q);
  if (text && !(typeof item.message === 'string'
      && item.message.toLowerCase().includes(text.toLowerCase()))) return false;
  if (filters.verdict && !filters.verdict.split(',').includes(item.verdict)) return false;
  if (filters.flag && !(item.flags || []).some((f) => f.code === filters.flag)) return false;
  if (filters.refid && !(typeof item.refid === 'string' && item.refid.startsWith(filters.refid))) {
    return false;
  }
  for (const side of ['from', 'to']) {
    const want = filters[side];
    const have = item[side];
    if (want && !(typeof have === 'string' && (have === want
        || have.replace(/\D/g, '').endsWith(want.replace(/\D/g, ''))))) return false;
  }
  if (filters.status) {
    const ok = filters.status.split(',').some((part) => {
      const m = /^([1-5])(\d\d|xx)$/i.exec(part);
      if (!m) return false;
      return m[2].toLowerCase() === 'xx' ? Math.floor(item.status / 100) === Number(m[1])
        : item.status === Number(part);
    });
    if (!ok) return false;
  }
  return true;
}

// Adds items to the model and the page. Returns the groups that changed.
function merge(items, { live = false } = {}) {
  const touched = new Set();
  for (const item of items) {
    if (!item || typeof item.id !== 'number') continue;
    state.maxSeen = Math.max(state.maxSeen, item.id);
    if (state.byId.has(item.id)) continue;
    const key = groupKey(item);
    let group = state.groups.get(key);
    if (!group) {
      group = {
        key, refid: typeof item.refid === 'string' ? item.refid : null, items: new Map(),
        open: false, complete: false, newest: 0, uid: ++uid, li: null,
      };
      state.groups.set(key, group);
    }
    group.items.set(item.id, item);
    state.byId.set(item.id, item);
    group.newest = Math.max(group.newest, item.id);
    if (live) group.fresh = true;
    touched.add(group);
  }
  for (const group of touched) place(group);
  for (const group of touched) drawGroup(group);
  if (touched.size) drawChrome();
  return touched;
}

// Puts a group at its place by its newest attempt (a live one goes to the top).
function place(group) {
  const at = state.order.indexOf(group);
  if (at >= 0) state.order.splice(at, 1);
  let i = 0;
  while (i < state.order.length && state.order[i].newest > group.newest) i++;
  state.order.splice(i, 0, group);
  if (!group.li) group.li = el('li', { class: 'group' });
  const ol = $('groups');
  const next = state.order[i + 1]?.li ?? null;
  if (group.li.parentNode !== ol || group.li.nextSibling !== next) {
    const focused = group.li.contains(document.activeElement) ? document.activeElement : null;
    ol.insertBefore(group.li, next);
    if (focused) focused.focus({ preventScroll: true });
  }
}

function dropGroup(group) {
  for (const id of group.items.keys()) state.byId.delete(id);
  state.groups.delete(group.key);
  const at = state.order.indexOf(group);
  if (at >= 0) state.order.splice(at, 1);
  group.li?.remove();
}

// At most MAX_ATTEMPTS held: drop the oldest groups (after live ones or a first page), or the
// newest ones when the user is paging back through older ones.
function trim(from = 'bottom') {
  if (state.byId.size <= MAX_ATTEMPTS) return;
  const keep = state.selected?.group;
  if (from === 'bottom') {
    let droppedNewest = 0;
    for (let i = state.order.length - 1; i >= 0 && state.byId.size > MAX_ATTEMPTS; i--) {
      const group = state.order[i];
      if (group === keep) continue;
      droppedNewest = Math.max(droppedNewest, group.newest);
      dropGroup(group);
    }
    if (droppedNewest) state.nextBefore = droppedNewest + 1;
  } else {
    for (let i = 0; i < state.order.length && state.byId.size > MAX_ATTEMPTS;) {
      const group = state.order[i];
      if (group === keep) {
        i++;
        continue;
      }
      dropGroup(group);
      state.trimmedTop = true;
    }
  }
  drawChrome();
}

function resetModel() {
  for (const group of state.order) group.li?.remove();
  state.groups.clear();
  state.byId.clear();
  state.order = [];
  state.nextBefore = null;
  state.trimmedTop = false;
  state.gapped = false;
  state.selected = null;
  $('groups').replaceChildren();
}

// ---------------------------------------------------------------------------------------
// Drawing the list.

function flagChips(flags) {
  const codes = [...new Set(flags.map((f) => f.code))];
  if (!codes.length) return null;
  return el('span', { class: 'chips' }, ...codes.map((code) => el('span', { class: 'chip' },
    show(code, { max: 40 }))));
}

function groupFlags(group) {
  const flags = [];
  for (const item of group.items.values()) flags.push(...(item.flags || []));
  return flags;
}

function rowSummary(item) {
  const parts = [];
  if (item.from !== null || item.to !== null) {
    parts.push(el('span', { class: 'who' }, data(preview(item.from ?? '?', 24)),
      el('span', { class: 'arrow', 'aria-label': 'to' }, ' → '), data(preview(item.to ?? '?', 24))));
  }
  if (typeof item.message === 'string') {
    parts.push(el('span', { class: 'text' }, data(preview(item.message))));
  } else if (item.error) {
    parts.push(el('span', { class: 'text problem' }, data(preview(item.error_detail ?? '', 120))));
  }
  return parts;
}

function drawGroup(group) {
  const li = group.li;
  const latest = redactItem(newestOf(group));
  const isRefid = group.refid !== null;
  li.className = 'group' + (isRefid ? '' : ' junk') + (group.open ? ' open' : '');
  if (isRefid) {
    li.dataset.groupRefid = group.refid;
    delete li.dataset.id;
  } else {
    li.dataset.id = String(latest.id);
  }
  const count = Math.max(group.items.size, ...[...group.items.values()].map((i) => i.attempt ?? 0));
  const attemptsId = `attempts-${group.uid}`;
  const row = el('button', {
    type: 'button', class: 'row',
    'aria-expanded': isRefid ? String(group.open) : null,
    'aria-controls': isRefid && group.open ? attemptsId : null,
    'aria-current': state.selected?.group === group && state.selected.id === null ? 'true' : null,
    onclick: () => {
      select(group, null);
      if (isRefid) toggle(group);
    },
  },
  el('span', { class: 'when', title: latest.received_at }, localTime(latest.received_at)),
  el('span', { class: statusClass(latest.status), title: 'status ipsms answered' },
    String(latest.status)),
  isRefid ? verdictBadge(latest.verdict) ?? el('span', { class: 'badge v-none' }, '—')
    : el('span', { class: 'badge v-error' }, show(latest.error ?? `${latest.method}`, { max: 40 })),
  isRefid
    ? el('span', { class: 'refid', title: 'refid' }, data(preview(group.refid, 12)))
    : el('span', { class: 'refid path' }, data(`${latest.method} ${preview(latest.path, 40)}`)),
  el('span', { class: 'count', title: 'attempts' },
    isRefid ? `×${count}` : ''),
  el('span', { class: 'summary-line' }, ...rowSummary(latest)),
  flagChips(groupFlags(group)));
  const children = [row];
  if (isRefid && group.open) {
    const ol = el('ol', { class: 'attempts', id: attemptsId, 'aria-label': `attempts of refid ${preview(group.refid, 40)}` });
    for (const item of attemptsOf(group)) ol.append(drawAttempt(group, item));
    if (!group.complete) ol.append(el('li', { class: 'loading' }, 'loading every attempt…'));
    children.push(ol);
  }
  const focusedClass = document.activeElement?.closest?.('.group') === li
    ? focusKey(document.activeElement) : null;
  li.replaceChildren(...children);
  if (focusedClass) li.querySelector(focusedClass)?.focus({ preventScroll: true });
  if (group.fresh) {
    group.fresh = false;
    row.classList.add('fresh');
  }
}

function focusKey(node) {
  if (node.classList.contains('row')) return 'button.row';
  const att = node.closest('[data-id]');
  return att ? `li[data-id="${att.dataset.id}"] button.attempt` : null;
}

function drawAttempt(group, original) {
  const item = redactItem(original);
  const selected = state.selected?.id === item.id;
  const li = el('li', { class: 'attempt-item' + (selected ? ' selected' : '') });
  li.dataset.refid = group.refid;
  li.dataset.attempt = String(item.attempt ?? '');
  li.dataset.id = String(item.id);
  const button = el('button', {
    type: 'button', class: 'attempt', 'aria-current': selected ? 'true' : null,
    onclick: () => select(group, item.id),
  },
  el('span', { class: 'num' }, `#${item.attempt ?? '?'}`),
  el('span', { class: 'when', title: item.received_at }, localTime(item.received_at)),
  el('span', { class: statusClass(item.status) }, String(item.status)),
  verdictBadge(item.verdict));
  const facts = el('div', { class: 'facts' });
  if (item.verdict_detail) {
    facts.append(el('div', { class: 'fact' }, el('span', { class: 'k' }, 'signature'),
      data(item.verdict_detail, { max: 400 })));
  }
  if (item.error) {
    facts.append(el('div', { class: 'fact problem' }, el('span', { class: 'k' }, show(item.error, { max: 60 })),
      data(item.error_detail ?? '', { max: 400 })));
  }
  for (const flag of item.flags || []) {
    facts.append(el('div', { class: 'fact flag' }, el('span', { class: 'chip' }, show(flag.code, { max: 40 })),
      data(flag.detail, { max: 400 })));
  }
  facts.append(el('div', { class: 'fact' }, el('span', { class: 'k' }, 'remote'),
    data(item.remote ?? 'unknown address')));
  if (item.forward) facts.append(forwardFact(item.forward));
  li.append(button, facts);
  return li;
}

function forwardFact(fwd) {
  return el('div', { class: 'fact forward' }, el('span', { class: 'k' }, 'app'),
    el('span', { class: statusClass(fwd.status) }, String(fwd.status)),
    el('span', { class: 'ms' }, `${Number(fwd.latency_ms).toFixed(1)} ms`),
    fwd.error ? el('span', { class: 'problem' }, show(fwd.error, { max: 40 })) : null,
    el('span', { class: 'preview' }, data(preview(fwd.body_preview ?? '', 80))));
}

function drawChrome() {
  const attempts = state.byId.size;
  const groups = state.order.length;
  $('summary').textContent = attempts
    ? `${plural(groups, 'row', 'rows')}, ${plural(attempts, 'attempt', 'attempts')}`
      + (state.q ? ' matching the search' : '')
    : '';
  const empty = $('empty');
  empty.hidden = attempts > 0 || state.loading;
  empty.textContent = state.q ? 'No message holds this text.'
    : 'No request yet. Post a webhook to the listener and it shows here at once.';
  $('load-older').hidden = state.nextBefore === null;
  $('trimmed').hidden = !state.trimmedTop;
}

// ---------------------------------------------------------------------------------------
// Opening a group: every attempt of its refid.

async function toggle(group, open = !group.open) {
  group.open = open;
  drawGroup(group);
  if (open && !group.complete) await complete(group);
}

// Whether a text can go into a URL (a lone surrogate cannot).
function wellFormed(text) {
  try {
    encodeURIComponent(text);
    return true;
  } catch {
    return false;
  }
}

// Every attempt of a refid, whole (bodies included), or null when no URL can ask for it.
async function refidAttempts(refid) {
  if (!wellFormed(refid)) return null;
  if (refid === '' || refid === '.' || refid === '..') {
    // No URL path carries these as a segment: the list's refid prefix, then exactly.
    const doc = await api(messagesUrl({ refid, limit: 500 }));
    return (doc.items || []).filter((item) => item.refid === refid);
  }
  try {
    return (await api(`/api/refids/${encodeURIComponent(refid)}`)).attempts || [];
  } catch (err) {
    if (err.status === 404) return [];
    throw err;
  }
}

// Whole attempts into the detail cache; the list keeps them without their bodies.
function listForm(attempts) {
  return attempts.map((a) => {
    if (typeof a.body === 'string' || typeof a.body_base64 === 'string') cacheDetail(a);
    return { ...a, body: null, body_base64: null };
  });
}

async function complete(group) {
  if (group.refid === null || group.loadingAll) return;
  group.loadingAll = true;
  const generation = state.generation;
  try {
    const attempts = await refidAttempts(group.refid);
    if (generation !== state.generation || state.groups.get(group.key) !== group) return;
    group.complete = true;
    merge(listForm(attempts || []));
    drawGroup(group);
    trim('bottom');
  } catch (err) {
    showListError(err);
  } finally {
    group.loadingAll = false;
  }
}

// ---------------------------------------------------------------------------------------
// Selection, keyboard, permalinks.

function select(group, id, { focus = false, fromHash = false } = {}) {
  const before = state.selected;
  state.selected = { group, id };
  state.newCount = 0;
  drawNewCount();
  if (before?.group && before.group !== group && state.groups.get(before.group.key)) {
    drawGroup(before.group);
  }
  drawGroup(group);
  const item = id === null ? newestOf(group) : state.byId.get(id);
  if (!fromHash) writeHash(group, id === null ? null : item);
  const button = id === null ? group.li.querySelector('button.row')
    : group.li.querySelector(`li[data-id="${id}"] button.attempt`);
  if (button) {
    if (focus) button.focus();
    button.scrollIntoView({ block: 'nearest' });
  }
  showDetail(item, group);
}

function permalink(group, item) {
  if (group.refid === null) return `#/id/${newestOf(group).id}`;
  if (!wellFormed(group.refid)) return `#/id/${(item ?? newestOf(group)).id}`;
  if (item) return `#/refid/${encodeURIComponent(group.refid)}/attempt/${item.attempt}`;
  return `#/refid/${encodeURIComponent(group.refid)}`;
}

function writeHash(group, item) {
  const hash = permalink(group, item);
  if (location.hash !== hash) history.replaceState(null, '', hash);
}

function readHash() {
  const m = /^#\/refid\/([^/]*)(?:\/attempt\/(\d+))?$/.exec(location.hash);
  if (m) {
    let refid;
    try {
      refid = decodeURIComponent(m[1]);
    } catch {
      return null;
    }
    return { refid, attempt: m[2] ? Number(m[2]) : null };
  }
  const id = /^#\/id\/(\d+)$/.exec(location.hash);
  return id ? { id: Number(id[1]) } : null;
}

async function followHash() {
  const want = readHash();
  if (!want) return;
  try {
    if (want.id !== undefined) {
      let item = state.byId.get(want.id);
      if (!item) {
        item = await api(`/api/messages/${want.id}`);
        cacheDetail(item);
        merge([{ ...item, body: null, body_base64: null }]);
      }
      const group = state.groups.get(groupKey(item));
      if (group) select(group, group.refid === null ? null : item.id, { focus: true, fromHash: true });
      return;
    }
    let group = state.groups.get(`r:${want.refid}`);
    if (!group || !group.complete) {
      merge(listForm(await refidAttempts(want.refid) || []));
      group = state.groups.get(`r:${want.refid}`);
      if (!group) throw new ApiError(404, 'no attempt of this refid is in the store');
      group.complete = true;
    }
    group.open = true;
    drawGroup(group);
    const item = want.attempt === null ? null
      : attemptsOf(group).find((a) => a.attempt === want.attempt);
    if (want.attempt !== null && !item) {
      throw new ApiError(404, `this refid has no attempt ${want.attempt}`);
    }
    select(group, item ? item.id : null, { focus: true, fromHash: true });
  } catch (err) {
    if (err.name !== 'AbortError') showDetailError(`The link's request: ${err.message}`);
  }
}

function selectable() {
  return [...$('groups').querySelectorAll('button.row, li.group.open button.attempt')];
}

function move(step) {
  const buttons = selectable();
  if (!buttons.length) return;
  const current = currentButton();
  let at = current ? buttons.indexOf(current) : -1;
  at = at < 0 ? (step > 0 ? 0 : buttons.length - 1)
    : Math.max(0, Math.min(buttons.length - 1, at + step));
  activate(buttons[at]);
}

function currentButton() {
  const sel = state.selected;
  if (!sel || !sel.group.li?.isConnected) return null;
  return sel.id === null ? sel.group.li.querySelector('button.row')
    : sel.group.li.querySelector(`li[data-id="${sel.id}"] button.attempt`);
}

function activate(button) {
  const li = button.closest('li.group');
  const group = state.order.find((g) => g.li === li);
  if (!group) return;
  if (button.classList.contains('row')) select(group, null, { focus: true });
  else select(group, Number(button.closest('[data-id]').dataset.id), { focus: true });
}

function isTyping(target) {
  return target instanceof HTMLElement
    && (target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName));
}

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented) return;
  if (document.querySelector('dialog.edit[open]')) return; // its own keys (Esc closes it)
  const help = $('help');
  if (help.open) {
    if (event.key === '?') {
      event.preventDefault();
      help.close();
    }
    return;
  }
  const search = $('search');
  if (event.target === search) {
    if (event.key === 'Escape') {
      event.preventDefault();
      if (search.value) {
        search.value = '';
        runSearch('');
      } else {
        search.blur();
        currentButton()?.focus();
      }
    } else if (event.key === 'Enter') {
      event.preventDefault();
      runSearch(search.value);
    } else if (event.key === 'ArrowDown') {
      event.preventDefault();
      move(1);
    }
    return;
  }
  if (isTyping(event.target)) return;
  const inList = event.target instanceof Element && event.target.closest('#groups');
  switch (event.key) {
    case 'j':
      move(1);
      break;
    case 'k':
      move(-1);
      break;
    case 'ArrowDown':
      if (!inList) return;
      move(1);
      break;
    case 'ArrowUp':
      if (!inList) return;
      move(-1);
      break;
    case 'g':
      $('list').scrollTop = 0;
      if (state.order[0]) select(state.order[0], null, { focus: true });
      break;
    case 'Enter': {
      if (event.target instanceof HTMLButtonElement || event.target instanceof HTMLAnchorElement) {
        return; // the button's own click
      }
      const sel = state.selected;
      if (!sel) return;
      if (sel.id === null && sel.group.refid !== null) toggle(sel.group);
      currentButton()?.focus();
      break;
    }
    case '/':
      search.focus();
      search.select();
      break;
    case '?':
      help.showModal();
      break;
    case 'r':
    case 'e':
    case 'd':
    case 'y': {
      const button = $('detail-body').querySelector(`.actions button[data-key="${event.key}"]`);
      if (!button || button.disabled) return;
      button.click();
      break;
    }
    case 'Escape':
      if (state.q) {
        search.value = '';
        runSearch('');
        break;
      }
      return;
    default:
      return;
  }
  event.preventDefault();
}

// ---------------------------------------------------------------------------------------
// The detail pane.

const details = new Map(); // id -> the whole attempt (with its body), the latest few
const DETAILS_KEPT = 12;   // a body can be megabytes, twice (text and base64)

function cacheDetail(item) {
  details.delete(item.id);
  details.set(item.id, item);
  while (details.size > DETAILS_KEPT) details.delete(details.keys().next().value);
}

let detailAbort = null;
let detailShown = null;

async function showDetail(item, group) {
  if (!item) return;
  detailShown = item.id;
  const whole = details.get(item.id);
  drawDetail(whole ?? item, group, !whole);
  if (whole) return;
  detailAbort?.abort();
  const abort = new AbortController();
  detailAbort = abort;
  try {
    const full = await api(`/api/messages/${item.id}`, abort.signal);
    cacheDetail(full);
    if (detailShown === item.id) drawDetail(full, group, false);
  } catch (err) {
    if (err.name !== 'AbortError' && detailShown === item.id) {
      $('detail-body').querySelector('.body-section')?.replaceChildren(
        el('h3', {}, 'Body'), el('p', { class: 'error-text' }, err.message));
    }
  }
}

function showDetailError(message) {
  $('detail-title').textContent = 'Not found';
  $('detail-body').replaceChildren(el('p', { class: 'error-text', role: 'alert' }, message));
}

function dl(rows) {
  const list = el('dl', { class: 'kv' });
  for (const [key, value] of rows) {
    if (value === null || value === undefined) continue;
    list.append(el('dt', {}, key), el('dd', {}, value));
  }
  return list;
}

function section(title, kind, ...content) {
  return el('section', { class: `card ${kind}` }, el('h3', {}, title), ...content);
}

function drawDetail(original, group, bodyPending) {
  const item = redactItem(original);
  const isRefid = typeof item.refid === 'string';
  const title = $('detail-title');
  title.replaceChildren();
  if (isRefid) {
    const count = group ? Math.max(...attemptsOf(group).map((a) => a.attempt ?? 0)) : null;
    title.append(`Attempt ${item.attempt}${count ? ` of ${count}` : ''} · refid `,
      el('code', {}, data(item.refid, { max: 200 })));
  } else {
    title.append(`Request #${item.id} · not a message`);
  }
  const link = group ? permalink(group, isRefid ? item : null) : `#/id/${item.id}`;
  const parts = [el('p', { class: 'permalink' }, el('a', { href: link }, 'Permalink'),
    ' · ', el('span', { class: 'muted' }, `store id ${item.id}`)), actionBar(item)];

  if (item.from !== null || item.to !== null || typeof item.message === 'string') {
    const sms = item.sms;
    parts.push(section('Message', 'message',
      dl([['From', data(item.from ?? '—')], ['To', data(item.to ?? '—')]]),
      el('p', { class: 'sms', dir: 'auto' },
        typeof item.message === 'string' ? show(item.message, { multiline: true, max: SHOW_CHARS })
          : el('span', { class: 'muted' }, 'no text')),
      sms && typeof sms.chars === 'number' ? el('p', { class: 'sms-meta' },
        `${plural(sms.chars, 'character', 'characters')} · ${plural(sms.segments, 'segment', 'segments')} · ${sms.encoding}`)
        : null));
  }

  const answer = [[`Status`, el('span', { class: statusClass(item.status) }, String(item.status))]];
  if (item.verdict) {
    answer.push(['Signature', el('span', {}, verdictBadge(item.verdict), ' ',
      data(item.verdict_detail ?? '', { max: 2000 }))]);
  }
  if (item.error) {
    answer.push(['Error', el('span', { class: 'problem' }, el('code', {}, show(item.error)), ' ',
      data(item.error_detail ?? '', { max: 4000 }))]);
  }
  const flags = item.flags || [];
  parts.push(section('ipsms answered', 'answer', dl(answer),
    flags.length ? el('ul', { class: 'flags' }, ...flags.map((f) => el('li', {},
      el('span', { class: 'chip' }, show(f.code, { max: 60 })), ' ',
      data(f.detail, { max: 4000 })))) : null));

  if (item.forward) {
    const fwd = item.forward;
    parts.push(section('Your app answered', 'forward', dl([
      ['URL', data(fwd.url)],
      ['Status', el('span', { class: statusClass(fwd.status) }, String(fwd.status))],
      ['Time', `${Number(fwd.latency_ms).toFixed(1)} ms`],
      ['Error', fwd.error ? el('span', { class: 'problem' }, show(fwd.error), ' ', data(fwd.detail ?? '')) : null],
    ]), el('pre', { class: 'body' }, show(fwd.body_preview ?? '', { multiline: 'plain' }))));
  }

  parts.push(section('Request', 'request', dl([
    ['Received', el('time', { datetime: item.received_at, title: item.received_at },
      localTime(item.received_at, 'full'))],
    ['Request', el('code', {}, data(`${item.method} ${item.path}`, { max: 4000 }))],
    ['Remote', data(item.remote ?? 'unknown')],
    ['Content-Type', item.content_type === null ? null : data(item.content_type)],
    ['Size', plural(item.size, 'byte', 'bytes') + (item.body_truncated
      ? ` (only the start was kept; SHA-256 of the whole: ${item.body_sha256 ?? '?'})` : '')],
  ])));

  const headers = item.headers || [];
  parts.push(section(`Headers (${headers.length})`, 'headers', headers.length
    ? el('table', { class: 'headers' }, el('tbody', {}, ...headers.map(([name, value]) =>
      el('tr', {}, el('th', { scope: 'row' }, data(name, { max: 400 })),
        el('td', {}, data(value, { max: 8000 }))))))
    : el('p', { class: 'muted' }, 'none')));

  const body = el('section', { class: 'card body-section' });
  body.append(el('h3', {}, 'Body'), ...bodyView(item, bodyPending));
  parts.push(body);
  parts.splice(2, 0, ...paneExtras(item.id));
  $('detail-body').replaceChildren(...parts);
}

// A long text or dump drawn in part, with a button that draws it all.
function partial(total, limit, draw, unit) {
  const pre = el('pre', { class: 'body' });
  pre.append(draw(limit));
  if (total <= limit) return [pre];
  const more = el('button', {
    type: 'button', class: 'show-all',
    onclick: () => {
      pre.replaceChildren(draw(Infinity));
      more.remove();
    },
  }, `Show all ${plural(total, unit, unit + 's')}`);
  return [pre, more];
}

function bodyView(item, pending) {
  if (item.size === 0) return [el('p', { class: 'muted' }, 'empty')];
  if (typeof item.body === 'string') {
    const text = item.body;
    const type = (item.content_type || '').toLowerCase();
    const out = [];
    if (type.includes('x-www-form-urlencoded')) {
      const fields = [...new URLSearchParams(text)];
      out.push(el('table', { class: 'fields' },
        el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'field'), el('th', { scope: 'col' }, 'value'))),
        el('tbody', {}, ...fields.slice(0, 2000).map(([k, v]) => el('tr', {},
          el('th', { scope: 'row' }, data(k, { max: 400 })),
          el('td', {}, data(v, { multiline: true, max: 8000 })))))));
      out.push(el('details', { class: 'exact' }, el('summary', {}, 'Exact body'),
        ...partial(text.length, SHOW_CHARS, (max) => show(text, { multiline: 'plain', max }), 'character')));
      return out;
    }
    let pretty = null;
    if (text.length <= PRETTY_LIMIT && /^\s*[[{]/.test(text)) {
      try {
        JSON.parse(text);
        pretty = prettyJson(text);
      } catch {
        pretty = null;
      }
    }
    if (pretty !== null) {
      out.push(el('p', { class: 'muted' }, 'JSON, re-indented (keys, numbers and escapes as sent)'),
        ...partial(pretty.length, SHOW_CHARS, (max) => show(pretty, { multiline: 'plain', max }), 'character'));
      out.push(el('details', { class: 'exact' }, el('summary', {}, 'Exact body'),
        ...partial(text.length, SHOW_CHARS, (max) => show(text, { multiline: 'plain', max }), 'character')));
      return out;
    }
    return partial(text.length, SHOW_CHARS, (max) => show(text, { multiline: 'plain', max }), 'character');
  }
  if (typeof item.body_base64 === 'string') {
    const bytes = bytesOf(item.body_base64);
    return [el('p', { class: 'muted' }, 'not UTF-8: the exact bytes, in hex'),
      ...partial(bytes.length, HEX_BYTES, (max) => document.createTextNode(hexDump(bytes, max)), 'byte')];
  }
  return [el('p', { class: 'muted' }, pending ? 'loading…' : 'not kept')];
}

// ---------------------------------------------------------------------------------------
// Loading: the first page, older pages, searches.

function showListError(err) {
  if (err?.name === 'AbortError') return;
  $('list-error').textContent = err ? err.message : '';
}

async function reload() {
  state.listAbort?.abort();
  const abort = new AbortController();
  state.listAbort = abort;
  const generation = ++state.generation;
  state.loading = true;
  $('list').setAttribute('aria-busy', 'true');
  try {
    const doc = await api(messagesUrl({ limit: PAGE, ...searchParams() }), abort.signal);
    if (generation !== state.generation) return;
    const keep = state.selected;
    resetModel();
    merge(doc.items || []);
    state.nextBefore = doc.next_before ?? null;
    state.loadedOnce = true;
    state.loading = false;
    flushQueue();
    if (keep && state.groups.get(keep.group.key)) {
      const group = state.groups.get(keep.group.key);
      state.selected = { group, id: keep.id !== null && state.byId.has(keep.id) ? keep.id : null };
      drawGroup(group);
    }
    showListError(null);
  } catch (err) {
    showListError(err);
  } finally {
    if (generation === state.generation) {
      state.loading = false;
      $('list').removeAttribute('aria-busy');
      flushQueue();
      drawChrome();
    }
  }
}

async function loadOlder() {
  if (state.nextBefore === null || state.loadingOlder) return;
  state.loadingOlder = true;
  const generation = state.generation;
  const button = $('load-older');
  button.disabled = true;
  button.textContent = 'Loading…';
  try {
    const doc = await api(messagesUrl({ limit: PAGE, ...searchParams(), before: state.nextBefore }));
    if (generation !== state.generation) return;
    merge(doc.items || []);
    state.nextBefore = doc.next_before ?? null;
    trim('top');
    showListError(null);
  } catch (err) {
    showListError(err);
  } finally {
    state.loadingOlder = false;
    button.disabled = false;
    button.textContent = 'Load older';
    drawChrome();
  }
}

let searchTimer = null;

function runSearch(value) {
  clearTimeout(searchTimer);
  searchTimer = null;
  const q = value.trim() === '' ? '' : value;
  if (q === state.q) return;
  state.q = q;
  drawExports();
  reload();
}

function onSearchInput() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => runSearch($('search').value), SEARCH_DELAY);
}

// ---------------------------------------------------------------------------------------
// Live: the event stream.

let source = null;
let flushTimer = null;

function connect() {
  source?.close();
  // The browser resends Last-Event-ID itself when it reconnects; `after` covers the first
  // connection, and a new EventSource after the stream was closed for good.
  // Before any page loaded (the store could not be read), only what comes from now on.
  source = new EventSource(state.loadedOnce ? `/api/events?after=${state.maxSeen}`
    : '/api/events');
  setConn('connecting');
  source.addEventListener('open', () => setConn('live'));
  source.addEventListener('request', (event) => {
    let item;
    try {
      item = JSON.parse(event.data);
    } catch {
      return;
    }
    state.queued.push(item);
    if (!flushTimer) flushTimer = setTimeout(flushQueue, 40);
  });
  // Faster than a page can show: the stream sends the newest attempts and says how many it
  // left out; the "new" button then loads the newest page from the store.
  source.addEventListener('gap', (event) => {
    let gap;
    try {
      gap = JSON.parse(event.data);
    } catch {
      return;
    }
    state.maxSeen = Math.max(state.maxSeen, Number(event.lastEventId) || 0);
    state.gapped = true;
    state.newCount += Number(gap.count) || 0;
    drawNewCount();
  });
  source.addEventListener('cleared', () => {
    state.queued = [];
    state.maxSeen = 0; // the store numbers its rows from 1 again
    details.clear();
    resetModel();
    drawChrome();
    $('detail-title').textContent = 'Nothing selected';
    $('detail-body').replaceChildren(el('p', { class: 'hint' }, 'The store was cleared.'));
    if (location.hash) history.replaceState(null, '', location.pathname + location.search);
    announce('The store was cleared.');
  });
  source.addEventListener('error', () => {
    if (source.readyState === EventSource.CLOSED) {
      setConn('offline');
      setTimeout(connect, 3000);
    } else {
      setConn('reconnecting');
    }
  });
}

function setConn(what) {
  const conn = $('conn');
  conn.dataset.state = what;
  conn.textContent = { connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…',
    offline: 'offline' }[what];
}

function flushQueue() {
  clearTimeout(flushTimer);
  flushTimer = null;
  if (state.loading) return; // after the (re)load
  const items = state.queued.filter((item) => !state.byId.has(item.id));
  state.queued = [];
  if (!items.length) return;
  for (const item of items) state.maxSeen = Math.max(state.maxSeen, item.id ?? 0);
  let shown = items.filter(matchesSearch);
  if (state.trimmedTop) shown = [];
  if (shown.length) {
    merge(shown, { live: true });
    trim('bottom');
    drawChrome();
  }
  const fresh = state.q ? shown.length : items.length;
  if (fresh) {
    const list = $('list');
    if (list.scrollTop > 8 || document.hidden || state.trimmedTop) {
      state.newCount += fresh;
      drawNewCount();
    }
    queueAnnouncement(fresh);
  }
}

function drawNewCount() {
  const button = $('new-count');
  button.hidden = state.newCount === 0;
  button.textContent = `↑ ${plural(state.newCount, 'new', 'new')}`;
  document.title = (state.newCount && document.hidden ? `(${state.newCount}) ` : '')
    + 'ipsms inspector';
}

let announced = 0;
let announceTimer = null;

function queueAnnouncement(n) {
  announced += n;
  if (announceTimer) return;
  announceTimer = setTimeout(() => {
    announce(`${plural(announced, 'new request', 'new requests')}`);
    announced = 0;
    announceTimer = null;
  }, 1500);
}

function announce(text) {
  $('announce').textContent = text;
}

function jumpToNewest() {
  state.newCount = 0;
  drawNewCount();
  if (state.trimmedTop || state.gapped) {
    state.trimmedTop = false;
    state.gapped = false;
    reload().then(() => state.order[0] && select(state.order[0], null, { focus: true }));
    return;
  }
  $('list').scrollTop = 0;
  if (state.order[0]) select(state.order[0], null, { focus: true });
}

// ---------------------------------------------------------------------------------------
// Redaction: numbers keep their country code and last two digits, a text becomes
// "[redacted N chars]", as `ipsms messages export --redact` writes them; copies of them in
// headers, bodies and details are replaced, and any other phone-like run is masked.

const red = { on: false };

export function maskNumber(number) {
  const n = String(number);
  if (n.length <= 4) return '*'.repeat(n.length);
  const head = n.startsWith('+') ? 2 : 1;
  return n.slice(0, head) + '*'.repeat(n.length - head - 2) + n.slice(-2);
}

export const redactedText = (text) => `[redacted ${Array.from(String(text)).length} chars]`;

// 7 or more digits, with at most four separators between two of them.
const PHONE_RUN = /[+(]?\p{Nd}(?:[\s\-.\/\\|_()[\]{}+~\u2010-\u2015\u2212]{0,4}\p{Nd}){6,}/gu;
const maskRuns = (text) => text.replace(PHONE_RUN,
  (run) => maskNumber(run.replace(/[^\p{Nd}+]/gu, '')));

const asciiJson = (s) => JSON.stringify(s).replace(/[\u007f-\uffff]/g,
  (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));

function formsOf(s) {
  const out = new Set([s, JSON.stringify(s).slice(1, -1), asciiJson(s).slice(1, -1)]);
  try {
    out.add(encodeURIComponent(s));
    out.add(new URLSearchParams([['', s]]).toString().slice(1));
  } catch {
    // a lone surrogate: no URL form
  }
  return [...out];
}

// [copy, its replacement] of the row's numbers and text, longest first.
function copiesOf(item) {
  const f = item.fields && typeof item.fields === 'object' ? item.fields : {};
  const pairs = [];
  const add = (value, mask) => {
    if (typeof value !== 'string' || Array.from(value).length < 3) return;
    for (const form of formsOf(value)) pairs.push([form, mask(value)]);
  };
  for (const t of [item.message, f.message]) add(t, redactedText);
  for (const n of [item.from, item.to, f.from, f.to]) add(n, maskNumber);
  return pairs.sort((a, b) => b[0].length - a[0].length);
}

function scrubber(item) {
  const copies = copiesOf(item);
  return (text) => {
    if (typeof text !== 'string') return text;
    let out = text;
    for (const [copy, mask] of copies) out = out.split(copy).join(mask);
    return maskRuns(out);
  };
}

function redactValue(name, value, scrub) {
  if (value === null || value === undefined) return value;
  if (name === 'from' || name === 'to') return maskNumber(String(value));
  if (name === 'message') return redactedText(String(value));
  if (typeof value === 'string') return scrub(value);
  if (typeof value === 'number') {
    const digits = String(value);
    return /^\d{7,}$/.test(digits) ? maskNumber(digits) : value;
  }
  if (Array.isArray(value)) return value.map((v) => redactValue('', v, scrub));
  if (typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [scrub(k),
      redactValue(k, v, scrub)]));
  }
  return value;
}

function redactBody(item, scrub) {
  if (typeof item.body !== 'string') {
    if (typeof item.body_base64 === 'string') {
      return `[redacted ${plural(bytesOf(item.body_base64).length, 'byte', 'bytes')}]`;
    }
    return null;
  }
  const text = item.body;
  if ((item.content_type || '').toLowerCase().includes('x-www-form-urlencoded')) {
    const fields = [...new URLSearchParams(text)].map(([k, v]) => [scrub(k),
      String(redactValue(k, v, scrub))]);
    return new URLSearchParams(fields).toString();
  }
  try {
    return JSON.stringify(redactValue('', JSON.parse(text), scrub));
  } catch {
    return scrub(text);
  }
}

// The attempt as the page shows it: itself, or redacted when redaction is on.
function redactItem(item) {
  if (!red.on || !item || item.redacted) return item;
  const scrub = scrubber(item);
  const out = {
    ...item, redacted: true,
    from: item.from === null || item.from === undefined ? item.from : maskNumber(item.from),
    to: item.to === null || item.to === undefined ? item.to : maskNumber(item.to),
    message: typeof item.message === 'string' ? redactedText(item.message) : item.message,
    fields: item.fields ? redactValue('', item.fields, scrub) : item.fields,
    path: scrub(item.path),
    headers: (item.headers || []).map(([k, v]) => [scrub(k), scrub(v)]),
    content_type: scrub(item.content_type),
    verdict_detail: scrub(item.verdict_detail),
    error_detail: scrub(item.error_detail),
    flags: (item.flags || []).map((f) => ({ ...f, detail: scrub(f.detail) })),
    body_sha256: null,
    body: redactBody(item, scrub),
    body_base64: null,
  };
  if (item.forward) {
    out.forward = { ...item.forward, url: scrub(item.forward.url),
      detail: scrub(item.forward.detail),
      body_preview: redactedText(item.forward.body_preview ?? '') };
  }
  return out;
}

function readRedact() {
  try {
    return localStorage.getItem('ipsms.redact') === '1';
  } catch {
    return false;
  }
}

function setRedact(on, { quiet = false } = {}) {
  red.on = on;
  try {
    localStorage.setItem('ipsms.redact', on ? '1' : '0');
  } catch {
    // storage off: the toggle lasts as long as the page
  }
  const button = $('redact');
  button.setAttribute('aria-pressed', String(on));
  document.documentElement.dataset.redact = on ? 'on' : 'off';
  drawExports();
  if (quiet) return;
  for (const group of state.order) drawGroup(group);
  const sel = state.selected;
  if (sel) showDetail(sel.id === null ? newestOf(sel.group) : state.byId.get(sel.id), sel.group);
  announce(on ? 'Redaction on: numbers and text are masked' : 'Redaction off');
}

function exportUrl(format) {
  const query = new URLSearchParams({ format });
  for (const [key, value] of Object.entries(searchParams())) if (value) query.set(key, value);
  if (red.on) query.set('redact', '1');
  return `/api/export?${query}`;
}

function drawExports() {
  $('export-ndjson').href = exportUrl('ndjson');
  $('export-har').href = exportUrl('har');
}

// ---------------------------------------------------------------------------------------
// Actions on the attempt in the detail pane: replay, edit and resend, diff, copies.

// The pane's status line and output (a copy box, a diff) live as long as its attempt does:
// the pane is drawn again when the whole attempt arrives, and they stay.
const pane = { id: null, status: null, out: null };

function paneExtras(id) {
  if (pane.id !== id) {
    pane.id = id;
    pane.status = el('p', { class: 'action-status', id: 'action-status', role: 'status',
      'aria-live': 'polite' });
    pane.out = el('div', { class: 'action-out', id: 'action-out' });
  }
  return [pane.status, pane.out];
}

function say(id, text, kind = '') {
  if (pane.id !== id) return;
  pane.status.className = `action-status ${kind}`;
  pane.status.textContent = text;
}

function actionBar(item) {
  const id = item.id;
  const isMessage = typeof item.refid === 'string';
  const button = (label, key, run, disabled = false, why = '') => el('button', {
    type: 'button', class: 'action', 'data-key': key, disabled,
    'aria-keyshortcuts': key, title: disabled ? why : (key ? `${label} (${key})` : label),
    onclick: run,
  }, label);
  const notMessage = 'not a message: the listener could not read it';
  return el('div', { class: 'actions', role: 'toolbar', 'aria-label': 'This attempt' },
    button('Replay', 'r', () => replay(id), !isMessage, notMessage),
    button('Edit and resend', 'e', () => openEdit(id), !item.fields, notMessage),
    button('Diff', 'd', () => openDiff(id), !isMessage, notMessage),
    button('Copy as curl', 'y', () => copyCurl(id)),
    button('Copy as simulate', null, () => copySimulate(id), !isMessage, notMessage),
    el('a', { class: 'action', href: `/api/messages/${id}/fixture`, download: '',
      title: 'The exact attempt, for ipsms_deliver.replay (never redacted)' },
    'Save as fixture'));
}

async function post(path, body) {
  let res;
  try {
    res = await fetch(path, {
      method: 'POST', cache: 'no-store', credentials: 'same-origin',
      headers: { Accept: 'application/json', 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'the inspector cannot be reached (has ipsms stopped?)');
  }
  let doc = null;
  try {
    doc = await res.json();
  } catch {
    doc = null;
  }
  if (!res.ok) throw new ApiError(res.status, doc?.detail || doc?.error || `HTTP ${res.status}`);
  return doc ?? {};
}

let target = null; // the URL the inspector sends to, once a replay or resend told it

function sentText(doc, what) {
  if (typeof doc.to === 'string') target = doc.to;
  return `${what} sent to ${doc.to}${doc.retries ? ' (up to 5 attempts)' : ''}`
    + ` · refid ${preview(doc.refid ?? '', 40)}. It shows in the list when it is recorded.`;
}

async function replay(id) {
  say(id, 'Replaying…');
  try {
    say(id, sentText(await post(`/api/messages/${id}/replay`, {}), 'Replay'), 'ok');
  } catch (err) {
    say(id, `Replay refused: ${err.message}`, 'error-text');
  }
}

async function whole(id) {
  const known = details.get(id);
  if (known) return known;
  const item = await api(`/api/messages/${id}`);
  cacheDetail(item);
  return item;
}

// -- edit and resend

function openEdit(id) {
  const item = details.get(id) ?? state.byId.get(id);
  if (!item) return;
  const fields = item.fields || {};
  const original = {
    from: typeof fields.from === 'string' ? fields.from : item.from ?? '',
    to: typeof fields.to === 'string' ? fields.to : item.to ?? '',
    message: typeof fields.message === 'string' ? fields.message : item.message ?? '',
  };
  const masked = red.on;
  const input = (name, label, multiline) => {
    const attrs = { id: `edit-${name}`, name, spellcheck: 'false', autocomplete: 'off',
      placeholder: masked ? `${redactItem(item)[name] ?? ''} (unchanged if left empty)` : null };
    const control = multiline ? el('textarea', { ...attrs, rows: 4 }) : el('input', { ...attrs, type: 'text' });
    if (!masked) control.value = original[name];
    return [el('label', { for: attrs.id }, label), control];
  };
  const check = (name, label, on) => {
    const box = el('input', { type: 'checkbox', id: `edit-${name}`, name });
    box.checked = on;
    return el('label', { class: 'check' }, box, ' ', label);
  };
  const error = el('p', { class: 'error-text', role: 'alert' });
  const dialog = el('dialog', { class: 'edit', id: 'edit', 'aria-labelledby': 'edit-title' });
  const form = el('form', { class: 'edit-form' },
    el('h2', { id: 'edit-title' }, 'Edit and resend'),
    el('p', { class: 'muted' }, `Attempt ${item.attempt ?? '?'} of refid `,
      el('code', {}, data(preview(item.refid ?? '', 40)))),
    masked ? el('p', { class: 'muted' }, 'Redaction is on: a field left empty is sent as it was.') : null,
    el('div', { class: 'edit-grid' }, ...input('from', 'From', false), ...input('to', 'To', false),
      ...input('message', 'Message', true)),
    el('div', { class: 'checks' },
      check('sign', "Sign with the listener's secret", true),
      check('new_refid', 'New refid', false),
      check('retries', "IntelePeer's 5 attempts", false)),
    error,
    el('p', { class: 'edit-end' },
      el('button', { type: 'button', class: 'action', onclick: () => dialog.close() }, 'Cancel'),
      el('button', { type: 'submit', class: 'action primary' }, 'Send')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const changed = {};
    for (const name of ['from', 'to', 'message']) {
      const value = form.elements[name].value;
      if (masked ? value !== '' : value !== original[name]) changed[name] = value;
    }
    const send = form.querySelector('button[type=submit]');
    send.disabled = true;
    error.textContent = '';
    try {
      const doc = await post('/api/resend', {
        id, fields: changed, sign: form.elements.sign.checked,
        new_refid: form.elements.new_refid.checked, retries: form.elements.retries.checked,
      });
      dialog.close();
      say(id, sentText(doc, Object.keys(changed).length ? 'Edited message' : 'Message'), 'ok');
    } catch (err) {
      error.textContent = `Not sent: ${err.message}`;
    } finally {
      send.disabled = false;
    }
  });
  dialog.append(form);
  dialog.addEventListener('close', () => {
    dialog.remove();
    $('detail-body').querySelector('.actions button[data-key="e"]')?.focus();
  });
  document.body.append(dialog);
  dialog.showModal();
  form.elements.message.focus();
}

// -- diff

// Lines of a body as the page shows it, for comparing.
function bodyLines(item) {
  if (typeof item.body === 'string') {
    const type = (item.content_type || '').toLowerCase();
    if (type.includes('x-www-form-urlencoded')) {
      return [...new URLSearchParams(item.body)].map(([k, v]) => `${k}=${v}`);
    }
    if (item.body.length <= PRETTY_LIMIT && /^\s*[[{]/.test(item.body)) {
      try {
        JSON.parse(item.body);
        return prettyJson(item.body).split('\n');
      } catch {
        // not JSON: as sent
      }
    }
    return item.body.split('\n');
  }
  if (typeof item.body_base64 === 'string') return hexDump(bytesOf(item.body_base64)).split('\n');
  return [];
}

// A line diff (longest common subsequence): [[left, right]] rows, null on a side that has
// no line there.
export function diffLines(a, b) {
  const n = a.length;
  const m = b.length;
  if (n * m > 4e6) {
    return Array.from({ length: Math.max(n, m) }, (_, i) => [a[i] ?? null, b[i] ?? null]);
  }
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const rows = [];
  let i = 0;
  let j = 0;
  let gone = [];
  let come = [];
  const flush = () => {
    for (let k = 0; k < Math.max(gone.length, come.length); k++) {
      rows.push([gone[k] ?? null, come[k] ?? null]);
    }
    gone = [];
    come = [];
  };
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      flush();
      rows.push([a[i], b[j]]);
      i++;
      j++;
    } else if (j >= m || (i < n && lcs[i + 1][j] >= lcs[i][j + 1])) {
      gone.push(a[i++]);
    } else {
      come.push(b[j++]);
    }
  }
  flush();
  return rows;
}

function headerMap(headers) {
  const map = new Map();
  for (const [k, v] of headers || []) {
    const key = k.toLowerCase();
    const had = map.get(key);
    map.set(key, had ? { name: had.name, value: `${had.value}\n${v}` } : { name: k, value: v });
  }
  return map;
}

function fieldRows(a, b) {
  const text = (v) => (v === null || v === undefined ? null
    : typeof v === 'string' ? v : JSON.stringify(v));
  const rows = [['attempt', a.attempt, b.attempt], ['received', a.received_at, b.received_at],
    ['status', a.status, b.status], ['verdict', a.verdict, b.verdict],
    ['verdict detail', a.verdict_detail, b.verdict_detail], ['error', a.error, b.error],
    ['request', `${a.method} ${a.path}`, `${b.method} ${b.path}`]];
  const fa = a.fields || { from: a.from, to: a.to, message: a.message };
  const fb = b.fields || { from: b.from, to: b.to, message: b.message };
  for (const key of new Set([...Object.keys(fa), ...Object.keys(fb)])) {
    rows.push([key, fa[key], fb[key]]);
  }
  return rows.map(([k, x, y]) => [k, text(x), text(y)]);
}

function diffTable(a, b) {
  const rows = [];
  let changes = 0;
  const cell = (value, side) => el('td', { class: side },
    value === null ? el('span', { class: 'muted' }, '—')
      : show(value, { multiline: 'plain', max: 8000 }));
  const line = (name, x, y) => {
    const same = x === y;
    if (!same) changes++;
    const kind = same ? 'same' : x === null ? 'added' : y === null ? 'removed' : 'changed';
    rows.push(el('tr', { class: `d-${kind}` },
      el('th', { scope: 'row' }, same ? null : el('span', { class: 'mark', 'aria-hidden': 'true' }, '≠ '),
        name === null ? null : data(name, { max: 200 }),
        same ? null : el('span', { class: 'visually-hidden' }, ` (${kind})`)),
      cell(x, 'left'), cell(y, 'right')));
  };
  const part = (title) => rows.push(el('tr', { class: 'd-part' },
    el('th', { scope: 'rowgroup', colspan: '3' }, title)));
  part('Fields');
  for (const [k, x, y] of fieldRows(a, b)) line(k, x, y);
  part('Headers');
  const ha = headerMap(a.headers);
  const hb = headerMap(b.headers);
  for (const key of new Set([...ha.keys(), ...hb.keys()])) {
    line((ha.get(key) ?? hb.get(key)).name, ha.get(key)?.value ?? null, hb.get(key)?.value ?? null);
  }
  part('Body');
  for (const [x, y] of diffLines(bodyLines(a), bodyLines(b)).slice(0, 5000)) line(null, x, y);
  return [changes, el('table', { class: 'diff' },
    el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, ''),
      el('th', { scope: 'col' }, `attempt #${a.attempt ?? '?'} (store id ${a.id})`),
      el('th', { scope: 'col' }, `attempt #${b.attempt ?? '?'} (store id ${b.id})`))),
    el('tbody', {}, ...rows))];
}

async function openDiff(id, otherId = null) {
  const item = state.byId.get(id) ?? details.get(id);
  const group = item && state.groups.get(groupKey(item));
  if (!group || group.refid === null) return;
  say(id, 'Comparing…');
  try {
    if (!group.complete) await complete(group);
    const list = attemptsOf(group);
    const at = list.findIndex((a) => a.id === id);
    const other = otherId ?? (list[at - 1] ?? list[at + 1])?.id;
    if (other === undefined) {
      say(id, 'This refid has one attempt: there is nothing to compare it with.');
      return;
    }
    const [left, right] = (await Promise.all([whole(other), whole(id)])).map(redactItem);
    if (pane.id !== id) return;
    const choose = el('select', { id: 'diff-with', 'aria-label': 'Compare with' },
      ...list.filter((a) => a.id !== id).map((a) => {
        const option = el('option', { value: String(a.id) }, `attempt #${a.attempt ?? '?'}`);
        option.selected = a.id === other;
        return option;
      }));
    choose.addEventListener('change', () => openDiff(id, Number(choose.value)));
    const [changes, table] = diffTable(left, right);
    pane.out.replaceChildren(el('section', { class: 'card diff-card', 'aria-label': 'Diff' },
      el('h3', {}, 'Diff'),
      el('p', { class: 'diff-head' }, el('label', { for: 'diff-with' }, 'Attempt '
        + `#${right.attempt ?? '?'} compared with `), choose, ' ',
      el('span', { class: 'muted' }, changes ? plural(changes, 'difference', 'differences') : 'no difference'),
      ' ', el('button', { type: 'button', class: 'action', onclick: () => pane.out.replaceChildren() }, 'Close')),
      table));
    say(id, `Attempt #${right.attempt} against #${left.attempt}: `
      + `${changes ? plural(changes, 'difference', 'differences') : 'no difference'}.`);
  } catch (err) {
    say(id, `No diff: ${err.message}`, 'error-text');
  }
}

// -- copies: curl and ipsms simulate

// `s` quoted for bash: as it is when it is a plain word, else in single quotes, else (when
// it holds characters a terminal would not show as they are) in $'...' with escapes.
export function shq(value) {
  const s = String(value);
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s)) return s;
  if (escapeRuns(s, 'plain').every(([kind]) => kind === '')) {
    return `'${s.replaceAll("'", "'\\''")}'`;
  }
  let out = "$'";
  for (const ch of s) {
    const cp = ch.codePointAt(0);
    if (ch === "'" || ch === '\\') out += '\\' + ch;
    else if (cp === 0x0a) out += '\\n';
    else if (cp === 0x09) out += '\\t';
    else if (cp < 0x20 || cp === 0x7f) out += '\\x' + hex(cp, 2);
    else if (escapeRuns(ch, 'plain').every(([kind]) => kind === '')) out += ch;
    else out += cp <= 0xffff ? '\\u' + hex(cp, 4) : '\\U' + hex(cp, 8);
  }
  return out + "'";
}

const URL_PLACEHOLDER = '"${URL:?set URL to the listener address}"';

// Where a copied command sends: the inspector's target once known, else $URL.
function urlWord(path) {
  if (target) {
    try {
      return shq(new URL(target).origin + path);
    } catch {
      // not a URL: the placeholder
    }
  }
  return URL_PLACEHOLDER + shq(path || '/');
}

const SKIP_HEADERS = new Set(['host', 'content-length', 'transfer-encoding']);
const CURL_DEFAULTS = [['content-type', 'Content-Type'], ['accept', 'Accept'],
  ['user-agent', 'User-Agent']];

// A curl command that sends `body` (bytes) with `headers` as the attempt came: curl's own
// headers are dropped when the attempt had none of them.
export function curlCommand({ method = 'POST', path = '/', headers = [], body, url = null }) {
  const args = ['curl', '-sS', '-X', shq(method), url ?? urlWord(path)];
  const names = new Set(headers.map(([k]) => k.toLowerCase()));
  for (const [k, v] of headers) {
    if (SKIP_HEADERS.has(k.toLowerCase())) continue;
    args.push('-H', shq(v === '' ? `${k};` : `${k}: ${v}`));
  }
  for (const [key, name] of CURL_DEFAULTS) if (!names.has(key)) args.push('-H', shq(`${name}:`));
  let text = null;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(body);
  } catch {
    text = null;
  }
  if (text !== null && !text.startsWith('@')
      && escapeRuns(text, 'plain').every(([kind]) => kind === '')) {
    return [...args, '--data-binary', shq(text)].join(' ');
  }
  let raw = '';
  for (let i = 0; i < body.length; i += 0x8000) {
    raw += String.fromCharCode(...body.subarray(i, i + 0x8000));
  }
  return `echo ${btoa(raw)} | base64 -d | ${args.join(' ')} --data-binary @-`;
}

export function simulateCommand(item, url = null) {
  const args = ['ipsms', 'simulate', url ?? urlWord(item.path)];
  for (const [flag, value] of [['--refid', item.refid], ['--from', item.from],
    ['--to', item.to], ['--message', item.message]]) {
    if (typeof value === 'string') args.push(flag, shq(value));
  }
  if ((item.content_type || '').toLowerCase().includes('x-www-form-urlencoded')) args.push('--form');
  return args.join(' ');
}

async function copyCurl(id) {
  say(id, 'Making the curl command…');
  try {
    const item = await whole(id);
    let headers;
    let body;
    if (red.on) {
      const shown = redactItem(item);
      headers = shown.headers;
      body = new TextEncoder().encode(shown.body ?? '');
    } else {
      // The fixture has the headers unmasked (a signature header too); the detail, the exact
      // body bytes.
      headers = (await api(`/api/messages/${id}/fixture`)).headers || [];
      body = bytesOf(item.body_base64 ?? '');
    }
    const note = item.body_truncated ? ' Only the start of the body was kept: it sends only that.' : '';
    await showCopy(id, 'curl', curlCommand({ method: item.method, path: item.path, headers, body }), note);
  } catch (err) {
    say(id, `No curl command: ${err.message}`, 'error-text');
  }
}

async function copySimulate(id) {
  const item = details.get(id) ?? state.byId.get(id);
  if (!item) return;
  await showCopy(id, 'simulate', simulateCommand(redactItem(item)),
    ' It signs with IPSMS_SECRET, and retries as IntelePeer does.');
}

async function showCopy(id, kind, text, note = '') {
  if (pane.id !== id) return;
  const box = el('textarea', { id: 'copy-text', class: 'copy-text', readonly: true,
    spellcheck: 'false', rows: String(Math.min(8, 2 + Math.ceil(text.length / 90))),
    'aria-label': kind === 'curl' ? 'The curl command' : 'The ipsms simulate command',
    'data-kind': kind });
  box.value = text;
  box.addEventListener('focus', () => box.select());
  pane.out.replaceChildren(el('div', { class: 'copy' }, box));
  const what = kind === 'curl' ? 'the curl command' : 'the ipsms simulate command';
  const where = target ? '' : ' Set URL to the listener\'s address first, as `ipsms listen` '
    + 'prints it.';
  let copied = false;
  if (navigator.clipboard?.writeText) {
    try {
      await navigator.clipboard.writeText(text);
      copied = true;
    } catch {
      copied = false;
    }
  }
  say(id, (copied ? `Copied ${what}.` : `Here is ${what}: select it and copy it.`) + where + note,
    copied ? 'ok' : '');
  if (!copied) box.select();
}

// ---------------------------------------------------------------------------------------

async function start() {
  $('search-form').addEventListener('submit', (event) => {
    event.preventDefault();
    runSearch($('search').value);
  });
  $('search').addEventListener('input', onSearchInput);
  $('load-older').addEventListener('click', loadOlder);
  $('new-count').addEventListener('click', jumpToNewest);
  $('show-newest').addEventListener('click', jumpToNewest);
  $('help-button').addEventListener('click', () => $('help').showModal());
  $('help-close').addEventListener('click', () => $('help').close());
  $('redact').addEventListener('click', () => setRedact(!red.on));
  setRedact(readRedact(), { quiet: true });
  document.addEventListener('keydown', onKey);
  window.addEventListener('hashchange', followHash);
  document.addEventListener('visibilitychange', drawNewCount);
  $('list').addEventListener('scroll', () => {
    const list = $('list');
    if (list.scrollTop <= 8 && state.newCount) {
      state.newCount = 0;
      drawNewCount();
    }
    if (list.scrollTop > 0 && list.scrollTop + list.clientHeight >= list.scrollHeight - 200) {
      loadOlder();
    }
  }, { passive: true });
  await reload();
  connect();
  await followHash();
  document.documentElement.dataset.ready = 'true';
}

start();
