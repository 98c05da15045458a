// Prompting: stop-sequence truncation, the chat prompt for instruct models (tiny tokenizer's Llama 3.1 template) and
// code extraction from fenced and unfenced answers.
import { describe, expect, it } from 'vitest';
import { HUMANEVAL_STOP_SEQUENCES, chatPrompt, extractCode } from '../../src/eval/prompting.js';
import { firstStopIndex } from '../../src/model/generate.js';
import { makeTinyTokenizer } from '../../src/tokenizer/tiny.js';
import { tokenizerFromFiles } from '../../src/tokenizer/tokenizer.js';

const TASK = 'def add(a, b):\n    """Return a + b."""\n';
/** The Codex paper's five stop sequences (Chen et al. 2021, sec. 3.4). */
const CODEX_STOP_SEQUENCES = ['\nclass', '\ndef', '\n#', '\nif', '\nprint'];
/** The text generateText keeps: up to the earliest stop sequence (bigcode's `_stop_at_stop_token`). */
const truncateAtStop = (text: string, stops: readonly string[]): string => {
  const at = firstStopIndex(text, stops);
  return at >= 0 ? text.slice(0, at) : text;
};

describe('stop sequences (firstStopIndex, as generateText cuts)', () => {
  it('cuts at the earliest stop sequence, whichever is listed first', () => {
    const text = '    return a + b\n\nprint(add(1, 2))\ndef other():\n    pass\n';
    expect(truncateAtStop(text, HUMANEVAL_STOP_SEQUENCES)).toBe('    return a + b\n');
    expect(truncateAtStop(text, ['\ndef', '\nprint'])).toBe('    return a + b\n');
  });

  it('keeps the text without a stop, and ignores indented lookalikes', () => {
    const body = '    if a:\n        # note\n        return a\n    return b';
    expect(truncateAtStop(body, HUMANEVAL_STOP_SEQUENCES)).toBe(body);
    expect(truncateAtStop('', HUMANEVAL_STOP_SEQUENCES)).toBe('');
    expect(truncateAtStop('abc', [''])).toBe('abc');
  });

  it('stops at decorators, fences and comments at column 0', () => {
    expect(truncateAtStop('    return 1\n@cache\ndef g(): pass', HUMANEVAL_STOP_SEQUENCES)).toBe('    return 1');
    expect(truncateAtStop('    return 1\n```\nDone.', HUMANEVAL_STOP_SEQUENCES)).toBe('    return 1');
    expect(truncateAtStop('    return 1\n# test\n', CODEX_STOP_SEQUENCES)).toBe('    return 1');
  });

  it('lists bigcode-evaluation-harness humaneval stop_words and the Codex paper subset', () => {
    expect(HUMANEVAL_STOP_SEQUENCES).toEqual(['\nclass', '\ndef', '\n#', '\n@', '\nprint', '\nif', '\n```', '<file_sep>']);
    for (const s of CODEX_STOP_SEQUENCES) expect(HUMANEVAL_STOP_SEQUENCES).toContain(s);
  });
});

describe('chatPrompt', () => {
  const files = makeTinyTokenizer();
  const tok = tokenizerFromFiles({ tokenizerJson: files.tokenizerJson, tokenizerConfig: files.tokenizerConfig, generationConfig: files.generationConfig });

  it('renders one user turn with the task in a python fence and opens the assistant turn', () => {
    const p = chatPrompt(tok, TASK);
    expect(p.startsWith('<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n')).toBe(true);
    expect(p).toContain('```python\n' + TASK.trim() + '\n```');
    expect(p).toContain('markdown code block');
    expect(p.endsWith('<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n')).toBe(true);
  });

  it('tokenizes to the header token ids, with one BOS', () => {
    const ids = tok.encode(chatPrompt(tok, TASK), { addSpecialTokens: false });
    const id = (t: string) => tok.tokenToId(t)!;
    expect(ids[0]).toBe(tok.bosId);
    expect(ids.filter((i) => i === tok.bosId)).toHaveLength(1);
    expect(ids.filter((i) => i === id('<|start_header_id|>'))).toHaveLength(2);
    expect(ids.filter((i) => i === id('<|end_header_id|>'))).toHaveLength(2);
    expect(ids.filter((i) => i === id('<|eot_id|>'))).toHaveLength(1);
  });
});

describe('extractCode', () => {
  const full = 'def add(a, b):\n    return a + b';

  it('takes the first python block of a chat answer', () => {
    const answer = `Here is the solution:\n\n\`\`\`python\n${full}\n\`\`\`\n\nAnd a test:\n\n\`\`\`python\nprint(add(1, 2))\n\`\`\`\n`;
    expect(extractCode(answer)).toBe(full);
  });

  it('accepts a bare fence and skips blocks in other languages', () => {
    expect(extractCode(`\`\`\`\n${full}\n\`\`\``)).toBe(full);
    expect(extractCode(`\`\`\`bash\npip install x\n\`\`\`\n\`\`\`py\n${full}\n\`\`\``)).toBe(full);
  });

  it('with an entry point, prefers the first block that defines it', () => {
    const answer = `\`\`\`python\nimport math\n\`\`\`\nthen\n\`\`\`python\n${full}\n\`\`\``;
    expect(extractCode(answer)).toBe('import math');
    expect(extractCode(answer, 'add')).toBe(full);
    expect(extractCode(answer, 'missing')).toBe('import math');
  });

  it('reads an unclosed fence to the end (generation cut at a stop or at max tokens)', () => {
    expect(extractCode(`Sure:\n\`\`\`python\n${full}\n`)).toBe(full + '\n');
  });

  it('returns unfenced text as it is', () => {
    const body = '    return a + b\n';
    expect(extractCode(body)).toBe(body);
    expect(extractCode(full, 'add')).toBe(full);
  });

  it('keeps the full definition as-is: prompt + completion redefines the function', () => {
    const code = extractCode(`\`\`\`python\nimport math\n\n${full}\n\`\`\``, 'add');
    expect(code).toBe(`import math\n\n${full}`);
    // The program a HumanEval run executes: the prompt's def keeps its docstring body, then the redefinition.
    expect(TASK + code).toBe(`${TASK}import math\n\n${full}`);
  });
});
