// The detail pane: title, summary line, actions, request/response tabs and
// the WebSocket message log of one exchange.
import {
  el, api, base64ToBytes, splitRaw, decodeText, decodeUtf8, hexDump, hexBytes, headerPairs,
  formatDuration, formatBytes, statusClass, fullTime, timeAgo, clockTime,
} from './util.js';
import { bodyView, hexView } from './body.js';

const TABS = [['summary', 'Summary'], ['headers', 'Headers'], ['raw', 'Raw'], ['binary', 'Binary']];
const OPCODES = { 0: 'continuation', 1: 'text', 2: 'binary', 8: 'close', 9: 'ping', 10: 'pong' };
const PREVIEW_MAX = 2000;

// Tab choice sticks across selections, like ngrok's inspector.
const activeTab = { req: 'summary', resp: 'summary' };

export class Detail {
  /**
   * ctx: { showError(msg), toast(msg), openModify(full), openCurl(full) }
   */
  constructor(root, ctx) {
    this.root = root;
    this.ctx = ctx;
    this.id = null;
    this.full = null;
    this.token = 0;
    this.loading = false;
    this.refetch = false;
    this.wsBuffer = [];
    this.wsList = null;
    this.wsCount = null;
  }

  clear() {
    this.id = null;
    this.full = null;
    this.loading = false;
    this.token++;
    this.root.replaceChildren(el('div', { class: 'placeholder', text: 'Select a request to see its details.' }));
  }

  /** Select and fetch an exchange. `summary` (optional) paints the title right away. */
  async show(id, summary) {
    const fresh = id !== this.id;
    this.id = id;
    if (fresh) {
      this.refetch = false;
      this.full = null;
      this.wsList = null;
      this.wsBuffer = [];
      this.root.replaceChildren(
        summary ? this.head(summary, false) : el('div'),
        el('p', { class: 'muted loading', text: 'Loading…' }));
      this.root.scrollTop = 0;
    }
    if (this.loading && !fresh) {
      this.refetch = true;
      return;
    }
    const token = ++this.token;
    this.loading = true;
    let full;
    try {
      full = await api('GET', `/api/requests/http/${encodeURIComponent(id)}`);
    } catch (e) {
      if (token !== this.token) return;
      this.loading = false;
      this.root.replaceChildren(el('div', { class: 'placeholder' },
        el('p', { class: 'load-error', text: e.status === 404 ? `Request ${id} not found (it may have been evicted).` : `Could not load ${id}: ${e.message}` })));
      return;
    }
    if (token !== this.token) return;
    this.loading = false;
    const keep = fresh ? 0 : this.root.scrollTop;
    this.full = full;
    this.render();
    this.root.scrollTop = keep;
    if (this.refetch) {
      this.refetch = false;
      this.show(id);
    }
  }

  /** A new summary arrived for some exchange (e.g. pending → done): refetch if it changed. */
  onUpdate(summary) {
    if (summary.id !== this.id) return;
    if (this.full && signature(this.full) === signature(summary)) return;
    this.show(summary.id);
  }

  /** A WebSocket message was captured for `id`. */
  onWebsocket(id, msg) {
    if (id !== this.id) return;
    if (this.loading || !this.full) {
      this.wsBuffer.push(msg);
      return;
    }
    this.full.websocket_messages = this.full.websocket_messages || [];
    this.full.websocket_messages.push(msg);
    this.full.websocket = Math.max(this.full.websocket || 0, this.full.websocket_messages.length);
    if (!this.wsList) this.root.append(this.wsSection());
    else this.appendWs(msg);
  }

  render() {
    const f = this.full;
    const panes = el('div', { class: 'panes' },
      this.pane('req', 'Request', f.request),
      this.pane('resp', 'Response', f.response));
    this.root.replaceChildren(this.head(f, true), panes);
    this.wsList = null;
    // Messages captured while the record was loading, minus those it already holds.
    const seen = new Set((f.websocket_messages || []).map(wsKey));
    for (const m of this.wsBuffer) {
      if (!seen.has(wsKey(m))) (f.websocket_messages = f.websocket_messages || []).push(m);
    }
    this.wsBuffer = [];
    if ((f.websocket || 0) > 0 || f.response?.status_code === 101 || f.websocket_messages?.length) {
      this.root.append(this.wsSection());
    }
  }

  head(s, withActions) {
    const req = s.request || {};
    const resp = s.response;
    const code = resp?.status_code;
    const status = s.pending
      ? el('span', { class: 'status pending', text: 'pending' })
      : el('span', { class: `status ${statusClass(code)}`, text: resp ? resp.status || String(code) : 'no response' });
    const bits = [status];
    if (!s.pending && s.duration) bits.push(el('span', { class: 'dur', text: formatDuration(s.duration) }));
    if (s.remote_addr) bits.push(el('span', { text: `from ${s.remote_addr}` }));
    if (s.tunnel_name) bits.push(el('span', { text: `via ${s.tunnel_name}` }));
    if (s.start_ms) {
      bits.push(el('span', { title: fullTime(s.start_ms), text: `${fullTime(s.start_ms)} (${timeAgo(s.start_ms)})` }));
    }
    const line = el('p', { class: 'summary-line' });
    bits.forEach((b, i) => line.append(...(i ? [el('span', { class: 'sep', text: '·' }), b] : [b])));

    const head = el('header', { class: 'detail-head' },
      el('h2', { class: 'detail-title' },
        el('span', { class: 'method', text: req.method || '' }), ' ',
        el('span', { class: 'path', text: req.uri || '' })),
      line);
    if (withActions) {
      const replay = el('button', { id: 'replay-btn', type: 'button', class: 'btn primary', text: 'Replay', title: 'Replay this request as captured' });
      replay.addEventListener('click', () => this.replay(replay));
      head.append(el('div', { class: 'actions' },
        replay,
        el('button', { id: 'modify-btn', type: 'button', class: 'btn', text: 'Replay with modifications…', onclick: () => this.ctx.openModify(this.full) }),
        el('button', { id: 'copy-curl-btn', type: 'button', class: 'btn', text: 'Copy as curl', onclick: () => this.ctx.openCurl(this.full) }),
        el('a', { id: 'har-one', class: 'btn', href: `/inspect/har?id=${encodeURIComponent(s.id)}`, download: `burrow-${s.id}.har`, text: 'HAR' })));
    }
    return head;
  }

  async replay(btn) {
    btn.disabled = true;
    try {
      await api('POST', '/api/requests/http', { id: this.full.id, tunnel_name: this.full.tunnel_name });
      this.ctx.toast('Replayed');
    } catch (e) {
      this.ctx.showError(`Replay failed: ${e.message}`);
    } finally {
      btn.disabled = false;
    }
  }

  pane(key, title, part) {
    const body = el('div', { class: 'tab-body' });
    const tabs = el('div', { class: 'tabs', role: 'tablist' });
    const select = (name) => {
      activeTab[key] = name;
      for (const t of tabs.children) {
        const on = t.dataset.tab === name;
        t.classList.toggle('active', on);
        t.setAttribute('aria-selected', on ? 'true' : 'false');
      }
      body.replaceChildren(...this.tabContent(key, name, part).filter(Boolean));
    };
    for (const [name, label] of TABS) {
      tabs.append(el('button', { type: 'button', class: 'tab', role: 'tab', dataset: { tab: name }, text: label, onclick: () => select(name) }));
    }
    const pane = el('section', { id: `${key}-pane`, class: 'pane' },
      el('div', { class: 'pane-head' }, el('h3', { text: title }), tabs), body);
    select(activeTab[key]);
    return pane;
  }

  tabContent(key, tab, part) {
    const f = this.full;
    if (key === 'resp' && !part) {
      return [el('p', { class: 'muted waiting', text: f.pending ? 'Waiting for the response…' : 'No response was captured.' })];
    }
    const raw = part.raw != null ? base64ToBytes(part.raw) : new Uint8Array(0);
    const { body } = splitRaw(raw);
    const trunc = part.truncated
      ? el('p', { class: 'truncated', text: `Body truncated: showing the first ${body.length} of ${part.size ?? '?'} bytes` })
      : null;
    switch (tab) {
      case 'headers': {
        const pairs = headerPairs(part.headers);
        if (!pairs.length) return [el('p', { class: 'muted', text: 'No headers' })];
        return [kvTable('headers', pairs)];
      }
      case 'raw': {
        if (!raw.length) return [el('p', { class: 'muted', text: 'No raw data captured' })];
        const text = decodeText(raw);
        if (text == null) {
          return [trunc, hexView(raw, `The message contains non-UTF-8 bytes, shown as hex (${raw.length} bytes).`)];
        }
        return [trunc, el('pre', { class: 'raw', text })];
      }
      case 'binary':
        if (!raw.length) return [el('p', { class: 'muted', text: 'No raw data captured' })];
        return [trunc, el('pre', { class: 'hex', text: hexDump(raw) })];
      default: {
        const out = [];
        if (key === 'req') {
          out.push(kvTable('kv req-line', [['Method', part.method || ''], ['URI', part.uri || ''], ['Protocol', part.proto || '']]));
          const q = queryPairs(part.uri || '');
          if (q.length) out.push(el('h4', { text: 'Query parameters' }), kvTable('query', q));
        } else {
          out.push(el('p', { class: 'status-line' },
            el('span', { class: 'proto', text: `${part.proto || 'HTTP/1.1'} ` }),
            el('span', { class: `status ${statusClass(part.status_code)}`, text: part.status || String(part.status_code) })));
        }
        out.push(el('h4', { text: 'Body' }), bodyView(body, { headers: part.headers, truncated: part.truncated, size: part.size }));
        return out;
      }
    }
  }

  wsSection() {
    const msgs = this.full.websocket_messages || [];
    this.wsCount = el('span', { class: 'count', text: String(msgs.length) });
    this.wsList = el('div', { class: 'ws-list' });
    this.wsEmpty = el('p', { class: 'muted', text: 'No messages yet.', hidden: msgs.length > 0 });
    for (const m of msgs) this.wsList.append(wsRow(m));
    return el('section', { id: 'ws-messages', class: 'ws-section' },
      el('h3', null, 'WebSocket messages ', this.wsCount), this.wsEmpty, this.wsList);
  }

  appendWs(msg) {
    const box = this.root;
    const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 8;
    this.wsList.append(wsRow(msg));
    this.wsCount.textContent = String(this.full.websocket_messages.length);
    this.wsEmpty.hidden = true;
    if (atBottom) box.scrollTop = box.scrollHeight;
  }
}

function signature(s) {
  const r = s.response;
  return [s.pending, s.duration, s.request?.size, s.request?.truncated,
    r?.status_code, r?.size, r?.truncated].join('|');
}

function wsKey(m) {
  return `${m.from}|${m.at_ms}|${m.opcode}|${m.size}|${m.data}`;
}

function wsRow(m) {
  const fromClient = m.from === 'client';
  const data = base64ToBytes(m.data);
  let preview;
  let binary = false;
  if (m.opcode === 8 && data.length >= 2) {
    const reason = decodeUtf8(data.subarray(2)) ?? hexBytes(data.subarray(2));
    preview = `${(data[0] << 8) | data[1]}${reason ? ` ${reason}` : ''}`;
  } else if (m.opcode === 2) {
    preview = hexBytes(data, 48);
    binary = true;
  } else {
    const t = decodeUtf8(data);
    if (t == null) {
      preview = hexBytes(data, 48);
      binary = true;
    } else preview = t.length > PREVIEW_MAX ? `${t.slice(0, PREVIEW_MAX)}…` : t;
  }
  return el('div', { class: `ws-msg ${fromClient ? 'from-client' : 'from-server'}` },
    el('span', { class: 'ws-dir', title: fromClient ? 'client → server' : 'server → client', text: fromClient ? '↑' : '↓' }),
    el('span', { class: 'ws-op', text: OPCODES[m.opcode] ?? `opcode ${m.opcode}` }),
    el('span', { class: 'ws-time', title: fullTime(m.at_ms), text: m.at_ms ? clockTime(m.at_ms) : '' }),
    el('span', { class: 'ws-size', text: formatBytes(m.size ?? data.length) }),
    el('span', { class: `ws-data${binary ? ' hex' : ''}`, text: preview }),
    m.truncated ? el('span', { class: 'truncated', text: 'truncated' }) : null);
}

function kvTable(cls, pairs) {
  return el('table', { class: cls },
    el('tbody', null, pairs.map(([k, v]) =>
      el('tr', null, el('th', { class: 'name', scope: 'row', text: k }), el('td', { class: 'value', text: v })))));
}

function queryPairs(uri) {
  const q = uri.indexOf('?');
  if (q < 0) return [];
  const hash = uri.indexOf('#', q);
  const query = uri.slice(q + 1, hash < 0 ? undefined : hash);
  if (!query) return [];
  const out = [];
  for (const part of query.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const dec = (s) => {
      try {
        return decodeURIComponent(s.replace(/\+/g, ' '));
      } catch {
        return s;
      }
    };
    out.push([dec(eq < 0 ? part : part.slice(0, eq)), eq < 0 ? '' : dec(part.slice(eq + 1))]);
  }
  return out;
}
