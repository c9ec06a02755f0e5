// Clusters: the list, and a cluster's page (details and its changes,
// node pools and nodes, workloads, operations).
import {h, replace, table, facts, statusBadge, ago, lastPart, announce} from '../dom.js';
import {gke, kubeyard} from '../api.js';
import {openDialog, field, checkbox, lines} from '../dialogs.js';
import {live} from '../live.js';
import {liveTable, opsTable} from './operations.js';
import * as nodes from './nodes.js';
import * as workloads from './workloads.js';

export async function list(ctx) {
  const body = h('div', {});
  const el = h('section', {},
    h('h1', {}, 'Kubernetes clusters'),
    h('div', {class: 'actions'}, h('a', {class: 'button primary', href: '#/clusters/create'}, 'Create cluster')),
    body);
  const refresh = live(body, () => gke.clusters(ctx.project), clusters => table([
      {title: 'Name', cell: c => h('a', {href: clusterHash(c)}, c.name)},
      {title: 'Location', cell: c => c.location},
      {title: 'Status', cell: c => statusBadge(c.status)},
      {title: 'Version', cell: c => c.currentMasterVersion},
      {title: 'Nodes', num: true, cell: c => c.currentNodeCount ?? 0},
      {title: 'Endpoint', cell: c => h('span', {class: 'mono'}, c.endpoint || '—')},
    ], clusters.sort((a, b) => a.name.localeCompare(b.name)), `No clusters in project ${ctx.project} yet.`, 'Clusters'));
  await refresh();
  return {title: 'Clusters', el, refresh};
}

export function clusterHash(c, tab) {
  return `#/clusters/${encodeURIComponent(c.location)}/${encodeURIComponent(c.name)}${tab ? '/' + tab : ''}`;
}

const tabs = [['details', 'Details'], ['nodes', 'Nodes'], ['workloads', 'Workloads'], ['operations', 'Operations']];

// details is a cluster's page; tab picks its part.
export async function details(ctx, location, name, tab = 'details') {
  const c = await gke.cluster(ctx.project, location, name);
  const running = h('div', {});
  const body = h('div', {});
  const heading = h('h1', {}, name, ' ', statusBadge(c.status));
  const el = h('section', {},
    h('p', {class: 'crumbs'}, h('a', {href: '#/clusters'}, 'Clusters'), ' / ', location),
    heading,
    h('nav', {class: 'tabs', 'aria-label': 'Cluster'}, tabs.map(([t, label]) =>
      h('a', {href: clusterHash(c, t), 'aria-current': t === tab ? 'page' : null}, label))),
    running, body);
  const cluster = {project: ctx.project, location, name};
  const refreshHeading = live(heading, () => gke.cluster(ctx.project, location, name), c => [name, ' ', statusBadge(c.status)]);
  const refreshRunning = runningOperations(running, cluster);
  let refreshBody;
  switch (tab) {
    case 'nodes': refreshBody = await nodes.show(body, cluster); break;
    case 'workloads': refreshBody = await workloads.show(body, cluster); break;
    case 'operations': refreshBody = liveTable(body, () => clusterOperations(cluster), ctx, false); break;
    default: refreshBody = showDetails(body, cluster, c, ctx);
  }
  const refresh = async () => { await Promise.all([refreshHeading(), refreshRunning(), refreshBody()]); };
  await refresh();
  return {title: `${name} · ${tabs.find(([t]) => t === tab)[1]}`, el, refresh};
}

async function clusterOperations({project, location, name}) {
  const ops = await gke.operations(project, location);
  return ops.filter(op => op.targetLink && op.targetLink.includes(`/clusters/${name}`) &&
    (op.targetLink.endsWith(`/clusters/${name}`) || op.targetLink.includes(`/clusters/${name}/`)));
}

// runningOperations shows the cluster's operations that run now, with
// their stages, above every tab: what a change just started.
function runningOperations(el, cluster) {
  return live(el, async () => (await clusterOperations(cluster)).filter(op => op.status !== 'DONE'),
    ops => ops.length ? h('div', {class: 'notice', role: 'status'},
      h('h2', {}, 'Running now'), opsTable(ops, {project: cluster.project}, false)) : null);
}

// showDetails draws the cluster's settings, with the changes each allows,
// and returns the refresh that redraws them when the cluster changed.
function showDetails(body, cluster, first, ctx) {
  let c = first; // what the page was opened with, for the first draw
  return live(body, async () => {
    const got = c || await gke.cluster(cluster.project, cluster.location, cluster.name);
    c = null;
    return got;
  }, got => detailsOf(got, cluster, ctx));
}

async function detailsOf(c, cluster, ctx) {
  const ip = c.ipAllocationPolicy || {};
  const pcc = c.privateClusterConfig || {};
  const vis = !!c.networkConfig?.enableIntraNodeVisibility;
  const an = authorizedNetworks(c);
  const regional = !/-[a-z]$/.test(c.location);
  const busy = c.status !== 'RUNNING';
  return h('div', {},
    h('h2', {}, 'Cluster basics'),
    facts([
      ['Status', [statusBadge(c.status), c.statusMessage ? ` ${c.statusMessage}` : '']],
      ['Location type', regional ? 'Regional (three control-plane replicas)' : 'Zonal (one control-plane replica)'],
      ['Location', c.location],
      ['Control-plane version', c.currentMasterVersion],
      ['Node version', c.currentNodeVersion],
      ['Nodes', String(c.currentNodeCount ?? 0)],
      ['Created', c.createTime ? [ago(c.createTime), ' ago'] : '—'],
    ]),

    h('h2', {}, 'Control plane'),
    facts([
      ['Endpoint', h('span', {class: 'mono'}, c.endpoint || '—')],
      ['Private endpoint', h('span', {class: 'mono'}, pcc.privateEndpoint || '—')],
      ['Public endpoint', pcc.enablePrivateEndpoint ? 'Disabled (private endpoint only)' : 'Enabled'],
      ['CA fingerprint (SHA-256)', h('span', {class: 'mono'}, await caFingerprint(c.masterAuth?.clusterCaCertificate))],
      ['Authorized networks', an.enabled ? (an.cidrBlocks.length ? an.cidrBlocks.map(b => b.cidrBlock).join(', ') : 'Enabled, none listed') : 'Disabled'],
    ]),
    h('div', {class: 'actions'},
      h('button', {type: 'button', disabled: busy, onclick: () => editAuthorizedNetworks(c, cluster)}, 'Edit authorized networks')),

    h('h2', {}, 'Networking'),
    facts([
      ['Network', lastPart(c.network)],
      ['Subnetwork', lastPart(c.subnetwork)],
      ['VPC-native (alias IP)', ip.useIpAliases ? 'Enabled' : 'Disabled (routes-based)'],
      ['Pod range', h('span', {class: 'mono'}, c.clusterIpv4Cidr)],
      ['Services range', h('span', {class: 'mono'}, c.servicesIpv4Cidr)],
      ['Private nodes', pcc.enablePrivateNodes ? 'Enabled' : 'Disabled'],
      ['Control-plane range', h('span', {class: 'mono'}, pcc.masterIpv4CidrBlock || '—')],
      ['Intra-node visibility', statusBadge(vis ? 'ON' : 'OFF', vis ? 'Enabled' : 'Disabled')],
    ]),
    h('div', {class: 'actions'},
      h('button', {type: 'button', disabled: busy, onclick: () => setVisibility(c, cluster, !vis)},
        vis ? 'Disable intra-node visibility' : 'Enable intra-node visibility')),

    h('h2', {}, 'Maintenance policy'),
    maintenance(c.maintenancePolicy),

    h('h2', {}, 'Labels'),
    facts(Object.entries(c.resourceLabels || {}).map(([k, v]) => [k, v]).concat(Object.keys(c.resourceLabels || {}).length ? [] : [['Labels', 'None']])),
    h('div', {class: 'actions'},
      h('button', {type: 'button', onclick: () => editLabels(c, cluster)}, 'Edit labels')),

    h('h2', {}, 'Rotations'),
    h('p', {class: 'hint'}, 'An IP rotation moves the control plane to a new address and recreates every node; a credential rotation also gives the cluster a new CA. Complete one once every client uses the new address (get-credentials again). The cluster CA rotation (kubeyard update credentials --cluster-ca) replaces only the cluster CA, gradually.'),
    h('div', {class: 'actions'},
      h('button', {type: 'button', disabled: busy, onclick: () => rotate(c, cluster, 'start-ip')}, 'Start IP rotation'),
      h('button', {type: 'button', disabled: busy, onclick: () => rotate(c, cluster, 'complete-ip')}, 'Complete IP rotation'),
      h('button', {type: 'button', disabled: busy, onclick: () => rotate(c, cluster, 'start-credential')}, 'Start credential rotation'),
      h('button', {type: 'button', disabled: busy, onclick: () => rotate(c, cluster, 'complete-credential')}, 'Complete credential rotation'),
      h('button', {type: 'button', disabled: busy, onclick: () => rotate(c, cluster, 'cluster-ca')}, 'Rotate cluster CA')),

    h('h2', {}, 'Delete'),
    h('div', {class: 'actions'},
      h('button', {type: 'button', class: 'danger', disabled: c.status === 'STOPPING', onclick: () => removeCluster(c, cluster, ctx)}, 'Delete cluster')));
}

// authorizedNetworks reads them in either form the API has.
function authorizedNetworks(c) {
  const cfg = c.controlPlaneEndpointsConfig?.ipEndpointsConfig?.authorizedNetworksConfig || c.masterAuthorizedNetworksConfig || {};
  return {enabled: !!cfg.enabled, cidrBlocks: cfg.cidrBlocks || []};
}

function maintenance(mp) {
  const w = mp?.window;
  if (!w) return h('p', {}, 'None: nodes may be recreated at any time.');
  const exclusions = Object.entries(w.maintenanceExclusions || {});
  return facts([
    w.dailyMaintenanceWindow && ['Daily window', `starts ${w.dailyMaintenanceWindow.startTime} UTC`],
    w.recurringWindow && ['Recurring window', `${w.recurringWindow.window.startTime} – ${w.recurringWindow.window.endTime}, ${w.recurringWindow.recurrence}`],
    ['Exclusions', exclusions.length ? exclusions.map(([n, e]) => `${n}: ${e.startTime} – ${e.endTime}`).join('; ') : 'None'],
  ]);
}

// caFingerprint is the SHA-256 of the cluster CA certificate (DER), as
// openssl x509 -fingerprint -sha256 prints it.
async function caFingerprint(b64pem) {
  if (!b64pem || !globalThis.crypto?.subtle) return '—';
  try {
    const pem = atob(b64pem);
    const body = pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
    const der = Uint8Array.from(atob(body), ch => ch.charCodeAt(0));
    const sum = new Uint8Array(await crypto.subtle.digest('SHA-256', der));
    return Array.from(sum, b => b.toString(16).padStart(2, '0').toUpperCase()).join(':');
  } catch {
    return '—';
  }
}

async function started(op, what) {
  announce(`${what}: operation ${op.name} started`);
}

function setVisibility(c, {project, location, name}, on) {
  return openDialog({
    title: on ? 'Enable intra-node visibility' : 'Disable intra-node visibility',
    body: h('p', {}, on
      ? `Traffic between pods on the same node of ${name} will go through the VPC network, where firewall rules and flow logs see it. The control plane and the node components restart.`
      : `Traffic between pods on the same node of ${name} will stay on the node: firewall rules and flow logs no longer see it. The control plane and the node components restart.`),
    submitLabel: on ? 'Enable' : 'Disable',
    onSubmit: async () => started(await gke.update(project, location, name, {desiredIntraNodeVisibilityConfig: {enabled: on}}), 'Intra-node visibility'),
  });
}

function editAuthorizedNetworks(c, {project, location, name}) {
  const an = authorizedNetworks(c);
  const enabled = checkbox('Allow only the authorized networks to reach the control plane', {name: 'enabled', checked: an.enabled});
  const blocks = h('textarea', {name: 'cidrs', spellcheck: 'false'});
  blocks.value = an.cidrBlocks.map(b => b.cidrBlock).join('\n');
  return openDialog({
    title: 'Authorized networks',
    body: [enabled, field('Networks (CIDR ranges, one per line)', blocks, 'Checked at every endpoint on the client\'s source address, e.g. 127.0.0.0/8.')],
    onSubmit: async form => {
      const on = form.elements.enabled.checked;
      const cfg = {enabled: on, cidrBlocks: on ? lines(form.elements.cidrs.value).map(cidrBlock => ({cidrBlock})) : []};
      return started(await gke.update(project, location, name, {desiredMasterAuthorizedNetworksConfig: cfg}), 'Authorized networks');
    },
  });
}

function editLabels(c, {project, location, name}) {
  const text = h('textarea', {name: 'labels', spellcheck: 'false'});
  text.value = Object.entries(c.resourceLabels || {}).map(([k, v]) => `${k}=${v}`).join('\n');
  return openDialog({
    title: 'Labels',
    body: field('Labels (key=value, one per line)', text),
    onSubmit: async form => {
      const labels = {};
      for (const line of lines(form.elements.labels.value)) {
        const [k, ...v] = line.split('=');
        labels[k.trim()] = v.join('=').trim();
      }
      await gke.setLabels(project, location, name, labels, c.labelFingerprint);
      announce('Labels saved');
    },
  });
}

// The warnings gcloud prints before each rotation (gcloud container
// clusters update), and kubeyard's for the cluster CA.
const rotations = {
  'start-ip': {title: 'Start IP rotation', label: 'Start rotation', warn: (c, n) =>
    `This will start an IP Rotation on cluster [${c.name}]. The master will be updated to serve on a new IP address in addition to the current IP address. Kubernetes Engine will then schedule recreation of all nodes (${n} nodes) to point to the new IP address. If maintenance window is used, nodes are not recreated until a maintenance window occurs. See documentation https://cloud.google.com/kubernetes-engine/docs/how-to/ip-rotation on how to manually update nodes. This operation is long-running and will block other operations on the cluster (including delete) until it has run to completion.`,
    run: ({project, location, name}) => gke.startRotation(project, location, name, false)},
  'start-credential': {title: 'Start credential rotation', label: 'Start rotation', warn: (c, n) =>
    `This will start an IP and Credentials Rotation on cluster [${c.name}]. The master will be updated to serve on a new IP address in addition to the current IP address, and cluster credentials will be rotated. Kubernetes Engine will then schedule recreation of all nodes (${n} nodes) to point to the new IP address. If maintenance window is used, nodes are not recreated until a maintenance window occurs. See documentation https://cloud.google.com/kubernetes-engine/docs/how-to/credential-rotation on how to manually update nodes. This operation is long-running and will block other operations on the cluster (including delete) until it has run to completion.`,
    run: ({project, location, name}) => gke.startRotation(project, location, name, true)},
  'complete-ip': {title: 'Complete IP rotation', label: 'Complete rotation', warn: (c, n, p) =>
    `This will complete the in-progress IP Rotation on cluster [${c.name}]. The master will be updated to stop serving on the old IP address and only serve on the new IP address. Make sure all API clients have been updated to communicate with the new IP address (e.g. by running \`gcloud container clusters get-credentials --project ${p} --location ${c.location} ${c.name}\`). If maintenance window is used, nodes are not recreated until a maintenance window occurs. See documentation https://cloud.google.com/kubernetes-engine/docs/how-to/ip-rotation on how to manually update nodes. This operation is long-running and will block other operations on the cluster (including delete) until it has run to completion.`,
    run: ({project, location, name}) => gke.completeRotation(project, location, name)},
  'complete-credential': {title: 'Complete credential rotation', label: 'Complete rotation', warn: (c, n, p) =>
    `This will complete the in-progress Credential Rotation on cluster [${c.name}]. The master will be updated to stop serving on the old IP address and only serve on the new IP address. Old cluster credentials will be invalidated. Make sure all API clients have been updated to communicate with the new IP address (e.g. by running \`gcloud container clusters get-credentials --project ${p} --location ${c.location} ${c.name}\`). If maintenance window is used, nodes are not recreated until a maintenance window occurs. See documentation https://cloud.google.com/kubernetes-engine/docs/how-to/credential-rotation on how to manually update nodes. This operation is long-running and will block other operations on the cluster (including delete) until it has run to completion.`,
    run: ({project, location, name}) => gke.completeRotation(project, location, name)},
  'cluster-ca': {title: 'Rotate the cluster CA', label: 'Rotate the cluster CA', warn: c =>
    `This will rotate the cluster CA of [${c.name}], as kubeyard update credentials --cluster-ca does: a new cluster CA is trusted beside the old one, then every control-plane component, node and the admin kubeconfig gets certificates from it, control-plane processes restarting one at a time, and then only the new CA is trusted. The etcd and front-proxy CAs stay. It cannot be paused or rolled back, and no other operation runs on the cluster meanwhile. Certificates issued by hand from the old CA stop working at the end; fetch credentials again afterwards.`,
    run: ({project, location, name}) => kubeyard.rotateCA(project, location, name)},
};

function rotate(c, cluster, kind) {
  const r = rotations[kind];
  return openDialog({
    title: r.title,
    body: h('p', {class: 'warning'}, r.warn(c, c.currentNodeCount ?? '?', cluster.project)),
    submitLabel: r.label,
    onSubmit: async () => started(await r.run(cluster), r.title),
  });
}

function removeCluster(c, {project, location, name}, ctx) {
  const confirmInput = h('input', {name: 'confirm', autocomplete: 'off', spellcheck: 'false', required: true});
  return openDialog({
    title: `Delete ${name}`,
    body: [h('p', {}, `The cluster ${name}, its nodes and its workloads will be deleted. This cannot be undone.`),
      field(`Type the cluster's name (${name}) to confirm`, confirmInput)],
    submitLabel: 'Delete',
    danger: true,
    onSubmit: async form => {
      if (form.elements.confirm.value.trim() !== name) throw new Error(`Type ${name} to confirm.`);
      await started(await gke.remove(project, location, name), 'Delete');
      ctx.go('#/clusters');
    },
  });
}
