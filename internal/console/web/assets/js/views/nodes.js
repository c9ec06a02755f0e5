// A cluster's node pools (from the GKE API) and nodes (from the cluster's
// own API: their status, addresses and pods).
import {h, replace, table, statusBadge, announce} from '../dom.js';
import {gke, kubeyard} from '../api.js';
import {openDialog, field} from '../dialogs.js';
import {live} from '../live.js';

// show fills el and returns its refresh.
export async function show(el, cluster) {
  const poolsEl = h('div', {});
  const nodesEl = h('div', {});
  replace(el, h('h2', {}, 'Node pools'), poolsEl, h('h2', {}, 'Nodes'), nodesEl);
  const read = path => kubeyard.read(cluster.project, cluster.location, cluster.name, path);
  const refreshPools = live(poolsEl, () => gke.pools(cluster.project, cluster.location, cluster.name), pools => poolsTable(pools, cluster));
  const refreshNodes = live(nodesEl, async () => nodeRows(await Promise.all([read('/api/v1/nodes'), read('/api/v1/pods')])), nodesTable);
  return async () => { await Promise.all([refreshPools(), refreshNodes()]); };
}

function poolsTable(pools, cluster) {
  return table([
    {title: 'Name', nowrap: true, cell: p => p.name},
    {title: 'Status', cell: p => statusBadge(p.status)},
    {title: 'Nodes per zone', num: true, cell: p => p.initialNodeCount ?? 0},
    {title: 'Zones', cell: p => (p.locations || []).join(', ')},
    {title: 'Version', cell: p => p.version},
    {title: 'Machine type', cell: p => p.config?.machineType || '—'},
    {title: '', cell: p => h('button', {type: 'button', disabled: p.status !== 'RUNNING',
      'aria-label': `Resize ${p.name}`, onclick: () => resize(p, cluster)}, 'Resize')},
  ], pools, 'No node pools.', 'Node pools');
}

function resize(pool, {project, location, name}) {
  const count = h('input', {name: 'count', type: 'number', min: 0, max: 1000, required: true, value: pool.initialNodeCount ?? 0});
  return openDialog({
    title: `Resize ${pool.name}`,
    body: field('Nodes per zone', count, 'Nodes removed are drained first, as gcloud container clusters resize does.'),
    submitLabel: 'Resize',
    onSubmit: async form => {
      const op = await gke.setSize(project, location, name, pool.name, Number(form.elements.count.value));
      announce(`Resize: operation ${op.name} started`);
    },
  });
}

// nodeRows joins the cluster's nodes with the pods that run on each.
function nodeRows([nodeList, podList]) {
  const pods = new Map();
  for (const p of podList.items || []) {
    const n = p.spec?.nodeName;
    if (!n) continue;
    if (!pods.has(n)) pods.set(n, []);
    pods.get(n).push(`${p.metadata.namespace}/${p.metadata.name}`);
  }
  return (nodeList.items || []).map(n => {
    const ready = (n.status?.conditions || []).find(c => c.type === 'Ready');
    const addr = type => (n.status?.addresses || []).filter(a => a.type === type).map(a => a.address).join(', ');
    return {
      name: n.metadata.name,
      pool: n.metadata.labels?.['cloud.google.com/gke-nodepool'] || '—',
      ready: ready?.status === 'True' ? 'Ready' : 'NotReady',
      internalIP: addr('InternalIP'),
      externalIP: addr('ExternalIP'),
      podCIDR: n.spec?.podCIDR || '—',
      simulated: n.metadata.labels?.['kubeyard.dev/simulated'] === 'true',
      pods: (pods.get(n.metadata.name) || []).sort(),
    };
  }).sort((a, b) => a.name.localeCompare(b.name));
}

function nodesTable(rows) {
  return table([
    {title: 'Name', cell: n => h('span', {class: 'mono'}, n.name, n.simulated ? ' (simulated)' : '')},
    {title: 'Pool', nowrap: true, cell: n => n.pool},
    {title: 'Status', cell: n => statusBadge(n.ready)},
    {title: 'Internal IP', cell: n => h('span', {class: 'mono'}, n.internalIP || '—')},
    {title: 'External IP', cell: n => h('span', {class: 'mono'}, n.externalIP || '—')},
    {title: 'Pod range', cell: n => h('span', {class: 'mono'}, n.podCIDR)},
    {title: 'Pods', num: true, cell: n => n.pods.length},
    {title: 'Pods on the node', cell: n => n.pods.length ? h('details', {}, h('summary', {}, `${n.pods.length} pods`),
      h('ul', {}, n.pods.map(p => h('li', {class: 'mono'}, p)))) : '—'},
  ], rows, 'No nodes have registered yet.', 'Nodes');
}
