"""`nicegan translate ... --engine ray`: the job's units (runtime/jobs.py) on a Ray cluster.

Ray Data runs a fixed-size pool of actors; each actor opens the backend once and runs the
ordinary pipeline on the units it is given, writing its outputs itself to the output folder
(storage every node sees). Only unit descriptions (paths) and small status rows travel through
Ray. What Ray does not give is added here:
- a corrupt input is a status row (the driver lists it and exits 1), never a task failure;
- an input that crashes its worker process is retried a bounded number of times (`AttemptGuard`):
  Ray restarts actors and retries their tasks forever by default;
- a long video cannot trip Ray Data's no-progress timeout (it is switched off);
- every write is atomic with a temporary name unique to the attempt (nicegan.common.AtomicOutput),
  so a retried unit and a lingering old attempt never rename a half-written file into place, and
  an output that exists is done: a rerun, after any failure, resumes.
Every Ray call lives in this module, which imports Ray only when a job runs.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm

from nicegan.errors import NiceganError, require
from nicegan.runtime.jobs import STATE_DIR, Unit, open_collection, plan_units, run_unit
from nicegan.runtime.pipeline import TranslateOptions, TranslateReport

RAY_FIX = "install it with `pip install 'nicegan[ray]'` (Python 3.10+)"


class DistributedError(NiceganError, RuntimeError):
    """A cluster that cannot run the job (no workers fit, unreachable address); one line with the fix."""


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None     # None: RAY_ADDRESS, else a local cluster started for this job
    num_workers: int = 0           # 0: the cluster's GPUs / gpus_per_worker, else its CPUs / cpus_per_worker
    gpus_per_worker: float = 0.0   # a fraction shares a GPU between workers
    cpus_per_worker: float = 1.0   # also the worker's decode/encode and CPU inference threads
    part_size: int = 256


@dataclass(frozen=True)
class ModelSpec:
    """What a worker needs to open the backend itself (only paths and names cross the cluster)."""
    model: str
    backend: str = "auto"
    device: str | None = None
    precision: str = "auto"
    direction: str = "a2b"
    seed: int | None = None   # a latent model's code (None: its default, seed 0)
    reference: str | None = None   # a style model's reference image (runtime.styles.StyleChoice)
    domain: int | None = None      # or its pseudo-domain


class AttemptGuard:
    """Bounds retries of a unit whose input kills the worker process.

    A first attempt runs the whole unit with a marker file for it. If the marker is still there
    when the unit comes again, a worker died on it: this attempt runs the files one by one, each
    with a marker of its own; a file whose marker survived a worker's death is reported failed and
    skipped. So a file that crashes the decoder costs two worker restarts, then the job goes on.
    Markers belong to one run (`run_id`), so a file caught by an unrelated crash is tried again by
    the next run."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def run(self, unit: Unit, runner: Callable[[Unit], TranslateReport]) -> TranslateReport:
        marker = self.folder / _key(unit.paths)
        if not marker.exists():
            marker.touch()
            report = runner(unit)
            marker.unlink(missing_ok=True)
            return report
        report = TranslateReport(output="")
        for path in unit.paths:
            report.add(self._one_file(unit.kind, path, runner), as_one_file=unit.kind == "video")
        marker.unlink(missing_ok=True)
        return report

    def _one_file(self, kind: str, path: str, runner: Callable[[Unit], TranslateReport]) -> TranslateReport:
        marker = self.folder / f"file-{_key((path,))}"
        if marker.exists():
            marker.unlink(missing_ok=True)
            return TranslateReport(output="", failed=[f"{path}: its worker process died twice while translating it "
                                                      "(a crash in a decoder or the model?); skipped"])
        marker.touch()
        report = runner(Unit(kind, (path,)))
        marker.unlink(missing_ok=True)
        return report


def _key(paths: tuple[str, ...]) -> str:
    return hashlib.sha256("\n".join(paths).encode()).hexdigest()[:24]


class UnitWorker:
    """One per Ray actor: the backend is opened once, then each call runs one unit. Its
    constructor arguments are a few paths and names (Ray keeps them to restart the actor)."""

    def __init__(self, model: dict, input_spec: str, output: str, options: dict, attempts: str, threads: int):
        from nicegan.runtime.backends import open_backend
        from nicegan.runtime.styles import StyleChoice
        spec = ModelSpec(**model)
        self.options = TranslateOptions(**options)
        self.backend = open_backend(spec.model, spec.backend, device=spec.device, precision=spec.precision,
                                    direction=spec.direction, threads=threads)
        if spec.seed is not None:
            self.backend.use_seed(spec.seed)
        StyleChoice(spec.reference, spec.domain).apply(self.backend)
        self.source, self.sink = open_collection(input_spec, output, self.options)
        self.guard = AttemptGuard(Path(attempts))

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        reports, sizes = [], []
        for kind, paths in zip(batch["kind"], batch["paths"]):
            unit = Unit(str(kind), tuple(json.loads(paths)))
            report = self.guard.run(unit, lambda u: run_unit(u, self.source, self.sink, self.backend, self.options,
                                                             log=lambda _: None))
            reports.append(json.dumps(report.to_dict()))
            sizes.append(unit.size)
        return {"report": reports, "size": sizes, "pid": [os.getpid()] * len(reports)}


def translate_with_ray(input_spec: str, output_spec: str | None, model: ModelSpec, options: TranslateOptions,
                       ray_options: RayOptions, log: Callable[[str], None] = tqdm.write) -> TranslateReport:
    """The whole job on Ray; returns the merged report (its failures listed, as the local engine does)."""
    ray = require("ray", "--engine ray", RAY_FIX)
    source, sink = open_collection(input_spec, output_spec, options)
    units = plan_units(source, ray_options.part_size)
    report = TranslateReport(output=sink.description)
    if not units:
        log(f"nothing to translate in {input_spec}")
        return report
    started_here = _connect(ray, ray_options.address)
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    attempts = sink.folder / STATE_DIR / "attempts" / run_id
    began = time.perf_counter()
    try:
        workers = _worker_count(ray, ray_options)
        log(f"ray: {len(units)} units ({sum(u.size for u in units)} files) on {workers} worker(s), "
            f"{ray_options.cpus_per_worker:g} CPU and {ray_options.gpus_per_worker:g} GPU each")
        settings = {"model": asdict(model), "input_spec": input_spec, "output": str(sink.folder),
                    "options": {**asdict(options), "progress": False}, "attempts": str(attempts),
                    "threads": max(1, int(ray_options.cpus_per_worker))}
        rows = _dataset(ray, units).map_batches(
            UnitWorker, fn_constructor_kwargs=settings, batch_size=1, num_cpus=ray_options.cpus_per_worker,
            num_gpus=ray_options.gpus_per_worker or None, compute=ray.data.ActorPoolStrategy(size=workers))
        pids = _collect(rows, report, sum(u.size for u in units), options.progress, log)
        if len(pids) > workers:
            report.notes.append(f"{len(pids) - workers} worker process(es) died and were restarted; their units "
                                "were retried (finished outputs are never written twice)")
    finally:
        report.wall_s = time.perf_counter() - began
        _remove_tree(attempts)
        if started_here:
            ray.shutdown()
    return report


def _connect(ray: Any, address: str | None) -> bool:
    """Join --address or RAY_ADDRESS, else start a local cluster for this job; True if started here."""
    address = address or os.environ.get("RAY_ADDRESS")
    _quiet_ray()
    try:
        if address:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        else:
            ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False,
                     logging_level=logging.ERROR, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise DistributedError(f"--address {address}: cannot connect to a Ray cluster ({str(exc).splitlines()[0]}); "
                               "start one with `ray start --head` or leave --address out for a local one") from None
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False             # one bar over the whole job, in the driver
    context.execution_no_progress_timeout_s = -1     # one unit may be a video of hours: no progress is normal
    context.wait_for_min_actors_s = 600              # a pool that cannot be placed fails after 10 min, not never
    return not address


def _quiet_ray() -> None:
    """The driver prints the job's own progress and summary; Ray's start-up and execution-plan
    lines stay in Ray's own log folder (`session_latest/logs` under its temp dir). Ray Data sets up its logger when
    it is imported, so this runs after that import."""
    import ray.data  # noqa: F401 - configures the "ray.data" logger, which is then turned down
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _worker_count(ray: Any, options: RayOptions) -> int:
    if options.num_workers:
        return options.num_workers
    resources = ray.cluster_resources()
    if options.gpus_per_worker:
        count = int(resources.get("GPU", 0) / options.gpus_per_worker)
        if count < 1:
            raise DistributedError(f"--gpus-per-worker {options.gpus_per_worker:g}: the cluster has "
                                   f"{resources.get('GPU', 0):g} GPU(s); use --gpus-per-worker 0 for CPU workers")
        return count
    return max(1, int(resources.get("CPU", 1) / options.cpus_per_worker))


def _dataset(ray: Any, units: list[Unit]) -> Any:
    items = [{"kind": u.kind, "paths": json.dumps(u.paths)} for u in units]
    return ray.data.from_items(items, override_num_blocks=len(items))


def _collect(rows: Any, report: TranslateReport, total: int, progress: bool, log: Callable[[str], None]) -> set[int]:
    """Stream the workers' status rows into the report (never all rows in memory at once)."""
    pids: set[int] = set()
    with tqdm(total=total, unit="file", disable=not progress, dynamic_ncols=True) as bar:
        for row in rows.iter_rows():
            unit_report = TranslateReport.from_dict(json.loads(row["report"]))
            for failure in unit_report.failed:
                log(f"FAILED {failure}")
            report.add(unit_report)
            pids.add(int(row["pid"]))
            bar.update(int(row["size"]))
    return pids


def _remove_tree(folder: Path) -> None:
    if folder.is_dir():
        for path in folder.iterdir():
            path.unlink(missing_ok=True)
        folder.rmdir()
