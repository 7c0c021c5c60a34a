"""A local Cloud Run jobs runner: the ``google.cloud.run.v2.Jobs/RunJob`` gRPC method, so the
official ``google-cloud-run`` client code path runs, executing a job as local processes.

    python -m local.cloud_run --port 8096 --state .local/stack/cloud-run

It answers ``Executions/ListExecutions`` too (each execution with the overrides it ran with,
its tasks running, succeeded and failed, start and completion times and, once it ended, the
``Completed`` condition with the failed task's exit code), so a delivery can check whether a
run's job really started and the desk can show how runs went. Each task is
``python -m <module>`` with ``CLOUD_RUN_JOB``, ``CLOUD_RUN_EXECUTION``,
``CLOUD_RUN_TASK_INDEX``, ``CLOUD_RUN_TASK_COUNT`` and ``CLOUD_RUN_TASK_ATTEMPT`` set, the
request's environment overrides applied, tasks in parallel up to the job's parallelism, and a
failed task retried up to the job's max retries. The jobs (names, task shape, environment) come
from ``--jobs``, a file the stack writes from ``shared/platform.yaml`` for its environment, as
Terraform declares them. Each execution's outcome is written to ``<state>/executions/<id>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.cloud.run_v2.types import (
    Condition,
    Container,
    EnvVar,
    Execution,
    ListExecutionsRequest,
    ListExecutionsResponse,
    RunJobRequest,
    TaskTemplate,
)
from google.longrunning import operations_pb2

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class JobSpec:
    module: str
    task_count: int
    parallelism: int
    max_retries: int
    timeout_s: int = 3600
    env: dict[str, str] = field(default_factory=dict)


def load_jobs(path: Path) -> dict[str, JobSpec]:
    """Job name -> definition, from the file the stack writes."""
    return {name: JobSpec(**spec) for name, spec in json.loads(path.read_text()).items()}


class Runner:
    def __init__(self, state: Path, jobs: dict[str, JobSpec]) -> None:
        self.state = state
        self.jobs = jobs
        self._lock = threading.Lock()  # tasks of an execution record their ends one at a time
        (state / "executions").mkdir(parents=True, exist_ok=True)

    def run_job(
        self, request: RunJobRequest, context: grpc.ServicerContext
    ) -> operations_pb2.Operation:
        job = request.name.rsplit("/", 1)[-1]
        spec = self.jobs.get(job)
        if spec is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Resource '{request.name}' was not found")
        execution = f"{job}-{uuid.uuid4().hex[:5]}"
        env = {**os.environ, **spec.env}
        overrides: dict[str, str] = {}
        count = spec.task_count
        if request.overrides:
            for override in request.overrides.container_overrides:
                overrides.update({e.name: e.value for e in override.env})
            count = request.overrides.task_count or count
        env.update(overrides)
        record = {
            "job": job,
            "name": f"{request.name}/executions/{execution}",
            "execution": execution,
            "run_id": overrides.get("RETAIL_RUN_ID"),
            "overrides": overrides,
            "task_count": count,
            "started": time.time(),
            "done": False,
        }
        self._write(record)
        threading.Thread(target=self._execute, args=(record, spec, count, env), daemon=True).start()
        parent = request.name.split("/jobs/")[0]
        return operations_pb2.Operation(name=f"{parent}/operations/{execution}", done=False)

    def _write(self, record: dict) -> None:
        path = self.state / "executions" / f"{record['execution']}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1))
        tmp.replace(path)

    def list_executions(
        self, request: ListExecutionsRequest, context: grpc.ServicerContext
    ) -> ListExecutionsResponse:
        """The job's executions, newest first, with the overrides each ran with (as the
        Admin API shows them in the execution's template)."""
        job = request.parent.rsplit("/", 1)[-1]
        if job not in self.jobs:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Resource '{request.parent}' was not found")
        found = []
        for path in (self.state / "executions").glob(f"{job}-*.json"):
            try:
                record = json.loads(path.read_text())
            except ValueError:
                continue
            if record.get("job") != job or "started" not in record:
                continue  # another job's, or written by an older runner
            env = [EnvVar(name=k, value=v) for k, v in record.get("overrides", {}).items()]
            tasks = record.get("tasks", [])
            failed = [t for t in tasks if not t["succeeded"]]
            execution = Execution(
                name=record.get("name") or f"{request.parent}/executions/{record['execution']}",
                job=job,
                task_count=record.get("task_count", 0),
                template=TaskTemplate(containers=[Container(env=env)]),
                running_count=0
                if record.get("done")
                else min(self.jobs[job].parallelism, record.get("task_count", 0) - len(tasks)),
                succeeded_count=len(tasks) - len(failed),
                failed_count=len(failed),
            )
            started = dt.datetime.fromtimestamp(record["started"], dt.UTC)
            execution.create_time = execution.start_time = started
            if record.get("done"):
                execution.completion_time = started + dt.timedelta(seconds=record["seconds"])
                first = min(failed, key=lambda t: t["index"]) if failed else None
                states = Condition.State
                execution.conditions = [Condition(
                    type_="Completed",
                    state=states.CONDITION_FAILED if first else states.CONDITION_SUCCEEDED,
                    message=(f"Task {first['index']} failed: the container exited with code "
                             f"{first.get('code')} ({first['attempts']} attempts)") if first
                            else f"Execution completed successfully in {record['seconds']:.0f}s.",
                )]  # fmt: skip
            found.append(execution)
        found.sort(key=lambda e: e.create_time, reverse=True)
        return ListExecutionsResponse(executions=found)

    def _task(self, job: str, execution: str, spec: JobSpec, index: int, count: int, env: dict):
        for attempt in range(spec.max_retries + 1):
            task_env = {
                **env,
                "CLOUD_RUN_JOB": job,
                "CLOUD_RUN_EXECUTION": execution,
                "CLOUD_RUN_TASK_INDEX": str(index),
                "CLOUD_RUN_TASK_COUNT": str(count),
                "CLOUD_RUN_TASK_ATTEMPT": str(attempt),
            }
            log = self.state / "executions" / f"{execution}-task{index}-attempt{attempt}.log"
            with log.open("wb") as out:
                try:
                    code = subprocess.run(
                        [sys.executable, "-m", spec.module],
                        env=task_env,
                        cwd=REPO,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        timeout=spec.timeout_s,
                    ).returncode
                except subprocess.TimeoutExpired:
                    code = -1
            if code == 0:
                return {"index": index, "attempts": attempt + 1, "succeeded": True, "code": 0}
        return {"index": index, "attempts": spec.max_retries + 1, "succeeded": False, "code": code}

    def _execute(self, record: dict, spec: JobSpec, count: int, env: dict) -> None:
        job, execution = record["job"], record["execution"]
        tasks: list[dict] = []

        def task(index: int) -> None:
            ended = self._task(job, execution, spec, index, count, env)
            with self._lock:  # each task's end is seen while the others run
                tasks.append(ended)
                tasks.sort(key=lambda t: t["index"])
                self._write({**record, "tasks": list(tasks)})

        with futures.ThreadPoolExecutor(spec.parallelism) as pool:
            list(pool.map(task, range(count)))
        self._write(
            {
                **record,
                "tasks": tasks,
                "succeeded": all(t["succeeded"] for t in tasks),
                "seconds": round(time.time() - record["started"], 2),
                "done": True,
            }
        )


def serve(port: int, state: Path, jobs: dict[str, JobSpec]) -> grpc.Server:
    runner = Runner(state, jobs)
    jobs_service = grpc.method_handlers_generic_handler(
        "google.cloud.run.v2.Jobs",
        {
            "RunJob": grpc.unary_unary_rpc_method_handler(
                runner.run_job,
                request_deserializer=RunJobRequest.deserialize,
                response_serializer=operations_pb2.Operation.SerializeToString,
            )
        },
    )
    executions_service = grpc.method_handlers_generic_handler(
        "google.cloud.run.v2.Executions",
        {
            "ListExecutions": grpc.unary_unary_rpc_method_handler(
                runner.list_executions,
                request_deserializer=ListExecutionsRequest.deserialize,
                response_serializer=ListExecutionsResponse.serialize,
            )
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(8))
    server.add_generic_rpc_handlers((jobs_service, executions_service))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8096)
    parser.add_argument("--state", type=Path, default=REPO / ".local" / "stack" / "cloud-run")
    parser.add_argument("--jobs", type=Path, required=True, help="job definitions (JSON)")
    args = parser.parse_args(argv)
    serve(args.port, args.state, load_jobs(args.jobs)).wait_for_termination()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
