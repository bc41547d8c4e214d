// Small helpers shared by the inspector modules. Everything that puts
// captured data on the page goes through el()/text nodes: never HTML strings.

/** Create an element. attrs: class, text, dataset, on<event>, or attributes. */
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k === 'dataset') Object.assign(e.dataset, v);
      else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
  }
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

export const $ = (sel, root = document) => root.querySelector(sel);

/** Duration in nanoseconds → "850µs", "1.54ms", "120ms", "2.3s", "1m 5s". */
export function formatDuration(ns) {
  if (!ns || ns < 0) return '';
  const ms = ns / 1e6;
  if (ms < 1) return `${Math.max(1, Math.round(ns / 1e3))}µs`;
  if (ms < 10) return `${ms.toFixed(2)}ms`;
  if (ms < 100) return `${ms.toFixed(1)}ms`;
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${Number(s.toFixed(s < 10 ? 2 : 1))}s`;
  const m = Math.floor(s / 60);
  return `${m}m ${Math.round(s - m * 60)}s`;
}

/** Epoch ms → "just now", "3s ago", "5m ago", "2h ago", "3d ago". */
export function timeAgo(ms, now = Date.now()) {
  if (!ms) return '';
  const s = Math.floor((now - ms) / 1000);
  if (s < 1) return 'just now';
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

export function formatBytes(n) {
  if (n == null) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** Epoch ms → local "HH:MM:SS.mmm". */
export function clockTime(ms) {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function fullTime(ms) {
  return ms ? new Date(ms).toLocaleString() : '';
}

export function base64ToBytes(b64) {
  if (!b64) return new Uint8Array(0);
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function bytesToBase64(bytes) {
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Decode UTF-8 strictly; null when the bytes are not valid UTF-8. */
export function decodeUtf8(bytes) {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return null;
  }
}

/** Decodes to text only when it is valid UTF-8 without control bytes that betray binary data. */
export function decodeText(bytes) {
  const s = decodeUtf8(bytes);
  if (s == null) return null;
  // NUL and most C0 controls do not appear in text bodies.
  // eslint-disable-next-line no-control-regex
  return /[\x00-\x08\x0e-\x1a\x1c-\x1f]/.test(s) ? null : s;
}

/** Split raw HTTP bytes at the first CRLFCRLF into head and body. */
export function splitRaw(bytes) {
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) {
      return { head: bytes.subarray(0, i + 4), body: bytes.subarray(i + 4) };
    }
  }
  return { head: bytes, body: new Uint8Array(0) };
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Classic hex dump: offset, 16 hex bytes, ASCII column. */
export function hexDump(bytes) {
  const lines = [];
  for (let off = 0; off < bytes.length; off += 16) {
    const row = bytes.subarray(off, off + 16);
    let hex = '';
    let ascii = '';
    for (let i = 0; i < 16; i++) {
      if (i < row.length) {
        hex += HEX[row[i]] + (i === 7 ? '  ' : ' ');
        ascii += row[i] >= 0x20 && row[i] < 0x7f ? String.fromCharCode(row[i]) : '.';
      } else {
        hex += i === 7 ? '    ' : '   ';
      }
    }
    lines.push(`${off.toString(16).padStart(8, '0')}  ${hex} |${ascii}|`);
  }
  return lines.join('\n');
}

export function hexBytes(bytes, max = 64) {
  const parts = [];
  for (let i = 0; i < Math.min(bytes.length, max); i++) parts.push(HEX[bytes[i]]);
  return parts.join(' ') + (bytes.length > max ? ' …' : '');
}

/** First value of a header, name matched case-insensitively. */
export function headerValue(headers, name) {
  if (!headers) return undefined;
  const want = name.toLowerCase();
  for (const [k, vals] of Object.entries(headers)) {
    if (k.toLowerCase() === want) return Array.isArray(vals) ? vals[0] : vals;
  }
  return undefined;
}

/** Headers object → [[name, value], …] in JSON order, one entry per value. */
export function headerPairs(headers) {
  const out = [];
  for (const [k, vals] of Object.entries(headers || {})) {
    for (const v of Array.isArray(vals) ? vals : [vals]) out.push([k, String(v)]);
  }
  return out;
}

export function statusClass(code) {
  if (!code) return 'pending';
  if (code < 200) return 's1xx';
  if (code < 300) return 's2xx';
  if (code < 400) return 's3xx';
  if (code < 500) return 's4xx';
  return 's5xx';
}

/** POSIX single-quote shell escaping. */
export function shellQuote(s) {
  return `'${String(s).replace(/'/g, `'\\''`)}'`;
}

/** Fetch JSON-ish endpoints; throws an Error carrying the server's `msg`. */
export async function api(method, url, body) {
  const opts = { method, headers: {} };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(url, opts);
  } catch (e) {
    throw new Error(`Network error: ${e.message}`);
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const msg = (data && data.msg) || text.trim() || `${res.status} ${res.statusText}`;
    const err = new Error(msg);
    err.status = res.status;
    err.data = data;
    throw err;
  }
  return data;
}
