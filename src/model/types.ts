// The model's view of its config: the typed Llama config (parsed and derived in config/llama.ts) as the parameter type
// of every function in model/. The one bridge from model/ to config/, so the model files import only this.
export type { LlamaConfig, RopeScaling } from '../config/llama.js';
export { kvGroups } from '../config/llama.js';
