"""`leukoreport run` passes SIGINT and SIGTERM on to Snakemake and waits for it: no Snakemake left running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# A stand-in for `python -m snakemake`: writes its pid, then waits; on a signal it records which one, takes a
# moment to "stop its jobs", writes 'stopped' and exits 128 + signal number.
FAKE_SNAKEMAKE = '''
import os, signal, sys, time
from pathlib import Path
out = Path(os.environ["FAKE_OUT"])
def stop(signum, frame):
    with open(out / "signals", "a") as fh:
        fh.write(f"{signum}\\n")
    time.sleep(0.5)
    (out / "stopped").write_text("yes")
    sys.exit(128 + signum)
signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)
(out / "pid").write_text(str(os.getpid()))
time.sleep(60)
'''


def wait_for(path: Path, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < end, f"{path} did not appear"
        time.sleep(0.05)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_wrapper_reaches_snakemake_once_and_is_waited_for(tmp_path, signum):
    fake = tmp_path / "fake" / "snakemake"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "__main__.py").write_text(FAKE_SNAKEMAKE)
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'fake'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "FAKE_OUT": str(out)}
    code = "import sys\nfrom leukoreport.cli import call_snakemake\nsys.exit(call_snakemake(['--cores', '1']))\n"
    wrapper = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True)
    wait_for(out / "pid")
    child = int((out / "pid").read_text())
    assert os.getpgid(child) != os.getpgid(wrapper.pid)  # its own process group: a terminal Ctrl-C reaches it once
    wrapper.send_signal(signum)
    status = wrapper.wait(timeout=30)
    assert (out / "stopped").read_text() == "yes"  # the wrapper waited for Snakemake to finish stopping
    assert (out / "signals").read_text().split() == [str(int(signum))]
    assert status == 128 + signum
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)
    assert "running: snakemake --cores 1" in wrapper.stderr.read()
