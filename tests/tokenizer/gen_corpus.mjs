// gen_corpus.mjs — the deterministic test corpus for comparing the C tokenizer with Hugging Face's.
//
// Real English comes from /usr/share/common-licenses (Debian's base-files, on every machine);
// everything else is generated from a fixed seed: mutated license paragraphs, many scripts,
// combining marks (in and out of canonical order, for NFC), emoji sequences, code, numbers,
// whitespace runs, contractions and added tokens in the middle of text. Characters are drawn
// from blocks that have been stable since well before Unicode 14, so that PCRE2 (14.0),
// Oniguruma and V8 agree on their classes.
//
// Usage: node gen_corpus.mjs OUT.bin [target_megabytes]
// Output: documents, each as a little-endian u32 byte length followed by its UTF-8 bytes.
import fs from 'node:fs';
import path from 'node:path';

const LICENSES = '/usr/share/common-licenses';

function rng(seed) {
    // mulberry32: tiny, fast and the same on every platform
    let a = seed >>> 0;
    const next = () => {
        a = (a + 0x6d2b79f5) >>> 0;
        let t = a;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const int = (n) => Math.floor(next() * n);
    return {
        next, int,
        pick: (arr) => arr[int(arr.length)],
        range: (lo, hi) => lo + int(hi - lo + 1),
        chance: (p) => next() < p,
    };
}

const cp = (c) => String.fromCodePoint(c);
const fromRange = (r, lo, hi) => cp(r.range(lo, hi));

function licenseTexts() {
    if (!fs.existsSync(LICENSES)) return [];
    return fs.readdirSync(LICENSES).sort()
        .map((f) => path.join(LICENSES, f))
        .filter((p) => fs.statSync(p).isFile())
        .map((p) => fs.readFileSync(p, 'utf8'));
}

// ---- pieces of text -----------------------------------------------------------------------

const SCRIPTS = [
    [0x00C0, 0x00FF], [0x0100, 0x017F], [0x0180, 0x024F], [0x0391, 0x03A1], [0x03B1, 0x03C9],
    [0x0410, 0x044F], [0x05D0, 0x05EA], [0x0621, 0x063A], [0x0641, 0x064A], [0x0905, 0x0939],
    [0x0E01, 0x0E30], [0x10D0, 0x10F0], [0x3041, 0x3096], [0x30A1, 0x30FA], [0xAC00, 0xD7A3],
    [0x4E00, 0x9FA5], [0x0531, 0x0556], [0x0B85, 0x0B94],
];
const MARKS = [[0x0300, 0x034E], [0x0350, 0x036F], [0x0591, 0x05AF], [0x064B, 0x065F],
    [0x093E, 0x094C], [0x0E31, 0x0E3A], [0x20D0, 0x20DC]];
const SYMBOLS = [[0x2190, 0x21FF], [0x2200, 0x22FF], [0x2500, 0x257F], [0x25A0, 0x25FF],
    [0x2600, 0x26FF], [0x20A0, 0x20B5], [0x00A1, 0x00BF], [0x2010, 0x2027], [0xFF01, 0xFF5E]];
const EMOJI = [[0x1F300, 0x1F5FF], [0x1F600, 0x1F64F], [0x1F680, 0x1F6C5], [0x1F90D, 0x1F9FF]];
const SPACES = [' ', ' ', ' ', '\t', '\n', '\r\n', '\u00A0', '\u2002', '\u2003', '\u2009', '\u200A',
    '\u3000', '\u2028', '\u2029', '\u0085', '\u000B', '\u000C', '\u1680', '\u202F', '\u205F'];
const INVISIBLE = ['\u200B', '\u200C', '\u200D', '\uFEFF', '\u00AD', '\u2060', '\u180E'];
const CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'VE", "'M",
    "'LL", "'D", "\u2019s", "\u2019t", "''", "'"];
const WORDS_EN = ['the', 'of', 'and', 'to', 'in', 'is', 'that', 'for', 'it', 'with', 'as', 'was',
    'on', 'be', 'at', 'by', 'this', 'had', 'not', 'are', 'but', 'from', 'or', 'have', 'an', 'they',
    'which', 'one', 'you', 'were', 'her', 'all', 'she', 'there', 'would', 'their', 'we', 'him',
    'been', 'has', 'when', 'who', 'will', 'more', 'no', 'if', 'out', 'so', 'said', 'what', 'up',
    'its', 'about', 'into', 'than', 'them', 'can', 'only', 'other', 'new', 'some', 'could', 'time',
    'these', 'two', 'may', 'then', 'do', 'first', 'any', 'my', 'now', 'such', 'like', 'our', 'over',
    'man', 'me', 'even', 'most', 'made', 'after', 'also', 'did', 'many', 'before', 'must', 'through',
    'tokenizer', 'transformer', 'state', 'space', 'attention', 'softmax', 'gradient', 'résumé',
    'naïve', 'café', 'coöperate', 'Straße', 'façade', 'jalapeño', 'Zürich', 'São', 'Ångström'];
const REAL_PHRASES = ['Привет, как дела?', 'Γειά σου Κόσμε', 'こんにちは世界、元気ですか？',
    '你好，世界！今天天气很好。', '안녕하세요 세계', 'مرحبا بالعالم', 'שלום עולם', 'नमस्ते दुनिया',
    'สวัสดีชาวโลก', 'Tiếng Việt có dấu: Người, được, những, việc', 'Ça va? Où est la gare? Élève',
    'Ελληνικά: ἄλφα, ῥῆμα, ᾠδή', 'ﬁle ﬂow ﬀ', 'Ⅻ ⅲ ½ ¾ ² ³ ⁴ ₅', '١٢٣٤٥٦٧٨٩٠ ۱۲۳ ०१२३ １２３',
    '👨‍👩‍👧‍👦 👍🏽 🇩🇪🇯🇵 1️⃣ #️⃣ ❤️ 🏳️‍🌈', 'e\u0301 a\u0300 o\u0308 n\u0303 c\u0327',
    'a\u0323\u0302 a\u0302\u0323 q\u0307\u0323 \u1100\u1161\u11A8 \u1100\u1161 \uAC00\u11A8',
    '\u212B \u2126 \u00C5 A\u030A \u1E9B\u0323', 'Z̷̢̛̛͉͈̙a̸̡̺͎l̵̛̩̗g̶̨̛o̵̢̡͖'];

function words(r, n) {
    const out = [];
    for (let i = 0; i < n; i++) {
        let w = r.pick(WORDS_EN);
        if (r.chance(0.1)) w = w[0].toUpperCase() + w.slice(1);
        if (r.chance(0.03)) w = w.toUpperCase();
        if (r.chance(0.06)) w += r.pick(CONTRACTIONS);
        out.push(w);
    }
    return out;
}

function scriptWord(r) {
    const [lo, hi] = r.pick(SCRIPTS);
    let w = '';
    const n = r.range(1, 9);
    for (let i = 0; i < n; i++) {
        w += fromRange(r, lo, hi);
        if (r.chance(0.15)) { const [a, b] = r.pick(MARKS); w += fromRange(r, a, b); }
    }
    return w;
}

function number(r) {
    switch (r.int(9)) {
    case 0: return String(r.int(10));
    case 1: return String(r.int(100000));
    case 2: return String(r.int(1e9)) + String(r.int(1e9));
    case 3: return (r.next() * 1000).toFixed(r.int(6));
    case 4: return r.int(1000) + ',' + String(r.int(1000)).padStart(3, '0') + ',' + String(r.int(1000)).padStart(3, '0');
    case 5: return `${r.range(1900, 2099)}-${String(r.range(1, 12)).padStart(2, '0')}-${String(r.range(1, 28)).padStart(2, '0')}`;
    case 6: return '0x' + r.int(0x7fffffff).toString(16).toUpperCase();
    case 7: return '+' + r.int(100) + ' (' + r.int(1000) + ') ' + r.int(10000000);
    default: {
        // other digit families: Arabic-Indic, fullwidth, Devanagari (Nd); superscripts (No)
        const fam = r.pick([[0x0660], [0xFF10], [0x0966], [0x2070, 0xB9, 0xB2, 0xB3, 0x2074, 0x2075, 0x2076, 0x2077, 0x2078, 0x2079]]);
        let s = '';
        for (let i = r.range(1, 6); i > 0; i--) s += cp(fam.length === 1 ? fam[0] + r.int(10) : r.pick(fam));
        return s;
    }
    }
}

function emoji(r) {
    switch (r.int(5)) {
    case 0: { const [a, b] = r.pick(EMOJI); return fromRange(r, a, b); }
    case 1: return fromRange(r, 0x1F466, 0x1F469) + '\u200D' + fromRange(r, 0x1F466, 0x1F469);
    case 2: return fromRange(r, 0x1F44A, 0x1F450) + cp(r.range(0x1F3FB, 0x1F3FF));
    case 3: return cp(0x1F1E6 + r.int(26)) + cp(0x1F1E6 + r.int(26));
    default: return r.pick('0123456789#*') + '\uFE0F\u20E3';
    }
}

function space(r) {
    if (r.chance(0.8)) return ' ';
    let s = '';
    const n = r.range(1, 12);
    for (let i = 0; i < n; i++) s += r.pick(SPACES);
    return s;
}

function punct(r) {
    return r.pick(['.', ',', ';', ':', '!', '?', '...', '--', '—', '–', '(', ')', '[', ']', '"',
        '“', '”', '«', '»', '„', '¿', '¡', '!?', '?!', '...!', '%', '&', '@', '#', '$', '€', '£',
        '¥', '₹', '*', '/', '\\', '|', '~', '^', '_', '__', '<', '>', '<=', '>=', '==', '=>', '->',
        '©', '®', '™', '§', '¶', '†', '‡', '•', '°', '±', '×', '÷']);
}

function sentence(r) {
    const parts = [];
    const n = r.range(3, 30);
    for (let i = 0; i < n; i++) {
        const k = r.int(100);
        if (k < 55) parts.push(words(r, 1)[0]);
        else if (k < 67) parts.push(scriptWord(r));
        else if (k < 75) parts.push(number(r));
        else if (k < 82) parts.push(punct(r));
        else if (k < 86) parts.push(emoji(r));
        else if (k < 89) { const [a, b] = r.pick(SYMBOLS); parts.push(fromRange(r, a, b)); }
        else if (k < 91) parts.push(r.pick(INVISIBLE));
        else if (k < 95) parts.push(r.pick(REAL_PHRASES));
        else parts.push(r.pick(CONTRACTIONS));
        parts.push(r.chance(0.12) ? '' : space(r));
    }
    return parts.join('');
}

function cjkRun(r) {
    // CJK has no spaces: one long pre-token, the worst case for a quadratic merge loop
    let s = '';
    const n = r.range(50, 3000);
    const [lo, hi] = r.pick([[0x4E00, 0x9FA5], [0x3041, 0x3096], [0xAC00, 0xD7A3], [0x0E01, 0x0E30]]);
    for (let i = 0; i < n; i++) s += r.chance(0.02) ? r.pick(['。', '、', '，', '！', '「', '」']) : fromRange(r, lo, hi);
    return s;
}

function code(r) {
    const ident = () => r.pick(['x', 'i', 'len', 'buf', 'self', 'ctx', 'node', 'tok_ids', 'n_heads',
        'd_model', 'HashMap', 'fooBar', 'snake_case_name', '__init__', 'T', 'vec3', 'πr²']);
    const indent = (d) => (r.chance(0.3) ? '\t'.repeat(d) : ' '.repeat(d * r.pick([2, 4, 8])));
    const nl = r.chance(0.2) ? '\r\n' : '\n';
    const lines = [];
    let depth = 0;
    const n = r.range(5, 80);
    for (let i = 0; i < n; i++) {
        const k = r.int(12);
        let line;
        if (k === 0) { line = `${r.pick(['if', 'while', 'for', 'def', 'function', 'fn'])} ${ident()}(${ident()}, ${ident()}) {`; }
        else if (k === 1) { line = '}'; }
        else if (k === 2) { line = `${ident()} = ${ident()}[${r.int(64)}] ${r.pick(['+', '-', '*', '/', '>>', '<<', '&&', '||', '!==', '**'])} ${number(r)};`; }
        else if (k === 3) { line = `// ${words(r, r.range(1, 10)).join(' ')}`; }
        else if (k === 4) { line = `printf("%s: %d\\n\\t", "${sentence(r).replace(/[\r\n"]/g, ' ')}", ${r.int(9)});`; }
        else if (k === 5) { line = ''; }
        else if (k === 6) { line = `return ${ident()}.${ident()}(${r.chance(0.5) ? "'" + ident() + "'" : '[]'});`; }
        else if (k === 7) { line = '#include <' + ident() + '.h>'; }
        else if (k === 8) { line = `"${ident()}": {"id": ${r.int(50000)}, "ok": ${r.chance(0.5)}, "v": [${number(r)}, null]},`; }
        else if (k === 9) { line = 'https://example.org/' + ident() + '?q=' + r.int(1e6) + '&lang=en#sec-' + r.int(9); }
        else if (k === 10) { let b = ''; for (let j = r.range(10, 200); j > 0; j--) b += 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'[r.int(64)]; line = b + '=='; }
        else { line = `/* ${r.pick(['TODO', 'FIXME', 'XXX', 'NOTE'])}: ${sentence(r).replace(/[\r\n]/g, ' ')} */`; }
        if (line === '}') depth = Math.max(0, depth - 1);
        let full = indent(depth) + line;
        if (r.chance(0.1)) full += ' '.repeat(r.range(1, 6));   // trailing spaces
        if (r.chance(0.05)) full += '\t';
        lines.push(full);
        if (line.endsWith('{')) depth = Math.min(depth + 1, 6);
    }
    return lines.join(nl) + (r.chance(0.5) ? nl : '');
}

function whitespaceDoc(r) {
    let s = '';
    const n = r.range(1, 40);
    for (let i = 0; i < n; i++) {
        const k = r.int(6);
        if (k === 0) s += ' '.repeat(r.range(1, 40));
        else if (k === 1) s += '\n'.repeat(r.range(1, 5));
        else if (k === 2) s += '\t'.repeat(r.range(1, 4));
        else if (k === 3) s += space(r);
        else s += words(r, 1)[0];
    }
    return s;
}

// Added tokens that the tokenizer variants define (unknown ones are plain text to them).
const ADDED = ['<|endoftext|>', '<|padding|>', '<mask>', '[WORD]'];

function withAddedTokens(r, s) {
    const n = r.range(1, 4);
    for (let i = 0; i < n; i++) {
        const at = r.int(s.length + 1);
        // never split a surrogate pair
        const pos = at > 0 && at < s.length && /[\uDC00-\uDFFF]/.test(s[at]) ? at - 1 : at;
        let tok = r.pick(ADDED);
        if (r.chance(0.15)) tok = tok.slice(0, tok.length - 1);   // almost a token
        if (r.chance(0.2)) tok = ' '.repeat(r.range(1, 3)) + tok + ' '.repeat(r.int(3));
        if (r.chance(0.1)) tok += tok;
        s = s.slice(0, pos) + tok + s.slice(pos);
    }
    return s;
}

function mutateParagraph(r, p) {
    switch (r.int(8)) {
    case 0: return p.toUpperCase();
    case 1: return p.replace(/'/g, '\u2019').replace(/"([^"]*)"/g, '“$1”');
    case 2: return p.replace(/\n/g, '\r\n');
    case 3: return p.replace(/ /g, () => (r.chance(0.1) ? '  ' : r.chance(0.02) ? '\t' : ' ')).replace(/\n/g, ' \n');
    case 4: return p.normalize('NFD');
    case 5: return p.split(' ').map((w) => (r.chance(0.05) ? w + emoji(r) : w)).join(' ');
    case 6: return withAddedTokens(r, p);
    default: return p;
    }
}

function randomSoup(r) {
    const ranges = [...SCRIPTS, ...MARKS, ...SYMBOLS, ...EMOJI, [0x20, 0x7E], [0xE000, 0xE0FF],
        [0x1D400, 0x1D4FF]];
    let s = '';
    const n = r.range(1, 400);
    for (let i = 0; i < n; i++) s += r.chance(0.1) ? space(r) : fromRange(r, ...r.pick(ranges));
    return s;
}

export function generate(targetBytes, seed = 20261123) {
    const r = rng(seed);
    const docs = ['', ' ', '\n', '  \n\n\t ', 'Hello world', "I'm sure it's fine, isn't it? We'll see; they'd've known.",
        '<|endoftext|>', 'a<|endoftext|>b', ' <|endoftext|> ', '<|endoftext|><|endoftext|>', '<|endoftext',
        'trailing spaces   ', 'trailing newline\n', '\t\ttabs\t', ...REAL_PHRASES];
    const licenses = licenseTexts();
    let size = 0;
    const add = (d) => { docs.push(d); size += Buffer.byteLength(d); };
    for (const t of licenses) add(t);
    const paragraphs = licenses.flatMap((t) => t.split(/\n\s*\n/)).filter((p) => p.trim());
    while (size < targetBytes) {
        const k = r.int(100);
        if (k < 30 && paragraphs.length) add(mutateParagraph(r, r.pick(paragraphs)));
        else if (k < 55) add(Array.from({ length: r.range(1, 8) }, () => sentence(r)).join(r.pick(['\n', '\n\n', ' ', '  '])));
        else if (k < 68) add(code(r));
        else if (k < 73) add(cjkRun(r));
        else if (k < 80) add(whitespaceDoc(r));
        else if (k < 85) add(randomSoup(r));
        else if (k < 95) add(withAddedTokens(r, sentence(r) + (r.chance(0.5) ? space(r) : '')));
        else add(Array.from({ length: r.range(1, 20) }, () => number(r)).join(r.pick([' ', ', ', '\n', ''])));
    }
    return docs;
}

export function writeDocs(file, docs) {
    const bufs = [];
    for (const d of docs) {
        const b = Buffer.from(d, 'utf8');
        const len = Buffer.alloc(4);
        len.writeUInt32LE(b.length);
        bufs.push(len, b);
    }
    fs.writeFileSync(file, Buffer.concat(bufs));
}

if (import.meta.url === `file://${process.argv[1]}`) {
    const out = process.argv[2];
    const mb = Number(process.argv[3] || 4);
    const docs = generate(mb * 1e6);
    writeDocs(out, docs);
    const bytes = docs.reduce((s, d) => s + Buffer.byteLength(d), 0);
    console.log(`${out}: ${docs.length} documents, ${(bytes / 1e6).toFixed(2)} MB`);
}
