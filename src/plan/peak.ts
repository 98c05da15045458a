// Measured peak of tfjs tensor memory while a function runs: the number `plan` predicts, read from the engine.
// Two counts: `tf.memory().numBytes` (per tensor, so a reshape view or a tape's saved clone counts again) and
// distinct data buffers (what a device really allocates). Backend scratch and allocator slack are left out.
import * as tf from '@tensorflow/tfjs';

export interface PeakResult<T> {
  result: T;
  /** Highest `tf.memory().numBytes` seen inside `f` (counts views and clones of one buffer once per tensor). */
  peakBytes: number;
  /** `tf.memory().numBytes` when `f` started. */
  startBytes: number;
  /** Highest growth of the bytes held in distinct data buffers over their amount at the start: real device memory. */
  peakBufferDelta: number;
}

interface EngineCounters {
  numBytes: number;
  tensorInfo: WeakMap<object, { bytes: number }>;
}

/**
 * Runs `f` and reports its memory peaks. It watches every change of the engine's byte counter (an accessor in place
 * of the field) and every data buffer the engine registers or drops (`tensorInfo.set` / `.delete`), and removes the
 * hooks afterwards. Unlike `tf.profile`, which samples after each kernel, a peak inside a kernel or a tidy is seen.
 */
export function measurePeak<T>(f: () => T): PeakResult<T> {
  const state = tf.engine().state as unknown as EngineCounters;
  let current = state.numBytes;
  const startBytes = current;
  let peakBytes = current;
  let buffers = 0;
  let peakBufferDelta = 0;
  const info = state.tensorInfo;
  const proto = WeakMap.prototype;
  Object.defineProperty(state, 'numBytes', {
    configurable: true,
    enumerable: true,
    get: () => current,
    set: (v: number) => {
      current = v;
      if (v > peakBytes) peakBytes = v;
    },
  });
  // Own properties shadow WeakMap.prototype's methods on this one map only.
  Object.assign(info, {
    set(key: object, value: { bytes: number }) {
      if (!proto.has.call(info, key)) {
        buffers += value.bytes;
        if (buffers > peakBufferDelta) peakBufferDelta = buffers;
      }
      return proto.set.call(info, key, value);
    },
    delete(key: object) {
      const v = proto.get.call(info, key) as { bytes: number } | undefined;
      if (v) buffers -= v.bytes;
      return proto.delete.call(info, key);
    },
  });
  try {
    const result = f();
    return { result, peakBytes, startBytes, peakBufferDelta };
  } finally {
    delete (state as Partial<EngineCounters>).numBytes;
    state.numBytes = current;
    delete (info as Partial<WeakMap<object, unknown>>).set;
    delete (info as Partial<WeakMap<object, unknown>>).delete;
  }
}
