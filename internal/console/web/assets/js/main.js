// The console's frame: the project, the routes (the part of the address
// after #), and the live refresh of the page shown.
import {h, replace, announce} from './dom.js';
import {errorBox} from './api.js';
import * as clusters from './views/clusters.js';
import * as create from './views/create.js';
import * as operations from './views/operations.js';
import * as networks from './views/networks.js';
import * as flowlogs from './views/flowlogs.js';
import * as workloads from './views/workloads.js';

// Each route is a pattern of the address and the view that shows it, which
// gets the pattern's parts (decoded, but for a query, which the view
// parses); a view returns {title, el, refresh}: refresh, when there is
// one, brings the page up to date in place (every refreshEvery while it
// is shown).
const routes = [
  [/^#\/clusters\/?$/, clusters.list],
  [/^#\/clusters\/create$/, create.form],
  [/^#\/clusters\/([^/]+)\/([^/]+)\/pods\/([^/]+)\/([^/]+)\/log$/, workloads.podLog],
  [/^#\/clusters\/([^/]+)\/([^/]+)(?:\/(details|nodes|workloads|operations))?$/, clusters.details],
  [/^#\/operations$/, operations.page],
  [/^#\/networks(?:\/(subnetworks|firewalls|routes))?$/, networks.page],
  [/^#\/flowlogs(?:\?(.*))?$/, flowlogs.page, {query: true}],
];

const refreshEvery = 2000;
const defaultProject = 'kubeyard-project';

const main = document.getElementById('main');
const projectInput = document.getElementById('project');
let current = null; // the view shown
let shown = 0;      // counts navigations, so a slow view does not replace a newer one

function project() {
  return localStorage.getItem('kubeyard.project') || defaultProject;
}

// go shows the page at hash (an address such as '#/clusters').
export function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

async function route() {
  const hash = location.hash || '#/clusters';
  const n = ++shown;
  for (const a of document.querySelectorAll('.side a')) {
    const on = hash.startsWith('#/' + a.dataset.section);
    if (on) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  const match = routes.map(([re, view, opts]) => [hash.match(re), view, opts]).find(([m]) => m);
  let view;
  try {
    if (!match) throw new Error(`No page at ${hash}.`);
    const [m, make, opts] = match;
    const parts = m.slice(1).map(s => s && !opts?.query ? decodeURIComponent(s) : s);
    view = await make({project: project(), go}, ...parts);
  } catch (err) {
    view = {title: 'Error', el: h('div', {}, h('h1', {}, 'Something went wrong'), errorBox(err))};
  }
  if (n !== shown) return;
  current = view;
  replace(main, view.el);
  document.title = `${view.title} · kubeyard console`;
  // Where the keyboard and screen readers land after a navigation.
  main.focus({preventScroll: true});
  announce(view.title);
}

let refreshing = false;
async function refresh() {
  if (refreshing || !current?.refresh || document.visibilityState !== 'visible') return;
  if (document.querySelector('dialog[open]')) return; // not under someone's hands
  refreshing = true;
  const view = current;
  try {
    await view.refresh();
  } catch (err) {
    console.warn('refresh', err);
  } finally {
    refreshing = false;
  }
}

projectInput.value = project();
document.getElementById('project-form').addEventListener('submit', ev => {
  ev.preventDefault();
  const p = projectInput.value.trim();
  if (!p) return;
  localStorage.setItem('kubeyard.project', p);
  announce(`Project ${p}`);
  route();
});
projectInput.addEventListener('change', () => document.getElementById('project-form').requestSubmit());
window.addEventListener('hashchange', route);
setInterval(refresh, refreshEvery);
route();
