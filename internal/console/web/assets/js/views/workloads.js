// A cluster's workloads, read from its own API server: pods, Deployments
// and Services, and a pod's log.
import {h, replace, table, statusBadge, ago} from '../dom.js';
import {kubeyard, errorBox} from '../api.js';
import {field} from '../dialogs.js';
import {live} from '../live.js';

// show fills el and returns its refresh.
export async function show(el, cluster) {
  const nsSelect = h('select', {id: 'namespace'}, h('option', {value: ''}, 'All namespaces'));
  const body = h('div', {});
  replace(el, h('div', {class: 'actions'}, h('label', {for: 'namespace'}, 'Namespace'), nsSelect), body);
  let data = null; // what was last read, drawn again when the namespace changes
  const tables = () => {
    const ns = nsSelect.value;
    const keep = items => (items || []).filter(it => !ns || it.metadata.namespace === ns);
    return [h('h2', {}, 'Pods'), podsTable(keep(data.pods.items), cluster),
      h('h2', {}, 'Deployments'), deploymentsTable(keep(data.deployments.items)),
      h('h2', {}, 'Services'), servicesTable(keep(data.services.items))];
  };
  nsSelect.addEventListener('change', () => replace(body, tables()));
  const read = path => kubeyard.read(cluster.project, cluster.location, cluster.name, path);
  const fetch = async () => {
    const [namespaces, pods, deployments, services] = await Promise.all([
      read('/api/v1/namespaces'), read('/api/v1/pods'), read('/apis/apps/v1/deployments'), read('/api/v1/services')]);
    return {namespaces, pods, deployments, services};
  };
  const draw = got => {
    data = got;
    const chosen = nsSelect.value;
    replace(nsSelect, h('option', {value: ''}, 'All namespaces'),
      (got.namespaces.items || []).map(n => h('option', {value: n.metadata.name}, n.metadata.name)));
    nsSelect.value = chosen;
    return tables();
  };
  return live(body, fetch, draw, got => JSON.stringify([got.namespaces, got.pods, got.deployments, got.services].map(l => summary(l.items))));
}

// summary leaves out what changes without anything to show (managed
// fields, resource versions).
function summary(items) {
  return (items || []).map(it => [it.metadata.namespace, it.metadata.name, it.spec, it.status]);
}

function podStatus(p) {
  const waiting = (p.status?.containerStatuses || []).map(c => c.state?.waiting?.reason || c.state?.terminated?.reason).find(Boolean);
  if (p.metadata.deletionTimestamp) return 'Terminating';
  return waiting || p.status?.phase || 'Unknown';
}

function podsTable(pods, cluster) {
  const logHash = p => `#/clusters/${encodeURIComponent(cluster.location)}/${encodeURIComponent(cluster.name)}/pods/${encodeURIComponent(p.metadata.namespace)}/${encodeURIComponent(p.metadata.name)}/log`;
  return table([
    {title: 'Namespace', cell: p => p.metadata.namespace},
    {title: 'Name', cell: p => h('span', {class: 'mono'}, p.metadata.name)},
    {title: 'Status', cell: p => statusBadge(podStatus(p))},
    {title: 'Ready', cell: p => {
      const cs = p.status?.containerStatuses || [];
      return `${cs.filter(c => c.ready).length}/${(p.spec?.containers || []).length}`;
    }},
    {title: 'Restarts', num: true, cell: p => (p.status?.containerStatuses || []).reduce((n, c) => n + (c.restartCount || 0), 0)},
    {title: 'Node', cell: p => h('span', {class: 'mono'}, p.spec?.nodeName || '—')},
    {title: 'IP', cell: p => h('span', {class: 'mono'}, p.status?.podIP || '—')},
    {title: 'Age', cell: p => ago(p.metadata.creationTimestamp)},
    {title: '', cell: p => h('a', {href: logHash(p), 'aria-label': `Logs of ${p.metadata.name}`}, 'Logs')},
  ], pods, 'No pods.', 'Pods');
}

function deploymentsTable(items) {
  return table([
    {title: 'Namespace', cell: d => d.metadata.namespace},
    {title: 'Name', cell: d => d.metadata.name},
    {title: 'Ready', cell: d => `${d.status?.readyReplicas || 0}/${d.spec?.replicas ?? 0}`},
    {title: 'Up to date', num: true, cell: d => d.status?.updatedReplicas || 0},
    {title: 'Available', num: true, cell: d => d.status?.availableReplicas || 0},
    {title: 'Images', cell: d => h('span', {class: 'mono'}, (d.spec?.template?.spec?.containers || []).map(c => c.image).join(', '))},
    {title: 'Age', cell: d => ago(d.metadata.creationTimestamp)},
  ], items, 'No Deployments.', 'Deployments');
}

function servicesTable(items) {
  return table([
    {title: 'Namespace', cell: s => s.metadata.namespace},
    {title: 'Name', cell: s => s.metadata.name},
    {title: 'Type', cell: s => s.spec?.type},
    {title: 'Cluster IP', cell: s => h('span', {class: 'mono'}, s.spec?.clusterIP || '—')},
    {title: 'External IP', cell: s => h('span', {class: 'mono'}, (s.status?.loadBalancer?.ingress || []).map(i => i.ip || i.hostname).join(', ') || '—')},
    {title: 'Ports', cell: s => (s.spec?.ports || []).map(p => `${p.port}${p.nodePort ? ':' + p.nodePort : ''}/${p.protocol}`).join(', ')},
    {title: 'Age', cell: s => ago(s.metadata.creationTimestamp)},
  ], items, 'No Services.', 'Services');
}

// podLog is the page of a pod's log: the last lines of a container,
// refreshed while it is shown.
export async function podLog(ctx, location, name, namespace, pod) {
  const cluster = {project: ctx.project, location, name};
  const read = (path, q) => kubeyard.read(cluster.project, location, name, path, q);
  const p = await read(`/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}`);
  const containers = (p.spec?.containers || []).map(c => c.name);
  const select = h('select', {}, containers.map(c => h('option', {value: c}, c)));
  const previous = h('input', {type: 'checkbox', id: 'previous'});
  const out = h('pre', {class: 'log', tabindex: '0', 'aria-label': 'Log'});
  const problem = h('div', {});
  const el = h('section', {},
    h('p', {class: 'crumbs'}, h('a', {href: '#/clusters'}, 'Clusters'), ' / ',
      h('a', {href: `#/clusters/${encodeURIComponent(location)}/${encodeURIComponent(name)}/workloads`}, name), ' / ', namespace),
    h('h1', {}, `Log of ${pod}`),
    h('div', {class: 'actions'}, field('Container', select),
      h('div', {class: 'check'}, previous, h('label', {for: 'previous'}, 'Previous instance'))),
    problem, out);
  const refresh = async () => {
    try {
      const q = {container: select.value, tailLines: '500'};
      if (previous.checked) q.previous = 'true';
      const text = await read(`/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}/log`, q);
      problem.replaceChildren();
      if (out.textContent !== text) out.textContent = text || '(no output yet)';
    } catch (err) {
      problem.replaceChildren(errorBox(err));
    }
  };
  select.addEventListener('change', refresh);
  previous.addEventListener('change', refresh);
  await refresh();
  return {title: `Log of ${pod}`, el, refresh};
}
