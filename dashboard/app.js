// burrowd's dashboard: a client of the admin API. Every value the API returns reaches the
// page as a text node or a DOM property, never as markup, so names, labels, metadata and
// key comments that agents, visitors or operators chose stay text.
'use strict';

const TOKEN_KEY = 'burrowd-admin-token';
const REFRESH_MS = 2000;

const $ = (id) => document.getElementById(id);

/** An element with `props` (class, text, for, dataset, value, on<event>, attributes) and children. */
function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = String(value);
    else if (key === 'value') node.value = String(value);
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** The API refused the token: the sign-in form is back, nothing else to report. */
class AuthError extends Error {}

/** The API's `error` text for a refused request. */
class ApiError extends Error {}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

async function api(method, path, body) {
  const headers = { Authorization: 'Bearer ' + token() };
  const init = { method, headers, cache: 'no-store', credentials: 'omit' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new ApiError('the relay did not answer (' + e.message + ')');
  }
  if (resp.status === 401) {
    signOut('The admin token was not accepted. Enter it again.');
    throw new AuthError('admin token refused');
  }
  const text = await resp.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch (e) {
      data = null;
    }
  }
  if (!resp.ok) {
    const message = data && typeof data.error === 'string' ? data.error : resp.status + ' ' + resp.statusText;
    throw new ApiError(message);
  }
  return data;
}

const q = encodeURIComponent;

// ---- formatting ----

function localTime(secs) {
  if (!secs) return '';
  return new Date(secs * 1000).toLocaleString();
}

function bytes(n) {
  if (n < 1024) return n + ' B';
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = -1;
  do {
    v /= 1024;
    i += 1;
  } while (v >= 1024 && i < units.length - 1);
  return v.toFixed(v < 10 ? 1 : 0) + ' ' + units[i];
}

function plural(n, one, many) {
  return n + ' ' + (n === 1 ? one : many);
}

/** A link for http(s) URLs (which agents cannot choose the scheme of), text for the rest. */
function urlNode(url) {
  try {
    const parsed = new URL(url);
    if (parsed.protocol === 'http:' || parsed.protocol === 'https:') {
      return el('a', { href: parsed.href, target: '_blank', rel: 'noopener noreferrer', text: url });
    }
  } catch (e) {
    // Not a URL: shown as the text it is.
  }
  return el('span', { text: url });
}

/** A table with `columns` (header texts) and one row per item, cells made by `cells`. */
function table(className, columns, items, cells, rowProps) {
  return el('table', { class: className },
    el('thead', {}, el('tr', {}, columns.map((c) => el('th', { scope: 'col', text: c })))),
    el('tbody', {}, items.map((item) =>
      el('tr', rowProps ? rowProps(item) : {}, cells(item).map((c) => el('td', {}, c))))));
}

/** A button that runs `action`, reporting a failure in `errorNode`. */
function actionButton(label, errorNode, action, props) {
  const button = el('button', Object.assign({ type: 'button', class: 'small', text: label }, props || {}));
  button.addEventListener('click', async () => {
    errorNode.textContent = '';
    button.disabled = true;
    try {
      await action();
    } catch (e) {
      if (!(e instanceof AuthError)) errorNode.textContent = e.message;
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

/**
 * A form of labelled `fields` whose submit runs `onSubmit(values)`; a refusal is shown in
 * the form's own error line, beside the button that caused it.
 */
function form(id, fields, submitLabel, onSubmit) {
  const error = el('p', { class: 'error', role: 'alert', id: id + '-error' });
  const button = el('button', { type: 'submit', text: submitLabel });
  const inputs = fields.map((f) => {
    const props = {
      id: id + '-' + f.name,
      name: f.name,
      placeholder: f.placeholder,
      required: f.required,
      spellcheck: 'false',
      autocomplete: 'off',
      value: f.value,
    };
    if (f.type) props.type = f.type;
    if (f.min !== undefined) props.min = f.min;
    if (f.wide) props.class = 'wide';
    return [f, el('input', props)];
  });
  const node = el('form', { id, class: 'inline' },
    inputs.map(([f, input]) => el('span', { class: 'field' },
      el('label', { for: input.id, text: f.label }), input)),
    button, error);
  node.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    const values = {};
    for (const [f, input] of inputs) values[f.name] = input.value.trim();
    button.disabled = true;
    try {
      await onSubmit(values);
      for (const [f, input] of inputs) if (!f.keep) input.value = '';
    } catch (e) {
      if (!(e instanceof AuthError)) error.textContent = e.message;
    } finally {
      button.disabled = false;
    }
  });
  node.inputs = Object.fromEntries(inputs.map(([f, input]) => [f.name, input]));
  return node;
}

// ---- views ----

const VIEWS = ['login-view', 'agents-view', 'accounts-view', 'account-view'];
let refreshTimer = null;

function show(view) {
  for (const v of VIEWS) $(v).hidden = v !== view;
  for (const [link, views] of [['nav-agents', ['agents-view']], ['nav-accounts', ['accounts-view', 'account-view']]]) {
    if (views.includes(view)) $(link).setAttribute('aria-current', 'page');
    else $(link).removeAttribute('aria-current');
  }
}

function stopRefresh() {
  if (refreshTimer !== null) clearInterval(refreshTimer);
  refreshTimer = null;
}

/** Runs `load` now and every two seconds while the view stays, one run at a time. */
function keepRefreshing(load) {
  stopRefresh();
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    try {
      await load();
    } finally {
      busy = false;
    }
  };
  tick();
  refreshTimer = setInterval(tick, REFRESH_MS);
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  stopRefresh();
  $('nav').hidden = true;
  $('relay-info').textContent = '';
  $('login-error').textContent = message || '';
  $('token-input').value = '';
  show('login-view');
  $('token-input').focus();
}

function renderStatus(s) {
  const parts = ['burrowd ' + s.version, 'domain ' + s.domain];
  if (s.region) parts.push('region ' + s.region);
  parts.push(plural(s.accounts, 'account', 'accounts'),
    plural(s.sessions, 'session', 'sessions'),
    plural(s.tunnels, 'tunnel', 'tunnels'));
  $('relay-info').textContent = parts.join(' · ');
}

function tunnelsTable(tunnels) {
  if (!tunnels.length) return el('p', { class: 'muted', text: 'No tunnels.' });
  return table('tunnels',
    ['Proto', 'URLs', 'Metadata', 'Open', 'Connections', 'Requests', 'Bytes in', 'Bytes out'],
    tunnels,
    (t) => [
      t.proto,
      el('span', { class: 'urls' }, t.urls.map(urlNode)),
      t.metadata ? el('code', { class: 'metadata', text: t.metadata }) : el('span', { class: 'muted', text: '—' }),
      String(t.counters.open),
      String(t.counters.connections),
      String(t.counters.requests),
      bytes(t.counters.bytes_in),
      bytes(t.counters.bytes_out),
    ],
    (t) => ({ class: 'tunnel', dataset: { id: t.id } }));
}

let lastAgents = null;

function renderAgents(sessions) {
  const seen = JSON.stringify(sessions);
  if (seen === lastAgents) return;
  lastAgents = seen;
  const box = $('agents');
  if (!sessions.length) {
    box.replaceChildren(el('p', { class: 'empty', text: 'No agent is connected.' }));
    return;
  }
  const error = $('agents-action-error');
  const columns = ['Account', 'Client version', 'Address', 'Region', 'Started', 'Via', ''];
  const body = el('tbody');
  for (const s of sessions) {
    body.append(el('tr', { class: 'session', dataset: { id: s.id } },
      el('td', {}, s.account ? el('a', { href: '#account/' + q(s.account), text: s.account }) : el('span', { class: 'muted', text: '(open relay)' })),
      el('td', { text: s.client_version }),
      el('td', { text: s.addr }),
      el('td', { text: s.region }),
      el('td', { text: localTime(s.started) }),
      el('td', { text: s.via }),
      el('td', {}, actionButton('Kick', error, async () => {
        await api('DELETE', '/api/sessions/' + q(s.id));
        await refreshAgents();
      }, { 'aria-label': 'End session ' + s.id }))));
    body.append(el('tr', { class: 'session-tunnels', dataset: { session: s.id } },
      el('td', { colspan: columns.length }, tunnelsTable(s.tunnels))));
  }
  box.replaceChildren(el('table', { class: 'sessions' },
    el('thead', {}, el('tr', {}, columns.map((c) => el('th', { scope: 'col', text: c })))),
    body));
}

let lastNodes = null;

// The fleet's nodes, each with the sessions it holds (every node publishes its own); only
// on a relay that is a node of a fleet.
function renderNodes(fleet) {
  const seen = JSON.stringify(fleet);
  if (seen === lastNodes) return;
  lastNodes = seen;
  const box = $('fleet');
  if (!fleet.node) {
    box.replaceChildren();
    return;
  }
  const heading = el('h3', { text: 'Fleet: ' + plural(fleet.nodes.length, 'node', 'nodes') });
  const note = fleet.etcd_reachable ? null
    : el('p', { class: 'error', text: 'etcd does not answer: this node serves what is bound and refuses new names.' });
  const rows = table('nodes',
    ['Node', 'Address', 'Region', 'Started', 'Sessions', 'Public URLs'],
    fleet.nodes,
    (n) => [
      n.id === fleet.node ? el('strong', { text: n.id + ' (this node)' }) : n.id,
      n.addr,
      n.region || '',
      localTime(n.started),
      String(n.sessions.length),
      el('span', { class: 'urls' }, n.sessions.flatMap((s) => s.tunnels.flatMap((t) => t.urls)).map(urlNode)),
    ],
    (n) => ({ class: 'node', dataset: { id: n.id } }));
  box.replaceChildren(...[heading, note, rows].filter(Boolean));
}

async function refreshAgents() {
  try {
    const [status, sessions, fleet] = await Promise.all(
      [api('GET', '/api/status'), api('GET', '/api/sessions'), api('GET', '/api/nodes')]);
    renderStatus(status);
    renderNodes(fleet);
    renderAgents(sessions);
    $('agents-error').textContent = '';
  } catch (e) {
    if (!(e instanceof AuthError)) $('agents-error').textContent = e.message;
  }
}

let lastAccounts = null;

async function refreshAccounts() {
  const accounts = await api('GET', '/api/accounts');
  const seen = JSON.stringify(accounts);
  if (seen === lastAccounts) return;
  lastAccounts = seen;
  const box = $('accounts');
  if (!accounts.length) {
    box.replaceChildren(el('p', { class: 'empty', text: 'No accounts yet: the relay is open to every agent.' }));
    return;
  }
  box.replaceChildren(table('accounts',
    ['Name', 'Sessions', 'Tunnels', 'TCP ports', 'Created'],
    accounts,
    (a) => [
      el('a', { href: '#account/' + q(a.name), text: a.name }),
      String(a.quotas.sessions),
      String(a.quotas.tunnels),
      String(a.quotas.tcp_ports),
      localTime(a.created),
    ],
    (a) => ({ class: 'account', dataset: { name: a.name } })));
}

$('account-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const input = $('account-name');
  const error = $('account-error');
  error.textContent = '';
  try {
    await api('POST', '/api/accounts', { name: input.value.trim() });
    input.value = '';
    await refreshAccounts();
  } catch (e) {
    if (!(e instanceof AuthError)) error.textContent = e.message;
  }
});

/** One list of the account page: a heading, a table, its form and its error line. */
function listSection(id, title, columns, cells, empty) {
  const error = el('p', { class: 'error', role: 'alert' });
  const list = el('div', { class: 'list' });
  const node = el('section', { id, class: 'card' }, el('h3', { text: title }), list, error);
  let last = null;
  return {
    node,
    error,
    render(items) {
      const seen = JSON.stringify(items);
      if (seen === last) return;
      last = seen;
      list.replaceChildren(items.length
        ? table(id, columns, items, cells, (item) => ({ class: 'item' }))
        : el('p', { class: 'empty', text: empty }));
    },
    add(...nodes) {
      node.append(...nodes);
    },
  };
}

/** Builds the page of account `name`; returns its refresh function. */
function accountPage(name) {
  const view = $('account-view');
  const path = '/api/accounts/' + q(name);
  let reload = async () => {};
  const after = async () => reload();

  const deleteError = el('p', { class: 'error', role: 'alert' });
  let armed = false;
  const deleteButton = el('button', { type: 'button', class: 'danger', id: 'delete-account', text: 'Delete account' });
  deleteButton.addEventListener('click', async () => {
    deleteError.textContent = '';
    if (!armed) {
      armed = true;
      deleteButton.textContent = 'Click again to delete ' + name + ' and all it owns';
      setTimeout(() => {
        armed = false;
        deleteButton.textContent = 'Delete account';
      }, 5000);
      return;
    }
    try {
      await api('DELETE', path);
      location.hash = '#accounts';
    } catch (e) {
      if (!(e instanceof AuthError)) deleteError.textContent = e.message;
    }
  });

  const quotas = form('quotas-form', [
    { name: 'sessions', label: 'Agent sessions', type: 'number', min: 0, required: true, keep: true },
    { name: 'tunnels', label: 'Tunnels', type: 'number', min: 0, required: true, keep: true },
    { name: 'tcp_ports', label: 'TCP ports', type: 'number', min: 0, required: true, keep: true },
  ], 'Save quotas', async (v) => {
    quotasNote.textContent = '';
    const body = { sessions: Number(v.sessions), tunnels: Number(v.tunnels), tcp_ports: Number(v.tcp_ports) };
    const account = await api('PUT', path + '/quotas', body);
    fillQuotas(account.quotas);
    quotasNote.textContent = 'Saved.';
  });
  const quotasNote = el('p', { class: 'muted', role: 'status' });
  function fillQuotas(qs) {
    quotas.inputs.sessions.value = String(qs.sessions);
    quotas.inputs.tunnels.value = String(qs.tunnels);
    quotas.inputs.tcp_ports.value = String(qs.tcp_ports);
  }
  const quotasSection = el('section', { id: 'quotas', class: 'card' }, el('h3', { text: 'Quotas' }), quotas, quotasNote);

  const tokens = listSection('tokens', 'Tokens', ['Label', 'Hint', 'ID', 'Created', ''], (t) => [
    t.label,
    el('code', { text: t.hint }),
    el('code', { text: t.id }),
    localTime(t.created),
    actionButton('Revoke', tokens.error, async () => {
      await api('DELETE', '/api/tokens/' + q(t.id));
      await after();
    }, { class: 'small danger', 'aria-label': 'Revoke token ' + t.id }),
  ], 'No tokens: agents of this account cannot connect.');
  const secretBox = el('div', { id: 'token-secret', class: 'secret', role: 'status', hidden: true });
  tokens.add(secretBox, form('token-form', [
    { name: 'label', label: 'Label', placeholder: 'what it is for' },
  ], 'Issue token', async (v) => {
    const issued = await api('POST', path + '/tokens', { label: v.label });
    secretBox.replaceChildren(
      el('p', {}, 'New token ', el('code', { text: issued.info.id }),
        issued.info.label ? ' (' + issued.info.label + ')' : '',
        '. Copy the secret now: it is not shown again.'),
      el('code', { class: 'secret-value', text: issued.secret }),
      el('button', {
        type: 'button', class: 'small', id: 'dismiss-secret', text: 'Dismiss',
        onclick: () => {
          secretBox.replaceChildren();
          secretBox.hidden = true;
        },
      }));
    secretBox.hidden = false;
    await after();
  }));

  const domains = listSection('domains', 'Reserved domains', ['Name', 'Region', 'Created', ''], (d) => [
    el('code', { text: d.name }),
    d.region,
    localTime(d.created),
    actionButton('Remove', domains.error, async () => {
      await api('DELETE', '/api/domains?name=' + q(d.name));
      await after();
    }, { 'aria-label': 'Release ' + d.name }),
  ], 'No reserved domains.');
  domains.add(form('domain-form', [
    { name: 'name', label: 'Domain', placeholder: 'app.example.com or *.example.com', required: true },
    { name: 'region', label: 'Region', placeholder: "the relay's" },
  ], 'Reserve', async (v) => {
    await api('POST', path + '/domains', v.region ? { name: v.name, region: v.region } : { name: v.name });
    await after();
  }));

  const addrs = listSection('addrs', 'Reserved TCP addresses', ['Address', 'Region', 'Created', ''], (a) => [
    el('code', { text: a.addr }),
    a.region,
    localTime(a.created),
    actionButton('Remove', addrs.error, async () => {
      await api('DELETE', '/api/addrs?addr=' + q(a.addr));
      await after();
    }, { 'aria-label': 'Release ' + a.addr }),
  ], 'No reserved TCP addresses.');
  addrs.add(form('addr-form', [
    { name: 'addr', label: 'Address', placeholder: 'host:port', required: true },
    { name: 'region', label: 'Region', placeholder: "the relay's" },
  ], 'Reserve', async (v) => {
    await api('POST', path + '/addrs', v.region ? { addr: v.addr, region: v.region } : { addr: v.addr });
    await after();
  }));

  const whitelist = listSection('whitelist', 'IP whitelist', ['Network', 'Added', ''], (w) => [
    el('code', { text: w.net }),
    localTime(w.created),
    actionButton('Remove', whitelist.error, async () => {
      await api('DELETE', path + '/whitelist?entry=' + q(w.net));
      await after();
    }, { 'aria-label': 'Remove ' + w.net + ' from the whitelist' }),
  ], 'No entries: visitors from anywhere reach this account\'s tunnels.');
  whitelist.add(form('whitelist-form', [
    { name: 'entry', label: 'Address or CIDR', placeholder: '203.0.113.7 or 10.0.0.0/8', required: true },
  ], 'Allow', async (v) => {
    await api('POST', path + '/whitelist', { entry: v.entry });
    await after();
  }));

  const keys = listSection('ssh-keys', 'SSH keys', ['Fingerprint', 'Type', 'Comment', 'Added', ''], (k) => [
    el('code', { text: k.fingerprint }),
    k.algorithm,
    k.comment,
    localTime(k.created),
    actionButton('Remove', keys.error, async () => {
      await api('DELETE', '/api/ssh-keys?fingerprint=' + q(k.fingerprint));
      await after();
    }, { 'aria-label': 'Remove key ' + k.fingerprint }),
  ], 'No SSH keys.');
  keys.add(form('ssh-form', [
    { name: 'key', label: 'Public key (one authorized_keys line)', placeholder: 'ssh-ed25519 AAAA… comment', required: true, wide: true },
  ], 'Add key', async (v) => {
    await api('POST', path + '/ssh-keys', { key: v.key });
    await after();
  }));

  const sessions = listSection('sessions', 'Sessions', ['ID', 'Client version', 'Address', 'Region', 'Started', 'Tunnels', ''], (s) => [
    el('code', { text: s.id }),
    s.client_version,
    s.addr,
    s.region,
    localTime(s.started),
    String(s.tunnels.length),
    actionButton('Kick', sessions.error, async () => {
      await api('DELETE', '/api/sessions/' + q(s.id));
      await after();
    }, { 'aria-label': 'End session ' + s.id }),
  ], 'No agent of this account is connected.');

  const missing = el('p', { class: 'error', role: 'alert' });
  const title = el('h2', {}, el('a', { href: '#accounts', text: 'Accounts' }), ' / ', el('span', { id: 'account-title', text: name }));
  const body = el('div', { class: 'grid' },
    quotasSection, tokens.node, domains.node, addrs.node, whitelist.node, keys.node, sessions.node);
  view.replaceChildren(title, missing, body, el('p', {}, deleteButton), deleteError);

  let filled = false;
  reload = async () => {
    let data;
    try {
      data = await api('GET', path);
    } catch (e) {
      if (e instanceof AuthError) return;
      missing.textContent = e.message;
      body.hidden = true;
      return;
    }
    missing.textContent = '';
    body.hidden = false;
    if (!filled) {
      fillQuotas(data.account.quotas);
      filled = true;
    }
    tokens.render(data.tokens);
    domains.render(data.domains);
    addrs.render(data.addrs);
    whitelist.render(data.whitelist);
    keys.render(data.ssh_keys);
    sessions.render(data.sessions);
  };
  return () => reload();
}

async function loadStatus() {
  renderStatus(await api('GET', '/api/status'));
}

function route() {
  if (!token()) {
    signOut('');
    return;
  }
  $('nav').hidden = false;
  const hash = location.hash.replace(/^#/, '');
  if (hash.startsWith('account/')) {
    let name = hash.slice('account/'.length);
    try {
      name = decodeURIComponent(name);
    } catch (e) {
      // A hand-typed address with a stray '%': look the name up as typed.
    }
    show('account-view');
    const refresh = accountPage(name);
    keepRefreshing(() => Promise.all([refresh(), loadStatus().catch(() => {})]));
  } else if (hash === 'accounts') {
    show('accounts-view');
    lastAccounts = null;
    keepRefreshing(async () => {
      loadStatus().catch(() => {});
      try {
        await refreshAccounts();
        $('accounts-error').textContent = '';
      } catch (e) {
        if (!(e instanceof AuthError)) $('accounts-error').textContent = e.message;
      }
    });
  } else {
    show('agents-view');
    lastAgents = null;
    keepRefreshing(refreshAgents);
  }
}

$('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const value = $('token-input').value.trim();
  if (!value) return;
  sessionStorage.setItem(TOKEN_KEY, value);
  $('login-error').textContent = '';
  try {
    await loadStatus();
  } catch (e) {
    if (!(e instanceof AuthError)) {
      sessionStorage.removeItem(TOKEN_KEY);
      $('login-error').textContent = e.message;
    }
    return;
  }
  $('token-input').value = '';
  route();
});

$('sign-out').addEventListener('click', () => signOut('Signed out.'));
window.addEventListener('hashchange', route);
route();
