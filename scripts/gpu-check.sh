#!/usr/bin/env bash
# One command for a GPU machine, under 10 minutes: prints the environment (nvidia-smi, vulkaninfo --summary, node,
# doctor), runs the parity tests (test/backend/webgpu-parity.test.ts) on every GPU backend that loads, then times a
# DPO step at growing Llama-shaped sizes up to one that does not fit. Everything goes to a folder: $1, else $OUT, else
# ./gpu-check-<time>; summary.txt lists every part with its exit code and log file. Needs dist/ (`npx tsc -p tsconfig.json`).
#   GPU_CHECK_SIZES=s0,s1   the sizes to try (default s1..s7; s0 is a tiny one for a software adapter such as lavapipe)
#   GPU_CHECK_BUDGET_S=540  total seconds; each part gets what is left, so the whole run stays under 10 minutes
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-gpu-check-$(date -u +%Y%m%dT%H%M%SZ)}}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
budget="${GPU_CHECK_BUDGET_S:-540}"
sizes="${GPU_CHECK_SIZES:-s1,s2,s3,s4,s5,s6,s7}"
start=$SECONDS
: > "$out/summary.txt"

say() { echo "gpu-check: $*" | tee -a "$out/summary.txt"; }
left() { echo $((budget - (SECONDS - start))); }

# part NAME MAX_S CMD...: runs CMD with at most MAX_S (or what is left of the budget) seconds, output to NAME.log.
part() {
  local name=$1 limit=$2 t0=$SECONDS rc
  shift 2
  local rest; rest=$(left)
  ((limit > rest)) && limit=$rest
  if ((limit < 10)); then say "$name: skipped, time budget spent"; return 124; fi
  timeout --kill-after=10 "$limit" "$@" > "$out/$name.log" 2>&1
  rc=$?
  say "$name: exit $rc in $((SECONDS - t0)) s -> $name.log"
  return $rc
}

if [ ! -f dist/src/cli/main.js ]; then
  say "dist/ is missing: run \`npx tsc -p tsconfig.json\` (or npm install) first"
  exit 1
fi

# 1. The environment.
{
  echo "== date"; date -u
  echo "== host"; uname -a; nproc; free -g 2>/dev/null | head -2
  echo "== nvidia-smi"; nvidia-smi 2>&1 || echo "(no nvidia-smi)"
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,compute_cap --format=csv 2>&1 || true
  echo "== vulkaninfo --summary"; vulkaninfo --summary 2>&1 || echo "(no vulkaninfo: apt-get install vulkan-tools)"
  echo "== vulkan icds"; ls -l /etc/vulkan/icd.d /usr/share/vulkan/icd.d 2>&1
  echo "== environment"; env | grep -E '^(NVIDIA_|VK_|CUDA_|LD_LIBRARY_PATH|TF_)' | sort
  echo "== node"; node --version; npm --version 2>&1
  echo "== packages"; npm ls --depth=0 webgpu @tensorflow/tfjs @tensorflow/tfjs-backend-webgpu @tensorflow/tfjs-node-gpu @tensorflow/tfjs-node 2>&1
} > "$out/env.txt" 2>&1
say "environment -> env.txt"
grep -A3 -E '^(== nvidia-smi|GPU[0-9]|deviceName)' "$out/env.txt" | grep -E 'deviceName|NVIDIA|H[0-9]00|GB' | head -6 | sed 's/^/  /'

# 2. doctor on each GPU backend (webgpu, and tensorflow through auto); both print what is missing when it does not load.
part doctor-webgpu 120 node train.js doctor --backend webgpu --matmul-size 2048
part doctor-auto 180 node train.js doctor --backend auto --matmul-size 2048
for f in doctor-webgpu doctor-auto; do
  grep -E '^(backend:|matmul|verdict: (no GPU|the GPU|a GPU|CPU))' "$out/$f.log" 2>/dev/null | sed "s/^/  $f: /"
done
grep -E '^(adapter:|verdict: (only|--backend))' "$out/doctor-webgpu.log" 2>/dev/null | sed 's/^/  webgpu: /'

# 3. Parity with cpu on every GPU backend that loads.
gpu_backends=()
grep -q '^backend: webgpu' "$out/doctor-webgpu.log" 2>/dev/null && gpu_backends+=(webgpu)
grep -q "^backend: tensorflow.*GPU device: yes" "$out/doctor-auto.log" 2>/dev/null && gpu_backends+=(tensorflow)
say "GPU backends that load: ${gpu_backends[*]:-none}"
for b in ${gpu_backends[@]+"${gpu_backends[@]}"}; do
  DPO_PARITY_BACKEND=$b part "parity-$b" 180 npx vitest run --reporter=verbose test/backend/webgpu-parity.test.ts
  grep -ohE 'webgpu parity: .*|Tests .*' "$out/parity-$b.log" | sed 's/\x1b\[[0-9;]*m//g; s/^/  /'
done

# 4. One DPO step (cached reference log-probs, policy forward + backward into LoRA q/k/v/o, AdamW) at growing sizes,
# each in its own process, until one fails (out of memory, or a tensor above the webgpu binding limit) or time runs out.
cat > "$out/size-bench.mjs" <<'EOF'
// One size, one backend: builds a Llama-shaped model on the device, times steps, prints `RESULT <json>`.
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
const { values } = parseArgs({ options: { backend: { type: 'string' }, size: { type: 'string' }, root: { type: 'string' }, steps: { type: 'string', default: '3' } } });
const root = values.root;
const SIZES = {
  s0: { hidden: 64, layers: 2, heads: 4, kv: 2, inter: 176, vocab: 512, seq: 32, pairs: 1 },
  s1: { hidden: 256, layers: 2, heads: 4, kv: 2, inter: 704, vocab: 8192, seq: 128, pairs: 2 },
  s2: { hidden: 512, layers: 4, heads: 8, kv: 2, inter: 1408, vocab: 8192, seq: 256, pairs: 2 },
  s3: { hidden: 1024, layers: 8, heads: 8, kv: 2, inter: 2816, vocab: 32000, seq: 512, pairs: 2 },
  s4: { hidden: 2048, layers: 16, heads: 16, kv: 4, inter: 5632, vocab: 32000, seq: 1024, pairs: 2 },
  s5: { hidden: 4096, layers: 32, heads: 32, kv: 8, inter: 14336, vocab: 128256, seq: 1024, pairs: 2 },
  s6: { hidden: 4096, layers: 32, heads: 32, kv: 8, inter: 14336, vocab: 128256, seq: 2048, pairs: 4 },
  s7: { hidden: 4096, layers: 32, heads: 32, kv: 8, inter: 14336, vocab: 128256, seq: 4096, pairs: 8 },
};
const p = SIZES[values.size];
if (!p) throw new Error(`--size ${values.size}: unknown (expected ${Object.keys(SIZES).join(', ')})`);
// This file lives in the output folder: tfjs resolves from the repository (the same instance dist/ imports).
const tf = createRequire(`${root}/package.json`)('@tensorflow/tfjs');
const { selectBackend, closeBackend, assertWeightsFit } = await import(`${root}/dist/src/backend/index.js`);
const { expectedWeightShapes } = await import(`${root}/dist/src/model/llama.js`);
const { createLora, loraTensors, ATTN_TARGETS } = await import(`${root}/dist/src/model/lora.js`);
const { stepGradients, disposeStats } = await import(`${root}/dist/src/train/dpo-step.js`);
const { adamwStep, createAdamWState } = await import(`${root}/dist/src/train/optimizer.js`);
const { batchSequenceLogprobs } = await import(`${root}/dist/src/dpo/logprobs.js`);
const { collatePairs } = await import(`${root}/dist/src/data/batch.js`);
const { Rng } = await import(`${root}/dist/src/util/rng.js`);
const info = await selectBackend(values.backend);
const cfg = {
  vocabSize: p.vocab, hiddenSize: p.hidden, intermediateSize: p.inter, numLayers: p.layers, numHeads: p.heads, numKvHeads: p.kv,
  headDim: p.hidden / p.heads, rmsNormEps: 1e-5, ropeTheta: 500000, ropeScaling: null, maxPositionEmbeddings: 2 * p.seq,
  tieWordEmbeddings: false, attentionBias: false, mlpBias: false, bosTokenId: 0, eosTokenIds: [1], torchDtype: 'float32',
};
const shapes = expectedWeightShapes(cfg);
assertWeightsFit(shapes);
// N(0, 0.02) rows drawn on the host for at most 64 rows, tiled on the device: 8B host randoms would take minutes.
const w = {};
let params = 0;
for (const [name, shape] of Object.entries(shapes)) {
  params += shape.reduce((a, b) => a * b, 1);
  if (name.endsWith('norm.weight')) { w[name] = tf.ones(shape); continue; }
  const rows = Math.min(shape[0], 64);
  const tile = tf.randomNormal([rows, ...shape.slice(1)], 0, 0.02, 'float32', params % 9973);
  w[name] = rows === shape[0] ? tile : tf.tidy(() => tf.slice(tf.tile(tile, [Math.ceil(shape[0] / rows), ...shape.slice(1).map(() => 1)]), 0, shape[0]));
  if (w[name] !== tile) tile.dispose();
}
const lora = createLora(cfg, { r: 16, alpha: 32, dropout: 0, targets: [...ATTN_TARGETS], useRslora: false }, 0);
const vars = new Map(Object.entries(loraTensors(lora)));
const opt = createAdamWState(vars);
const rng = new Rng(0);
const ids = (n) => Array.from({ length: n }, () => rng.nextU32() % p.vocab);
const prompt = p.seq / 4;
const pairs = Array.from({ length: p.pairs }, () => ({ promptIds: ids(prompt), chosenIds: ids(p.seq - prompt), rejectedIds: ids(p.seq - prompt), truncated: false }));
const refT = batchSequenceLogprobs(cfg, w, collatePairs(pairs, 0), { lora: { ...lora, enabled: false } });
const refV = await refT.data();
refT.dispose();
const ref = (_ps, pos) => ({ chosen: Float32Array.from(pos, (i) => refV[i]), rejected: Float32Array.from(pos, (i) => refV[p.pairs + i]) });
const settings = { loss: 'sigmoid', beta: 0.1, labelSmoothing: 0, gradientCheckpointing: p.hidden >= 2048 };
const adam = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 };
let tokens = 0, loss = NaN;
async function step() {
  const t0 = performance.now();
  const { grads, stats } = stepGradients(cfg, w, lora, [{ pairs, positions: pairs.map((_, i) => i) }], ref, settings, 0, new Rng(1));
  const norm = adamwStep(vars, grads, opt, 1e-4, 1.0, adam);
  await norm.data(); // the step is done when its last value can be read
  loss = (await stats.losses.data()).reduce((a, b) => a + b, 0) / p.pairs;
  tokens = stats.tokens;
  tf.dispose([norm, ...grads.values()]);
  disposeStats(stats);
  return (performance.now() - t0) / 1000;
}
const first = await step();
const times = [];
for (let i = 0; i < Number(values.steps) && (i === 0 || first < 30); i++) times.push(await step());
times.sort((a, b) => a - b);
const stepS = times[times.length >> 1];
console.log('RESULT ' + JSON.stringify({ size: values.size, backend: info.name, gpu: info.gpu, params, tokens, firstS: first, stepS,
  tokensPerS: tokens / stepS, loss, tfMiB: tf.memory().numBytes / 2 ** 20, checkpointing: settings.gradientCheckpointing, ...p }));
await closeBackend();
EOF
for b in ${gpu_backends[@]+"${gpu_backends[@]}"}; do
  : > "$out/sizes-$b.jsonl"
  for s in ${sizes//,/ }; do
    part "size-$b-$s" 240 node "$out/size-bench.mjs" --backend "$b" --size "$s" --root "$PWD"
    rc=$?
    if ((rc == 0)); then
      grep '^RESULT ' "$out/size-$b-$s.log" | sed 's/^RESULT //' >> "$out/sizes-$b.jsonl"
      used=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader 2>/dev/null | head -1)
      say "  $b $s: $(grep '^RESULT ' "$out/size-$b-$s.log" | sed 's/^RESULT //' | node -e 'const r=JSON.parse(require("fs").readFileSync(0,"utf8"));console.log(`${(r.params/1e6).toFixed(0)}M params, ${r.tokens} tokens/step, first ${r.firstS.toFixed(1)} s, step ${r.stepS.toFixed(2)} s, ${r.tokensPerS.toFixed(0)} tokens/s, tf ${r.tfMiB.toFixed(0)} MiB, loss ${r.loss.toFixed(4)}`)')${used:+, nvidia-smi after: $used}"
    elif ((rc == 124 || rc == 137)); then
      say "  $b $s: timed out (240 s cap or the time budget); the largest size that ran is the one above"
      break
    else
      say "  $b $s: failed (out of memory or over a device limit?): $(grep -m1 -E '(Error|error)[: ]' "$out/size-$b-$s.log" | cut -c1-400)"
      break
    fi
  done
done

# 5. The repository's own bench-step (tensorflow only: the other GPU path is webgpu, timed above).
if [[ " ${gpu_backends[*]:-} " == *" tensorflow "* ]]; then
  part bench-step-tensorflow 240 node dist/scripts/bench-step.js --preset small --backends tensorflow --no-torch --steps 2
fi
say "done in $((SECONDS - start)) s; everything is in $out"
