// Creating a cluster: a form that builds the request gcloud container
// clusters create sends. The engine checks every value; its error, with
// the field it names, shows under the form and nothing is created.
import {h, replace, lastPart, announce} from '../dom.js';
import {gke, compute, errorBox} from '../api.js';
import {field, checkbox, lines} from '../dialogs.js';

export async function form(ctx) {
  const [zones, regions, networks, subnetworks] = await Promise.all([
    compute.zones(ctx.project), compute.regions(ctx.project),
    compute.networks(ctx.project).catch(() => []), compute.subnetworks(ctx.project).catch(() => [])]);

  const name = h('input', {name: 'name', required: true, autocomplete: 'off', spellcheck: 'false'});
  const zonal = h('input', {type: 'radio', name: 'locationType', value: 'zonal', id: 'lt-zonal', checked: true});
  const regional = h('input', {type: 'radio', name: 'locationType', value: 'regional', id: 'lt-regional'});
  const location = h('select', {name: 'location'});
  const nodes = h('input', {name: 'nodes', type: 'number', min: 0, max: 1000, value: 3, required: true});
  const network = h('select', {name: 'network'},
    (networks.length ? networks.map(n => n.name) : ['default']).map(n => h('option', {value: n}, n)));
  const subnetwork = h('select', {name: 'subnetwork'});
  const podRange = h('input', {name: 'podRange', placeholder: 'e.g. 10.96.0.0/14 (default: chosen by the engine)', spellcheck: 'false'});
  const svcRange = h('input', {name: 'servicesRange', placeholder: 'e.g. 10.100.0.0/20 (default: chosen by the engine)', spellcheck: 'false'});
  const masterCidr = h('input', {name: 'masterCidr', placeholder: 'e.g. 172.16.0.0/28', spellcheck: 'false'});
  const cidrs = h('textarea', {name: 'authorizedNetworks', spellcheck: 'false', placeholder: '127.0.0.0/8'});
  const labels = h('textarea', {name: 'labels', spellcheck: 'false', placeholder: 'team=platform'});
  const problem = h('div', {});
  const submit = h('button', {type: 'submit', class: 'primary'}, 'Create');

  const fillLocations = () => {
    const chosen = location.value;
    const list = zonal.checked ? zones.map(z => z.name) : regions.map(r => r.name);
    replace(location, list.map(n => h('option', {value: n}, n)));
    location.value = list.includes(chosen) ? chosen : (zonal.checked ? 'us-central1-a' : 'us-central1');
    fillSubnetworks();
  };
  const fillSubnetworks = () => {
    const region = zonal.checked ? location.value.replace(/-[a-z]$/, '') : location.value;
    const subs = subnetworks.filter(s => lastPart(s.network) === network.value && lastPart(s.region) === region).map(s => s.name);
    replace(subnetwork, h('option', {value: ''}, subs.length ? '(the network\'s subnetwork in the region)' : '(created with the network in the region)'),
      subs.map(s => h('option', {value: s}, s)));
  };
  zonal.addEventListener('change', fillLocations);
  regional.addEventListener('change', fillLocations);
  location.addEventListener('change', fillSubnetworks);
  network.addEventListener('change', fillSubnetworks);
  fillLocations();

  const vpcNative = checkbox('VPC-native (pods get alias IP ranges)', {name: 'vpcNative', checked: true},
    'Off: routes-based, a route per node in the VPC network.');
  const privateNodes = checkbox('Private cluster (nodes have internal addresses only)', {name: 'privateNodes'});
  const privateEndpoint = checkbox('Private endpoint only (no public endpoint)', {name: 'privateEndpoint'});
  const authorized = checkbox('Control-plane authorized networks', {name: 'authorizedOn'},
    'Only these source ranges reach the endpoints.');
  const visibility = checkbox('Intra-node visibility', {name: 'intraNodeVisibility'},
    'Traffic between pods on one node goes through the VPC network, where firewall rules and flow logs see it.');

  const formEl = h('form', {class: 'stack', novalidate: true},
    field('Name', name, 'Lowercase letters, digits and hyphens; starts with a letter.'),
    h('fieldset', {}, h('legend', {}, 'Location'),
      h('div', {class: 'inline', role: 'radiogroup', 'aria-label': 'Location type'},
        h('div', {class: 'check'}, zonal, h('label', {for: 'lt-zonal'}, 'Zonal (one control-plane replica)')),
        h('div', {class: 'check'}, regional, h('label', {for: 'lt-regional'}, 'Regional (three replicas, one per zone)'))),
      field('Zone or region', location)),
    h('fieldset', {}, h('legend', {}, 'Nodes'),
      field('Number of nodes (per zone)', nodes)),
    h('fieldset', {}, h('legend', {}, 'Networking'),
      field('Network', network), field('Subnetwork', subnetwork),
      vpcNative, field('Pod address range', podRange), field('Services address range', svcRange),
      visibility),
    h('fieldset', {}, h('legend', {}, 'Private cluster and access'),
      privateNodes, privateEndpoint,
      field('Control-plane address range (a /28)', masterCidr),
      authorized, field('Authorized networks (CIDR ranges, one per line)', cidrs)),
    h('fieldset', {}, h('legend', {}, 'Labels'),
      field('Labels (key=value, one per line)', labels)),
    problem,
    h('div', {class: 'actions'}, submit, h('a', {class: 'button', href: '#/clusters'}, 'Cancel')));

  formEl.addEventListener('submit', async ev => {
    ev.preventDefault();
    const f = formEl.elements;
    problem.replaceChildren();
    submit.disabled = true;
    try {
      const op = await gke.create(ctx.project, f.location.value, request(f));
      announce(`Creating ${f.name.value}: operation ${op.name} started`);
      ctx.go(`#/clusters/${encodeURIComponent(f.location.value)}/${encodeURIComponent(f.name.value.trim())}`);
    } catch (err) {
      showError(formEl, problem, err);
    } finally {
      submit.disabled = false;
    }
  });

  const el = h('section', {},
    h('p', {class: 'crumbs'}, h('a', {href: '#/clusters'}, 'Clusters'), ' / create'),
    h('h1', {}, 'Create a Kubernetes cluster'), formEl);
  return {title: 'Create a cluster', el};
}

// inputOf are the form's inputs by the request fields they fill (the
// first that prefixes the field an error names).
const inputOf = [
  ['cluster.name', 'name'], ['cluster.nodePools', 'nodes'], ['cluster.initialNodeCount', 'nodes'],
  ['cluster.locations', 'location'], ['cluster.networkConfig.enableIntraNodeVisibility', 'intraNodeVisibility'],
  ['cluster.network', 'network'], ['cluster.subnetwork', 'subnetwork'],
  ['cluster.clusterIpv4Cidr', 'podRange'], ['cluster.ipAllocationPolicy.clusterIpv4Cidr', 'podRange'],
  ['cluster.ipAllocationPolicy.servicesIpv4Cidr', 'servicesRange'], ['cluster.ipAllocationPolicy', 'vpcNative'],
  ['cluster.privateClusterConfig.masterIpv4CidrBlock', 'masterCidr'],
  ['cluster.privateClusterConfig.enablePrivateEndpoint', 'privateEndpoint'],
  ['cluster.privateClusterConfig', 'privateNodes'], ['cluster.masterAuthorizedNetworksConfig', 'authorizedNetworks'],
  ['cluster.resourceLabels', 'labels'],
];

// showError shows the API's error under the form, marks the input of the
// field it names as invalid, and offers a way to it.
function showError(formEl, problem, err) {
  for (const el of formEl.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  const box = errorBox(err);
  box.id = 'create-error';
  box.setAttribute('tabindex', '-1');
  const name = err.field && inputOf.find(([prefix]) => err.field.startsWith(prefix))?.[1];
  const input = name && formEl.elements[name];
  if (input) {
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-errormessage', box.id);
    box.append(h('button', {type: 'button', class: 'link', onclick: () => input.focus()}, 'Go to the field'));
  }
  problem.replaceChildren(box);
  box.focus();
}

// request is the cluster the form describes, as the GKE API takes it.
function request(f) {
  const c = {
    name: f.name.value.trim(),
    network: f.network.value,
    nodePools: [{name: 'default-pool', initialNodeCount: Number(f.nodes.value)}],
  };
  if (f.subnetwork.value) c.subnetwork = f.subnetwork.value;
  const pods = f.podRange.value.trim();
  const services = f.servicesRange.value.trim();
  if (f.vpcNative.checked) {
    c.ipAllocationPolicy = {useIpAliases: true};
    if (pods) c.ipAllocationPolicy.clusterIpv4CidrBlock = pods;
    if (services) c.ipAllocationPolicy.servicesIpv4CidrBlock = services;
  } else {
    c.ipAllocationPolicy = {useRoutes: true};
    if (pods) c.clusterIpv4Cidr = pods;
    if (services) c.ipAllocationPolicy.servicesIpv4CidrBlock = services;
  }
  if (f.intraNodeVisibility.checked) c.networkConfig = {enableIntraNodeVisibility: true};
  const master = f.masterCidr.value.trim();
  if (f.privateNodes.checked || f.privateEndpoint.checked || master) {
    c.privateClusterConfig = {enablePrivateNodes: f.privateNodes.checked, enablePrivateEndpoint: f.privateEndpoint.checked};
    if (master) c.privateClusterConfig.masterIpv4CidrBlock = master;
  }
  if (f.authorizedOn.checked) {
    c.masterAuthorizedNetworksConfig = {enabled: true, cidrBlocks: lines(f.authorizedNetworks.value).map(cidrBlock => ({cidrBlock}))};
  }
  const labels = {};
  for (const line of lines(f.labels.value)) {
    const [k, ...v] = line.split('=');
    labels[k.trim()] = v.join('=').trim();
  }
  if (Object.keys(labels).length) c.resourceLabels = labels;
  return c;
}
