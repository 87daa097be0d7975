// make_fixture.mjs — writes fixture.json, the small tokenizer.json of the unit test (committed).
//
// The vocabulary is the 256 characters of GPT-2's byte-level alphabet (id = byte value) plus a
// handful of merges, so that the unit test can check known ids without node. With the Rust
// binding installed, `node make_fixture.mjs --ids` prints the ids Hugging Face gives for the
// test strings; those are the expected values written into tests/test_tokenizer.c.
//
// Usage: node make_fixture.mjs [--ids]
import fs from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

function byteToChar(b) {
    const printable = (x) => (x >= 0x21 && x <= 0x7e) || (x >= 0xa1 && x <= 0xac) || x >= 0xae;
    if (printable(b)) return String.fromCodePoint(b);
    let n = 0;
    for (let x = 0; x < b; x++) if (!printable(x)) n++;
    return String.fromCodePoint(256 + n);
}

const bl = (s) => Array.from(Buffer.from(s, 'utf8'), byteToChar).join('');

const vocab = {};
for (let b = 0; b < 256; b++) vocab[byteToChar(b)] = b;
// Each merge is given as the byte-level spelling of its two halves.
const pairs = [['h', 'e'], ['l', 'l'], ['he', 'll'], ['hell', 'o'], [' ', 'w'], ['o', 'r'],
    [' w', 'or'], [' wor', 'l'], [' worl', 'd'], [' ', ' '], ['  ', '  '], ["'", 's'], ['1', '2'],
    ['12', '3'], ['\xe4', '\xb8'], ['\xe4\xb8', '\xad'], ['\n', '\n']];
const merges = [];
for (const [a, b] of pairs) {
    // '\xe4'-style halves are raw bytes (pieces of 中 = E4 B8 AD); others are text
    const enc = (s) => (/^[\x80-\xff]+$/.test(s) ? Array.from(s, (c) => byteToChar(c.charCodeAt(0))).join('') : bl(s));
    const [ea, eb] = [enc(a), enc(b)];
    if (!(ea + eb in vocab)) vocab[ea + eb] = Object.keys(vocab).length;
    merges.push(`${ea} ${eb}`);
}
const next = Object.keys(vocab).length;
const tok = {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [
        { id: next, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
        { id: next + 1, content: '<pad>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    ],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges },
};
const out = new URL('fixture.json', import.meta.url);
fs.writeFileSync(out, JSON.stringify(tok, null, 1) + '\n');

export const STRINGS = ['hello world', 'hello  world\n', 'Hello', '\u4e2d\u6587', "it's 123 1234",
    'a<|endoftext|>b', '', '  \t\n\n', '\u{1F44D} ok', 'x<pad><|endoftext|> <pad>'];

if (process.argv.includes('--ids')) {
    const { Tokenizer } = require('tokenizers');
    const t = Tokenizer.fromFile(out.pathname);
    for (const s of STRINGS) {
        const e = await t.encode(s, null, { addSpecialTokens: false });
        console.log(JSON.stringify(s), JSON.stringify(e.getIds()));
    }
}
