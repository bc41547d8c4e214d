// ngrok-style filters: "FIELD OP VALUE", combined with AND.
//   fields: Path, StatusCode, ResponseSize, Duration (ms), Method, Headers.NAME
//   ops:    match, !match (case-insensitive substring), > < >= <= (numbers)

const FIELDS = {
  path: { name: 'Path', numeric: false },
  statuscode: { name: 'StatusCode', numeric: true },
  responsesize: { name: 'ResponseSize', numeric: true },
  duration: { name: 'Duration', numeric: true },
  method: { name: 'Method', numeric: false },
};
export const FIELD_NAMES = ['Path', 'StatusCode', 'ResponseSize', 'Duration', 'Method', 'Headers.NAME'];

const WORD_OP = /^\s*(\S+)\s+(!?match)(?:\s+(.*?))?\s*$/i;
const NUM_OP = /^\s*([^\s<>=]+)\s*(>=|<=|>|<)\s*(.*?)\s*$/;

/** Parse filter text → {field, header?, op, value, text, num?} or {error}. */
export function parseFilter(input) {
  const src = input.trim();
  if (!src) return { error: 'Type a filter such as "Path match /api".' };
  const m = WORD_OP.exec(src) || NUM_OP.exec(src);
  if (!m) {
    const word = src.split(/\s+/);
    if (word.length === 1) return { error: `Missing operator after "${word[0]}": use match, !match, >, <, >= or <=.` };
    if (word.length >= 2 && !/^(!?match|[<>]=?)$/.test(word[1])) {
      return { error: `Unknown operator "${word[1]}": use match, !match, >, <, >= or <=.` };
    }
    return { error: `Missing value: write e.g. "${word[0]} ${word[1] || 'match'} something".` };
  }
  const rawField = m[1];
  const op = m[2].toLowerCase();
  let value = m[3] ?? '';
  if (value.length >= 2 && /^(["']).*\1$/.test(value)) value = value.slice(1, -1);
  if (value === '') return { error: `Missing value after "${rawField} ${op}".` };

  let field;
  let header = null;
  const lower = rawField.toLowerCase();
  if (lower.startsWith('headers.') || lower.startsWith('header.')) {
    header = rawField.slice(rawField.indexOf('.') + 1);
    if (!header || !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(header)) {
      return { error: `"${rawField}" needs a header name, e.g. Headers.Content-Type.` };
    }
    field = 'Headers.' + header;
  } else if (FIELDS[lower]) {
    field = FIELDS[lower].name;
  } else {
    return { error: `Unknown field "${rawField}": use ${FIELD_NAMES.join(', ')}.` };
  }

  const numericOp = op !== 'match' && op !== '!match';
  const f = { field, header: header && header.toLowerCase(), op, value, text: `${field} ${op} ${value}` };
  if (numericOp) {
    if (header || !FIELDS[lower].numeric) {
      return { error: `"${op}" only works on StatusCode, ResponseSize and Duration; use match or !match for ${field}.` };
    }
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n)) return { error: `"${value}" is not a number.` };
    f.num = n;
  } else {
    f.needle = value.toLowerCase();
  }
  return f;
}

/**
 * Precomputed lowercase text forms of an exchange, stored on the list item so
 * filtering 10k rows is a handful of string compares each.
 */
export function indexSummary(s) {
  const resp = s.response;
  const code = resp ? resp.status_code : undefined;
  return {
    path: String(s.request?.uri ?? '').toLowerCase(),
    method: String(s.request?.method ?? '').toLowerCase(),
    status: code != null ? String(code) : '',
    code: code ?? null,
    size: resp ? resp.size ?? 0 : null,
    durMs: s.pending ? null : (s.duration || 0) / 1e6,
    headers: null, // built lazily by headerValues()
  };
}

function headerValues(item, name) {
  const ix = item.ix;
  if (!ix.headers) {
    const map = new Map();
    const add = (h) => {
      for (const [k, vals] of Object.entries(h || {})) {
        const key = k.toLowerCase();
        const list = map.get(key) || [];
        for (const v of Array.isArray(vals) ? vals : [vals]) list.push(String(v).toLowerCase());
        map.set(key, list);
      }
    };
    add(item.s.request?.headers);
    add(item.s.response?.headers);
    ix.headers = map;
  }
  return ix.headers.get(name);
}

function textOf(item, f) {
  const ix = item.ix;
  switch (f.field) {
    case 'Path': return ix.path;
    case 'Method': return ix.method;
    case 'StatusCode': return ix.status;
    case 'ResponseSize': return ix.size == null ? '' : String(ix.size);
    case 'Duration': return ix.durMs == null ? '' : String(Math.round(ix.durMs * 1000) / 1000);
    default: return '';
  }
}

function numOf(item, field) {
  const ix = item.ix;
  if (field === 'StatusCode') return ix.code;
  if (field === 'ResponseSize') return ix.size;
  return ix.durMs;
}

function matchOne(item, f) {
  if (f.header) {
    const vals = headerValues(item, f.header);
    const hit = !!vals && vals.some((v) => v.includes(f.needle));
    return f.op === 'match' ? hit : !hit;
  }
  if (f.op === 'match') return textOf(item, f).includes(f.needle);
  if (f.op === '!match') return !textOf(item, f).includes(f.needle);
  const n = numOf(item, f.field);
  if (n == null) return false;
  switch (f.op) {
    case '>': return n > f.num;
    case '<': return n < f.num;
    case '>=': return n >= f.num;
    default: return n <= f.num;
  }
}

export function matchesAll(item, filters) {
  for (const f of filters) if (!matchOne(item, f)) return false;
  return true;
}
