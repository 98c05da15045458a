// The OS walls around the sandbox process, built from well-kept tools: bubblewrap (mount, network, pid, IPC and
// UTS namespaces; a root holding only Node, its libraries, Pyodide and our compiled sandbox, all read-only; no
// /tmp, /run, /proc or $HOME), util-linux's setpriv (when started by root: uid/gid 65534, no groups, no
// capabilities, no_new_privs), a seccomp filter (no socket(), so no TCP, UDP or Unix socket by path or in the
// abstract namespace, and no ptrace, mount, unshare, bpf, io_uring, keyrings or module loading), and prlimit's
// RLIMIT_DATA, which bounds every byte the process commits: WebAssembly memory, V8 heaps and ArrayBuffers alike.
// Where bubblewrap is missing it falls back to `unshare` (network and pid namespaces only) and says which layers
// are absent; `strict` refuses to start without all of them.
// Leaves out: the sandbox process itself (pool-process.ts) and the layers inside it (permission model, realm).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export type SandboxMode = 'auto' | 'strict';

/** The OS layers `strict` requires (uid-drop only when started by root). */
export const STRICT_LAYERS = ['mount', 'netns', 'pidns', 'seccomp', 'rlimit'];

export interface OsPlan {
  /** The command and its arguments; the sandbox's own `node ...` command line is appended by the caller. */
  prefix: string[];
  /** OS layers this plan puts in place. */
  layers: string[];
  /** Why each absent layer is absent. */
  missing: string[];
  /** A seccomp program to write to fd 4 of the child, when the plan uses one. */
  seccomp?: Buffer;
}

const UNPRIVILEGED = 65534;

function which(name: string): string | undefined {
  for (const dir of ['/usr/bin', '/bin', '/usr/sbin', '/sbin', '/usr/local/bin']) {
    const p = path.join(dir, name);
    if (fs.existsSync(p)) return p;
  }
  return undefined;
}

/** The shared libraries a binary loads (ldd), so the mount namespace holds those files and nothing else of /usr. */
function libraries(binary: string): string[] | undefined {
  const ldd = spawnSync('ldd', [binary], { encoding: 'utf8', env: {}, timeout: 5000 });
  if (ldd.status !== 0) return undefined;
  const out: string[] = [];
  for (const line of ldd.stdout.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) out.push(m[1]!);
  }
  return out;
}

/**
 * seccomp-bpf: allow everything but the listed system calls, which fail with EPERM; another architecture (or the
 * x32 ABI) is refused. Numbers from the kernel's syscall tables for x86-64 and arm64.
 */
const DENIED: Record<string, { arch: number; calls: number[] }> = {
  x64: {
    arch: 0xc000003e,
    // socket connect accept bind listen accept4 socketpair is allowed (no endpoint outside); ptrace,
    // process_vm_readv/writev, mount umount2 pivot_root chroot unshare setns, keyctl add_key request_key, bpf,
    // perf_event_open, userfaultfd, io_uring_*, kexec_load, init/finit/delete_module, name_to/open_by_handle_at.
    calls: [41, 42, 43, 49, 50, 288, 101, 310, 311, 165, 166, 155, 161, 272, 308, 250, 248, 249, 321, 298, 323, 425,
      426, 427, 246, 175, 313, 176, 303, 304],
  },
  arm64: {
    arch: 0xc00000b7,
    calls: [198, 203, 202, 200, 201, 242, 117, 270, 271, 40, 39, 41, 51, 97, 268, 219, 217, 218, 280, 241, 282, 425,
      426, 427, 104, 105, 273, 106, 264, 265],
  },
};

export function seccompProgram(arch: string = process.arch): Buffer | undefined {
  const table = DENIED[arch];
  if (!table) return undefined;
  const LD_ABS = 0x20, JEQ = 0x15, JGE = 0x35, RET = 0x06;
  const ALLOW = 0x7fff0000, ERRNO_EPERM = 0x00050001, KILL_PROCESS = 0x80000000;
  type Ins = [number, number, number, number];
  const body: Ins[] = [];
  const n = table.calls.length + (arch === 'x64' ? 1 : 0);
  // [0] ld arch; [1] jeq arch ? next : kill; [2] ld nr; [3..] checks; then allow, deny, kill.
  const denyAt = 3 + n + 1;
  const killAt = denyAt + 1;
  body.push([LD_ABS, 0, 0, 4]);
  body.push([JEQ, 0, killAt - 2, table.arch]);
  body.push([LD_ABS, 0, 0, 0]);
  if (arch === 'x64') body.push([JGE, denyAt - body.length - 1, 0, 0x40000000]);
  for (const nr of table.calls) body.push([JEQ, denyAt - body.length - 1, 0, nr]);
  body.push([RET, 0, 0, ALLOW]);
  body.push([RET, 0, 0, ERRNO_EPERM]);
  body.push([RET, 0, 0, KILL_PROCESS]);
  const out = Buffer.alloc(body.length * 8);
  body.forEach(([code, jt, jf, k], i) => {
    out.writeUInt16LE(code, i * 8);
    out.writeUInt8(jt, i * 8 + 2);
    out.writeUInt8(jf, i * 8 + 3);
    out.writeUInt32LE(k >>> 0, i * 8 + 4);
  });
  return out;
}

export interface PlanInput {
  /** Folders and files the sandbox process reads: Pyodide, the compiled sandbox, package.json. */
  readOnly: string[];
  /** RLIMIT_DATA for the whole sandbox process. */
  dataBytes: number;
}

let cached: { key: string; plan: OsPlan } | undefined;

/** The strongest containment this machine offers, probed once per process (a real run of node inside it). */
export function planOsLayers(input: PlanInput): OsPlan {
  const key = JSON.stringify(input);
  if (cached?.key === key) return cached.plan;
  const plan = probePlan(input);
  cached = { key, plan };
  return plan;
}

function probePlan(input: PlanInput): OsPlan {
  const missing: string[] = [];
  if (process.platform !== 'linux') {
    return { prefix: [], layers: [], missing: [`OS layers: ${process.platform} is not Linux`] };
  }
  const root = process.getuid?.() === 0;
  const prefix: string[] = [];
  const layers: string[] = [];
  const prlimit = which('prlimit');
  if (prlimit) {
    prefix.push(prlimit, `--data=${input.dataBytes}`, '--');
    layers.push('rlimit');
  } else missing.push('rlimit: prlimit (util-linux) not found');

  const bwrap = which('bwrap');
  const setpriv = which('setpriv');
  const libs = libraries(process.execPath);
  const seccomp = seccompProgram();
  if (bwrap && libs) {
    const args = [bwrap, '--unshare-net', '--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup-try',
      '--die-with-parent', '--new-session', '--dev', '/dev'];
    if (!root) args.push('--unshare-user', '--cap-drop', 'ALL');
    const files = [process.execPath, ...libs, ...(root && setpriv ? [setpriv, ...(libraries(setpriv) ?? [])] : [])];
    const binds = [...new Set([...files, ...input.readOnly])];
    // Parent folders made world-traversable (bubblewrap's own are not, and uid 65534 must reach the files).
    const parents = new Set<string>();
    for (const f of binds) for (let d = path.dirname(f); d !== '/' && !parents.has(d); d = path.dirname(d)) parents.add(d);
    for (const d of [...parents].sort((a, b) => a.length - b.length)) args.push('--perms', '0755', '--dir', d);
    for (const f of binds) args.push('--ro-bind', f, f);
    args.push('--remount-ro', '/');
    if (seccomp) args.push('--seccomp', '4');
    if (root && setpriv) {
      args.push('--', setpriv, `--reuid=${UNPRIVILEGED}`, `--regid=${UNPRIVILEGED}`, '--clear-groups',
        '--no-new-privs', '--inh-caps=-all', '--bounding-set=-all');
    } else args.push('--');
    const measured = probeRun(args, seccomp);
    if (measured) {
      prefix.push(...args);
      layers.push('mount', 'netns', 'pidns', 'ipcns');
      if (seccomp) layers.push('seccomp');
      if (root && setpriv && measured[0] === UNPRIVILEGED) layers.push('uid-drop');
      else if (root) missing.push('uid-drop: setpriv (util-linux) not found');
      if (!seccomp) missing.push(`seccomp: no filter for ${process.arch}`);
      return { prefix, layers, missing, seccomp };
    }
    missing.push('mount, seccomp: bubblewrap did not start here (namespaces refused)');
  } else {
    missing.push(`mount, seccomp: ${bwrap ? 'ldd failed on node' : 'bubblewrap not found (apt-get install bubblewrap)'}`);
  }
  // The fallback: network and pid namespaces from util-linux's unshare (no mount namespace, no seccomp).
  const unshare = which('unshare');
  if (unshare) {
    const args = root && setpriv
      ? [unshare, '-np', '--fork', '--kill-child', '--', setpriv, `--reuid=${UNPRIVILEGED}`, `--regid=${UNPRIVILEGED}`,
        '--clear-groups', '--no-new-privs', '--inh-caps=-all', '--bounding-set=-all']
      : [unshare, '-rnp', '--fork', '--kill-child', '--'];
    const ok = spawnSync(args[0]!, [...args.slice(1), process.execPath, '-e', '0'], { env: {}, timeout: 10_000 });
    if (ok.status === 0) {
      prefix.push(...args);
      layers.push('netns', 'pidns');
      if (root && setpriv) layers.push('uid-drop');
      return { prefix, layers, missing };
    }
  }
  missing.push('netns, pidns: unshare failed');
  return { prefix, layers, missing };
}

/** Runs node inside the planned walls once: [uid, /etc visible, pid], or undefined when it did not start. */
function probeRun(args: string[], seccomp: Buffer | undefined): [number, boolean, number] | undefined {
  const script = "process.stdout.write(JSON.stringify([process.getuid(), require('fs').existsSync('/etc'), process.pid]))";
  const r = spawnSync('/bin/sh', ['-c', `exec "$@" 4<&0`, 'sh', ...args, process.execPath, '-e', script], {
    env: {}, timeout: 10_000, encoding: 'utf8', input: seccomp ?? Buffer.alloc(0),
  });
  if (r.status !== 0) return undefined;
  try {
    const out = JSON.parse(r.stdout) as [number, boolean, number];
    return out[1] === false ? out : undefined;
  } catch {
    return undefined;
  }
}
