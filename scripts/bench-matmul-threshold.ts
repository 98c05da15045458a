// Measures, on the wasm backend, where the BLAS addon's BatchMatMul overtakes XNNPACK's as the product grows, for the
// shapes a Llama step runs (x W^T of every linear layer, the LoRA down/up products, attention's batched products, and
// their backward transposes). Prints one table (median microseconds per call, both kernels) and the smallest work
// M*N*K*batch from which BLAS wins on every measured shape above it: the threshold kernels/matmul-select.ts uses.
// Build with `npx tsc -p tsconfig.json`, then: node dist/scripts/bench-matmul-threshold.js [--reps N] [--threads N]
import { parseArgs } from 'node:util';

interface Shape {
  what: string;
  a: number[];
  b: number[];
  ta: boolean;
  tb: boolean;
}

/** Shapes of the tiny (H 64, I 176, r 8, M = 4 x 64 rows) and small (H 512, I 1408, r 16, M = 4 x 256) presets. */
function shapes(): Shape[] {
  const out: Shape[] = [];
  for (const [M, H, I, r, N, T, D] of [[256, 64, 176, 8, 4, 64, 16], [1024, 512, 1408, 16, 8, 256, 64]] as const) {
    const p = `M${M} H${H}`;
    out.push({ what: `${p} x W^T (q/o)`, a: [M, H], b: [H, H], ta: false, tb: true });
    out.push({ what: `${p} x W^T (gate/up)`, a: [M, H], b: [I, H], ta: false, tb: true });
    out.push({ what: `${p} x W^T (down)`, a: [M, I], b: [H, I], ta: false, tb: true });
    out.push({ what: `${p} dy W (gate/up bwd)`, a: [M, I], b: [I, H], ta: false, tb: false });
    out.push({ what: `${p} x A^T (LoRA down)`, a: [M, H], b: [r, H], ta: false, tb: true });
    out.push({ what: `${p} dy^T x (LoRA dA)`, a: [M, r], b: [M, H], ta: true, tb: false });
    out.push({ what: `${p} q k^T (attn)`, a: [M / T, N, T, D], b: [M / T, N, T, D], ta: false, tb: true });
    out.push({ what: `${p} p v (attn)`, a: [M / T, N, T, T], b: [M / T, N, T, D], ta: false, tb: false });
  }
  for (const n of [16, 32, 48, 64, 96, 128, 192, 256]) out.push({ what: `square ${n}`, a: [n, n], b: [n, n], ta: false, tb: true });
  return out;
}

function work(s: Shape): number {
  const r = s.a.length;
  const M = s.ta ? s.a[r - 1] : s.a[r - 2];
  const K = s.ta ? s.a[r - 2] : s.a[r - 1];
  const N = s.tb ? s.b[s.b.length - 2] : s.b[s.b.length - 1];
  const batch = s.a.slice(0, -2).reduce((p, d) => p * d, 1);
  return M * N * K * batch;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { reps: { type: 'string', default: '30' }, threads: { type: 'string', default: '1' } } });
  const reps = Number(values.reps);
  const tf = await import('@tensorflow/tfjs');
  const { selectBackend } = await import('../src/backend/index.js');
  const { useMatMul, setKernelThreads } = await import('../src/backend/kernels.js');
  await selectBackend('wasm');
  setKernelThreads(Number(values.threads));
  const time = (s: Shape): number => {
    const a = tf.randomNormal(s.a, 0, 1, 'float32', 1);
    const b = tf.randomNormal(s.b, 0, 1, 'float32', 2);
    const once = () => tf.tidy(() => tf.matMul(a, b, s.ta, s.tb)).dispose();
    for (let i = 0; i < 3; i++) once();
    const ts: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      once();
      ts.push((performance.now() - t0) * 1000);
    }
    tf.dispose([a, b]);
    ts.sort((x, y) => x - y);
    return ts[ts.length >> 1];
  };
  const rows = shapes().map((s) => {
    useMatMul('wasm', 'xnnpack');
    const x = time(s);
    useMatMul('wasm', 'blas');
    const bl = time(s);
    return { s, work: work(s), x, bl };
  }).sort((p, q) => p.work - q.work);
  console.log(`BatchMatMul on wasm, median us per call over ${reps} calls, ${values.threads} BLAS thread(s)`);
  console.log(`${'shape'.padEnd(30)} ${'M*N*K*batch'.padStart(12)} ${'xnnpack'.padStart(9)} ${'blas'.padStart(9)}  faster`);
  for (const r of rows) {
    console.log(`${r.s.what.padEnd(30)} ${String(r.work).padStart(12)} ${r.x.toFixed(1).padStart(9)} ${r.bl.toFixed(1).padStart(9)}  ${r.x < r.bl ? 'xnnpack' : 'blas'}`);
  }
  // The threshold: the smallest work such that BLAS is at least as fast on every measured shape of that work or more.
  let threshold = 0;
  for (let i = rows.length - 1; i >= 0; i--) {
    if (rows[i].x < rows[i].bl) {
      threshold = i + 1 < rows.length ? rows[i + 1].work : Infinity;
      break;
    }
  }
  console.log(`threshold: BLAS from M*N*K*batch >= ${threshold} (XNNPACK below)`);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exitCode = 1;
});
