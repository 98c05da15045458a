// TensorBoard event files, as torch.utils.tensorboard's SummaryWriter (which HF's TensorBoardCallback uses) writes them:
// TFRecord framing of `tensorflow.Event` protobufs, a file_version event first, then one Summary of simple_value scalars
// per logged step. Leaves out histograms, images, graphs and the plugin metadata of tensor summaries.
//
// Field numbers from tensorflow/core/util/event.proto (Event: wall_time 1, step 2, file_version 3, summary 5,
// session_log 7; SessionLog: status 1, START = 1) and tensorflow/core/framework/summary.proto (Summary: value 1;
// Summary.Value: tag 1, simple_value 2). Framing from tensorflow/core/lib/io/record_writer.cc: uint64 length, uint32
// masked crc32c(length), data, uint32 masked crc32c(data), all little-endian; mask = rotr15(crc) + 0xa282ead8.
import { crc32c } from '@aws-crypto/crc32c';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

/** The version string of the first event of every file ("brain.Event:2", event.proto). */
export const FILE_VERSION = 'brain.Event:2';

/** TFRecord's masked CRC (record_writer.cc MaskedCrc): rotate right by 15 bits, add a constant, mod 2^32. */
export function maskedCrc32c(data: Uint8Array): number {
  const c = crc32c(data) >>> 0;
  return (((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0;
}

/** One TFRecord: length, masked crc of the length, the bytes, masked crc of the bytes. */
export function tfRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + 4 + data.length + 4);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  view.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}

/** Event header fields: wall_time (seconds, a double) and step (int64). */
function eventHead(wallTime: number, step: number): BinaryWriter {
  return new BinaryWriter().tag(1, WireType.Bit64).double(wallTime).tag(2, WireType.Varint).int64(step);
}

/** Event { wall_time, step, file_version }. */
export function fileVersionEvent(wallTime: number): Uint8Array {
  return eventHead(wallTime, 0).tag(3, WireType.LengthDelimited).string(FILE_VERSION).finish();
}

/** Event { wall_time, step, summary: Summary { value: [{ tag, simple_value }] } }; simple_value is a float32. */
export function scalarsEvent(wallTime: number, step: number, scalars: Record<string, number>): Uint8Array {
  const w = eventHead(wallTime, step).tag(5, WireType.LengthDelimited).fork();
  for (const [tag, v] of Object.entries(scalars)) {
    w.tag(1, WireType.LengthDelimited).fork().tag(1, WireType.LengthDelimited).string(tag).tag(2, WireType.Bit32).float(v).join();
  }
  return w.join().finish();
}

/**
 * Event { wall_time, step, session_log: { status: START } }: written where a resumed run starts, so TensorBoard drops
 * what an earlier invocation logged past that step (its event_accumulator purges "orphaned" data on a START).
 */
export function sessionStartEvent(wallTime: number, step: number): Uint8Array {
  return eventHead(wallTime, step).tag(7, WireType.LengthDelimited).fork().tag(1, WireType.Varint).int32(1).join().finish();
}

/**
 * An event file under `logDir`, named as SummaryWriter names it (`events.out.tfevents.<secs>.<host>.<pid>.<n>`). Each
 * event is written through at once (an append-only log, like metrics.jsonl: a crash loses at most the record being
 * written, and readers stop at a torn last record).
 */
export class EventFileWriter {
  readonly path: string;
  private fd: number | null;

  constructor(logDir: string, now: () => number = Date.now) {
    this.now = now;
    mkdirSync(logDir, { recursive: true });
    const secs = Math.floor(now() / 1000);
    this.path = join(logDir, `events.out.tfevents.${String(secs).padStart(10, '0')}.${hostname()}.${process.pid}.${EventFileWriter.uid++}`);
    this.fd = openSync(this.path, 'wx');
    this.write(fileVersionEvent(now() / 1000));
  }

  private static uid = 0;
  private readonly now: () => number;

  private write(event: Uint8Array): void {
    if (this.fd === null) return;
    const rec = tfRecord(event);
    writeSync(this.fd, rec, 0, rec.length);
  }

  /** One Summary of scalars at `step`, stamped with the current wall time. Non-finite values are left out. */
  scalars(step: number, values: Record<string, number>): void {
    const finite = Object.fromEntries(Object.entries(values).filter(([, v]) => Number.isFinite(v)));
    if (Object.keys(finite).length > 0) this.write(scalarsEvent(this.now() / 1000, step, finite));
  }

  sessionStart(step: number): void {
    this.write(sessionStartEvent(this.now() / 1000, step));
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
