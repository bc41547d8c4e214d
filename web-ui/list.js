// Virtualised request list: fixed row height, a spacer for the scroll
// height, and a small pool of absolutely positioned rows that get reused.
import { el, formatDuration, timeAgo, statusClass, fullTime } from './util.js';

export const ROW_H = 30;
const OVERSCAN = 8;

export class RequestList {
  constructor(container, spacer, onSelect) {
    this.box = container;
    this.spacer = spacer;
    this.items = [];
    this.selectedId = null;
    this.pool = [];
    this.frame = 0;
    container.addEventListener('scroll', () => this.schedule(), { passive: true });
    window.addEventListener('resize', () => this.schedule());
    container.addEventListener('click', (ev) => {
      const row = ev.target.closest('.req-row');
      if (row && row.dataset.id) onSelect(row.dataset.id);
    });
  }

  setItems(items) {
    this.items = items;
    this.spacer.style.height = `${items.length * ROW_H}px`;
    this.render();
  }

  setSelected(id) {
    this.selectedId = id;
    for (const row of this.pool) {
      const sel = row.item != null && row.item.s.id === id;
      row.el.classList.toggle('selected', sel);
      row.el.setAttribute('aria-selected', sel ? 'true' : 'false');
    }
  }

  indexOf(id) {
    return this.items.findIndex((it) => it.s.id === id);
  }

  /** Scroll just enough to make row i fully visible. */
  reveal(i) {
    const top = i * ROW_H;
    const box = this.box;
    if (top < box.scrollTop) box.scrollTop = top;
    else if (top + ROW_H > box.scrollTop + box.clientHeight) box.scrollTop = top + ROW_H - box.clientHeight;
    this.render();
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  render() {
    const n = this.items.length;
    const top = this.box.scrollTop;
    const height = this.box.clientHeight || 600;
    const start = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    const end = Math.min(n, Math.ceil((top + height) / ROW_H) + OVERSCAN);
    const count = Math.max(0, end - start);
    while (this.pool.length < count) this.pool.push(this.makeRow());
    const now = Date.now();
    for (let k = 0; k < this.pool.length; k++) {
      const row = this.pool[k];
      if (k >= count) {
        // Unused rows leave the DOM, so it only ever holds what is in view.
        if (row.el.isConnected) row.el.remove();
        row.item = null;
        continue;
      }
      const item = this.items[start + k];
      if (!row.el.isConnected) this.box.append(row.el);
      row.el.style.top = `${(start + k) * ROW_H}px`;
      if (row.item !== item || row.version !== item.version) this.fill(row, item);
      row.ago.textContent = timeAgo(item.s.start_ms, now);
      const sel = item.s.id === this.selectedId;
      row.el.classList.toggle('selected', sel);
      row.el.setAttribute('aria-selected', sel ? 'true' : 'false');
    }
  }

  /** The clock: refresh only the "time ago" text of rendered rows. */
  refreshTimes() {
    const now = Date.now();
    for (const row of this.pool) {
      if (row.item) row.ago.textContent = timeAgo(row.item.s.start_ms, now);
    }
  }

  makeRow() {
    const row = {
      method: el('span', { class: 'c-method method' }),
      path: el('span', { class: 'c-path path' }),
      ws: el('span', { class: 'ws-badge', hidden: true }),
      status: el('span', { class: 'c-status' }),
      dur: el('span', { class: 'c-dur' }),
      ago: el('span', { class: 'c-ago' }),
      ip: el('span', { class: 'c-ip' }),
      item: null,
      version: -1,
    };
    row.el = el('div', { class: 'req-row', role: 'option' },
      row.method, el('span', { class: 'c-pathcell' }, row.path, row.ws), row.status, row.dur, row.ago, row.ip);
    return row;
  }

  fill(row, item) {
    const s = item.s;
    row.item = item;
    row.version = item.version;
    row.el.dataset.id = s.id;
    row.method.textContent = s.request?.method ?? '';
    row.path.textContent = s.request?.uri ?? '';
    row.path.title = s.request?.uri ?? '';
    const code = s.response?.status_code;
    row.status.textContent = s.pending ? '…' : code ? String(code) : '—';
    row.status.className = `c-status status ${s.pending ? 'pending' : statusClass(code)}`;
    row.status.title = s.pending ? 'waiting for the response' : s.response?.status ?? 'no response';
    row.dur.textContent = s.pending ? '' : formatDuration(s.duration);
    row.ago.title = fullTime(s.start_ms);
    row.ip.textContent = s.remote_addr ?? '';
    const ws = s.websocket || 0;
    row.ws.hidden = ws <= 0;
    row.ws.textContent = ws > 0 ? `WS ${ws}` : '';
  }
}
