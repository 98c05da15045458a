// Issue 13 item 5: an adapter folder as PEFT's save_pretrained (after TRL's DPOTrainer) leaves it. Values transcribed from
// PEFT src/peft/peft_model.py @ 0033694 (save_pretrained: create_or_update_model_card, base_model_name_or_path from
// base_model.model.name_or_path; _get_peft_specific_model_tags: "transformers", "lora", "base_model:adapter:<name>";
// library_name "peft"; pipeline_tag "text-generation" for PeftModelForCausalLM; "### Framework versions\n\n- PEFT <v>")
// and TRL trl/trainer/dpo_trainer.py (DPOTrainer._tag_names = ["trl", "dpo"], added with model.add_model_tags). The YAML
// header is read back with PyYAML as well as js-yaml.
import * as tf from '@tensorflow/tfjs';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { load as loadYaml } from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADAPTER_CARD, ADAPTER_CONFIG, baseModelName, PEFT_FORMAT_VERSION, readAdapterConfig, saveAdapter } from '../../src/io/peft.js';
import { createLora, disposeLora } from '../../src/model/lora.js';
import { disposeWeights, loadModel, readFixture, type ModelFixture } from '../model/fixture.js';
import { tempDir } from '../train/helpers.js';

const PYTHON = existsSync('/root/.pyenv/versions/3.11.7/bin/python3') ? '/root/.pyenv/versions/3.11.7/bin/python3' : 'python3';
let root: string;
let fx: ModelFixture;

beforeAll(async () => {
  await tf.setBackend('cpu');
  fx = readFixture<ModelFixture>('base.json');
  root = tempDir('peft-card');
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function save(dir: string, base: string, name?: string): Promise<void> {
  const { cfg, w } = loadModel(fx);
  const lora = createLora(cfg, { r: 2, alpha: 4, dropout: 0, targets: ['q_proj', 'v_proj'], useRslora: false }, 1);
  await saveAdapter(dir, lora, base, name);
  disposeLora(lora);
  disposeWeights(w);
}

function header(file: string): Record<string, unknown> {
  const text = readFileSync(file, 'utf8');
  const m = /^---\n([\s\S]*?)\n---\n/.exec(text);
  expect(m, text).not.toBeNull();
  return loadYaml(m![1]) as Record<string, unknown>;
}

describe('adapter folder (PEFT save_pretrained + TRL DPOTrainer)', () => {
  it('README.md: YAML header with base_model, library_name peft, pipeline_tag, the tags TRL and PEFT add; PEFT version', async () => {
    const dir = join(root, 'hub');
    await save(dir, 'meta-llama/Llama-3.1-8B-Instruct', 'my-dpo-run');
    const card = join(dir, ADAPTER_CARD);
    const want = {
      base_model: 'meta-llama/Llama-3.1-8B-Instruct',
      library_name: 'peft',
      model_name: 'my-dpo-run',
      pipeline_tag: 'text-generation',
      tags: ['base_model:adapter:meta-llama/Llama-3.1-8B-Instruct', 'dpo', 'lora', 'transformers', 'trl'],
    };
    expect(header(card)).toEqual(want);
    // huggingface_hub reads the header with PyYAML (ModelCard.load -> yaml.safe_load).
    const py = execFileSync(PYTHON, ['-c', 'import json,sys,yaml; t=open(sys.argv[1]).read(); print(json.dumps(yaml.safe_load(t.split("---\\n")[1])))', card], { encoding: 'utf8' });
    expect(JSON.parse(py)).toEqual(want);
    const text = readFileSync(card, 'utf8');
    expect(text).toContain(`### Framework versions\n\n- PEFT ${PEFT_FORMAT_VERSION}\n`);
    expect(text).toContain('https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct');
    expect(text).toContain('https://huggingface.co/papers/2305.18290');
  });

  it('adapter_config.json: peft_version, task_type CAUSAL_LM, base_model_name_or_path; it still loads', async () => {
    const dir = join(root, 'cfg');
    await save(dir, 'models/tiny');
    const c = JSON.parse(readFileSync(join(dir, ADAPTER_CONFIG), 'utf8'));
    expect(c).toMatchObject({ peft_version: '0.18.0', task_type: 'CAUSAL_LM', peft_type: 'LORA', base_model_name_or_path: 'models/tiny' });
    expect(readAdapterConfig(dir)).toEqual({ r: 2, alpha: 4, dropout: 0, targets: ['q_proj', 'v_proj'], useRslora: false });
    // A local base: PEFT still writes base_model (the _name_or_path), and the card's model_name is the folder name.
    expect(header(join(dir, ADAPTER_CARD))).toMatchObject({ base_model: 'models/tiny', model_name: 'cfg', tags: ['base_model:adapter:models/tiny', 'dpo', 'lora', 'transformers', 'trl'] });
  });

  it('base_model_name_or_path: a Hub id (or its HF-cache snapshot), else config.json _name_or_path when a Hub id, else the path as given', () => {
    const plain = join(root, 'plain');
    mkdirSync(plain, { recursive: true });
    writeFileSync(join(plain, 'config.json'), JSON.stringify({ model_type: 'llama' }));
    const named = join(root, 'named');
    mkdirSync(named, { recursive: true });
    writeFileSync(join(named, 'config.json'), JSON.stringify({ model_type: 'llama', _name_or_path: 'meta-llama/Llama-3.2-1B' }));
    const local = join(root, 'local-name');
    mkdirSync(local, { recursive: true });
    writeFileSync(join(local, 'config.json'), JSON.stringify({ model_type: 'llama', _name_or_path: '/home/someone/llama' }));
    expect(baseModelName('meta-llama/Llama-3.1-8B-Instruct', plain)).toBe('meta-llama/Llama-3.1-8B-Instruct');
    const snap = join(root, 'hub', 'models--meta-llama--Llama-3.1-8B', 'snapshots', '0123abcd');
    expect(baseModelName(snap, plain)).toBe('meta-llama/Llama-3.1-8B');
    expect(baseModelName(named, named)).toBe('meta-llama/Llama-3.2-1B');
    expect(baseModelName('./models/plain', plain)).toBe('./models/plain'); // never made absolute
    expect(baseModelName('../plain', plain)).toBe('../plain');
    expect(baseModelName(local, local)).toBe(local); // a path in _name_or_path is another machine's: the path as given
  });
});
