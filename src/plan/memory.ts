// Predicts the peak device memory of one LoRA DPO training step, term by term, and what would make a run fit.
// Models tfjs 4.22's tape (float32 everywhere, the chunked log-prob kernel); leaves out host memory and the
// reference path DPO_KERNELS=reference (which holds the full [B, T, V] logits).
//
// Why activations are large in tfjs: the tape keeps the saved inputs/outputs of every op, and `backpropagateGradients`
// (tfjs-core tape.ts) keeps the gradient of every intermediate until the backward pass ends. So the peak is at the end
// of the backward: saved tensors + one gradient per intermediate. The per-token, per-layer counts below were measured
// with `measurePeak` (distinct buffers) on configs that vary one dimension at a time; test/plan checks the sum.
import { loadLlamaConfig, type LlamaConfig } from '../config/llama.js';
import { LOGPROB_CHUNK } from '../dpo/logprobs.js';
import { expectedWeightShapes } from '../model/llama.js';
import { linearShape } from '../model/lora.js';
import { InputError, describe } from '../util/errors.js';
import { backendVerdicts, formatVerdicts, machineCeilings, type BackendVerdict, type Ceilings } from './ceilings.js';

const F32 = 4;
const GiB = 1024 ** 3;

/** Floats kept per token per decoder layer for the frozen layer, by dimension (N*S: attention probabilities). */
export const LAYER_FLOATS = { hidden: 27.1, qDim: 17.7, kvDim: 16.5, intermediate: 11.0, attention: 6.9 };
/** Extra floats per token for each LoRA-adapted linear: its output twice, its input once, a few rank-r vectors. */
export const ADAPTER_FLOATS = { out: 2.03, in: 1.03, rank: 5.75 };
/** Recompute overhead with checkpointing: the layer being recomputed sits on top of the stored inputs (floats/token). */
export const RECOMPUTE_FLOATS_PER_HIDDEN = 14;
/** GPU only: CUDA context + cuBLAS/cuDNN workspaces, and the TF BFC allocator's fragmentation. */
export const GPU_RUNTIME_BYTES = 1.0 * GiB;
export const GPU_FRAGMENTATION = 0.05;

export interface PlanSettings {
  maxLength: number;
  /** Pairs per micro-batch: the model sees 2 * batchSize sequences ([chosen; rejected]). */
  batchSize: number;
  gradientCheckpointing: boolean;
  loraR: number;
  loraTargets: string[];
  /** Positions per log-prob chunk (LOGPROB_CHUNK). */
  logprobChunk: number;
  /** Add the GPU runtime terms (a CPU/wasm run has none). */
  gpu: boolean;
  /** Device memory in bytes, or null to skip the fit verdict. */
  deviceBytes: number | null;
}

export interface PlanTerm {
  name: string;
  bytes: number;
  detail: string;
}

export interface MemoryPlan {
  settings: PlanSettings;
  terms: PlanTerm[];
  peakBytes: number;
  /** null when no device size was given. */
  fits: boolean | null;
  /** Changes that make the run fit, most useful first (empty when it fits or nothing helps). */
  suggestions: string[];
}

/** Llama 3.1 8B (HF config.json of meta-llama/Llama-3.1-8B), so `plan` needs no download. */
export const LLAMA_31_8B: LlamaConfig = {
  vocabSize: 128256, hiddenSize: 4096, intermediateSize: 14336, numLayers: 32, numHeads: 32, numKvHeads: 8, headDim: 128,
  rmsNormEps: 1e-5, ropeTheta: 500000,
  ropeScaling: { ropeType: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
  maxPositionEmbeddings: 131072, tieWordEmbeddings: false, attentionBias: false, mlpBias: false,
  bosTokenId: 128000, eosTokenIds: [128001, 128008, 128009], torchDtype: 'bfloat16',
};

/** Llama 3.2 1B (HF config.json of meta-llama/Llama-3.2-1B: tied head, 1.236 B params): past wasm's 4 GiB in float32. */
export const LLAMA_32_1B: LlamaConfig = {
  vocabSize: 128256, hiddenSize: 2048, intermediateSize: 8192, numLayers: 16, numHeads: 32, numKvHeads: 8, headDim: 64,
  rmsNormEps: 1e-5, ropeTheta: 500000,
  ropeScaling: { ropeType: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
  maxPositionEmbeddings: 131072, tieWordEmbeddings: true, attentionBias: false, mlpBias: false,
  bosTokenId: 128000, eosTokenIds: [128001], torchDtype: 'bfloat16',
};

/** Named model shapes for `plan --model NAME`. */
export const PLAN_MODELS: Record<string, LlamaConfig> = { 'llama-3.1-8b': LLAMA_31_8B, 'llama-3.2-1b': LLAMA_32_1B };

function paramCount(cfg: LlamaConfig): number {
  let n = 0;
  for (const shape of Object.values(expectedWeightShapes(cfg))) n += shape.reduce((a, b) => a * b, 1);
  return n;
}

function loraParamCount(cfg: LlamaConfig, r: number, targets: string[]): number {
  let n = 0;
  for (const t of targets) {
    const [o, i] = linearShape(cfg, t);
    n += r * (o + i);
  }
  return n * cfg.numLayers;
}

/** Floats per token kept by one decoder layer at sequence length S (saved tensors + their gradients). */
export function layerFloatsPerToken(cfg: LlamaConfig, S: number, r: number, targets: string[]): number {
  const f = LAYER_FLOATS;
  let n = f.hidden * cfg.hiddenSize + f.qDim * cfg.numHeads * cfg.headDim + f.kvDim * cfg.numKvHeads * cfg.headDim
    + f.intermediate * cfg.intermediateSize + f.attention * cfg.numHeads * S;
  for (const t of targets) {
    const [o, i] = linearShape(cfg, t);
    n += ADAPTER_FLOATS.out * o + ADAPTER_FLOATS.in * i + ADAPTER_FLOATS.rank * r;
  }
  return n;
}

function gb(bytes: number): string {
  return `${(bytes / GiB).toFixed(2)} GiB`;
}

/** The peak of one training step, term by term. Pure: no tensors, no files. */
export function planMemory(cfg: LlamaConfig, s: PlanSettings): MemoryPlan {
  if (!(s.maxLength >= 2 && s.batchSize >= 1 && s.loraR >= 1)) {
    throw new InputError(describe('plan settings', JSON.stringify({ maxLength: s.maxLength, batchSize: s.batchSize, loraR: s.loraR }), 'max-length >= 2, batch-size >= 1, lora-r >= 1'));
  }
  const seqs = 2 * s.batchSize;
  const T = s.maxLength;
  const M = seqs * T;
  const L = cfg.numLayers;
  const H = cfg.hiddenSize;
  const params = paramCount(cfg);
  const loraParams = loraParamCount(cfg, s.loraR, s.loraTargets);
  const perToken = layerFloatsPerToken(cfg, T, s.loraR, s.loraTargets);
  const layer = perToken * M * F32;
  const terms: PlanTerm[] = [
    { name: 'weights', bytes: params * F32, detail: `${(params / 1e9).toFixed(3)} B params x 4 bytes (frozen; held as float32 on every backend, ${cfg.torchDtype ?? 'float32'} on disk)` },
    { name: 'lora + adam', bytes: loraParams * 4 * F32, detail: `${(loraParams / 1e6).toFixed(2)} M params x (value, grad, m, v) x 4 bytes` },
  ];
  if (s.gradientCheckpointing) {
    terms.push({ name: 'activations', bytes: L * 2 * H * M * F32, detail: `checkpointed: ${L} layers x (input + its grad) [${seqs}x${T}x${H}]` });
    terms.push({ name: 'recompute', bytes: layer + RECOMPUTE_FLOATS_PER_HIDDEN * H * M * F32, detail: 'one decoder layer rebuilt in the backward pass, with its gradients' });
  } else {
    terms.push({ name: 'activations', bytes: L * layer, detail: `${L} layers x ${perToken.toFixed(0)} floats/token x ${M} tokens (tape + grads)` });
  }
  const c = Math.min(s.logprobChunk, T - 1);
  terms.push({ name: 'logits chunk', bytes: 2 * seqs * c * cfg.vocabSize * F32, detail: `2 live [${seqs}x${c}x${cfg.vocabSize}] in the chunked log-prob kernel` });
  if (s.gpu) {
    const sum = terms.reduce((a, t) => a + t.bytes, 0);
    terms.push({ name: 'gpu runtime', bytes: GPU_RUNTIME_BYTES + GPU_FRAGMENTATION * (sum - params * F32), detail: 'CUDA context + cuBLAS/cuDNN workspace, 5% allocator fragmentation' });
  }
  const peakBytes = terms.reduce((a, t) => a + t.bytes, 0);
  const fits = s.deviceBytes === null ? null : peakBytes <= s.deviceBytes;
  return { settings: s, terms, peakBytes, fits, suggestions: fits === false ? suggest(cfg, s) : [] };
}

function fitsWith(cfg: LlamaConfig, s: PlanSettings): boolean {
  return planMemory(cfg, { ...s, deviceBytes: null }).peakBytes <= (s.deviceBytes as number);
}

/** The largest value in [lo, hi] for which `ok` holds (ok monotone decreasing), or null. */
function largest(lo: number, hi: number, ok: (v: number) => boolean): number | null {
  if (!ok(lo)) return null;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (ok(mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** The largest --batch-size (pairs) that fits the device with these settings, up to `cap`; 0 when none does. */
export function maxBatchSize(cfg: LlamaConfig, s: PlanSettings, cap = 1024): number {
  if (s.deviceBytes === null) throw new InputError(describe('plan', 'no device size', 'a device size to fit against'));
  return largest(1, cap, (v) => fitsWith(cfg, { ...s, batchSize: v })) ?? 0;
}

function suggest(cfg: LlamaConfig, s: PlanSettings): string[] {
  const out: string[] = [];
  const ga = (b: number) => `--batch-size ${b} --grad-accum ${Math.ceil(s.batchSize / b)} (same pairs per step)`;
  const ck = { ...s, gradientCheckpointing: true };
  if (!s.gradientCheckpointing) {
    if (fitsWith(cfg, ck)) out.push('--gradient-checkpointing');
    else {
      const b = largest(1, s.batchSize - 1, (v) => fitsWith(cfg, { ...ck, batchSize: v }));
      if (b !== null) out.push(`--gradient-checkpointing ${ga(b)}`);
    }
  }
  const b = largest(1, s.batchSize - 1, (v) => fitsWith(cfg, { ...s, batchSize: v }));
  if (b !== null) out.push(ga(b));
  if (out.length === 0) {
    // Not even one pair at this length: the longest length that fits one pair with checkpointing.
    const len = largest(2, s.maxLength - 1, (v) => fitsWith(cfg, { ...ck, batchSize: 1, maxLength: v }));
    if (len !== null) out.push(`--max-length ${len} --batch-size 1 --grad-accum ${s.batchSize} --gradient-checkpointing`);
  }
  if (out.length === 0) {
    const frozen = planMemory(cfg, { ...s, deviceBytes: null }).terms[0].bytes;
    out.push(frozen >= (s.deviceBytes as number) ? `nothing: the float32 weights alone need ${gb(frozen)}` : 'nothing at --batch-size 1 and --max-length 2; use a larger device');
  }
  return out;
}

/** The plan as aligned text lines (for the CLI and `doctor`). */
export function formatPlan(p: MemoryPlan, title: string, cfg?: LlamaConfig): string {
  const s = p.settings;
  const lines = [
    `memory plan: ${title}, max-length ${s.maxLength}, batch-size ${s.batchSize} (${2 * s.batchSize} sequences), lora r ${s.loraR} on ${s.loraTargets.join(',')}, ` +
      `gradient checkpointing ${s.gradientCheckpointing ? 'on' : 'off'}`,
  ];
  for (const t of p.terms) lines.push(`  ${t.name.padEnd(13)} ${gb(t.bytes).padStart(12)}  ${t.detail}`);
  lines.push(`  ${'peak'.padEnd(13)} ${gb(p.peakBytes).padStart(12)}`);
  if (p.fits !== null && cfg) {
    lines.push(`  fits in ${gb(s.deviceBytes as number)}: ${p.fits ? 'yes' : 'no'}`);
    for (const x of p.suggestions) lines.push(`  would fit with: ${x}`);
    const off = maxBatchSize(cfg, { ...s, gradientCheckpointing: false });
    const on = maxBatchSize(cfg, { ...s, gradientCheckpointing: true });
    lines.push(`  largest --batch-size that fits at max-length ${s.maxLength}: ${off} without, ${on} with --gradient-checkpointing`);
  }
  return lines.join('\n');
}

/** A named shape (`llama-3.1-8b`) or an HF model directory's config.json. */
export function planModel(model: string | null): { cfg: LlamaConfig; title: string } {
  if (!model) throw new InputError(describe('--model', 'missing', `an HF model directory or one of ${Object.keys(PLAN_MODELS).join(', ')}`));
  const named = PLAN_MODELS[model.toLowerCase()];
  return named ? { cfg: named, title: model.toLowerCase() } : { cfg: loadLlamaConfig(model), title: model };
}

export interface PlanRequest {
  model: string | null;
  maxLength: number;
  batchSize: number;
  gradientCheckpointing: boolean;
  loraR: number;
  loraTargets: string[];
  deviceMemoryGB: number | null;
  gpu: boolean;
  /** The backends' ceilings (default: this machine's); tests pass small ones. */
  ceilings?: Partial<Ceilings>;
}

/** The `plan` command's work: the model's shape, the plan at the run's settings, each backend's verdict, and the text. */
export function runPlan(r: PlanRequest): { plan: MemoryPlan; backends: BackendVerdict[]; text: string } {
  if (r.deviceMemoryGB !== null && !(r.deviceMemoryGB > 0)) throw new InputError(describe('--device-memory', String(r.deviceMemoryGB), 'a size in GiB > 0'));
  const { cfg, title } = planModel(r.model);
  const plan = planMemory(cfg, {
    maxLength: r.maxLength, batchSize: r.batchSize, gradientCheckpointing: r.gradientCheckpointing, loraR: r.loraR, loraTargets: r.loraTargets,
    logprobChunk: LOGPROB_CHUNK, gpu: r.gpu, deviceBytes: r.deviceMemoryGB === null ? null : r.deviceMemoryGB * 1024 ** 3,
  });
  // The CPU-side backends hold the tensors without the GPU runtime terms.
  const hostPlan = r.gpu ? planMemory(cfg, { ...plan.settings, gpu: false, deviceBytes: null }) : plan;
  const backends = backendVerdicts(cfg, hostPlan, machineCeilings(r.ceilings));
  return { plan, backends, text: `${formatPlan(plan, title, cfg)}\n${formatVerdicts(backends)}` };
}
