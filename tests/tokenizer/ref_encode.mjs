// ref_encode.mjs — encode a corpus with Hugging Face's tokenizers, the reference for the C one.
//
// Two independent implementations are available from npm: @huggingface/tokenizers (tokenizers.js,
// pure JavaScript) and `tokenizers` (the Node binding of the Rust library that defines the
// tokenizer.json format). Both encode without adding special tokens, as sisa_tokenizer_encode
// does.
//
// Usage: node ref_encode.mjs js|rust TOKENIZER.json CORPUS.bin OUT.ids
// Output: per document, a little-endian u32 id count followed by that many i32 ids.
import fs from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

// Read from disk: @huggingface/tokenizers does not export its package.json.
export function pkgVersion(name) {
    const url = new URL(`node_modules/${name}/package.json`, import.meta.url);
    return JSON.parse(fs.readFileSync(url, 'utf8')).version;
}

export function readDocs(file) {
    const b = fs.readFileSync(file);
    const docs = [];
    for (let o = 0; o < b.length;) {
        const n = b.readUInt32LE(o);
        docs.push(b.toString('utf8', o + 4, o + 4 + n));
        o += 4 + n;
    }
    return docs;
}

export function readIds(file) {
    const b = fs.readFileSync(file);
    const out = [];
    for (let o = 0; o < b.length;) {
        const n = b.readUInt32LE(o);
        o += 4;
        out.push(Array.from({ length: n }, (_, i) => b.readInt32LE(o + 4 * i)));
        o += 4 * n;
    }
    return out;
}

export function writeIds(file, lists) {
    const total = lists.reduce((s, l) => s + 4 + 4 * l.length, 0);
    const b = Buffer.alloc(total);
    let o = 0;
    for (const l of lists) {
        b.writeUInt32LE(l.length, o);
        o += 4;
        for (const id of l) { b.writeInt32LE(id, o); o += 4; }
    }
    fs.writeFileSync(file, b);
}

export async function loadReference(kind, jsonPath) {
    if (kind === 'js') {
        const { Tokenizer } = await import('@huggingface/tokenizers');
        const tok = new Tokenizer(JSON.parse(fs.readFileSync(jsonPath, 'utf8')), {});
        return {
            name: '@huggingface/tokenizers ' + pkgVersion('@huggingface/tokenizers'),
            encodeAll: async (docs) => docs.map((d) => tok.encode(d, { add_special_tokens: false }).ids),
            decode: async (ids) => tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false }),
            token: (id) => tok.id_to_token(id),
        };
    }
    const { Tokenizer } = require('tokenizers');
    const tok = Tokenizer.fromFile(jsonPath);
    return {
        name: 'tokenizers (Rust binding) ' + pkgVersion('tokenizers'),
        encodeAll: async (docs) => {
            const out = [];
            for (let i = 0; i < docs.length; i += 256) {
                const enc = await tok.encodeBatch(docs.slice(i, i + 256), { addSpecialTokens: false });
                for (const e of enc) out.push(e.getIds());
            }
            return out;
        },
        decode: async (ids) => tok.decode(ids, false),
        token: (id) => tok.idToToken(id),
    };
}

if (import.meta.url === `file://${process.argv[1]}`) {
    const [kind, json, corpus, out] = process.argv.slice(2);
    const ref = await loadReference(kind, json);
    const docs = readDocs(corpus);
    const t0 = performance.now();
    const ids = await ref.encodeAll(docs);
    writeIds(out, ids);
    console.log(`${ref.name}: ${docs.length} documents, ${ids.reduce((s, l) => s + l.length, 0)} ids, ${((performance.now() - t0) / 1000).toFixed(2)} s`);
}
