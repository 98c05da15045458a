// AdamW's per-step arithmetic (train/optimizer.ts) as two kernels on the wasm and cpu backends, instead of ~12 tfjs ops
// per LoRA tensor plus 3 per tensor for the clipping norm (~250 kernel calls a step on the tiny preset, mostly engine
// overhead): `DpoGlobalNorm` (all gradients in, the L2 norm out: float64 sum of squares in a fixed order) and
// `DpoAdamW` (the norm, then every p, g, m, v in; every p', m', v' out; the clip coefficient is computed here from the
// norm, on the host side of the kernel, in float32 as the reference). Each element's update is the reference's sequence
// of float32 operations (native/blas/fused.cc adamwLoop, no fused multiply-add), so p', m', v' equal the plain-ops
// reference's up to the norm's summation order. The reference is train/optimizer.ts' adamwStepReference; DPO_KERNELS=
// reference unregisters these. Neither kernel has a gradient (an optimizer step is never differentiated).
import * as tf from '@tensorflow/tfjs';
import type { CpuBuffersBackend, WasmHeapBackend } from './backend-shapes.js';
import type { FusedAddon } from './native.js';

/** The addon's AdamW entry points (native/blas/fused.cc); an addon built before them has none. */
interface AdamwAddon {
  sumSquares(g: Float32Array, n: number): number;
  adamwUpdate(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, pOut: Float32Array, mOut: Float32Array, vOut: Float32Array, n: number, k: Float32Array): void;
}

export const ADAMW_KERNELS = ['DpoGlobalNorm', 'DpoAdamW'] as const;

/** True when the addon has the AdamW entry points. */
export function hasAdamw(addon: FusedAddon | null): boolean {
  return addon !== null && typeof (addon as unknown as Partial<AdamwAddon>).adamwUpdate === 'function';
}

/** The per-step constants of DpoAdamW (the same float32 values the reference uploads). */
export interface AdamwAttrs {
  beta1: number;
  beta2: number;
  eps: number;
  lr: number;
  weightDecay: number;
  /** Optimizer step, 1-based (bias corrections). */
  step: number;
  /** 0: no clipping. */
  maxGradNorm: number;
  /** Per tensor, in input order: 1 where weight decay applies. */
  decayMask: number[];
}

type Info = tf.TensorInfo;
type Args = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };
const size = (shape: readonly number[]) => shape.reduce((p, d) => p * d, 1);
const f = Math.fround;

/** Float32 views of inputs and fresh outputs on either backend; `finish` turns the outputs into TensorInfos. */
function operands(backendName: 'wasm' | 'cpu', backend: unknown, ins: Info[], outShapes: number[][], kernel: string): { ins: Float32Array[]; outs: Float32Array[]; finish(): Info[] } {
  for (const t of ins) if (t.dtype !== 'float32') throw new Error(`${kernel}: an input is ${t.dtype} (expected float32)`);
  if (backendName === 'wasm') {
    const be = backend as WasmHeapBackend;
    const outInfos = outShapes.map((s) => be.makeOutput(s, 'float32'));
    const buf = be.wasm.HEAPU8.buffer; // after every makeOutput: a malloc may grow the heap
    const view = (t: Info) => new Float32Array(buf, be.dataIdMap.get(t.dataId).memoryOffset, size(t.shape));
    return { ins: ins.map(view), outs: outInfos.map(view), finish: () => outInfos };
  }
  const be = backend as CpuBuffersBackend;
  const views = ins.map((t) => {
    const v = be.data.get(t.dataId).values;
    if (!(v instanceof Float32Array)) throw new Error(`${kernel}: a cpu input has no Float32Array`);
    return v;
  });
  const outs = outShapes.map((s) => new Float32Array(size(s)));
  return { ins: views, outs, finish: () => outShapes.map((s, i) => be.makeTensorInfo(s, 'float32', outs[i])) };
}

/** Inputs g0..g{n-1} (DpoGlobalNorm) or the named groups of DpoAdamW, in order. */
function listed(inputs: tf.NamedTensorInfoMap, prefix: string, kernel: string): Info[] {
  const out: Info[] = [];
  for (let i = 0; inputs[`${prefix}${i}`] !== undefined; i++) out.push(inputs[`${prefix}${i}`] as Info);
  if (out.length === 0) throw new Error(`${kernel}: no inputs ${prefix}0..`);
  return out;
}

/** The kernel configs for 'wasm' or 'cpu'. */
export function adamwConfigs(addon: FusedAddon, backendName: 'wasm' | 'cpu'): tf.KernelConfig[] {
  const a = addon as unknown as AdamwAddon;
  const norm = (args: Args): Info[] => {
    const gs = listed(args.inputs, 'g', 'DpoGlobalNorm');
    const o = operands(backendName, args.backend, gs, [[]], 'DpoGlobalNorm');
    let s = 0;
    for (let i = 0; i < gs.length; i++) s += a.sumSquares(o.ins[i], o.ins[i].length);
    o.outs[0][0] = Math.sqrt(s);
    return o.finish();
  };
  const adamw = (args: Args): Info[] => {
    const at = args.attrs as unknown as AdamwAttrs;
    const ps = listed(args.inputs, 'p', 'DpoAdamW');
    const n = ps.length;
    const gs = listed(args.inputs, 'g', 'DpoAdamW');
    const ms = listed(args.inputs, 'm', 'DpoAdamW');
    const vs = listed(args.inputs, 'v', 'DpoAdamW');
    const normInfo = args.inputs.norm as Info;
    if (gs.length !== n || ms.length !== n || vs.length !== n || !normInfo || at.decayMask.length !== n) throw new Error(`DpoAdamW: ${n} p, ${gs.length} g, ${ms.length} m, ${vs.length} v, ${at.decayMask?.length} decay flags`);
    for (let i = 0; i < n; i++) {
      const k = size(ps[i].shape);
      if (size(gs[i].shape) !== k || size(ms[i].shape) !== k || size(vs[i].shape) !== k) throw new Error(`DpoAdamW: tensor ${i}: p [${ps[i].shape}], g [${gs[i].shape}], m [${ms[i].shape}], v [${vs[i].shape}]`);
    }
    const shapes = [...ps, ...ps, ...ps].map((t) => t.shape);
    const o = operands(backendName, args.backend, [normInfo, ...ps, ...gs, ...ms, ...vs], shapes, 'DpoAdamW');
    // The reference's float32 scalar ops: coef = min(maxGradNorm / (norm + 1e-6), 1).
    const nv = o.ins[0][0];
    const coef = at.maxGradNorm > 0 ? Math.min(f(f(at.maxGradNorm) / f(nv + f(1e-6))), 1) : 1;
    const bc1 = 1 - Math.pow(at.beta1, at.step);
    const bc2 = 1 - Math.pow(at.beta2, at.step);
    const consts = new Float32Array([coef, at.beta1, 1 - at.beta1, at.beta2, 1 - at.beta2, Math.sqrt(bc2), at.eps, 1, at.lr / bc1]);
    const decay = f(1 - at.lr * at.weightDecay);
    for (let i = 0; i < n; i++) {
      consts[7] = at.weightDecay > 0 && at.decayMask[i] ? decay : 1;
      const [p, g, m, v] = [o.ins[1 + i], o.ins[1 + n + i], o.ins[1 + 2 * n + i], o.ins[1 + 3 * n + i]];
      a.adamwUpdate(p, g, m, v, o.outs[i], o.outs[n + i], o.outs[2 * n + i], p.length, consts);
    }
    return o.finish();
  };
  return [
    { kernelName: 'DpoGlobalNorm', backendName, kernelFunc: norm as unknown as tf.KernelFunc },
    { kernelName: 'DpoAdamW', backendName, kernelFunc: adamw as unknown as tf.KernelFunc },
  ];
}
