// Prompts for code generation and the clean-up of what comes back: stop sequences for completion prompts, the chat
// prompt for instruct models, and code extracted from a fenced block. Follows bigcode-evaluation-harness and evalplus.
import type { ChatMessage } from '../tokenizer/tokenizer.js';

/**
 * Stop sequences for HumanEval-style completion prompts, as bigcode-evaluation-harness `tasks/humaneval.py`
 * (`stop_words`): the Codex paper's five (Chen et al. 2021, sec. 3.4: "\nclass", "\ndef", "\n#", "\nif", "\nprint")
 * plus a top-level decorator, a closing markdown fence and StarCoder's file separator. Each marks the end of the
 * function body: the next top-level statement.
 */
export const HUMANEVAL_STOP_SEQUENCES: readonly string[] = ['\nclass', '\ndef', '\n#', '\n@', '\nprint', '\nif', '\n```', '<file_sep>'];

/** evalplus `codegen.py`'s instruction for chat models, with the task in a ```python block. */
export const CHAT_INSTRUCTION = 'Please provide a self-contained Python script that solves the following problem in a markdown code block:';

/** What chatPrompt needs of a tokenizer (src/tokenizer's Tokenizer fits). */
export interface ChatRenderer {
  applyChatTemplate(messages: ChatMessage[], opts: { addGenerationPrompt: boolean }): string;
  hasChatTemplate: boolean;
}

/**
 * The chat template rendered with one user turn asking for the completed function in a ```python block, plus the
 * assistant header (add_generation_prompt). The result starts with the template's BOS: encode it without adding another.
 */
export function chatPrompt(tokenizer: ChatRenderer, taskPrompt: string, instruction: string = CHAT_INSTRUCTION): string {
  const content = `${instruction}\n\`\`\`python\n${taskPrompt.trim()}\n\`\`\`\n`;
  return tokenizer.applyChatTemplate([{ role: 'user', content }], { addGenerationPrompt: true });
}

interface Fence {
  lang: string;
  body: string;
}

/** Fenced blocks in order. An opening fence left unclosed (generation cut at "\n```" or at max tokens) runs to the end. */
function fencedBlocks(text: string): Fence[] {
  const blocks: Fence[] = [];
  let open: { lang: string; lines: string[] } | null = null;
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (open) {
      if (t.startsWith('```') && t.replace(/`/g, '') === '') {
        blocks.push({ lang: open.lang, body: open.lines.join('\n') });
        open = null;
      } else {
        open.lines.push(line);
      }
    } else if (t.startsWith('```')) {
      open = { lang: (t.slice(3).trim().split(/\s+/)[0] ?? '').toLowerCase(), lines: [] };
    }
  }
  if (open) blocks.push({ lang: open.lang, body: open.lines.join('\n') });
  return blocks;
}

const PYTHON_LANGS = new Set(['python', 'py', 'python3', '']);

/**
 * The code of a chat answer: the first ```python (or bare ```) block, or with `entryPoint` the first such block that
 * defines it; the raw text when there is no such block. The result is returned as-is: for HumanEval the program is
 * prompt + completion, and a completion that repeats the whole `def` simply redefines the function, which Python allows.
 */
export function extractCode(text: string, entryPoint?: string): string {
  const blocks = fencedBlocks(text).filter((b) => PYTHON_LANGS.has(b.lang));
  if (blocks.length === 0) return text;
  if (entryPoint) {
    const def = new RegExp(`^\\s*(async\\s+)?def\\s+${entryPoint.replace(/[^\w]/g, '')}\\s*\\(`, 'm');
    const defining = blocks.find((b) => def.test(b.body));
    if (defining) return defining.body;
  }
  return (blocks[0] as Fence).body;
}
