// The typed Llama config that every function in model/ takes (field names as HF's LlamaConfig, camel-cased), and
// the values derived from it. config/llama.ts parses config.json into it; model/ imports nothing from config/.

export interface RopeScaling {
  ropeType: 'llama3';
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

export interface LlamaConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  /** `head_dim` when given, else hidden / heads. */
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  attentionBias: boolean;
  mlpBias: boolean;
  bosTokenId: number | null;
  eosTokenIds: number[];
  /** `torch_dtype` (v4) or `dtype` (v5) as written, informational only: we compute in float32. */
  torchDtype: string | null;
  /** Which transformers layout config.json uses (absent: v4); merge writes the same one back. */
  configLayout?: ConfigLayout;
}

/** v4: `rope_theta` + `rope_scaling` + `torch_dtype`; v5: `rope_parameters` + `dtype`. */
export type ConfigLayout = 'v4' | 'v5';

/** Query heads per KV head (grouped-query attention). */
export function kvGroups(c: LlamaConfig): number {
  return c.numHeads / c.numKvHeads;
}
