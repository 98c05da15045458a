// `doctor` on this machine (no GPU, cpu backend): every section is there and says what it found; the library scan and
// the CPU-fallback guard on made-up inputs.
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { BackendInfo } from '../../src/backend/index.js';
import { assertGpuWhenAsked, parseLdconfig, runDoctor, scanLibraries } from '../../src/backend/doctor.js';
import { readEnv } from '../../src/config/env.js';
import { BackendError } from '../../src/util/errors.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe('doctor', () => {
  it('reports every section on this machine (cpu backend)', async () => {
    const lines = await runDoctor({ backend: 'cpu', model: 'llama-3.1-8b', matmulSize: 128, env: { CUDA_CACHE_MAXSIZE: '4294967296' } });
    const text = lines.join('\n');
    for (const s of ['== backend ==', '== gpu check ==', '== cuda libraries ==', '== jit cache ==', '== tfjs-node ==', '== cpu blas ==', '== python sandbox ==', '== memory plan ==']) expect(text).toContain(s);
    // The sandbox section names every layer, as the running pool measured them, and what is absent.
    expect(text).toMatch(/layers active: .*realm, python-guard, rewind/);
    expect(text).toMatch(/layers absent: /);
    // The BLAS section names the CPU and, with the addon, the OpenBLAS core and its measured GFLOP/s.
    expect(text).toMatch(/cpu \S+/);
    expect(text).toMatch(/addon: (not loaded|.*sgemm 512x512x512: \d+\.\d GFLOP\/s)/);
    expect(text).toContain('backend: cpu (@tensorflow/tfjs-backend-cpu)');
    expect(text).toMatch(/matmul 128x128 float32: [\d.]+ GFLOP\/s/);
    expect(text).toContain('verdict: no GPU in use (backend cpu)');
    expect(text).toMatch(/libcudart\.so\.11 +(MISSING|\/)/);
    expect(text).toContain('CUDA_CACHE_MAXSIZE=4294967296');
    expect(text).toMatch(/CUDA_CACHE_PATH=\(unset\) +-> set a persistent directory/);
    expect(text).toMatch(/@tensorflow\/tfjs-node-gpu(: not installed| \d)/);
    expect(text).toContain('memory plan: llama-3.1-8b, max-length 1024');
    expect(tf.getBackend()).toBe('cpu');
  });

  it('runs as `node train.js doctor` (needs dist/)', () => {
    const r = spawnSync(process.execPath, ['train.js', 'doctor', '--backend', 'cpu', '--matmul-size', '64'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.startsWith('== backend ==')).toBe(true);
    expect(r.stdout).toContain('== jit cache ==');
  });
});

describe('scanLibraries', () => {
  it('finds CUDA 11 / cuDNN 8 sonames and names other majors', () => {
    const entries = parseLdconfig([
      '123 libs found in cache `/etc/ld.so.cache\'',
      '\tlibcudart.so.12 (libc6,x86-64) => /usr/local/cuda-12/lib64/libcudart.so.12',
      '\tlibcudart.so.11.0 (libc6,x86-64) => /usr/local/cuda-11.2/lib64/libcudart.so.11.0',
      '\tlibcudnn.so.8 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcudnn.so.8',
    ].join('\n'));
    expect(entries).toHaveLength(3);
    const scan = scanLibraries(entries);
    expect(scan.found['libcudart.so.11']).toEqual(['/usr/local/cuda-11.2/lib64/libcudart.so.11.0']);
    expect(scan.found['libcudnn.so.8']).toEqual(['/usr/lib/x86_64-linux-gnu/libcudnn.so.8']);
    expect(scan.missing).toContain('libcublas.so.11');
    expect(scan.otherMajors).toEqual(['libcudart.so.12']);
  });
});

describe('assertGpuWhenAsked', () => {
  const fallback: BackendInfo = { name: 'tensorflow', package: '@tensorflow/tfjs-node-gpu', gpu: false };
  it('refuses a tensorflow run that silently fell back to the CPU', () => {
    expect(() => assertGpuWhenAsked('tensorflow', fallback, readEnv({}))).toThrow(BackendError);
    expect(() => assertGpuWhenAsked('tensorflow', fallback, readEnv({}))).toThrow(/running on the CPU.*node train\.js doctor/);
  });
  it('accepts a GPU, another request, the CPU package, or the explicit override', () => {
    expect(() => assertGpuWhenAsked('tensorflow', { ...fallback, gpu: true }, readEnv({}))).not.toThrow();
    expect(() => assertGpuWhenAsked('auto', fallback, readEnv({}))).not.toThrow();
    expect(() => assertGpuWhenAsked('tensorflow', { ...fallback, package: '@tensorflow/tfjs-node' }, readEnv({}))).not.toThrow();
    expect(() => assertGpuWhenAsked('tensorflow', fallback, readEnv({ DPO_ALLOW_CPU_FALLBACK: '1' }))).not.toThrow();
  });
});
