// The engine's REST API, as gcloud calls it: the same paths and bodies,
// with the session cookie in place of the access token and the session's
// CSRF token on every change. Errors are google.rpc.Status.
import {h} from './dom.js';

const csrf = document.querySelector('meta[name="csrf-token"]')?.content || '';

// ApiError is a google.rpc.Status: code (HTTP), status ("INVALID_ARGUMENT"),
// message, and the request field at fault when the API named one.
export class ApiError extends Error {
  constructor(code, body) {
    const st = body?.error || {};
    super(st.message || `HTTP ${code}`);
    this.code = st.code || code;
    this.status = st.status || '';
    const violations = (st.details || []).flatMap(d => d.fieldViolations || []);
    this.field = violations.length ? violations[0].field : '';
    this.reason = (st.details || []).find(d => d.reason)?.reason || '';
  }
}

// call sends a request and returns the JSON answer (text when asked).
export async function call(method, path, body, {text = false} = {}) {
  const headers = {'Accept': text ? 'text/plain' : 'application/json'};
  if (method !== 'GET') headers['X-Kubeyard-Csrf'] = csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, {method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body)});
  const raw = await res.text();
  if (!res.ok) {
    let parsed = null;
    try { parsed = JSON.parse(raw); } catch { /* not JSON */ }
    if (res.status === 401) sessionLost();
    throw new ApiError(res.status, parsed || {error: {message: raw.trim() || res.statusText}});
  }
  if (text) return raw;
  return raw ? JSON.parse(raw) : {};
}

// sessionLost sends the browser back to the login page: the engine
// restarted, or the session expired.
function sessionLost() {
  window.location.assign('/');
}

// errorBox shows an API error: its status, message and field.
export function errorBox(err) {
  if (!(err instanceof ApiError)) {
    return h('div', {class: 'error', role: 'alert'}, String(err?.message || err));
  }
  return h('div', {class: 'error', role: 'alert'},
    h('strong', {}, err.status || `HTTP ${err.code}`), ': ', err.message,
    err.field && h('span', {class: 'field'}, 'Field: ', err.field));
}

// The APIs, by project.
export const gke = {
  base: (p, loc) => `/v1/projects/${enc(p)}/locations/${enc(loc)}`,
  clusters: (p, loc = '-') => call('GET', `${gke.base(p, loc)}/clusters`).then(r => r.clusters || []),
  cluster: (p, loc, name) => call('GET', `${gke.base(p, loc)}/clusters/${enc(name)}`),
  create: (p, loc, cluster) => call('POST', `${gke.base(p, loc)}/clusters`, {cluster}),
  remove: (p, loc, name) => call('DELETE', `${gke.base(p, loc)}/clusters/${enc(name)}`),
  update: (p, loc, name, update) => call('PUT', `${gke.base(p, loc)}/clusters/${enc(name)}`, {update}),
  setLabels: (p, loc, name, resourceLabels, labelFingerprint) =>
    call('POST', `${gke.base(p, loc)}/clusters/${enc(name)}:setResourceLabels`, {resourceLabels, labelFingerprint}),
  startRotation: (p, loc, name, rotateCredentials) =>
    call('POST', `${gke.base(p, loc)}/clusters/${enc(name)}:startIpRotation`, {rotateCredentials}),
  completeRotation: (p, loc, name) => call('POST', `${gke.base(p, loc)}/clusters/${enc(name)}:completeIpRotation`, {}),
  pools: (p, loc, name) => call('GET', `${gke.base(p, loc)}/clusters/${enc(name)}/nodePools`).then(r => r.nodePools || []),
  setSize: (p, loc, name, pool, nodeCount) =>
    call('POST', `${gke.base(p, loc)}/clusters/${enc(name)}/nodePools/${enc(pool)}:setSize`, {nodeCount}),
  operations: (p, loc = '-') => call('GET', `${gke.base(p, loc)}/operations`).then(r => r.operations || []),
  cancel: (p, loc, op) => call('POST', `${gke.base(p, loc)}/operations/${enc(op)}:cancel`, {}),
  serverConfig: (p, loc) => call('GET', `${gke.base(p, loc)}/serverConfig`),
};

// kubeyard's own calls: the cluster CA rotation, reads of a cluster's API.
export const kubeyard = {
  base: (p, loc, name) => `/kubeyard/v1/projects/${enc(p)}/locations/${enc(loc)}/clusters/${enc(name)}`,
  rotateCA: (p, loc, name) => call('POST', `${kubeyard.base(p, loc, name)}/rotateClusterCA`, {}),
  read: (p, loc, name, path, query = {}) => {
    const q = new URLSearchParams(query).toString();
    return call('GET', `${kubeyard.base(p, loc, name)}/kubernetes${path}${q ? '?' + q : ''}`,
      undefined, {text: path.endsWith('/log')});
  },
};

export const compute = {
  base: p => `/compute/v1/projects/${enc(p)}`,
  networks: p => call('GET', `${compute.base(p)}/global/networks`).then(r => r.items || []),
  subnetworks: p => call('GET', `${compute.base(p)}/aggregated/subnetworks`)
    .then(r => Object.values(r.items || {}).flatMap(s => s.subnetworks || [])),
  patchSubnetwork: (p, region, name, body) =>
    call('PATCH', `${compute.base(p)}/regions/${enc(region)}/subnetworks/${enc(name)}`, body),
  firewalls: p => call('GET', `${compute.base(p)}/global/firewalls`).then(r => r.items || []),
  routes: p => call('GET', `${compute.base(p)}/global/routes`).then(r => r.items || []),
  regions: p => call('GET', `${compute.base(p)}/regions`).then(r => r.items || []),
  zones: p => call('GET', `${compute.base(p)}/zones`).then(r => r.items || []),
};

export const logging = {
  entries: (p, filter, pageSize = 50) => call('POST', '/v2/entries:list',
    {resourceNames: [`projects/${p}`], filter, orderBy: 'timestamp desc', pageSize}).then(r => r.entries || []),
};

function enc(s) {
  return encodeURIComponent(s);
}
