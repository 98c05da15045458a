// The library entry point (package.json "main"): load a model, score pairs, train, evaluate, build pairs, plan memory,
// as the commands do, without the CLI. Each export is the function its command calls; the CLI adds only flag parsing.
export { selectBackend, type BackendName, type BackendInfo } from './backend/index.js';
export { runDoctor } from './backend/doctor.js';
export { resolveRunConfig, loraTargets, PRESETS, RUN_SCHEMA, type RunConfig } from './config/run.js';
export { SAMPLING_DEFAULTS, type SamplingConfig } from './config/sampling.js';
export { defaultSandbox, openSandbox, type SandboxConfig, type SandboxRunner } from './config/sandbox.js';
export { readEnv, type Env } from './config/env.js';
export { loadModel, openModel, disposeModel, type LoadedModel } from './io/model-dir.js';
export { loadAdapter, saveAdapter, readAdapterConfig } from './io/peft.js';
export { writeMergedModel } from './io/merge.js';
export { loadPairsFile, type LoadedPairs } from './data/load.js';
export { readPairs, type PairRecord } from './data/pairs.js';
export { scorePairs, writeScores, runScore } from './dpo/score.js';
export { computePairLogps, type PairLogpTable } from './dpo/reference.js';
export { runTraining, type TrainOptions, type TrainResult } from './train/loop.js';
export { train } from './pipeline/train.js';
export { runExperiment } from './pipeline/experiment.js';
export { runEval, runEvalMerge, type EvalJob } from './eval/run.js';
export { openRunServices } from './eval/stage.js';
export { loadTasks, loadSamples, type Task, type Sample } from './eval/tasks.js';
export { evaluateCompletions } from './eval/execute.js';
export { generateSamples, sampleTask } from './eval/sampling.js';
export { runPairs, runPairsMerge, type PairsJob } from './pairs/job.js';
export { runReport } from './report/run.js';
export { planMemory, runPlan, type MemoryPlan } from './plan/memory.js';
export { createLora, disposeLora, type Lora, type LoraConfig } from './model/lora.js';
export { generateText } from './model/generate.js';
export { RUN_FILES, checkpointDir } from './run/layout.js';
