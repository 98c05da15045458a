// A webgpu start that fails inside tfjs' setBackend (here: the device factory throws) must leave the engine on cpu,
// not on a half-started webgpu, choose nothing, release Dawn, and say why. Own file: selectBackend keeps module state.
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { currentBackend, selectBackend } from '../../src/backend/index.js';
import { probeWebGpu, registerWebGpu } from '../../src/backend/webgpu.js';
import { BackendError } from '../../src/util/errors.js';

tf.env().set('PROD', true);
const probe = await probeWebGpu();
if (!probe.ok) console.log(`webgpu fallback: SKIPPED, no WebGPU adapter: ${probe.reason}`);

describe.skipIf(!probe.ok)('a failed webgpu start', () => {
  it('puts the engine back on cpu, chooses nothing, drops navigator.gpu, and names the cause', async () => {
    await tf.setBackend('cpu');
    await registerWebGpu();
    // tfjs' registry entry for webgpu, as if requestDevice had failed on this adapter.
    const registry = (tf.engine() as unknown as { registryFactory: Record<string, { factory: () => Promise<unknown> }> }).registryFactory;
    registry.webgpu.factory = async () => {
      throw new Error('requestDevice: device lost (simulated)');
    };
    const err = await selectBackend('webgpu').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect((err as Error).message).toMatch(/^--backend webgpu: tfjs could not start on .+ \((setBackend returned false|requestDevice: device lost \(simulated\))\) \(expected a working WebGPU device\)/);
    expect(tf.getBackend()).toBe('cpu');
    expect(tf.findBackend('webgpu')).toBeNull();
    expect(currentBackend()).toBeNull();
    expect((globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu).toBeUndefined();
    // The engine still computes, on cpu.
    const y = tf.tidy(() => tf.add(tf.scalar(2), tf.scalar(3)));
    expect((await y.data())[0]).toBe(5);
    y.dispose();
  });
});
