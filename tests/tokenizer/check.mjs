// check.mjs — compare the C tokenizer with Hugging Face's on a few MB of generated text.
//
// For each tokenizer.json layout of make_tokenizers.mjs, the corpus of gen_corpus.mjs is encoded
// by the Rust `tokenizers` binding, by @huggingface/tokenizers (tokenizers.js) and by the C
// tokenizer (tokcheck). The Rust library defines the format, so the C ids must equal its ids on
// every document. tokenizers.js is a second, independent implementation; it deviates from the
// Rust one on some inputs (its ByteLevel regex uses JavaScript's \s, which includes U+FEFF and
// not U+0085; it ignores single_word; it lacks MergedWithPrevious and applies ByteLevel's prefix
// space once), so the C ids must equal its ids on every document where the two agree, and the
// number of documents where they do not is reported. gpt-3-encoder's own encoder (OpenAI's GPT-2
// algorithm) checks that the gpt2 layout really is GPT-2 on the license texts.
//
// Usage: node check.mjs TOKCHECK_EXE WORKDIR [megabytes]
// Exit: 0 pass, 1 mismatch or error, 77 when a package is missing (run setup.sh).
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const here = path.dirname(new URL(import.meta.url).pathname);

for (const p of ['@huggingface/tokenizers', 'gpt-3-encoder', 'tokenizers']) {
    if (!fs.existsSync(path.join(here, 'node_modules', p, 'package.json'))) {
        console.log(`SKIP: npm package ${p} is not installed in ${here}/node_modules (run tests/tokenizer/setup.sh)`);
        process.exit(77);
    }
}
try {
    require('tokenizers');
} catch (e) {
    console.log(`SKIP: the tokenizers native binding does not load here: ${e.message.split('\n')[0]}`);
    process.exit(77);
}

const { generate, writeDocs } = await import('./gen_corpus.mjs');
const { loadGpt2, variants } = await import('./make_tokenizers.mjs');
const { loadReference, readIds } = await import('./ref_encode.mjs');

const [exe, work, mbArg] = process.argv.slice(2);
const mb = Number(mbArg || 4);
fs.mkdirSync(work, { recursive: true });

// How decode(encode(x)) must come back: exactly, as NFC(x) where the normalizer is NFC, or not
// at all where added tokens strip spaces (llama3), a prefix space is added (digits) or a split
// removes text (splits).
const ROUNDTRIP = { gpt2: 'exact', neox: 'nfc', seq: 'nfc', llama3: 'none', digits: 'none', splits: 'none' };

const same = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);
const secs = (t0) => ((performance.now() - t0) / 1000).toFixed(2);

function describe(ref, docs, i, a, b, nameA, nameB) {
    let k = 0;
    while (k < a.length && k < b.length && a[k] === b[k]) k++;
    const show = (ids) => JSON.stringify(ids.slice(Math.max(0, k - 3), k + 5).map((id) => `${id}:${ref.token(id)}`));
    const text = JSON.stringify(docs[i].slice(0, 300));
    return `  document ${i} (${text}${docs[i].length > 300 ? '...' : ''}), first difference at id ${k}:\n` +
        `    ${nameA}: ${show(a)}\n    ${nameB}: ${show(b)}`;
}

let t0 = performance.now();
const docs = generate(mb * 1e6);
const corpus = path.join(work, 'corpus.bin');
writeDocs(corpus, docs);
const bytes = docs.reduce((s, d) => s + Buffer.byteLength(d), 0);
console.log(`corpus: ${docs.length} documents, ${(bytes / 1e6).toFixed(2)} MB (${secs(t0)} s)`);

const g = loadGpt2();
let failed = false;
let totalIds = 0;
for (const [name, json] of Object.entries(variants(g))) {
    const file = path.join(work, `${name}.json`);
    fs.writeFileSync(file, JSON.stringify(json));
    const rust = await loadReference('rust', file);
    const js = await loadReference('js', file);

    t0 = performance.now();
    const idsRust = await rust.encodeAll(docs);
    const tRust = secs(t0);
    t0 = performance.now();
    const idsJs = await js.encodeAll(docs);
    const tJs = secs(t0);

    const out = path.join(work, `${name}.c.ids`);
    const run = spawnSync(exe, [file, corpus, out, ROUNDTRIP[name]], { encoding: 'utf8' });
    process.stdout.write(`[${name}] ${run.stdout}`);
    if (run.status !== 0) {
        console.log(`[${name}] FAIL: tokcheck exited ${run.status}\n${run.stderr.split('\n').slice(0, 10).join('\n')}`);
        failed = true;
        continue;
    }
    const idsC = readIds(out);
    let vsRust = 0, jsAgrees = 0, vsJs = 0, nIds = 0;
    const examples = [];
    for (let i = 0; i < docs.length; i++) {
        nIds += idsRust[i].length;
        const okRust = same(idsC[i], idsRust[i]);
        const refsAgree = same(idsJs[i], idsRust[i]);
        if (okRust) vsRust++;
        else if (examples.length < 3) examples.push(describe(rust, docs, i, idsRust[i], idsC[i], 'rust', 'C   '));
        if (refsAgree) {
            jsAgrees++;
            if (same(idsC[i], idsJs[i])) vsJs++;
        }
    }
    totalIds += nIds;
    console.log(`[${name}] ${rust.name}: ${tRust} s; ${js.name}: ${tJs} s`);
    console.log(`[${name}] C == Rust on ${vsRust}/${docs.length} documents (${nIds} ids); ` +
        `C == JS on ${vsJs}/${jsAgrees} documents where JS == Rust (JS differs from Rust on ${docs.length - jsAgrees})`);
    if (vsRust !== docs.length || vsJs !== jsAgrees) {
        failed = true;
        console.log(`[${name}] FAIL\n${examples.join('\n')}`);
    }
    if (name === 'gpt2') {
        // OpenAI's GPT-2 encoder, on the license texts (ASCII English), must agree too.
        const { encode } = require('gpt-3-encoder');
        const lic = docs.filter((d) => d.length > 1000 && /^[\x00-\x7f]*$/.test(d)).slice(0, 8);
        let ok = 0;
        for (const d of lic) if (same(encode(d), idsRust[docs.indexOf(d)])) ok++;
        console.log(`[gpt2] gpt-3-encoder == Rust on ${ok}/${lic.length} license texts`);
        if (ok !== lic.length) failed = true;
    }
}
console.log(failed ? 'FAIL' : `PASS: ${Object.keys(ROUNDTRIP).length} layouts x ${docs.length} documents (${(bytes / 1e6).toFixed(2)} MB), ${totalIds} ids identical to Hugging Face tokenizers (Rust)`);
process.exit(failed ? 1 : 0);
