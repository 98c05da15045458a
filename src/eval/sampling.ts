// Model -> N completions per task: the one sampling step that `pairs --model` and `eval --model` share. It builds each
// task's prompt (a completion prompt cut at stop sequences, or with `chat` the chat template and a fenced code block
// extracted), samples with generateText and returns the samples plus the prompt exactly as the model saw it.
// Prompts follow bigcode-evaluation-harness (completion) and evalplus (chat). Leaves out scoring (execute.ts).
import type { LlamaConfig } from '../config/llama.js';
import type { Weights } from '../model/llama.js';
import type { Lora } from '../model/lora.js';
import { generateText } from '../model/generate.js';
import type { ChatMessage, Tokenizer } from '../tokenizer/tokenizer.js';
import { InputError, describe } from '../util/errors.js';
import { sha256 } from '../util/hash.js';
import { CHAT_INSTRUCTION, HUMANEVAL_STOP_SEQUENCES, extractCode } from './prompting.js';
import type { Sample, Task } from './tasks.js';

/** A prompt as the model saw it: plain text (completion prompts) or the messages the chat template rendered. */
export type PromptText = string | ChatMessage[];

/**
 * MBPP completion prompts end in a docstring; the program is cut at the next top-level statement that is not part of
 * it, as bigcode-evaluation-harness `tasks/mbpp.py` (`stop_words`).
 */
export const MBPP_STOP_SEQUENCES: readonly string[] = ['\nclass', '\nassert', '\n"""', '\nprint', '\nif', '\n<|/', '\n```'];

/** stdio programs are whole scripts (top-level `print`/`if` are part of them): only a closing fence ends one early. */
export const STDIO_STOP_SEQUENCES: readonly string[] = ['\n```'];

export interface SampleOptions {
  /** Completions per task. */
  nSamples: number;
  /** 0 = greedy (then every sample of a task is the same). */
  temperature: number;
  topP: number;
  topK?: number;
  maxNewTokens: number;
  seed: number;
  /** Rows per generate call (a task's samples are split into chunks of this size); null or absent: nSamples. */
  batchSize?: number | null;
  /** Chat template + code extracted from the answer's fenced block; default false: the task prompt is continued. */
  chat?: boolean;
  /** (samples done, samples total) after each generate call. */
  onProgress?: (done: number, total: number) => void;
}

export interface SampledTasks {
  /** `nSamples` per task, in task order; record = {task_id, completion} (+ `response`, the raw answer, with chat). */
  samples: Sample[];
  /** Each task's prompt exactly as the model saw it, by task id. */
  prompts: Map<string, PromptText>;
}

/** What sampling needs of a loaded model (LoadedModel fits). */
export interface SamplingModel {
  cfg: LlamaConfig;
  weights: Weights;
  tokenizer: Tokenizer;
}

/** How one task is put to the model and how its answer becomes a completion. */
export interface TaskPrompt {
  /** As the model saw it: the task prompt, or the user turn with chat. */
  prompt: PromptText;
  /** The text fed to the tokenizer (the chat template already rendered). */
  rendered: string;
  stopSequences: readonly string[];
  /** The completion scored against the tests, from the generated text. */
  completion(text: string): string;
}

/** The user turn of a chat prompt: evalplus's instruction with the task in a ```python block (as chatPrompt). */
export function chatMessages(taskPrompt: string): ChatMessage[] {
  return [{ role: 'user', content: `${CHAT_INSTRUCTION}\n\`\`\`python\n${taskPrompt.trim()}\n\`\`\`\n` }];
}

export function taskPrompt(tokenizer: Tokenizer, task: Task, chat: boolean): TaskPrompt {
  if (chat) {
    if (!tokenizer.hasChatTemplate) {
      throw new InputError(describe('--chat', 'the tokenizer has no chat_template', 'an instruct model with a chat template', 'Drop --chat to use completion prompts.'));
    }
    const messages = chatMessages(task.prompt);
    const entryPoint = task.format === 'humaneval' ? task.entryPoint : undefined;
    return {
      prompt: messages,
      rendered: tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true }),
      stopSequences: [],
      completion: (text) => extractCode(text, entryPoint),
    };
  }
  const stops = task.format === 'humaneval' ? HUMANEVAL_STOP_SEQUENCES : task.format === 'mbpp' ? MBPP_STOP_SEQUENCES : STDIO_STOP_SEQUENCES;
  return { prompt: task.prompt, rendered: task.prompt, stopSequences: stops, completion: (text) => text };
}

/** The task id as its file writes it: MBPP's ids are integers (tasks.ts keeps every id as a string). */
export function sourceTaskId(task: Task): string | number {
  return task.format === 'mbpp' && /^-?\d+$/.test(task.taskId) ? Number(task.taskId) : task.taskId;
}

/**
 * The seed of one generate call: a hash of (seed, task id, chunk), so a task's samples do not depend on which other
 * tasks run, in what order, on which shard, or whether the job was resumed.
 */
export function chunkSeed(seed: number, taskId: string, chunk: number): number {
  return parseInt(sha256(JSON.stringify([seed, taskId, chunk])).slice(0, 12), 16);
}

function checkOptions(o: SampleOptions): void {
  if (!(Number.isInteger(o.nSamples) && o.nSamples >= 1)) throw new InputError(describe('--n', String(o.nSamples), 'an integer >= 1'));
  const b = o.batchSize ?? o.nSamples;
  if (!(Number.isInteger(b) && b >= 1)) throw new InputError(describe('--batch-size', String(b), 'an integer >= 1'));
}

/** Lets queued I/O (the sandbox pool's replies) through between generate calls, which block the event loop. */
const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** One task's `nSamples` completions and its prompt; `progress(rows)` after each generate call. */
export async function sampleTask(
  model: SamplingModel, lora: Lora | null, task: Task, opts: SampleOptions, progress?: (rows: number) => void,
): Promise<{ samples: Sample[]; prompt: PromptText }> {
  checkOptions(opts);
  const tp = taskPrompt(model.tokenizer, task, opts.chat ?? false);
  const batch = opts.batchSize ?? opts.nSamples;
  const samples: Sample[] = [];
  for (let start = 0, chunk = 0; start < opts.nSamples; start += batch, chunk++) {
    const rows = Math.min(batch, opts.nSamples - start);
    const results = await generateText(model, lora, new Array<string>(rows).fill(tp.rendered), {
      maxNewTokens: opts.maxNewTokens,
      temperature: opts.temperature,
      topP: opts.topP,
      topK: opts.topK ?? 0,
      seed: chunkSeed(opts.seed, task.taskId, chunk),
      stopSequences: [...tp.stopSequences],
    });
    results.forEach((r, i) => {
      const completion = tp.completion(r.text);
      const record: Record<string, unknown> = { task_id: sourceTaskId(task), completion };
      if (opts.chat) record.response = r.text;
      samples.push({ taskId: task.taskId, completion, record, where: `${task.taskId} sample ${start + i}` });
    });
    progress?.(rows);
    await yieldToEventLoop();
  }
  return { samples, prompt: tp.prompt };
}

/** `nSamples` completions for every task, in task order, and each task's prompt as the model saw it. */
export async function generateSamples(model: SamplingModel, lora: Lora | null, tasks: Task[], opts: SampleOptions): Promise<SampledTasks> {
  checkOptions(opts);
  const total = tasks.length * opts.nSamples;
  let done = 0;
  const samples: Sample[] = [];
  const prompts = new Map<string, PromptText>();
  for (const task of tasks) {
    const r = await sampleTask(model, lora, task, opts, (rows) => opts.onProgress?.((done += rows), total));
    samples.push(...r.samples);
    prompts.set(task.taskId, r.prompt);
  }
  return { samples, prompts };
}
