// Exports a full HF model directory with a LoRA adapter folded in (PEFT `merge_and_unload` + save_pretrained):
// config, tokenizer files and sharded safetensors with an index, written atomically as one folder.
import { copyFileSync, existsSync } from 'node:fs';
import { readJsonObject } from './json.js';
import { join } from 'node:path';
import { mergeLora, disposeMerged, type Lora } from '../model/lora.js';
import { savedEntries } from '../model/row-blocks.js';
import type { LoadedModel } from './model-dir.js';
import { writeDirAtomic, writeFileAtomic } from './atomic.js';
import { type WriteDtype } from './safetensors.js';
import { writeShardedSafetensors } from './shards.js';
import { checkOutDir } from './out-dir.js';

const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'special_tokens_map.json', 'chat_template.jinja'];

/** Checks `outDir` first (io/out-dir.ts): never the base model's folder or inside it; a foreign non-empty folder only with `overwrite`. */
export async function writeMergedModel(model: LoadedModel, lora: Lora, outDir: string, dtype: WriteDtype, maxShardBytes = 5e9, overwrite = false): Promise<void> {
  checkOutDir(outDir, { flag: '--out', overwrite, inputs: [{ flag: '--model', dir: model.dir }] });
  const merged = mergeLora(model.weights, lora);
  try {
    await writeDirAtomic(outDir, async (tmp) => {
      // By HF name, sorted; an embedding or lm_head held as row blocks (model/row-blocks.ts) is joined on the host.
      await writeShardedSafetensors(tmp, savedEntries(merged), { dtype, maxShardBytes });
      const config = readJsonObject(join(model.dir, 'config.json'), 'a Hugging Face config.json');
      // Written in the layout the source came from: v5's save_pretrained writes `dtype`, v4's `torch_dtype`.
      const dtypeName = dtype === 'BF16' ? 'bfloat16' : 'float32';
      if (model.cfg.configLayout === 'v5') {
        delete config.torch_dtype;
        config.dtype = dtypeName;
      } else config.torch_dtype = dtypeName;
      writeFileAtomic(join(tmp, 'config.json'), JSON.stringify(config, null, 2) + '\n');
      for (const f of TOKENIZER_FILES) if (existsSync(join(model.dir, f))) copyFileSync(join(model.dir, f), join(tmp, f));
    }, { manifest: 'merge' });
  } finally {
    disposeMerged(merged, model.weights);
  }
}
