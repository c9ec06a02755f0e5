// VPC networks: networks and their peerings, subnetworks (flow logs on and
// off), firewall rules and routes, from the Compute API.
import {h, replace, table, statusBadge, lastPart, announce} from '../dom.js';
import {compute, errorBox} from '../api.js';
import {live} from '../live.js';

const tabs = [
  ['', 'Networks and peerings', ctx => compute.networks(ctx.project), networks => [
    h('h2', {}, 'Networks'), networksTable(networks.sort(byName)),
    h('h2', {}, 'Peerings'), peeringsTable(networks.sort(byName))]],
  ['subnetworks', 'Subnetworks', ctx => compute.subnetworks(ctx.project), (subs, ctx) => subnetworksTable(subs.sort(byName), ctx)],
  ['firewalls', 'Firewall rules', ctx => compute.firewalls(ctx.project),
    rules => firewallsTable(rules.sort((a, b) => (a.priority - b.priority) || a.name.localeCompare(b.name)))],
  ['routes', 'Routes', ctx => compute.routes(ctx.project), routes => routesTable(routes.sort(byName))],
];

const byName = (a, b) => a.name.localeCompare(b.name);

// page is one tab of the VPC networks page (tab: '' for the networks).
export async function page(ctx, tab = '') {
  const [, title, fetch, draw] = tabs.find(([t]) => t === tab);
  const body = h('div', {});
  const el = h('section', {}, h('h1', {}, 'VPC networks'),
    h('nav', {class: 'tabs', 'aria-label': 'VPC networks'}, tabs.map(([t, label]) =>
      h('a', {href: '#/networks' + (t ? '/' + t : ''), 'aria-current': t === tab ? 'page' : null}, label))),
    body);
  const refresh = live(body, () => fetch(ctx), data => draw(data, ctx));
  await refresh();
  return {title, el, refresh};
}

function networksTable(networks) {
  return table([
    {title: 'Name', nowrap: true, cell: n => n.name},
    {title: 'Subnet mode', cell: n => n.autoCreateSubnetworks ? 'Auto' : 'Custom'},
    {title: 'Subnetworks', num: true, cell: n => (n.subnetworks || []).length},
    {title: 'MTU', num: true, cell: n => n.mtu || '—'},
    {title: 'Routing mode', cell: n => n.routingConfig?.routingMode || '—'},
    {title: 'Peerings', num: true, cell: n => (n.peerings || []).length},
  ], networks, 'No networks.', 'Networks');
}

function peeringsTable(networks) {
  const rows = networks.flatMap(n => (n.peerings || []).map(p => ({local: n.name, ...p})));
  return table([
    {title: 'Name', cell: p => p.name},
    {title: 'Network', cell: p => p.local},
    {title: 'Peer network', cell: p => peerOf(p.network)},
    {title: 'State', cell: p => statusBadge(p.state || 'Unknown')},
    {title: 'Exports custom routes', cell: p => p.exportCustomRoutes ? 'Yes' : 'No'},
    {title: 'Imports custom routes', cell: p => p.importCustomRoutes ? 'Yes' : 'No'},
  ], rows, 'No peerings.', 'Peerings');
}

// peerOf is the peered network's path: projects/P/global/networks/N.
function peerOf(url) {
  return String(url || '').split('/').slice(-5).join('/');
}

function subnetworksTable(subs, ctx) {
  return table([
    {title: 'Name', nowrap: true, cell: s => s.name},
    {title: 'Region', nowrap: true, cell: s => lastPart(s.region)},
    {title: 'Network', cell: s => lastPart(s.network)},
    {title: 'Range', cell: s => h('span', {class: 'mono'}, s.ipCidrRange)},
    {title: 'Secondary ranges', cell: s => (s.secondaryIpRanges || []).map(r => `${r.rangeName} ${r.ipCidrRange}`).join(', ') || '—'},
    {title: 'Private Google access', cell: s => s.privateIpGoogleAccess ? 'On' : 'Off'},
    {title: 'Flow logs', cell: s => statusBadge(s.enableFlowLogs ? 'ON' : 'OFF', s.enableFlowLogs ? 'On' : 'Off')},
    {title: '', cell: s => flowLogsButton(s, ctx)},
  ], subs, 'No subnetworks.', 'Subnetworks');
}

function flowLogsButton(s, ctx) {
  const out = h('div', {});
  const on = !s.enableFlowLogs;
  const btn = h('button', {type: 'button', 'aria-label': `Turn flow logs ${on ? 'on' : 'off'} for ${s.name} in ${lastPart(s.region)}`,
    onclick: async () => {
      btn.disabled = true;
      try {
        await compute.patchSubnetwork(ctx.project, lastPart(s.region), s.name, {fingerprint: s.fingerprint, enableFlowLogs: on});
        announce(`Flow logs ${on ? 'on' : 'off'} for ${s.name}`);
      } catch (err) {
        out.append(errorBox(err));
        btn.disabled = false;
      }
    }}, on ? 'Turn on' : 'Turn off');
  out.append(btn);
  return out;
}

function firewallsTable(rules) {
  const spec = list => (list || []).map(a => a.IPProtocol + (a.ports ? ':' + a.ports.join(',') : '')).join('; ');
  return table([
    {title: 'Name', nowrap: true, cell: r => r.name},
    {title: 'Network', cell: r => lastPart(r.network)},
    {title: 'Direction', cell: r => r.direction},
    {title: 'Priority', num: true, cell: r => r.priority},
    {title: 'Action', cell: r => r.denied?.length ? statusBadge('DENY', 'Deny') : statusBadge('ALLOW', 'Allow')},
    {title: 'Protocols and ports', cell: r => spec(r.allowed?.length ? r.allowed : r.denied) || 'all'},
    {title: 'Sources', cell: r => [...(r.sourceRanges || []), ...(r.sourceTags || []).map(t => 'tag:' + t)].join(', ') || '—'},
    {title: 'Destinations', cell: r => (r.destinationRanges || []).join(', ') || '—'},
    {title: 'Targets', cell: r => (r.targetTags || []).join(', ') || 'All instances'},
    {title: 'Logs', cell: r => r.logConfig?.enable ? 'On' : 'Off'},
    {title: 'Enforced', cell: r => r.disabled ? 'Disabled' : 'Yes'},
  ], rules, 'No firewall rules.', 'Firewall rules');
}

function routesTable(routes) {
  const hop = r => r.nextHopGateway ? lastPart(r.nextHopGateway) : r.nextHopInstance ? lastPart(r.nextHopInstance)
    : r.nextHopIp || r.nextHopPeering || r.nextHopNetwork && `network ${lastPart(r.nextHopNetwork)}` || '—';
  return table([
    {title: 'Name', nowrap: true, cell: r => r.name},
    {title: 'Network', cell: r => lastPart(r.network)},
    {title: 'Destination', cell: r => h('span', {class: 'mono'}, r.destRange)},
    {title: 'Next hop', cell: r => hop(r)},
    {title: 'Priority', num: true, cell: r => r.priority},
    {title: 'Tags', cell: r => (r.tags || []).join(', ') || '—'},
  ], routes, 'No routes.', 'Routes');
}
