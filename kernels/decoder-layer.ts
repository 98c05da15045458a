// The two halves of HF `LlamaDecoderLayer` as one kernel each way (native/blas/layer.cc). Op by op, the MLP half
// (RMSNorm, three linears, SiLU*up, the residual) and the attention half (RMSNorm, four LoRA linears, the core, the
// residual) cost ~30 and ~45 tfjs kernel calls a layer with their backward and the Identity clones of what they save;
// fused, each is one addon call forward and one backward. The weights are frozen (LoRA training): the closure reads
// them, so the tape's inputs are x and the adapters only, and no weight gradient is asked for (a trainable variable is
// refused). Each half saves one tensor, its stash (with the RoPE tables and mask for attention). Leaves out: bias, LoRA dropout,
// a KV cache, adapters on the MLP, weight gradients (those layers take the op-by-op path in model/llama.ts).
import * as tf from '@tensorflow/tfjs';
import { fusedActive, runFused, type FusedAddon, type NativeOp } from './native.js';
import { rmsNormReference } from './rmsnorm.js';
import { swigluReference } from './swiglu.js';
import { linearReference, loraLinearReference } from './lora-linear.js';
import { attentionCoreReference, type AttentionHeads } from './attention-core.js';

/** The MLP half's frozen weights, HF layout: norm [H], gate and up [I, H], down [H, I]. */
export interface MlpWeights {
  norm: tf.Tensor;
  gate: tf.Tensor;
  up: tf.Tensor;
  down: tf.Tensor;
}

/** The plain-ops reference: x1 + down(silu(gate(h2)) * up(h2)), h2 = rmsnorm(x1). x1 [..., H]. */
export function mlpHalfReference(x1: tf.Tensor, w: MlpWeights, eps: number): tf.Tensor {
  return tf.tidy(() => {
    const h2 = rmsNormReference(x1, w.norm, eps);
    const act = swigluReference(linearReference(h2, w.gate), linearReference(h2, w.up));
    return tf.add(x1, linearReference(act, w.down));
  });
}

const trainable = (t: tf.Tensor) => t instanceof tf.Variable && t.trainable;

/** The fused version (needs mlpHalfOps registered for the backend): same value, same dx1; the weights must be frozen. */
export function mlpHalfFused(x1: tf.Tensor, w: MlpWeights, eps: number): tf.Tensor {
  if ([w.norm, w.gate, w.up, w.down].some(trainable)) {
    throw new Error('DpoMlpHalf: a weight is a trainable variable; the fused MLP half gives no weight gradients (use mlpHalfReference)');
  }
  const op = tf.customGrad((...args: unknown[]) => {
    const x = args[0] as tf.Tensor;
    const save = args[1] as tf.GradSaveFunc;
    const [y, stash] = runFused('DpoMlpHalf', { x, norm: w.norm, gate: w.gate, up: w.up, down: w.down }, { eps });
    save([stash]);
    const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] =>
      runFused('DpoMlpHalfGrad', { dy, stash: saved[0], norm: w.norm, gate: w.gate, up: w.up, down: w.down });
    return { value: y, gradFunc };
  });
  return op(x1);
}

/** True when the fused MLP half can run on the active backend. */
export function mlpHalfActive(): boolean {
  return fusedActive('DpoMlpHalf');
}

/** The addon's decoder-layer entry points (native/blas/layer.cc); an addon built before them has none. */
interface LayerAddon {
  mlpForward(x1: Float32Array, norm: Float32Array, gate: Float32Array, up: Float32Array, down: Float32Array, y: Float32Array,
    stash: Float32Array, M: number, H: number, I: number, eps: number): void;
  mlpBackward(dy: Float32Array, stash: Float32Array, norm: Float32Array, gate: Float32Array, up: Float32Array, down: Float32Array,
    dx1: Float32Array, M: number, H: number, I: number): void;
}

/** True when the addon has the decoder-layer entry points (so mlpHalfOps and attnHalfOps can be registered). */
export function hasDecoderLayer(addon: FusedAddon | null): boolean {
  const l = addon as unknown as Partial<LayerAddon & AttnAddon> | null;
  return l !== null && typeof l.mlpForward === 'function' && typeof l.attnForward === 'function';
}

const La = (a: FusedAddon) => a as unknown as LayerAddon;
const F = (v: unknown) => v as Float32Array;
const rows = (t: tf.TensorInfo) => t.shape.slice(0, -1).reduce((p, d) => p * d, 1);

/** M, H, I of x (or dy) [..., H] and the weights, checked. */
function dims(name: string, x: tf.TensorInfo, norm: tf.TensorInfo, gate: tf.TensorInfo, up: tf.TensorInfo, down: tf.TensorInfo): [number, number, number] {
  const H = x.shape[x.shape.length - 1];
  const I = gate.shape[0];
  const ok = norm.shape.length === 1 && norm.shape[0] === H && gate.shape.length === 2 && gate.shape[1] === H
    && String(up.shape) === String(gate.shape) && down.shape.length === 2 && down.shape[0] === H && down.shape[1] === I;
  if (!ok) throw new Error(`${name}: x [${x.shape}], norm [${norm.shape}], gate [${gate.shape}], up [${up.shape}], down [${down.shape}] do not fit an MLP half (H = last axis of x)`);
  return [rows(x), H, I];
}

export const mlpHalfOps: NativeOp[] = [
  {
    kernelName: 'DpoMlpHalf', inputs: ['x', 'norm', 'gate', 'up', 'down'],
    outShapes: ([x, n, g, u, d]) => {
      const [M, H, I] = dims('DpoMlpHalf', x, n, g, u, d);
      return [x.shape, [M * (H + 1 + 2 * I)]];
    },
    run: (a: FusedAddon, [x, n, g, u, d], [y, stash], [xi, ni, gi, ui, di], attrs) =>
      La(a).mlpForward(F(x), F(n), F(g), F(u), F(d), y, stash, ...dims('DpoMlpHalf', xi, ni, gi, ui, di), attrs.eps as number),
  },
  {
    kernelName: 'DpoMlpHalfGrad', inputs: ['dy', 'stash', 'norm', 'gate', 'up', 'down'],
    outShapes: ([dy, , n, g, u, d]) => {
      dims('DpoMlpHalfGrad', dy, n, g, u, d);
      return [dy.shape];
    },
    run: (a: FusedAddon, [dy, s, n, g, u, d], [dx], [dyi, , ni, gi, ui, di]) =>
      La(a).mlpBackward(F(dy), F(s), F(n), F(g), F(u), F(d), dx, ...dims('DpoMlpHalfGrad', dyi, ni, gi, ui, di)),
  },
];

// ---- the attention half: y = x + o(core(q(h), k(h), v(h))), h = rmsnorm(x) ----

/** The attention half's frozen weights, HF layout: norm [H], q [N*D, H], k and v [K*D, H], o [H, N*D]. */
export interface AttnWeights {
  norm: tf.Tensor;
  q: tf.Tensor;
  k: tf.Tensor;
  v: tf.Tensor;
  o: tf.Tensor;
}

/** The LoRA adapters of the four projections (A [r, in], B [out, r]); a missing one is the plain linear. */
export type AttnAdapters = Partial<Record<'q' | 'k' | 'v' | 'o', { A: tf.Tensor; B: tf.Tensor }>>;

const PROJS = ['q', 'k', 'v', 'o'] as const;

/** What the attention half reads besides x: RoPE tables [B, T, D], the key mask [B, T] (no cache), the head layout. */
export interface AttnContext {
  cos: tf.Tensor3D;
  sin: tf.Tensor3D;
  keyMask: tf.Tensor2D;
  heads: AttentionHeads;
  eps: number;
  loraScale: number;
}

/** The plain-ops reference: x + o(attnCore(q(h), k(h), v(h))), h = rmsnorm(x), each projection W (+ its adapter). */
export function attnHalfReference(x: tf.Tensor3D, w: AttnWeights, ad: AttnAdapters, c: AttnContext): tf.Tensor3D {
  return tf.tidy(() => {
    const h = rmsNormReference(x, w.norm, c.eps);
    const proj = (name: (typeof PROJS)[number], inp: tf.Tensor) => {
      const a = ad[name];
      return a ? loraLinearReference(inp, w[name], a.A, a.B, c.loraScale) : linearReference(inp, w[name]);
    };
    const att = attentionCoreReference(proj('q', h) as tf.Tensor3D, proj('k', h) as tf.Tensor3D, proj('v', h) as tf.Tensor3D, c.cos, c.sin, c.keyMask, c.heads);
    return tf.add(x, proj('o', att)) as tf.Tensor3D;
  });
}

/**
 * The fused version (needs attnHalfOps registered for the backend): one addon call forward, one for dx and every
 * adapter's dA, dB. Saves only the stash (x, 1/rms, q, k, v, the core's output, and copies of the tables and mask,
 * which die with the forward's tidy otherwise); the frozen weights are read by the closure.
 */
export function attnHalfFused(x: tf.Tensor3D, w: AttnWeights, ad: AttnAdapters, c: AttnContext): tf.Tensor3D {
  if ([w.norm, w.q, w.k, w.v, w.o].some(trainable)) {
    throw new Error('DpoAttnHalf: a weight is a trainable variable; the fused attention half gives no weight gradients (use attnHalfReference)');
  }
  const present = PROJS.filter((p) => ad[p]);
  const attrs = { numHeads: c.heads.numHeads, numKvHeads: c.heads.numKvHeads, headDim: c.heads.headDim, eps: c.eps, loraScale: c.loraScale };
  // Missing adapters are rank-0 placeholders (the kernels' operand list stays fixed), made where each kernel runs: a
  // forward's tensors die with its scope.
  const adapterInputs = (): Record<string, tf.Tensor> => {
    const out: Record<string, tf.Tensor> = {};
    for (const p of PROJS) {
      const [o, i] = w[p].shape as [number, number];
      out[`a${p}`] = ad[p]?.A ?? tf.zeros([0, i]);
      out[`b${p}`] = ad[p]?.B ?? tf.zeros([o, 0]);
    }
    return out;
  };
  const op = tf.customGrad((...args: unknown[]) => {
    const xi = args[0] as tf.Tensor;
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const weights = { norm: w.norm, wq: w.q, wk: w.k, wv: w.v, wo: w.o };
    const [y, stash] = runFused('DpoAttnHalf', { x: xi, ...weights, ...adapterInputs(), cos: c.cos, sin: c.sin, keyMask: c.keyMask }, attrs);
    save([stash]);
    const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] => {
      const g = runFused('DpoAttnHalfGrad', { dy, stash: saved[0], ...weights, ...adapterInputs() }, attrs);
      // g: dx, then dA, dB of q, k, v, o; only those of present adapters are inputs of this op.
      return [g[0], ...present.flatMap((p) => { const j = PROJS.indexOf(p); return [g[1 + 2 * j], g[2 + 2 * j]]; })];
    };
    return { value: y, gradFunc };
  });
  return op(x, ...present.flatMap((p) => [ad[p]!.A, ad[p]!.B])) as tf.Tensor3D;
}

/** True when the fused attention half can run on the active backend. */
export function attnHalfActive(): boolean {
  return fusedActive('DpoAttnHalf');
}

interface AttnAddon {
  attnForward(...args: (Float32Array | number)[]): void;
  attnBackward(...args: (Float32Array | number)[]): void;
}

const Aa = (a: FusedAddon) => a as unknown as AttnAddon;
// The cpu backend's Cast from int32 keeps the Int32Array under a float32 dtype (a cast attention mask): copied here.
const F32 = (v: Float32Array | Int32Array): Float32Array => (v instanceof Float32Array ? v : Float32Array.from(v));

/** B, T, N, K, D, H and the four ranks, checked: x [B, T, H], the weights and adapters as AttnWeights/AttnAdapters. */
function attnDims(name: string, x: tf.TensorInfo, ws: tf.TensorInfo[], ads: tf.TensorInfo[], attrs: tf.NamedAttrMap, cs?: tf.TensorInfo): number[] {
  const N = attrs.numHeads as number;
  const K = attrs.numKvHeads as number;
  const D = attrs.headDim as number;
  const [B, T, H] = x.shape;
  const [norm, q, k, v, o] = ws;
  const shapes = [[N * D, H], [K * D, H], [K * D, H], [H, N * D]];
  const ranks = [0, 1, 2, 3].map((j) => ads[2 * j].shape[0]);
  const ok = x.shape.length === 3 && norm.shape.length === 1 && norm.shape[0] === H && Number.isInteger(N / K)
    && [q, k, v, o].every((t, j) => String(t.shape) === String(shapes[j]))
    && [0, 1, 2, 3].every((j) => String(ads[2 * j].shape) === String([ranks[j], shapes[j][1]]) && String(ads[2 * j + 1].shape) === String([shapes[j][0], ranks[j]]))
    && (!cs || String(cs.shape) === String([B, T, D]));
  if (!ok) {
    throw new Error(`${name}: x [${x.shape}], norm [${norm.shape}], q/k/v/o [${[q, k, v, o].map((t) => t.shape).join('] [')}], `
      + `adapters [${ads.map((t) => t.shape).join('] [')}], cos [${cs?.shape}] with ${N}/${K} heads of ${D} do not fit an attention half`);
  }
  return [B, T, N, K, D, H, ...ranks];
}

/** The attention stash's length (native/blas/layer.cc AttnDims::stash): x, 1/rms, q, k, v, the core's output, cos, sin, mask. */
const attnStash = (M: number, H: number, N: number, K: number, D: number) => M * H + M + 2 * M * N * D + 2 * M * K * D + 2 * M * D + M;

const W_IN = ['norm', 'wq', 'wk', 'wv', 'wo'];
const AD_IN = ['aq', 'bq', 'ak', 'bk', 'av', 'bv', 'ao', 'bo'];

export const attnHalfOps: NativeOp[] = [
  {
    kernelName: 'DpoAttnHalf', inputs: ['x', ...W_IN, ...AD_IN, 'cos', 'sin', 'keyMask'],
    outShapes: (ins, attrs) => {
      const [B, T, N, K, D, H] = attnDims('DpoAttnHalf', ins[0], ins.slice(1, 6), ins.slice(6, 14), attrs, ins[14]);
      return [ins[0].shape, [attnStash(B * T, H, N, K, D)]];
    },
    run: (a: FusedAddon, ins, [y, stash], infos, attrs) => {
      const d = attnDims('DpoAttnHalf', infos[0], infos.slice(1, 6), infos.slice(6, 14), attrs, infos[14]);
      Aa(a).attnForward(...ins.slice(0, 14).map(F), F32(ins[14]), F32(ins[15]), F32(ins[16]), y, stash, ...d, attrs.loraScale as number, attrs.eps as number);
    },
  },
  {
    kernelName: 'DpoAttnHalfGrad', inputs: ['dy', 'stash', ...W_IN, ...AD_IN],
    outShapes: (ins) => [ins[0].shape, ...ins.slice(7, 15).map((t) => t.shape)],
    run: (a: FusedAddon, ins, outs, infos, attrs) => {
      const d = attnDims('DpoAttnHalfGrad', infos[0], infos.slice(2, 7), infos.slice(7, 15), attrs);
      const [B, T, N, K, D, H] = d;
      const M = B * T;
      // The forward's copies of cos, sin and the mask, at the stash's end.
      const s = F(ins[1]);
      const base = attnStash(M, H, N, K, D) - 2 * M * D - M;
      const tables = [s.subarray(base, base + M * D), s.subarray(base + M * D, base + 2 * M * D), s.subarray(base + 2 * M * D, base + 2 * M * D + M)];
      Aa(a).attnBackward(...ins.map(F), ...tables, ...outs, ...d, attrs.loraScale as number);
    },
  },
];
