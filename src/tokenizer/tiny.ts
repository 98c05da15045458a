// A deterministic tiny Llama-3-style tokenizer for the embedded default model: byte-level BPE with Llama 3's
// pre-tokenizer regex, the 256 byte tokens, merges learned greedily from a small built-in Python corpus, and
// Llama 3.1's special tokens at the end. Leaves out Llama 3's reserved tokens and the full 3.1 system-date template.

import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';

export const TINY_VOCAB_SIZE = 512;

/** In Llama 3's relative order; their ids are the last five of the vocabulary. */
export const TINY_SPECIAL_TOKENS = ['<|begin_of_text|>', '<|end_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>'] as const;

/** Llama 3's pre-tokenization regex (tokenizer.json `pre_tokenizer.pretokenizers[0].pattern.Regex`). */
const LLAMA3_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** Llama 3.1 Instruct's turn format without its tool and date blocks. */
export const TINY_CHAT_TEMPLATE = [
  '{{- bos_token }}',
  '{%- for message in messages %}',
  "    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}",
  '{%- endfor %}',
  '{%- if add_generation_prompt %}',
  "    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}",
  '{%- endif %}',
].join('\n');

const DEFAULT_CORPUS = `def add(a, b):
    return a + b

def is_even(n):
    return n % 2 == 0

def factorial(n):
    result = 1
    for i in range(2, n + 1):
        result *= i
    return result

def fibonacci(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a

def reverse_string(s: str) -> str:
    return s[::-1]

def is_palindrome(text: str) -> bool:
    cleaned = [c.lower() for c in text if c.isalnum()]
    return cleaned == cleaned[::-1]

def count_vowels(s):
    return sum(1 for c in s.lower() if c in "aeiou")

def max_of_list(values):
    if not values:
        return None
    best = values[0]
    for value in values[1:]:
        if value > best:
            best = value
    return best

def sum_of_squares(numbers):
    return sum(x * x for x in numbers)

def remove_duplicates(items):
    seen = set()
    result = []
    for item in items:
        if item not in seen:
            seen.add(item)
            result.append(item)
    return result

def binary_search(items, target):
    low, high = 0, len(items) - 1
    while low <= high:
        mid = (low + high) // 2
        if items[mid] == target:
            return mid
        elif items[mid] < target:
            low = mid + 1
        else:
            high = mid - 1
    return -1

def word_count(sentence: str) -> dict:
    counts = {}
    for word in sentence.split():
        counts[word] = counts.get(word, 0) + 1
    return counts

def flatten(nested):
    result = []
    for element in nested:
        if isinstance(element, list):
            result.extend(flatten(element))
        else:
            result.append(element)
    return result

def gcd(a, b):
    while b:
        a, b = b, a % b
    return a

def is_prime(n: int) -> bool:
    if n < 2:
        return False
    for i in range(2, int(n ** 0.5) + 1):
        if n % i == 0:
            return False
    return True

class Stack:
    def __init__(self):
        self.items = []

    def push(self, item):
        self.items.append(item)

    def pop(self):
        return self.items.pop()

    def is_empty(self):
        return len(self.items) == 0

assert add(2, 3) == 5
assert is_even(4) and not is_even(7)
assert factorial(5) == 120
assert fibonacci(10) == 55
assert reverse_string("hello") == "olleh"
assert is_palindrome("A man, a plan, a canal: Panama")
assert count_vowels("Hello World") == 3
assert max_of_list([3, 1, 4, 1, 5]) == 5
assert remove_duplicates([1, 2, 2, 3]) == [1, 2, 3]
assert binary_search([1, 3, 5, 7], 5) == 2
assert gcd(12, 18) == 6
assert is_prime(13) and not is_prime(12)
print("Write a Python function that returns the sum of a list of numbers.")
`;

/** GPT-2's byte-to-unicode map, in GPT-2 order: byte tokens get the same ids as in Llama 3 (space 220, newline 198). */
function byteTokens(): string[] {
  const printable: number[] = [];
  for (let b = 33; b <= 126; b++) printable.push(b);
  for (let b = 161; b <= 172; b++) printable.push(b);
  for (let b = 174; b <= 255; b++) printable.push(b);
  // Printable bytes stand for themselves; the others are shifted to 256 + k, in byte order, after them.
  const chars = [...printable];
  let n = 0;
  for (let b = 0; b < 256; b++) if (!printable.includes(b)) chars.push(256 + n++);
  return chars.map((c) => String.fromCodePoint(c));
}

function preTokenizerConfig(): Record<string, unknown> {
  return {
    type: 'Sequence',
    pretokenizers: [
      { type: 'Split', pattern: { Regex: LLAMA3_SPLIT }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
    ],
  };
}

/**
 * Greedy BPE training: repeatedly merge the most frequent adjacent pair within pre-tokens. Ties go to the pair
 * whose "left right" string sorts first, so the result depends only on the corpus.
 */
function learnMerges(corpus: string, maxNewTokens: number, known: Set<string>): string[] {
  // The library's own pre-tokenizer, so training splits text exactly as encoding will.
  const shell = { model: { type: 'BPE', vocab: { a: 0 }, merges: [] }, added_tokens: [], normalizer: null, pre_tokenizer: preTokenizerConfig(), post_processor: null, decoder: null };
  const pre = new HfTokenizer(shell, {}).pre_tokenizer;
  if (pre === null) throw new Error('makeTinyTokenizer: no pre-tokenizer');
  const counts = new Map<string, number>();
  for (const word of pre.pre_tokenize(corpus)) counts.set(word, (counts.get(word) ?? 0) + 1);
  const words = [...counts.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([w, c]) => ({ symbols: [...w], count: c }));

  const merges: string[] = [];
  let added = 0;
  while (added < maxNewTokens) {
    const pairCounts = new Map<string, number>();
    for (const { symbols, count } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = `${symbols[i]} ${symbols[i + 1]}`;
        pairCounts.set(key, (pairCounts.get(key) ?? 0) + count);
      }
    }
    let best: string | null = null;
    let bestCount = 0;
    for (const [key, c] of pairCounts) {
      if (c > bestCount || (c === bestCount && best !== null && key < best)) {
        best = key;
        bestCount = c;
      }
    }
    if (best === null) break; // every pre-token is a single symbol
    const [left, right] = best.split(' ') as [string, string];
    const merged = left + right;
    merges.push(best);
    if (!known.has(merged)) {
      known.add(merged);
      added++;
    }
    for (const w of words) {
      const out: string[] = [];
      for (let i = 0; i < w.symbols.length; i++) {
        if (i + 1 < w.symbols.length && w.symbols[i] === left && w.symbols[i + 1] === right) {
          out.push(merged);
          i++;
        } else {
          out.push(w.symbols[i] as string);
        }
      }
      w.symbols = out;
    }
  }
  return merges;
}

export interface TinyTokenizerFiles {
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
  /** generation_config.json: BOS and the two end tokens, as Llama 3.1 Instruct lists them. */
  generationConfig: Record<string, unknown>;
  vocabSize: number;
  specialIds: Record<(typeof TINY_SPECIAL_TOKENS)[number], number>;
}

/**
 * Builds tokenizer.json, tokenizer_config.json and generation_config.json contents. With the built-in corpus the
 * vocabulary has exactly `vocabSize` (default 512) ids: 256 bytes, 251 merges, 5 special tokens (507..511).
 * eos_token is <|eot_id|>, as in Llama 3.1 Instruct: completions then end with the token the chat template closes
 * each turn with, which is also the token generation stops on.
 */
export function makeTinyTokenizer(corpus: string = DEFAULT_CORPUS, opts: { vocabSize?: number } = {}): TinyTokenizerFiles {
  const target = opts.vocabSize ?? TINY_VOCAB_SIZE;
  const bytes = byteTokens();
  const vocab: Record<string, number> = {};
  bytes.forEach((t, i) => (vocab[t] = i));
  const known = new Set(bytes);
  const merges = learnMerges(corpus, Math.max(0, target - bytes.length - TINY_SPECIAL_TOKENS.length), known);
  let next = bytes.length;
  for (const m of merges) {
    const token = m.replace(' ', '');
    if (!(token in vocab)) vocab[token] = next++;
  }
  const specialIds = {} as Record<(typeof TINY_SPECIAL_TOKENS)[number], number>;
  const addedTokens = TINY_SPECIAL_TOKENS.map((content) => {
    specialIds[content] = next;
    return { id: next++, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
  });
  const bos = '<|begin_of_text|>';
  const bosId = specialIds[bos];

  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: preTokenizerConfig(),
    // As Llama 3.1's tokenizer.json: encode(text) with special tokens prepends <|begin_of_text|>.
    post_processor: {
      type: 'Sequence',
      processors: [
        { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
        {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [
            { SpecialToken: { id: bos, type_id: 0 } },
            { Sequence: { id: 'A', type_id: 0 } },
            { SpecialToken: { id: bos, type_id: 1 } },
            { Sequence: { id: 'B', type_id: 1 } },
          ],
          special_tokens: { [bos]: { id: bos, ids: [bosId], tokens: [bos] } },
        },
      ],
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: true,
      vocab,
      merges,
    },
  };

  const addedTokensDecoder: Record<string, unknown> = {};
  for (const t of addedTokens) {
    addedTokensDecoder[String(t.id)] = { content: t.content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true };
  }
  const tokenizerConfig = {
    added_tokens_decoder: addedTokensDecoder,
    bos_token: bos,
    chat_template: TINY_CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: '<|eot_id|>',
    model_input_names: ['input_ids', 'attention_mask'],
    model_max_length: 131072,
    tokenizer_class: 'PreTrainedTokenizerFast',
  };
  const generationConfig = {
    bos_token_id: bosId,
    eos_token_id: [specialIds['<|end_of_text|>'], specialIds['<|eot_id|>']],
  };
  return { tokenizerJson, tokenizerConfig, generationConfig, vocabSize: next, specialIds };
}
