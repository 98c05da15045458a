// Learning-rate schedules with linear warmup, as transformers' get_{constant,linear,cosine}_schedule_with_warmup.
// `step` is the 0-based optimizer step about to be taken; the value returned is the lr used for that step.

export const SCHEDULERS = ['constant', 'linear', 'cosine'] as const;
export type SchedulerName = (typeof SCHEDULERS)[number];

export function warmupSteps(totalSteps: number, warmupSteps: number, warmupRatio: number): number {
  return warmupSteps > 0 ? warmupSteps : Math.ceil(totalSteps * warmupRatio);
}

export function learningRateAt(step: number, base: number, name: SchedulerName, totalSteps: number, warmup: number): number {
  if (step < warmup) return (base * step) / Math.max(1, warmup);
  if (name === 'constant') return base;
  const progress = (step - warmup) / Math.max(1, totalSteps - warmup);
  if (name === 'linear') return base * Math.max(0, 1 - progress);
  // cosine with num_cycles = 0.5: one half-wave from base to 0.
  return base * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
}
