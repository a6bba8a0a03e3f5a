// The console's entry point: log in, then views by location hash.

import { createApi } from './api.js';
import { h, message, replace } from './dom.js';
import { href, parseHash } from './router.js';
import { forget, identify, remember, storedKey, storedProfile } from './session.js';
import * as activations from './views/activations.js';
import * as billing from './views/billing.js';
import * as deploy from './views/deploy.js';
import * as economics from './views/economics.js';
import * as functionDetail from './views/function_detail.js';
import * as functions from './views/functions.js';
import * as nodes from './views/nodes.js';

const VIEWS = {
  functions: { title: 'Functions', module: functions, detail: functionDetail },
  deploy: { title: 'Deploy', module: deploy },
  activations: { title: 'Activations', module: activations },
  billing: { title: 'Bill', module: billing },
  nodes: { title: 'Nodes', module: nodes, admin: true },
  economics: { title: 'Economics', module: economics, admin: true },
};

const $ = (id) => document.getElementById(id);

function start() {
  const api = createApi(storedKey, () => logout('The gateway no longer accepts this key: log in again.'));
  let cleanup = null;
  let generation = 0;
  let openapi = null;
  const openapiLoaded = fetch('/v1/openapi.json', { credentials: 'omit' })
    .then((r) => (r.ok ? r.json() : null))
    .then((doc) => { openapi = doc; })
    .catch(() => {});

  const announce = (text) => {
    $('announce').textContent = '';
    setTimeout(() => { $('announce').textContent = text; }, 50);
  };

  function leaveView() {
    if (typeof cleanup === 'function') cleanup();
    cleanup = null;
  }

  function showLogin(note) {
    leaveView();
    generation += 1;
    $('nav').hidden = true;
    $('who').hidden = true;
    replace($('view'));
    $('login').hidden = false;
    $('login-error').textContent = note ?? '';
    $('api-key').value = '';
    $('api-key').focus();
  }

  function logout(note) {
    forget();
    showLogin(note);
  }

  function showChrome(profile) {
    $('login').hidden = true;
    $('nav').hidden = false;
    $('who').hidden = false;
    $('who-name').textContent = profile.admin ? 'admin' : `tenant ${profile.tenant}`;
    for (const item of document.querySelectorAll('.admin-only')) item.hidden = !profile.admin;
  }

  const navigate = (hash, { quiet = false } = {}) => {
    if (quiet) history.replaceState(null, '', hash);
    else if (location.hash === hash) route();
    else location.hash = hash;
  };

  async function route() {
    const profile = storedProfile();
    if (!storedKey() || !profile) return showLogin();
    showChrome(profile);
    leaveView();
    const mine = ++generation;
    const { view, arg, params } = parseHash(location.hash);
    const entry = VIEWS[view] && (!VIEWS[view].admin || profile.admin) ? VIEWS[view] : VIEWS.functions;
    for (const link of document.querySelectorAll('#nav a')) {
      if (link.dataset.view === view) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    const module = arg && entry.detail ? entry.detail : entry.module;
    document.title = `${arg ?? entry.title} · Nimbus console`;
    const root = h('div', { class: `view view-${view}` });
    replace($('view'), root);
    await openapiLoaded;
    try {
      const done = await module.render(root, { api, arg, params, profile, openapi, announce, navigate });
      if (mine !== generation) {
        if (typeof done === 'function') done();
        return;
      }
      cleanup = done ?? null;
    } catch (exc) {
      if (mine !== generation) return;
      root.append(message(exc.message));
    }
    root.querySelector('h1')?.focus();
  }

  $('login-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const key = $('api-key').value.trim();
    const button = e.target.querySelector('button');
    button.disabled = true;
    $('login-error').textContent = '';
    try {
      const probe = createApi(() => key);
      const profile = await identify(probe);
      remember(key, profile);
      $('api-key').value = '';
      announce(`Logged in as ${profile.admin ? 'admin' : profile.tenant}`);
      if (!location.hash) history.replaceState(null, '', href('functions'));
      await route();
    } catch (exc) {
      $('login-error').textContent = exc.status === 401 ? 'That key is not valid here.' : exc.message;
      $('api-key').focus();
    } finally {
      button.disabled = false;
    }
  });
  $('logout').addEventListener('click', () => logout('Logged out.'));
  window.addEventListener('hashchange', route);
  route();
}

start();
