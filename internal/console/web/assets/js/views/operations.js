// Operations: every long-running operation of the project, live, with its
// stages and, when it failed, its error.
import {h, replace, table, statusBadge, ago, lastPart, announce} from '../dom.js';
import {gke, errorBox} from '../api.js';
import {live} from '../live.js';

export async function page(ctx) {
  const body = h('div', {});
  const el = h('section', {}, h('h1', {}, 'Operations'),
    h('p', {class: 'hint'}, `Every operation of project ${ctx.project}, newest first; this page follows them as they run.`), body);
  const refresh = liveTable(body, () => gke.operations(ctx.project), ctx, true);
  await refresh();
  return {title: 'Operations', el, refresh};
}

// liveTable fills el with the operations list() returns, and returns the
// function that refreshes it; an operation that ends is announced.
export function liveTable(el, list, ctx, showCluster) {
  let seen = null; // each operation's status when last drawn
  const sorted = async () => (await list()).sort((a, b) => (b.startTime || '').localeCompare(a.startTime || ''));
  return live(el, sorted, ops => {
    for (const op of ops) {
      const before = seen?.get(op.name);
      if (before && before !== 'DONE' && op.status === 'DONE') announce(`${op.operationType} ${op.error ? 'failed' : 'done'}`);
    }
    seen = new Map(ops.map(op => [op.name, op.status]));
    return opsTable(ops, ctx, showCluster);
  });
}

// opsTable lays operations out: type, target, status, progress, times.
export function opsTable(ops, ctx, showCluster = true) {
  return table([
    {title: 'Operation', cell: op => h('span', {class: 'mono'}, op.name)},
    {title: 'Type', cell: op => op.operationType},
    showCluster && {title: 'Target', cell: op => target(op)},
    {title: 'Location', cell: op => op.location || op.zone},
    {title: 'Status', cell: op => statusBadge(op.error ? 'ERROR' : op.status, op.error ? 'FAILED' : op.status)},
    {title: 'Progress', cell: op => progress(op)},
    {title: 'Started', cell: op => ago(op.startTime)},
    {title: 'Ended', cell: op => op.endTime ? ago(op.endTime) : '—'},
    {title: '', cell: op => op.status === 'RUNNING' || op.status === 'PENDING' ? cancelButton(op, ctx) : null},
  ].filter(Boolean), ops, 'No operations yet.', 'Operations');
}

function target(op) {
  const parts = (op.targetLink || '').split('/');
  const i = parts.indexOf('clusters');
  if (i < 0) return lastPart(op.targetLink);
  const cluster = parts[i + 1];
  const loc = op.location || op.zone;
  const pool = parts[i + 2] === 'nodePools' ? ` / ${parts[i + 3]}` : '';
  return h('span', {}, h('a', {href: `#/clusters/${encodeURIComponent(loc)}/${encodeURIComponent(cluster)}`}, cluster), pool);
}

// progress is the operation's stages, the running one named first, and
// its error when it failed.
function progress(op) {
  const stages = op.progress?.stages || [];
  const running = stages.find(s => s.status === 'RUNNING');
  return h('div', {},
    op.error && h('div', {class: 'error'}, op.error.message),
    running && h('div', {}, running.name),
    stages.length > 0 && h('details', {open: op.status === 'RUNNING' ? true : null},
      h('summary', {}, `${stages.filter(s => s.status === 'DONE').length} of ${stages.length} stages`),
      h('ol', {class: 'stages'}, stages.map(s => h('li', {class: (s.status || '').toLowerCase()}, s.name, ' ', h('span', {class: 'visually-hidden'}, `(${s.status})`))))));
}

function cancelButton(op, ctx) {
  const out = h('div', {});
  const btn = h('button', {type: 'button', onclick: async () => {
    btn.disabled = true;
    try {
      await gke.cancel(ctx.project, op.location || op.zone, op.name);
      announce(`Cancelling ${op.name}`);
    } catch (err) {
      out.append(errorBox(err));
      btn.disabled = false;
    }
  }}, 'Cancel');
  out.append(btn);
  return out;
}
