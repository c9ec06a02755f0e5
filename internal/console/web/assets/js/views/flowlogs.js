// Flow logs: VPC flow log and firewall log entries, read with the Logging
// filter language as gcloud logging read reads them. The query lives in
// the address, so a query can be linked to and is re-run while shown.
import {h, replace, table, statusBadge} from '../dom.js';
import {logging} from '../api.js';
import {live} from '../live.js';
import {field} from '../dialogs.js';

const logs = {
  vpc_flows: 'VPC flow logs',
  firewall: 'Firewall rules logging',
};
const protocols = {1: 'ICMP', 6: 'TCP', 17: 'UDP'};

// filterOf is the Logging filter the simple fields describe.
export function filterOf(project, log, src, dest) {
  const names = log ? [log] : Object.keys(logs);
  const parts = [names.length === 1
    ? `logName="projects/${project}/logs/compute.googleapis.com%2F${names[0]}"`
    : '(' + names.map(n => `logName="projects/${project}/logs/compute.googleapis.com%2F${n}"`).join(' OR ') + ')'];
  if (src) parts.push(`jsonPayload.connection.src_ip="${src}"`);
  if (dest) parts.push(`jsonPayload.connection.dest_ip="${dest}"`);
  return parts.join(' AND ');
}

export async function page(ctx, query) {
  const params = new URLSearchParams(query || '');
  const log = h('select', {name: 'log'}, h('option', {value: 'vpc_flows'}, logs.vpc_flows),
    h('option', {value: 'firewall'}, logs.firewall), h('option', {value: ''}, 'Both'));
  log.value = params.get('log') ?? 'vpc_flows';
  const src = h('input', {name: 'src', spellcheck: 'false', placeholder: 'e.g. 10.0.0.2', value: params.get('src') || ''});
  const dest = h('input', {name: 'dest', spellcheck: 'false', placeholder: 'e.g. 10.0.0.3', value: params.get('dest') || ''});
  const filter = h('textarea', {name: 'filter', spellcheck: 'false', rows: 3});
  filter.value = params.get('filter') || filterOf(ctx.project, log.value, src.value.trim(), dest.value.trim());
  const syncFilter = () => { filter.value = filterOf(ctx.project, log.value, src.value.trim(), dest.value.trim()); };
  for (const el of [log, src, dest]) el.addEventListener('input', syncFilter);

  const command = h('pre', {class: 'command'}, h('code', {}));
  const results = h('div', {'aria-live': 'polite'});
  const form = h('form', {class: 'stack'},
    h('div', {class: 'inline'}, field('Log', log), field('Source IP', src), field('Destination IP', dest)),
    field('Filter', filter, 'The Logging query language, as gcloud logging read takes it; the fields above write it for you.'),
    h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary'}, 'Run query')));
  form.addEventListener('submit', ev => {
    ev.preventDefault();
    const q = new URLSearchParams({filter: filter.value.trim(), log: log.value, src: src.value.trim(), dest: dest.value.trim()});
    ctx.go('#/flowlogs?' + q.toString());
  });

  const run = filter.value.trim();
  command.firstChild.textContent = `gcloud logging read '${run}' --limit 50`;
  const refresh = live(results, () => logging.entries(ctx.project, run, 50), entries => [h('p', {class: 'hint'}, entries.length === 1 ? '1 entry.' : `${entries.length} entries, newest first${entries.length === 50 ? ' (the first 50)' : ''}.`),
      entriesTable(entries)]);
  await refresh();
  const el = h('section', {}, h('h1', {}, 'Flow logs'), form,
    h('h2', {}, 'The same query with gcloud'), command, h('h2', {}, 'Entries'), results);
  return {title: 'Flow logs', el, refresh};
}

function entriesTable(entries) {
  const conn = e => e.jsonPayload?.connection || {};
  const pod = d => d?.pod ? `${d.pod.pod_namespace}/${d.pod.pod_name}` : '';
  return table([
    {title: 'Time', cell: e => h('time', {datetime: e.timestamp}, e.timestamp.replace('T', ' ').replace(/\.\d+Z$/, 'Z'))},
    {title: 'Log', cell: e => decodeURIComponent((e.logName || '').split('/').pop()).replace('compute.googleapis.com/', '')},
    {title: 'Source', cell: e => h('span', {class: 'mono'}, `${conn(e).src_ip}:${conn(e).src_port ?? ''}`)},
    {title: 'Destination', cell: e => h('span', {class: 'mono'}, `${conn(e).dest_ip}:${conn(e).dest_port ?? ''}`)},
    {title: 'Protocol', cell: e => protocols[conn(e).protocol] || conn(e).protocol},
    {title: 'Pods', cell: e => [pod(e.jsonPayload?.src_gke_details), pod(e.jsonPayload?.dest_gke_details)].filter(Boolean).join(' → ') || '—'},
    {title: 'Traffic or decision', cell: e => e.jsonPayload?.disposition
      ? [statusBadge(e.jsonPayload.disposition === 'ALLOWED' ? 'ALLOW' : 'DENY', e.jsonPayload.disposition), ' ', e.jsonPayload.rule_details?.reference || '']
      : `${e.jsonPayload?.bytes_sent ?? 0} bytes, ${e.jsonPayload?.packets_sent ?? 0} packets (${e.jsonPayload?.reporter || ''})`},
  ], entries, 'No entries match.', 'Log entries');
}
