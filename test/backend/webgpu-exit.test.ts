// Node exits by itself after a webgpu session: closeBackend destroys the device and drops navigator.gpu (Dawn keeps
// the event loop alive while it is referenced). Runs the compiled dist/ in a child, as `node train.js` would.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { probeWebGpu } from '../../src/backend/webgpu.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const probe = await probeWebGpu();
if (!probe.ok) console.log(`webgpu exit: SKIPPED, no WebGPU adapter: ${probe.reason}`);

const CHILD = `
import * as tf from '@tensorflow/tfjs';
import { selectBackend, closeBackend } from './dist/src/backend/index.js';
await selectBackend('webgpu');
const y = tf.matMul(tf.ones([64, 64]), tf.ones([64, 64]));
console.log('value', (await y.data())[0]);
await closeBackend();
console.log('closed', tf.getBackend(), typeof globalThis.navigator?.gpu);
`;

describe.skipIf(!probe.ok)('webgpu and process exit', () => {
  it('a child that used webgpu and called closeBackend exits 0 on its own', () => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', CHILD], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(r.error, 'the child did not exit within 60 s').toBeUndefined();
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('value 64');
    expect(r.stdout).toContain('closed cpu undefined');
  });
});
