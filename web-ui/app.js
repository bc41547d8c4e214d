// Burrow request inspector: entry point. Holds the exchange store, applies
// Server-Sent Events, batches rendering to one pass per animation frame.
import { el, $, api } from './util.js';
import { parseFilter, indexSummary, matchesAll } from './filters.js';
import { RequestList } from './list.js';
import { Detail } from './detail.js';
import { setupDialogs, openModify, openCurl } from './modify.js';

const state = {
  all: [], // list items, oldest first: { s: summary, ix: filter index, version }
  byId: new Map(),
  visible: [], // filtered, newest first
  filters: [],
  tunnels: [],
  selected: null,
  compact: false,
  frame: 0,
  revealSelected: false,
};

// ---- banners ----------------------------------------------------------------

function showError(msg) {
  const box = $('#error');
  box.querySelector('.msg').textContent = msg;
  box.hidden = false;
}

let toastTimer = 0;
function toast(msg) {
  const t = $('#toast');
  t.textContent = msg;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 2200);
}

// ---- components ---------------------------------------------------------------

const list = new RequestList($('#requests'), $('#list-spacer'), (id) => select(id));
const detail = new Detail($('#detail'), {
  showError,
  toast,
  openModify: (full) => openModify(full),
  openCurl: (full) => openCurl(full),
});
setupDialogs({ tunnels: () => state.tunnels, showError, toast });

// ---- store --------------------------------------------------------------------

function makeItem(s) {
  return { s, ix: indexSummary(s), version: 0 };
}

function reset(summaries) {
  state.byId.clear();
  state.all = [];
  for (let i = summaries.length - 1; i >= 0; i--) {
    const s = summaries[i];
    if (!s || !s.id || state.byId.has(s.id)) continue;
    const it = makeItem(s);
    state.byId.set(s.id, it);
    state.all.push(it);
  }
  state.compact = false;
  if (state.selected) {
    const it = state.byId.get(state.selected);
    state.revealSelected = !!it;
    if (it) detail.onUpdate(it.s);
    else if (detail.full) deselect();
  }
  schedule();
}

function upsert(s) {
  if (!s || !s.id) return;
  const it = state.byId.get(s.id);
  if (it) {
    it.s = s;
    it.ix = indexSummary(s);
    it.version++;
  } else {
    const n = makeItem(s);
    state.byId.set(s.id, n);
    state.all.push(n);
  }
  if (s.id === state.selected) detail.onUpdate(s);
  schedule();
}

function remove(ids) {
  for (const id of ids || []) {
    const it = state.byId.get(id);
    if (!it) continue;
    it.gone = true;
    state.byId.delete(id);
    state.compact = true;
    if (id === state.selected) deselect();
  }
  schedule();
}

function clearAll() {
  state.all = [];
  state.byId.clear();
  state.compact = false;
  if (state.selected) deselect();
  schedule();
}

function onWebsocket(d) {
  if (!d || !d.id) return;
  const it = state.byId.get(d.id);
  if (it) {
    it.s.websocket = (it.s.websocket || 0) + 1;
    it.version++;
    schedule();
  }
  if (d.message) detail.onWebsocket(d.id, d.message);
}

// ---- rendering ----------------------------------------------------------------

function schedule() {
  if (!state.frame) state.frame = requestAnimationFrame(flush);
}

function flush() {
  state.frame = 0;
  if (state.compact) {
    state.all = state.all.filter((it) => !it.gone);
    state.compact = false;
  }
  const all = state.all;
  const out = [];
  const fs = state.filters;
  for (let i = all.length - 1; i >= 0; i--) {
    if (fs.length === 0 || matchesAll(all[i], fs)) out.push(all[i]);
  }
  state.visible = out;
  list.setItems(out);
  list.setSelected(state.selected);
  if (state.revealSelected) {
    state.revealSelected = false;
    const i = list.indexOf(state.selected);
    if (i >= 0) list.reveal(i);
  }
  const total = all.length;
  $('#match-count').textContent = fs.length
    ? `matched ${out.length} of ${total}`
    : `${total} request${total === 1 ? '' : 's'}`;
  $('#empty').hidden = total > 0;
  $('#no-match').hidden = total === 0 || out.length > 0;
}

function renderEmptyUrls() {
  const ul = $('#empty-urls');
  ul.replaceChildren(...state.tunnels.filter((t) => /^https?:\/\//i.test(t.public_url || '')).map((t) =>
    el('li', null,
      el('a', { href: t.public_url, target: '_blank', rel: 'noopener noreferrer', text: t.public_url }),
      el('span', { class: 'muted', text: ` → ${t.config?.addr ?? ''}` }))));
}

async function loadTunnels() {
  try {
    const d = await api('GET', '/api/tunnels');
    state.tunnels = Array.isArray(d?.tunnels) ? d.tunnels : [];
    renderEmptyUrls();
  } catch (e) {
    console.warn('burrow: could not load tunnels:', e.message);
  }
}

// ---- selection ------------------------------------------------------------------

function hashId() {
  try {
    return decodeURIComponent(location.hash.slice(1));
  } catch {
    return '';
  }
}

function select(id, { reveal = false } = {}) {
  if (!id) return;
  state.selected = id;
  list.setSelected(id);
  if (reveal) {
    const i = list.indexOf(id);
    if (i >= 0) list.reveal(i);
  }
  detail.show(id, state.byId.get(id)?.s);
  if (hashId() !== id) history.replaceState(null, '', `#${encodeURIComponent(id)}`);
}

function deselect() {
  state.selected = null;
  list.setSelected(null);
  detail.clear();
  if (location.hash) history.replaceState(null, '', location.pathname + location.search);
}

function step(delta) {
  const vis = state.visible;
  if (!vis.length) return;
  let i = state.selected ? list.indexOf(state.selected) : -1;
  i = i < 0 ? 0 : Math.max(0, Math.min(vis.length - 1, i + delta));
  select(vis[i].s.id, { reveal: true });
}

document.addEventListener('keydown', (ev) => {
  const a = document.activeElement;
  if (ev.altKey || ev.ctrlKey || ev.metaKey || document.querySelector('dialog[open]')) return;
  if (a && a !== document.body && a !== $('#requests') && !a.closest?.('.req-row')) return;
  if (ev.key === 'ArrowDown' || ev.key === 'j') step(1);
  else if (ev.key === 'ArrowUp' || ev.key === 'k') step(-1);
  else return;
  ev.preventDefault();
});

window.addEventListener('hashchange', () => {
  const id = hashId();
  if (id && id !== state.selected) select(id, { reveal: true });
});

// ---- filters --------------------------------------------------------------------

function renderChips() {
  $('#filter-chips').replaceChildren(...state.filters.map((f) =>
    el('span', { class: 'filter-chip', title: f.text },
      el('span', { class: 'chip-text', text: f.text }),
      el('button', {
        type: 'button', class: 'remove', 'aria-label': `Remove filter ${f.text}`, text: '×',
        onclick: () => removeFilter(f),
      }))));
  schedule();
}

function removeFilter(f) {
  state.filters = state.filters.filter((x) => x !== f);
  renderChips();
}

const filterInput = $('#filter-input');
const filterError = $('#filter-error');
filterInput.addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter') {
    ev.preventDefault();
    const f = parseFilter(filterInput.value);
    if (f.error) {
      filterError.textContent = f.error;
      filterInput.setAttribute('aria-invalid', 'true');
      return;
    }
    if (!state.filters.some((x) => x.text === f.text)) state.filters.push(f);
    filterInput.value = '';
    renderChips();
  } else if (ev.key === 'Escape') {
    filterInput.value = '';
    filterError.textContent = '';
  } else if (ev.key === 'Backspace' && filterInput.value === '' && state.filters.length) {
    removeFilter(state.filters[state.filters.length - 1]);
  }
});
filterInput.addEventListener('input', () => {
  filterError.textContent = '';
  filterInput.removeAttribute('aria-invalid');
});


// ---- buttons ----------------------------------------------------------------------

$('#error .close').addEventListener('click', () => { $('#error').hidden = true; });

$('#clear-btn').addEventListener('click', async () => {
  try {
    await api('DELETE', '/api/requests/http');
    clearAll();
  } catch (e) {
    showError(`Clear failed: ${e.message}`);
  }
});

// ---- live updates ---------------------------------------------------------------------

function setLive(on) {
  const live = $('#live');
  live.textContent = on ? 'live' : 'reconnecting…';
  live.classList.toggle('on', on);
  live.classList.toggle('off', !on);
}

function on(es, name, fn) {
  es.addEventListener(name, (ev) => {
    let data;
    try {
      data = JSON.parse(ev.data);
    } catch (e) {
      console.warn(`burrow: bad ${name} event:`, e.message);
      return;
    }
    fn(data);
  });
}

let retry = 1000;
function connect() {
  const es = new EventSource('/inspect/events');
  es.onopen = () => {
    retry = 1000;
    setLive(true);
  };
  es.onerror = () => {
    setLive(false);
    // EventSource retries by itself unless the server answered with an error.
    if (es.readyState === EventSource.CLOSED) {
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    }
  };
  on(es, 'snapshot', (d) => {
    setLive(true);
    reset(Array.isArray(d.requests) ? d.requests : []);
    loadTunnels();
  });
  on(es, 'request', upsert);
  on(es, 'websocket', onWebsocket);
  on(es, 'evict', (d) => remove(d.ids));
  on(es, 'clear', clearAll);
}

setInterval(() => list.refreshTimes(), 5000);
loadTunnels();
connect();
flush();
const initial = hashId();
if (initial) select(initial);
