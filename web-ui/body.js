// Body rendering: JSON / XML pretty-printing with error location, forms,
// gzip/deflate decompression, images, text and hex fallbacks.
import { el, decodeText, hexDump, headerValue, bytesToBase64 } from './util.js';
import { checkXml, prettyXml } from './xml.js';

const HIGHLIGHT_LIMIT = 200 * 1024;

/**
 * Build the `.body-view` element for a body.
 * opts: { headers, truncated, size (total body bytes seen), pending }
 * Returns the element immediately; decompression fills it in asynchronously.
 */
export function bodyView(bytes, opts = {}) {
  const view = el('div', { class: 'body-view' });
  if (opts.truncated) {
    view.append(el('p', {
      class: 'truncated',
      text: `Body truncated: showing the first ${bytes.length} of ${opts.size ?? '?'} bytes`,
    }));
  }
  if (bytes.length === 0) {
    view.append(el('p', { class: 'muted no-body', text: 'No body' }));
    return view;
  }
  const ctype = (headerValue(opts.headers, 'content-type') || '').toLowerCase();
  const encoding = (headerValue(opts.headers, 'content-encoding') || '').toLowerCase().trim();

  if (encoding && encoding !== 'identity') {
    view.append(el('p', { class: 'encoding', text: `${encoding}, ${bytes.length} bytes` }));
    const format = { gzip: 'gzip', 'x-gzip': 'gzip', deflate: 'deflate', br: 'brotli' }[encoding];
    if (!format || typeof DecompressionStream === 'undefined' || opts.truncated) {
      const why = opts.truncated ? 'truncated, cannot decompress' : 'cannot decompress in this browser';
      view.append(hexView(bytes, `compressed body (${why}), ${bytes.length} bytes`));
      return view;
    }
    const slot = el('div', { class: 'muted', text: 'Decompressing…' });
    view.append(slot);
    decompress(bytes, format).then(
      (plain) => slot.replaceWith(detect(plain, ctype, `decompressed, ${plain.length} bytes`)),
      (err) => slot.replaceWith(hexView(bytes, `could not decompress (${err.message || err}); ${bytes.length} bytes`)),
    );
    return view;
  }
  view.append(detect(bytes, ctype));
  return view;
}

async function decompress(bytes, format) {
  const run = async (fmt) => {
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream(fmt));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  };
  try {
    return await run(format);
  } catch (e) {
    // Some servers send raw DEFLATE (no zlib wrapper) as "deflate".
    if (format === 'deflate') return run('deflate-raw');
    throw e;
  }
}

function isJsonType(ct) {
  return /^application\/json\b|\+json\b|^text\/json\b/.test(ct);
}
function isXmlType(ct) {
  return /^(application|text)\/xml\b|\+xml\b/.test(ct);
}

function detect(bytes, ctype, note) {
  const frag = document.createDocumentFragment();
  if (note) frag.append(el('p', { class: 'muted', text: note }));
  const img = /^image\/(png|gif|jpeg|webp|bmp|x-icon|vnd\.microsoft\.icon|avif|svg\+xml)\b/.exec(ctype);
  const text = decodeText(bytes);
  if (img && (img[1] !== 'svg+xml' || text != null)) {
    frag.append(el('p', { class: 'note', text: `${img[0]}, ${bytes.length} bytes` }), el('img', {
      class: 'body-image',
      alt: `${ctype} body`,
      src: `data:${img[0]};base64,${bytesToBase64(bytes)}`,
    }));
    if (text == null) return frag;
  }
  if (text == null) {
    frag.append(hexView(bytes, `binary, ${bytes.length} bytes`));
    return frag;
  }
  const trimmed = text.trimStart();
  if (isJsonType(ctype)) {
    frag.append(jsonView(text, true));
  } else if (!isXmlType(ctype) && !/form-urlencoded/.test(ctype) && /^[{[]/.test(trimmed)) {
    // Sniffed, not declared: only pretty-print when it really is JSON.
    frag.append(jsonView(text, false));
  } else if (isXmlType(ctype) || (!ctype && /^<\?xml\b/.test(trimmed))) {
    frag.append(xmlView(text));
  } else if (/^application\/x-www-form-urlencoded\b/.test(ctype)) {
    frag.append(formView(text));
  } else {
    frag.append(el('pre', { class: 'text', text }));
  }
  return frag;
}

export function hexView(bytes, label) {
  return el('div', { class: 'hex-view' },
    el('p', { class: 'note', text: label }),
    el('pre', { class: 'hex', text: hexDump(bytes) }));
}

// ---- JSON -----------------------------------------------------------------

function jsonView(text, declared) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    if (!declared) return el('pre', { class: 'text', text });
    const msg = e.message || String(e);
    let at = offsetFromMessage(msg, text);
    if (at == null) at = locateJsonError(text);
    return parseErrorView(msg, text, at);
  }
  const pretty = JSON.stringify(value, null, 2);
  const pre = el('pre', { class: 'pretty json' });
  if (pretty.length > HIGHLIGHT_LIMIT) pre.textContent = pretty;
  else highlightJson(pretty, pre);
  return pre;
}

const JSON_TOKEN = /("(?:[^"\\]|\\.)*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g;

function highlightJson(src, pre) {
  let last = 0;
  for (const m of src.matchAll(JSON_TOKEN)) {
    if (m.index > last) pre.append(src.slice(last, m.index));
    let cls;
    if (m[1]) cls = m[2] ? 'j-key' : 'j-str';
    else if (m[3]) cls = m[3] === 'null' ? 'j-null' : 'j-bool';
    else cls = 'j-num';
    pre.append(el('span', { class: cls, text: m[1] || m[0] }));
    if (m[1] && m[2]) pre.append(m[2]);
    last = m.index + m[0].length;
  }
  if (last < src.length) pre.append(src.slice(last));
}

/** Character offset named by a parser message ("position N" or "line L column C"). */
function offsetFromMessage(msg, text) {
  let m = /position\s+(\d+)/i.exec(msg);
  if (m) return Number(m[1]);
  m = /line\s*(?:number\s*)?(\d+)\D+?column\s*(\d+)/i.exec(msg);
  if (m) return lineColToOffset(text, Number(m[1]), Number(m[2]));
  return null;
}

function lineColToOffset(text, line, col) {
  let off = 0;
  for (let l = 1; l < line; l++) {
    const nl = text.indexOf('\n', off);
    if (nl < 0) return text.length;
    off = nl + 1;
  }
  return Math.min(off + Math.max(col - 1, 0), text.length);
}

/** Minimal JSON scanner that returns the offset of the first syntax error. */
function locateJsonError(t) {
  let i = 0;
  const ws = () => { while (i < t.length && ' \t\n\r'.includes(t[i])) i++; };
  const fail = () => { throw i; };
  const lit = (w) => { if (t.startsWith(w, i)) i += w.length; else fail(); };
  const str = () => {
    i++;
    while (i < t.length) {
      const c = t[i];
      if (c === '"') { i++; return; }
      if (c < ' ') fail();
      if (c === '\\') {
        i++;
        if (t[i] === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(t.substr(i + 1, 4))) { i++; fail(); }
          i += 5;
        } else if ('"\\/bfnrt'.includes(t[i] ?? 'x')) i++;
        else fail();
      } else i++;
    }
    fail();
  };
  const num = () => {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(t.slice(i, i + 400));
    if (!m) fail();
    i += m[0].length;
  };
  const value = () => {
    ws();
    const c = t[i];
    if (c === '{') {
      i++; ws();
      if (t[i] === '}') { i++; return; }
      for (;;) {
        ws();
        if (t[i] !== '"') fail();
        str(); ws();
        if (t[i] !== ':') fail();
        i++; value(); ws();
        if (t[i] === ',') { i++; continue; }
        if (t[i] === '}') { i++; return; }
        fail();
      }
    } else if (c === '[') {
      i++; ws();
      if (t[i] === ']') { i++; return; }
      for (;;) {
        value(); ws();
        if (t[i] === ',') { i++; continue; }
        if (t[i] === ']') { i++; return; }
        fail();
      }
    } else if (c === '"') str();
    else if (c === 't') lit('true');
    else if (c === 'f') lit('false');
    else if (c === 'n') lit('null');
    else num();
  };
  try {
    value(); ws();
    if (i < t.length) fail();
  } catch (at) {
    if (typeof at === 'number') return Math.min(at, t.length);
    throw at;
  }
  return t.length;
}

/** `.parse-error` message plus the source with the failing character marked. */
function parseErrorView(msg, text, at) {
  const offset = at == null ? text.length : Math.max(0, Math.min(at, text.length));
  const pre = el('pre', { class: 'source' });
  pre.append(text.slice(0, offset));
  const ch = text[offset];
  if (ch === undefined || ch === '\n' || ch === '\r') {
    pre.append(el('mark', { class: 'error-at eol', title: ch === undefined ? 'end of input' : 'end of line', text: ' ' }));
    pre.append(text.slice(offset));
  } else {
    const cp = text.codePointAt(offset);
    const w = cp > 0xffff ? 2 : 1;
    pre.append(el('mark', { class: 'error-at', text: text.slice(offset, offset + w) }));
    pre.append(text.slice(offset + w));
  }
  const frag = document.createDocumentFragment();
  frag.append(el('p', { class: 'parse-error', text: msg }), pre);
  queueMicrotask(() => pre.querySelector('mark')?.scrollIntoView?.({ block: 'nearest' }));
  return frag;
}

// ---- XML ------------------------------------------------------------------

function xmlView(text) {
  const problem = checkXml(text);
  if (problem) return parseErrorView(problem.message, text, problem.offset);
  const doc = new DOMParser().parseFromString(text, 'application/xml');
  const err = doc.getElementsByTagName('parsererror')[0];
  if (err) {
    // Chrome: <parsererror><h3>…</h3><div>error on line 1 at column 14: …</div>…
    const detail = err.querySelector('div');
    const msg = ((detail || err).textContent || 'XML parse error').trim();
    const at = offsetFromMessage(msg, text);
    return parseErrorView(msg, text, at == null ? text.length : at);
  }
  return el('pre', { class: 'pretty xml', text: prettyXml(doc, text) });
}

// ---- forms ----------------------------------------------------------------

function formDecode(s) {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

function formView(text) {
  const table = el('table', { class: 'form kv' },
    el('thead', null, el('tr', null, el('th', { text: 'Name' }), el('th', { text: 'Value' }))));
  const tbody = el('tbody');
  for (const part of text.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const name = formDecode(eq < 0 ? part : part.slice(0, eq));
    const value = eq < 0 ? '' : formDecode(part.slice(eq + 1));
    tbody.append(el('tr', null, el('td', { class: 'name', text: name }), el('td', { class: 'value', text: value })));
  }
  table.append(tbody);
  return table;
}
