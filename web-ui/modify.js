// "Replay with modifications" editor and "Copy as curl".
import { el, $, api, base64ToBytes, splitRaw, decodeText, decodeUtf8, headerPairs, headerValue, shellQuote } from './util.js';

const FRAMING = new Set(['content-length', 'transfer-encoding']);
const CURL_SKIP = new Set(['host', 'content-length', 'transfer-encoding', 'connection']);

let ctx = null;
let current = null; // { full, editable, hadBody }

/** ctx: { tunnels(): [...], showError(msg), toast(msg) } */
export function setupDialogs(context) {
  ctx = context;
  const dlg = $('#modify-dialog');
  $('#mod-add-header').addEventListener('click', () => addRow($('#mod-headers tbody'), '', '', true));
  $('#mod-add-trailer').addEventListener('click', () => addRow($('#mod-trailers tbody'), '', '', true));
  $('#mod-cancel').addEventListener('click', () => dlg.close());
  $('#mod-send').addEventListener('click', send);
  $('#mod-body-replace').addEventListener('change', (ev) => {
    $('#mod-body').disabled = !ev.target.checked;
  });
  for (const table of [$('#mod-headers'), $('#mod-trailers')]) {
    table.addEventListener('click', (ev) => {
      const btn = ev.target.closest('button.h-remove');
      if (btn) btn.closest('tr').remove();
    });
  }
  $('#curl-close').addEventListener('click', () => $('#curl-dialog').close());
}

function addRow(tbody, name, value, focus) {
  const n = el('input', { class: 'h-name', type: 'text', value: name, placeholder: 'Name', spellcheck: 'false', 'aria-label': 'Name' });
  const v = el('input', { class: 'h-value', type: 'text', value, placeholder: 'Value', spellcheck: 'false', 'aria-label': 'Value' });
  tbody.append(el('tr', null,
    el('td', null, n), el('td', null, v),
    el('td', null, el('button', { type: 'button', class: 'h-remove btn small', title: 'Remove', 'aria-label': 'Remove', text: '×' }))));
  if (focus) n.focus();
}

function rowsToObject(tbody, skip) {
  const out = {};
  let any = false;
  for (const tr of tbody.rows) {
    const name = tr.querySelector('.h-name').value.trim();
    if (!name || (skip && skip.has(name.toLowerCase()))) continue;
    (out[name] = out[name] || []).push(tr.querySelector('.h-value').value);
    any = true;
  }
  return any ? out : null;
}

function requestBody(full) {
  const raw = full.request?.raw ? base64ToBytes(full.request.raw) : new Uint8Array(0);
  return splitRaw(raw).body;
}

export function openModify(full) {
  if (!full) return;
  const dlg = $('#modify-dialog');
  const req = full.request || {};
  const body = requestBody(full);
  const text = decodeText(body);
  const editable = text != null && !req.truncated;
  current = { full, editable, hadBody: body.length > 0 };

  $('#mod-method').value = req.method || 'GET';
  $('#mod-uri').value = req.uri || '/';
  const sel = $('#mod-tunnel');
  const names = ctx.tunnels().map((t) => t.name);
  if (full.tunnel_name && !names.includes(full.tunnel_name)) names.unshift(full.tunnel_name);
  sel.replaceChildren(...names.map((n) => el('option', { value: n, text: n })));
  sel.value = full.tunnel_name || names[0] || '';

  const tbody = $('#mod-headers tbody');
  tbody.replaceChildren();
  for (const [k, v] of headerPairs(req.headers)) {
    if (editable && FRAMING.has(k.toLowerCase())) continue;
    addRow(tbody, k, v, false);
  }
  $('#mod-trailers tbody').replaceChildren();

  const area = $('#mod-body');
  const replace = $('#mod-body-replace');
  if (editable) {
    $('#mod-headers-hint').textContent =
      'These replace all captured headers. Content-Length and Transfer-Encoding are left out: Burrow frames the body you send.';
    $('#mod-body-hint').textContent = 'Sent as the new request body.';
    area.value = text;
    area.disabled = false;
    $('#mod-body-replace-label').hidden = true;
  } else {
    const why = req.truncated ? `was truncated when captured (${req.size} bytes)` : `is binary (${body.length} bytes)`;
    $('#mod-headers-hint').textContent =
      'These replace all captured headers. If you replace the body, Content-Length and Transfer-Encoding rows are dropped and Burrow reframes it.';
    $('#mod-body-hint').textContent = `The captured body ${why}; it is replayed as captured unless you replace it.`;
    area.value = '';
    area.disabled = true;
    replace.checked = false;
    $('#mod-body-replace-label').hidden = false;
  }
  dialogError('');
  dlg.showModal();
  $('#mod-method').focus();
}

function dialogError(msg) {
  const box = $('#modify-dialog .dialog-error');
  box.textContent = msg;
  box.hidden = !msg;
}

async function send() {
  if (!current) return;
  const method = $('#mod-method').value.trim();
  const uri = $('#mod-uri').value.trim();
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(method)) return dialogError('The method must be a single token, e.g. GET or POST.');
  if (!uri) return dialogError('The URI must not be empty, e.g. /path?x=1.');

  const area = $('#mod-body');
  let sendBody;
  if (current.editable) sendBody = area.value !== '' || current.hadBody;
  else sendBody = $('#mod-body-replace').checked;

  const modify = { method, uri, headers: rowsToObject($('#mod-headers tbody'), sendBody ? FRAMING : null) || {} };
  if (sendBody) modify.body = area.value;
  const trailers = rowsToObject($('#mod-trailers tbody'), null);
  if (trailers) modify.trailers = trailers;

  const btn = $('#mod-send');
  btn.disabled = true;
  try {
    await api('POST', '/api/requests/http', {
      id: current.full.id,
      tunnel_name: $('#mod-tunnel').value || current.full.tunnel_name,
      modify,
    });
    $('#modify-dialog').close();
    ctx.toast('Replayed');
  } catch (e) {
    dialogError(e.message);
    ctx.showError(`Replay failed: ${e.message}`);
  } finally {
    btn.disabled = false;
  }
}

// ---- curl -----------------------------------------------------------------

/** Base URL (scheme://host) to replay against: the tunnel's public URL, else the Host header. */
export function publicBase(full, tunnels) {
  const name = full.tunnel_name || '';
  const twin = / \(http\)$/.exec(name);
  let t = tunnels.find((x) => x.name === name);
  if (!t && twin) t = tunnels.find((x) => x.name === name.slice(0, twin.index));
  if (t && t.public_url) {
    let url = t.public_url.replace(/\/+$/, '');
    if (twin) url = url.replace(/^https:/i, 'http:');
    return url;
  }
  const host = headerValue(full.request?.headers, 'host');
  return `http://${host || 'localhost'}`;
}

function printfQuote(bytes) {
  let s = '';
  for (const b of bytes) {
    if (b === 0x25) s += '%%';
    else if (b === 0x5c) s += '\\\\';
    else if (b === 0x27) s += `'\\''`;
    else if (b >= 0x20 && b < 0x7f) s += String.fromCharCode(b);
    else s += `\\${b.toString(8).padStart(3, '0')}`;
  }
  return `'${s}'`;
}

export function curlCommand(full, tunnels) {
  const req = full.request || {};
  const uri = req.uri || '/';
  const url = /^[a-z][a-z0-9+.-]*:\/\//i.test(uri) ? uri : publicBase(full, tunnels) + uri;
  const method = req.method || 'GET';
  const parts = [`curl -X ${/^[A-Za-z0-9!#$%&*+.^_|~-]+$/.test(method) ? method : shellQuote(method)} ${shellQuote(url)}`];
  for (const [k, v] of headerPairs(req.headers)) {
    const lower = k.toLowerCase();
    if (CURL_SKIP.has(lower) || lower.startsWith('x-forwarded-')) continue;
    parts.push(`-H ${shellQuote(`${k}: ${v}`)}`);
  }
  const body = requestBody(full);
  let prefix = '';
  if (body.length) {
    const text = decodeUtf8(body);
    if (text != null && !text.includes('\0')) {
      parts.push(`--data-binary ${shellQuote(text)}`);
    } else {
      prefix = `printf ${printfQuote(body)} | \\\n`;
      parts.push('--data-binary @-');
    }
  }
  const warn = req.truncated ? `# Note: the captured body was truncated (${body.length} of ${req.size} bytes).\n` : '';
  return warn + prefix + parts.join(' \\\n  ');
}

export function openCurl(full) {
  if (!full) return;
  const cmd = curlCommand(full, ctx.tunnels());
  const dlg = $('#curl-dialog');
  const area = $('#curl-text');
  const note = $('#curl-note');
  area.value = cmd;
  note.textContent = 'Select and copy (Ctrl+C) the command below.';
  dlg.showModal();
  area.focus();
  area.select();
  if (navigator.clipboard && navigator.clipboard.writeText) {
    navigator.clipboard.writeText(cmd).then(
      () => { note.textContent = 'Copied to the clipboard.'; },
      () => {});
  }
}
