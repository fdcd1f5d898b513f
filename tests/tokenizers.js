// Reference side of tests/tokenizers.sh: Hugging Face's tokenizers library
// (the Rust code behind BertTokenizerFast, through its Node binding).
//
//   node tokenizers.js gen DIR
//       writes DIR/vocab.txt and DIR/texts.txt (one text a line) and
//       DIR/pairs.txt (text<TAB>text a line), generated from a fixed seed
//   node tokenizers.js encode DIR LOWERCASE MAX_LEN [pair] < texts
//       prints what `mneme tokenize DIR [--pair] [--max-len MAX_LEN]` should
//       (MAX_LEN 0: no truncation), with the tokenizer that transformers'
//       BertTokenizerFast builds from vocab.txt and do_lower_case=LOWERCASE
'use strict'
const fs = require('fs')
const path = require('path')
const { Tokenizer } = require('tokenizers')

const SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']

function vocabulary() {
  const v = [...SPECIALS]
  const add = (t) => v.push(t)
  for (let c = 33; c < 127; c++) add(String.fromCharCode(c))
  for (const c of 'abcdefghijklmnopqrstuvwxyz0123456789') add('##' + c)
  for (const w of ['hello', 'world', 'wow', 'the', 'un', '##aff', '##able', 'cafe', 'café', 'creme',
    'crème', 'naive', 'naïve', '##ing', '##s', 'play', 'Hello', 'World', 'The', 'Cafe', 'Café',
    'é', 'è', 'ï', 'å', 'ü', 'ß', 'σ', 'ς', 'Σ', '##σ', '##ς', '##é', '##e', 'i̇', '##̇', 'ı',
    'istanbul', 'i̇stanbul', 'İstanbul', '中', '文', '字', '日', '本', '語', '𠀀', '丽', '한', '국',
    'ᄒ', '##ᅡ', '##ᆫ', 'の', 'テ', '👍', '##🏽', '❤', '…', '—', '«', '»', '¿', '€', '½', '“', '”',
    '‘', '’', '·', '·', 'α', 'β', 'γ', 'straße', 'strasse', '##ß', 'ǆ', 'ǅ', '5', '##00', '00',
    'ab', '##ab', 'x', '##x', 'mask', 'cls', 'sep', 'ع', '##ر', 'ب', 'न', '##म', 'ก', '¡', 'ﬁ',
    'Ⅻ', 'ⅻ', '①', 'ª', 'ˢ', 'Ω', 'ω', 'Å', 'K', 'k', '#', '##!', '!']) add(w)
  return v
}

// A small deterministic generator (mulberry32).
function rng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

// Characters assigned since Unicode 8.0 are left out: the library takes
// control characters, accents and punctuation from Unicode 8.0 tables and
// mneme from utf8proc's newer ones (see mneme(1), tokenize).
const FRAGMENTS = [
  'hello', 'Hello World', 'HELLO', 'wow!!!', '$5.00', 'a--b', 'unaffable', 'playing', 'plays',
  'café', 'CAFÉ', 'Crème brûlée', 'cafe\u0301', 'naïve', 'Ångström', 'ÉCOLE', 'a\u0308\u0323b',
  'e\u0323\u0301', 'ΣΊΣΥΦΟΣ', 'ὈΔΥΣΣΕΎΣ', 'Straße', 'STRASSE', 'İstanbul', 'İ', 'ı', 'ǅemal',
  'Kelvin\u212a', 'Å\u212b', 'ﬁne', 'Ⅻ', '①②', 'ªˢ', 'Ω\u2126',
  '中文字', '日本語のテキスト', '한국어', '\u{20000}\u{2A6DF}', '\u{2B820}\u{2B91F}', '\u{2B920}',
  '\uF900\uFAFF', '\u{2F800}', '\u3400\u4DBF', '\u3005\u3007', 'ｆｕｌｌ',
  '«quote»', '¿qué?', '¡Hola!', 'x—y', 'wait…', '‘single’', '“double”', '@#%^&*', '_x_', '`~',
  '½', '±', '©', '€5', '§1', '¶', '·', '‐‑‒–', '〈〉', '【】', '〜', '、。',
  '👍🏽', '🥰', '❤\uFE0F', '👨\u200D👩\u200D👧', '🇩🇪', '\u{1FAE8}', '\u{1F9FF}',
  'a\u00A0b', 'a\u2028b', 'a\u2029b', 'a\u3000b', 'a\u1680b', 'a\u2000b\u200Ac', 'a\u202Fb',
  'a\u205Fb', 'a\u0085b', 'a\u000Bb', 'a\u000Cb', 'a\u180Eb', 'a\uFEFFb', 'a\u200Bb', 'a\u200Cb',
  'a\u2060b', 'a\u00ADb', 'a\tb', 'a\u001Cb', 'a\u001Fb',
  'a\u0001b', 'a\u0007b', 'a\u001Bb', 'a\u007Fb', 'a\u009Fb', 'a\uE000b', 'a\uE001b', 'a\uF8FFb',
  'a\u{F0000}b', 'a\u{10FFFD}b', 'a\uFFFDb', 'a\u0378b', 'a\u{1FFFF}b', 'a\uFFFEb', 'a\u2066b\u2069',
  'a\u0600b', 'a\u{E0001}b', 'a\u{E0041}b', 'a\u061Cb', 'a\u08E3b', 'a\u2E42b',
  'عربي', 'مَرْحَبًا', 'שָׁלוֹם', 'नमस्ते', 'ภาษาไทย', 'Tiếng Việt', 'Ελληνικά', 'Русский ЁЖ',
  'x'.repeat(100), 'x'.repeat(101), 'ab'.repeat(50), 'ab'.repeat(50) + 'a', 'é'.repeat(100),
  'e\u0301'.repeat(60), 'ab'.repeat(30) + 'q' + 'ab'.repeat(5),
  '[MASK]', '[mask]', '[CLS]x[SEP]', '[[MASK]]', '[MASK', 'MASK]', '[UNK]', '[PAD][PAD]',
  'x[MASK]y', 'hello[MASK]world', '[ MASK ]', '[Mask]', '[SEP]', '[CLS]', '[MASK][MASK]',
  '', ' ', '   ', '!', '#', '##', '##ing', 'a##b',
]

const SEPARATORS = [' ', ' ', ' ', '', '  ', '\u00A0', '\u3000', '\t', '\u2028', '\u200B']

function texts(rand, n) {
  const pick = (a) => a[Math.floor(rand() * a.length)]
  const out = FRAGMENTS.filter((f) => !f.includes('\t'))
  while (out.length < n) {
    let s = ''
    const k = 1 + Math.floor(rand() * 5)
    for (let i = 0; i < k; i++) s += (i ? pick(SEPARATORS) : '') + pick(FRAGMENTS)
    out.push(s)
  }
  return out
}

function gen(dir) {
  const vocab = vocabulary()
  // A duplicate line: the later id wins, as in transformers' load_vocab.
  vocab.push('hello')
  fs.writeFileSync(path.join(dir, 'vocab.txt'), vocab.join('\n') + '\n')
  const rand = rng(20240601)
  const singles = texts(rand, 400)
  fs.writeFileSync(path.join(dir, 'texts.txt'), singles.map((s) => s + '\n').join(''))
  const clean = (s) => s.replace(/\t/g, ' ')
  const pairs = []
  for (let i = 0; i < 300; i++) pairs.push(clean(singles[Math.floor(rand() * singles.length)]) +
    '\t' + clean(singles[Math.floor(rand() * singles.length)]))
  // Literal special tokens where a truncation cuts: they count, but only
  // an ordinary word ends the tokenizing of a text early.
  pairs.push('a a a [MASK] a\tb b b b', '[MASK][MASK][MASK][MASK][MASK]\tb b b b',
    'hello [SEP] [SEP] world\t[MASK] x', 'x[MASK]y [MASK] z\t[CLS][CLS][CLS] a')
  const specials = ['[MASK]', '[SEP]', '[CLS]', '[UNK]', '[PAD]', 'a', 'hello', ',', 'x']
  for (let i = 0; i < 60; i++) {
    const side = () => {
      let s = ''
      const k = 1 + Math.floor(rand() * 8)
      for (let j = 0; j < k; j++) s += (j && rand() < 0.7 ? ' ' : '') + specials[Math.floor(rand() * specials.length)]
      return s
    }
    pairs.push(side() + '\t' + side())
  }
  fs.writeFileSync(path.join(dir, 'pairs.txt'), pairs.map((s) => s + '\n').join(''))
}

// tokenizer.json as transformers' BertConverter writes it for a vocab.txt.
function bertTokenizer(dir, lowercase) {
  const lines = fs.readFileSync(path.join(dir, 'vocab.txt'), 'utf8').split('\n')
  if (lines[lines.length - 1] === '') lines.pop()
  const vocab = {}
  lines.forEach((t, i) => { vocab[t.replace(/\r$/, '')] = i })
  const special = (t, type_id) => ({ SpecialToken: { id: t, type_id } })
  const seq = (id, type_id) => ({ Sequence: { id, type_id } })
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.filter((t) => t in vocab).map((t) => ({
      id: vocab[t], content: t, single_word: false, lstrip: false, rstrip: false,
      normalized: false, special: true,
    })),
    normalizer: {
      type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true,
      strip_accents: null, lowercase,
    },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [special('[CLS]', 0), seq('A', 0), special('[SEP]', 0)],
      pair: [special('[CLS]', 0), seq('A', 0), special('[SEP]', 0), seq('B', 1), special('[SEP]', 1)],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [vocab['[CLS]']], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [vocab['[SEP]']], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##',
      max_input_chars_per_word: 100, vocab,
    },
  }
  return Tokenizer.fromString(JSON.stringify(json))
}

async function encode(dir, lowercase, maxLen, pair) {
  const tok = bertTokenizer(dir, lowercase)
  if (maxLen > 0) tok.setTruncation(maxLen, { strategy: 'LongestFirst' })
  const input = fs.readFileSync(0, 'utf8').split('\n')
  if (input[input.length - 1] === '') input.pop()
  const out = []
  for (const line of input) {
    const text = line.replace(/\r$/, '')
    if (pair) {
      const [a, b] = text.split('\t')
      const e = await tok.encode(a, b)
      out.push(`{"input_ids": [${e.getIds().join(', ')}], "token_type_ids": [${e.getTypeIds().join(', ')}]}`)
    } else {
      const e = await tok.encode(text)
      out.push(`[${e.getIds().join(', ')}]`)
    }
  }
  process.stdout.write(out.map((s) => s + '\n').join(''))
}

const [cmd, dir, ...rest] = process.argv.slice(2)
if (cmd === 'gen') gen(dir)
else if (cmd === 'encode') encode(dir, rest[0] === 'true', Number(rest[1]), rest[2] === 'pair')
else {
  process.stderr.write('usage: node tokenizers.js gen DIR | encode DIR LOWERCASE MAX_LEN [pair]\n')
  process.exit(2)
}
