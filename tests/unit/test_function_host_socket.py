"""Defect 16: functions-framework's gunicorn opened ~/.gunicorn/gunicorn.ctl, one socket for
every gunicorn of the user, which another stack's ``down`` could remove; the function host
runs gunicorn without it."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from local.demo.steps import wait_for

REPO = Path(__file__).parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_open(port: int, proc: subprocess.Popen, timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("host", ["local.function_host", "functions-framework"])
def test_the_function_host_opens_no_shared_control_socket(tmp_path, host):
    port = free_port()
    common = ["--target", "plan_fetch", "--source", str(REPO / "functions" / "main.py")]
    if host == "local.function_host":
        argv = [sys.executable, "-m", host, *common, "--port", str(port)]
        argv += ["--capacity", "1", "--threads", "2"]
    else:  # what the stack ran before: the control socket appears
        argv = [str(Path(sys.executable).parent / host), *common, "--port", str(port)]
        argv += ["--signature-type", "cloudevent"]
    # gunicorn logs at debug level when it passes the control socket by: the observable end
    # after which its absence is a fact (it is started after the workers, not at bind).
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO),
           "GUNICORN_LOG_LEVEL": "debug"}  # fmt: skip
    log = tmp_path / "host.log"
    with log.open("w") as out:
        proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    try:
        assert wait_open(port, proc), "the host did not start"
        control = tmp_path / ".gunicorn" / "gunicorn.ctl"
        if host == "local.function_host":
            assert wait_for(lambda: "Control socket disabled" in log.read_text(), timeout_s=20)
            assert not control.exists()
        else:
            assert wait_for(control.exists, timeout_s=20)
    finally:
        proc.terminate()
        proc.wait(10)
