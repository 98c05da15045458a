// doctor's webgpu section: the Vulkan ICD manifests (forced by VK_ICD_FILENAMES / VK_DRIVER_FILES, or the standard
// folders), a missing or malformed one named, NVIDIA_DRIVER_CAPABILITIES without graphics flagged, and the adapter line.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findVulkanIcds, nvidiaCapabilityProblem, readIcd, webgpuReport } from '../../src/backend/doctor.js';

const dir = mkdtempSync(join(tmpdir(), 'dpo-icd-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function icd(name: string, text: string): string {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
}

describe('vulkan icds', () => {
  it('reads library_path and api_version of a manifest, and names a missing or malformed one', () => {
    const nv = icd('nvidia_icd.json', JSON.stringify({ file_format_version: '1.0.1', ICD: { library_path: 'libGLX_nvidia.so.0', api_version: '1.3.277' } }));
    expect(readIcd(nv)).toEqual({ file: nv, library: 'libGLX_nvidia.so.0', apiVersion: '1.3.277', problem: null });
    expect(readIcd(join(dir, 'absent.json')).problem).toBe('missing');
    expect(readIcd(icd('empty.json', '{}')).problem).toBe('no ICD.library_path');
    expect(readIcd(icd('bad.json', '{')).problem).toMatch(/^not JSON \(/);
  });

  it('takes VK_DRIVER_FILES over VK_ICD_FILENAMES over the standard folders', () => {
    const a = icd('a.json', JSON.stringify({ ICD: { library_path: 'liba.so' } }));
    const b = icd('b.json', JSON.stringify({ ICD: { library_path: 'libb.so' } }));
    expect(findVulkanIcds({ VK_ICD_FILENAMES: `${a}:${b}` })).toEqual({ source: 'VK_ICD_FILENAMES', icds: [readIcd(a), readIcd(b)] });
    expect(findVulkanIcds({ VK_ICD_FILENAMES: a, VK_DRIVER_FILES: b }).source).toBe('VK_DRIVER_FILES');
    expect(findVulkanIcds({}).source).toBe('/etc/vulkan/icd.d, /usr/share/vulkan/icd.d, /usr/local/share/vulkan/icd.d');
  });

  it('flags NVIDIA_DRIVER_CAPABILITIES without graphics, and accepts graphics, all, or unset', () => {
    expect(nvidiaCapabilityProblem({ NVIDIA_DRIVER_CAPABILITIES: 'compute,utility' })).toMatch(/^NVIDIA_DRIVER_CAPABILITIES=compute,utility lacks graphics/);
    expect(nvidiaCapabilityProblem({ NVIDIA_DRIVER_CAPABILITIES: 'compute, utility, graphics' })).toBeNull();
    expect(nvidiaCapabilityProblem({ NVIDIA_DRIVER_CAPABILITIES: 'all' })).toBeNull();
    expect(nvidiaCapabilityProblem({})).toBeNull();
  });

  it('the report names the adapter (or why there is none) and every ICD it was given', async () => {
    const a = icd('lvp.json', JSON.stringify({ ICD: { library_path: 'libvulkan_lvp.so', api_version: '1.4.305' } }));
    const lines = await webgpuReport({ VK_ICD_FILENAMES: a, NVIDIA_DRIVER_CAPABILITIES: 'compute' });
    expect(lines[0]).toMatch(/^adapter: (none \(.+\)|.+)$/);
    if (!lines[0].startsWith('adapter: none')) expect(lines.join('\n')).toMatch(/limits: maxStorageBufferBindingSize [\d.]+ (MiB|GiB) \(\d+\), maxBufferSize /);
    expect(lines).toContain('vulkan icds (VK_ICD_FILENAMES):');
    expect(lines).toContain(`  ${a}: libvulkan_lvp.so, api 1.4.305`);
    expect(lines.some((l) => l.includes('lacks graphics'))).toBe(true);
    expect(lines.at(-1)).toBe('check: `vulkaninfo --summary` lists the devices the Vulkan loader finds');
  });
});
