// The default pipeline's whole-run ETA (default-cache.ts PipelineEta), on a scripted clock: estimates until a stage
// reports progress, the running stage's own rate after 5%, finished stages scaling the rest, reused stages not.
import { describe, expect, it } from 'vitest';
import { PipelineEta } from '../../src/pipeline/default-cache.js';

describe('PipelineEta', () => {
  it('follows estimates, then the running stage rate, then the measured/estimated ratio of finished stages', () => {
    let t = 0;
    const eta = new PipelineEta(new Map([['world', 10], ['sft', 100], ['dpo', 200]]), () => t * 1000);
    expect(eta.left()).toBe(310);
    eta.start('world');
    eta.finish('world', 0, true); // reused: 0 s, no effect on the scale
    expect(eta.left()).toBe(300);
    eta.start('sft');
    t = 40;
    expect(eta.left()).toBe(60 + 200); // estimate less the time so far
    eta.progress(0.02);
    expect(eta.left()).toBe(260); // under 5%: still the estimate
    eta.progress(0.25);
    expect(eta.left()).toBe(40 * 3 + 200); // 40 s for a quarter: 120 s to go
    t = 160;
    eta.progress(1);
    eta.finish('sft', 160, false); // 1.6 x its estimate, over a minute of estimated work: the rest scales by 1.6
    expect(eta.left()).toBeCloseTo(320, 9);
    eta.start('dpo');
    t = 460; // overran the scaled estimate by far: a tenth of it stays
    expect(eta.left()).toBeCloseTo(32, 9);
    eta.finish('dpo', 300, false);
    expect(eta.left()).toBe(0);
    expect(eta.line()).toBe('pipeline ETA 0s');
  });

  it('a ratio from under a minute of estimated work does not scale the rest', () => {
    const eta = new PipelineEta(new Map([['world', 10], ['sft', 100]]), () => 0);
    eta.start('world');
    eta.finish('world', 50, false);
    expect(eta.left()).toBe(100);
  });
});
