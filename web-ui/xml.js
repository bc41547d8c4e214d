// XML helpers: a well-formedness check that runs before DOMParser, and a
// pretty-printer for parsed documents.
//
// Why a checker of our own: when DOMParser meets broken XML, Chrome builds a
// <parsererror> element with inline style attributes, which our
// Content-Security-Policy (style-src 'self') reports as a console error. So
// obvious syntax errors are found here first, reported in Chrome's wording
// ("error on line L at column C: …"), and DOMParser only sees XML that is
// very likely well-formed.

const NAME_START = /[A-Za-z_\u00C0-\uFFFF]/;
const PREDEFINED = new Set(['amp', 'lt', 'gt', 'quot', 'apos']);
const NAME_CHAR = /[A-Za-z0-9_:.\-\u00B7\u00C0-\uFFFF]/;

/** Returns null if `t` looks well-formed, else { message, offset }. */
export function checkXml(t) {
  let i = 0;
  const stack = [];
  let rootSeen = false;
  const declared = new Set(); // entities from the DOCTYPE's internal subset
  const fail = (msg, at = i) => {
    const e = new Error(msg);
    e.at = Math.min(at, t.length);
    throw e;
  };
  const ws = () => { while (i < t.length && ' \t\r\n'.includes(t[i])) i++; };
  const name = () => {
    const s = i;
    if (!NAME_START.test(t[i] || '')) fail('Specification mandates a name here');
    while (i < t.length && NAME_CHAR.test(t[i])) i++;
    return t.slice(s, i);
  };
  const until = (end, what) => {
    const j = t.indexOf(end, i);
    if (j < 0) fail(`${what} not terminated`, t.length);
    i = j + end.length;
  };
  const refs = (s, base) => {
    const re = /&(?:#[0-9]+;|#x[0-9a-fA-F]+;|([A-Za-z_:][\w.\-:]*);)?/g;
    for (const m of s.matchAll(re)) {
      if (m[0] === '&') fail('xmlParseEntityRef: no name (write & as &amp;)', base + m.index + 1);
      if (m[1] && !PREDEFINED.has(m[1]) && !declared.has(m[1])) fail(`Entity '${m[1]}' not defined`, base + m.index + m[0].length - 1);
    }
  };
  try {
    while (i < t.length) {
      if (t[i] !== '<') {
        const j = t.indexOf('<', i);
        const text = t.slice(i, j < 0 ? t.length : j);
        if (!stack.length && text.trim()) {
          fail(rootSeen ? 'Extra content at the end of the document' : "Start tag expected, '<' not found",
            i + text.search(/\S/));
        }
        if (stack.length) {
          refs(text, i);
          const gt = text.indexOf(']]>');
          if (gt >= 0) fail("Sequence ']]>' not allowed in content", i + gt);
        }
        i = j < 0 ? t.length : j;
        continue;
      }
      if (t.startsWith('<?', i)) {
        if (i > 0 && /^<\?xml[\s?]/.test(t.slice(i, i + 6))) fail('XML declaration allowed only at the start of the document', i + 5);
        i += 2; until('?>', 'processing instruction'); continue; }
      if (t.startsWith('<!--', i)) { i += 4; until('-->', 'Comment'); continue; }
      if (t.startsWith('<![CDATA[', i)) {
        if (!stack.length) fail('CDATA section outside the root element');
        i += 9; until(']]>', 'CDATA section'); continue;
      }
      if (t.startsWith('<!DOCTYPE', i)) {
        if (rootSeen) fail('DOCTYPE after the root element');
        const start = i;
        let depth = 0;
        for (i += 9; i < t.length; i++) {
          if (t[i] === '[') depth++;
          else if (t[i] === ']') depth--;
          else if (t[i] === '>' && depth <= 0) break;
        }
        if (i >= t.length) fail('DOCTYPE not terminated');
        i++;
        for (const m of t.slice(start, i).matchAll(/<!ENTITY\s+([^\s%]+)/g)) declared.add(m[1]);
        continue;
      }
      if (t[i + 1] === '/') {
        i += 2;
        const start = i;
        const n = name();
        ws();
        if (t[i] !== '>') fail("expected '>'");
        const open = stack.pop();
        if (!open) fail(`Unexpected end tag : ${n}`, start);
        if (open.name !== n) {
          fail(`Opening and ending tag mismatch: ${open.name} line ${open.line} and ${n}`, i);
        }
        i++;
        continue;
      }
      // start tag
      if (!stack.length && rootSeen) fail('Extra content at the end of the document');
      const tagAt = i;
      i++;
      if (!NAME_START.test(t[i] || '')) fail('StartTag: invalid element name');
      const n = name();
      const seen = new Set();
      for (;;) {
        const before = i;
        ws();
        if (t.startsWith('/>', i)) { i += 2; break; }
        if (t[i] === '>') {
          i++;
          stack.push({ name: n, line: t.slice(0, tagAt).split('\n').length });
          break;
        }
        if (i >= t.length) fail(`Couldn't find end of Start Tag ${n}`);
        if (i === before) fail('attributes construct error');
        const an = name();
        if (seen.has(an)) fail(`Attribute ${an} redefined`, i - an.length);
        seen.add(an);
        ws();
        if (t[i] !== '=') fail('Specification mandates value for attribute ' + an);
        i++;
        ws();
        const q = t[i];
        if (q !== '"' && q !== "'") fail('AttValue: " or \' expected');
        const end = t.indexOf(q, i + 1);
        if (end < 0) fail('AttValue: \' expected', t.length);
        const val = t.slice(i + 1, end);
        const lt = val.indexOf('<');
        if (lt >= 0) fail("Unescaped '<' not allowed in attributes values", i + 1 + lt);
        refs(val, i + 1);
        i = end + 1;
      }
      rootSeen = true;
    }
    if (stack.length) {
      const open = stack[stack.length - 1];
      fail(`Premature end of data in tag ${open.name} line ${open.line}`, t.length);
    }
    if (!rootSeen) fail('Document is empty', t.length);
  } catch (e) {
    if (e.at == null) throw e;
    const before = t.slice(0, e.at);
    const line = before.split('\n').length;
    const col = e.at - before.lastIndexOf('\n');
    return { message: `error on line ${line} at column ${col}: ${e.message}`, offset: e.at };
  }
  return null;
}

const escText = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const escAttr = (s) => escText(s).replace(/"/g, '&quot;');

/** Indented text form of a parsed XML document (declaration kept from the source). */
export function prettyXml(doc, source) {
  const out = [];
  const decl = /^\s*(<\?xml\b[^?]*\?>)/.exec(source);
  if (decl) out.push(decl[1]);
  for (const n of doc.childNodes) node(n, 0, out);
  return out.join('\n');
}

function node(n, depth, out) {
  const ind = '  '.repeat(depth);
  switch (n.nodeType) {
    case Node.ELEMENT_NODE: {
      const attrs = Array.from(n.attributes, (a) => ` ${a.name}="${escAttr(a.value)}"`).join('');
      const open = `<${n.nodeName}${attrs}`;
      const kids = Array.from(n.childNodes).filter(
        (c) => !(c.nodeType === Node.TEXT_NODE && !c.nodeValue.trim()));
      if (kids.length === 0) {
        out.push(`${ind}${open}/>`);
      } else if (kids.length === 1 && kids[0].nodeType === Node.TEXT_NODE && !kids[0].nodeValue.trim().includes('\n')) {
        out.push(`${ind}${open}>${escText(kids[0].nodeValue.trim())}</${n.nodeName}>`);
      } else {
        out.push(`${ind}${open}>`);
        for (const c of kids) node(c, depth + 1, out);
        out.push(`${ind}</${n.nodeName}>`);
      }
      break;
    }
    case Node.TEXT_NODE:
      for (const line of n.nodeValue.trim().split('\n')) out.push(ind + escText(line.trim()));
      break;
    case Node.CDATA_SECTION_NODE:
      out.push(`${ind}<![CDATA[${n.nodeValue}]]>`);
      break;
    case Node.COMMENT_NODE:
      out.push(`${ind}<!--${n.nodeValue}-->`);
      break;
    case Node.PROCESSING_INSTRUCTION_NODE:
      out.push(`${ind}<?${n.target} ${n.data}?>`);
      break;
    case Node.DOCUMENT_TYPE_NODE:
      out.push(`${ind}<!DOCTYPE ${n.name}${n.publicId ? ` PUBLIC "${n.publicId}"` : ''}${n.systemId ? ` "${n.systemId}"` : ''}>`);
      break;
    default:
      break;
  }
}
