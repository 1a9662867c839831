// Tokenizer + feature hashing for the `sentiment` example model.
//
// Shared by training (train/train.mjs) and inference (predict.mjs), so both
// see exactly the same features. Plain Node.js, no dependencies.
//
//   "Not good, but the staff didn't care!"
//     clauses  -> ["not good", "but the staff didn't care"]
//     words    -> [not, good] [but, the, staff, did, not, care]
//     terms    -> unigrams + bigrams within each clause:
//                 not, good, "not good", but, the, ..., "did not", "not care"
//     features -> each term hashed with FNV-1a (32-bit) into one of N buckets
//
// Bigrams are what let a linear model learn negation: "good" is positive, but
// the bigram "not good" gets its own (negative) weight.

const encoder = new TextEncoder();

/** FNV-1a, 32-bit, over the UTF-8 bytes of `str`. Returns an unsigned 32-bit integer. */
export function fnv1a32(str) {
  let hash = 0x811c9dc5; // FNV offset basis
  for (const byte of encoder.encode(str)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0; // FNV prime, multiplication mod 2^32
  }
  return hash;
}

// Negative contractions become two words, "<stem> not", so that "didn't like",
// "didnt like" and "did not like" all produce the bigram "not like".
// Keys are what precedes "n't" / "nt"; values are the stems to emit.
const NEGATION_STEMS = new Map(Object.entries({
  ai: 'is', are: 'are', ca: 'can', could: 'could', did: 'did', do: 'do', does: 'does', had: 'had', has: 'has',
  have: 'have', is: 'is', must: 'must', need: 'need', sha: 'shall', should: 'should', was: 'was', were: 'were',
  wo: 'will', would: 'would',
}));

function splitNegation(word) {
  if (word === 'cannot') return ['can', 'not'];
  const stem = NEGATION_STEMS.get(/^(\p{L}+?)n'?t$/u.exec(word)?.[1] ?? '');
  return stem ? [stem, 'not'] : [word];
}

// A word is a run of letters / combining marks / digits, optionally with
// apostrophe parts ("didn't", "l'amour"). \p{...} makes this work for any script.
const WORD = /[\p{L}\p{M}\p{N}]+(?:'[\p{L}\p{M}\p{N}]+)*/gu;
// Clause boundaries: bigrams never cross these.
const CLAUSE_BREAK = /[.,;:!?()[\]{}"…–—]+/u;

/** Lower-cased words, grouped by clause. */
export function tokenize(text) {
  const normalized = String(text).normalize('NFKC').toLowerCase().replace(/[\u2018\u2019\u02bc`]/g, "'");
  const clauses = [];
  for (const clause of normalized.split(CLAUSE_BREAK)) {
    const words = [];
    for (const word of clause.match(WORD) ?? []) words.push(...splitNegation(word));
    if (words.length > 0) clauses.push(words);
  }
  return clauses;
}

/** Unigrams and bigrams ("not good"), in text order. A space never occurs inside a unigram. */
export function terms(text) {
  const out = [];
  for (const words of tokenize(text)) {
    words.forEach((word, i) => {
      out.push(word);
      if (i > 0) out.push(`${words[i - 1]} ${word}`);
    });
  }
  return out;
}

/**
 * Hashed features: one `{ term, bucket }` per term occurrence (repeats count twice).
 * `buckets` must be a power of two, so `hash % buckets` is just the low bits.
 */
export function featurize(text, buckets) {
  if (!Number.isInteger(buckets) || buckets <= 0 || (buckets & (buckets - 1)) !== 0) {
    throw new Error(`buckets must be a power of two, got ${buckets}`);
  }
  return terms(text).map((term) => ({ term, bucket: fnv1a32(term) & (buckets - 1) }));
}
