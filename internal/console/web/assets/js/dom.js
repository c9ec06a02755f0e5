// Building the page: elements made with h (text always as text, never as
// markup, so nothing an API returns can run as script), tables, facts,
// statuses and times.

// h makes an element: h('a', {href: '#/x', class: 'y', onclick: f}, 'text', child).
// Attributes that are false or null are left out; children that are null,
// undefined or false too.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// replace puts children in place of what el holds.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// table lays rows out under columns ({title, cell: row => content, num,
// nowrap}), or says empty when there are none.
export function table(columns, rows, empty = 'None.', caption = null) {
  if (!rows.length) return h('p', {class: 'empty'}, empty);
  return h('div', {class: 'table-wrap'},
    h('table', {},
      caption && h('caption', {class: 'visually-hidden'}, caption),
      h('thead', {}, h('tr', {}, columns.map(c => h('th', {scope: 'col', class: cellClass(c)}, c.title)))),
      h('tbody', {}, rows.map(r => h('tr', {}, columns.map(c => h('td', {class: cellClass(c)}, c.cell(r))))))));
}

function cellClass(c) {
  return [c.num && 'num', c.nowrap && 'nowrap'].filter(Boolean).join(' ') || null;
}

// facts is a description list of [term, value] pairs; a value of
// undefined, null or '' shows as a dash.
export function facts(pairs) {
  return h('dl', {class: 'facts'}, pairs.filter(Boolean).map(([k, v]) =>
    [h('dt', {}, k), h('dd', {}, v === undefined || v === null || v === '' ? '—' : v)]));
}

const statusKinds = {
  RUNNING: 'ok', DONE: 'ok', Running: 'ok', Ready: 'ok', Succeeded: 'ok', ON: 'ok', ALLOW: 'ok', ACTIVE: 'ok', UP: 'ok',
  PROVISIONING: 'busy', RECONCILING: 'busy', STOPPING: 'busy', PENDING: 'busy', Pending: 'busy', ContainerCreating: 'busy', INACTIVE: 'busy',
  ERROR: 'bad', DEGRADED: 'bad', ABORTING: 'bad', Failed: 'bad', NotReady: 'bad', DENY: 'bad', CrashLoopBackOff: 'bad',
  OFF: 'off', Unknown: 'off',
};

// statusBadge shows a status word with its colour; the word itself says
// it, colour only helps.
export function statusBadge(s, label = s) {
  return h('span', {class: 'status ' + (statusKinds[s] || 'off')}, label);
}

// ago is how long ago an RFC 3339 time was, in the largest unit.
export function ago(ts) {
  if (!ts) return '—';
  const s = Math.max(0, (Date.now() - Date.parse(ts)) / 1000);
  const t = new Date(ts).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  let v;
  if (s < 60) v = `${Math.floor(s)}s`;
  else if (s < 3600) v = `${Math.floor(s / 60)}m`;
  else if (s < 86400) v = `${Math.floor(s / 3600)}h`;
  else v = `${Math.floor(s / 86400)}d`;
  return h('time', {datetime: ts, title: t}, v);
}

// lastPart is what follows the last slash of a resource URL.
export function lastPart(url) {
  return url ? String(url).split('/').pop() : '';
}

// announce tells screen readers what happened (the page's live region).
export function announce(msg) {
  const el = document.getElementById('announce');
  if (el) el.textContent = msg;
}
