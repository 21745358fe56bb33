"""Per-field work as tasks on a ``dask.distributed`` cluster, with the serial loop as the default.

Campaigns run to 10⁵ fields; per-field work (prediction, quantification, nuclei scoring) is
embarrassingly parallel. :func:`map_fields` runs one per-field function over a list of fields
either in this process (no engine: exactly the loop the commands always ran) or as tasks on
a Dask cluster: an existing scheduler (``--scheduler tcp://host:8786``, e.g. from dask-jobqueue
on SLURM/LSF or dask-kubernetes) or a :class:`distributed.LocalCluster` of ``--workers N``
processes on 127.0.0.1.

What goes over the wire is small: the fields' rows (file paths), the per-call options and a
:class:`ModelRef` (model folder + SHA-256 of its ``config.json``) per model. Each worker reads
the images itself from shared storage, loads each model once and keeps it
(:func:`cached_model`), and sets torch's intra-op threads so that the worker threads of one
host share its cores (:func:`threads_by_host`). Results come back tagged with their field's
position and are put back in input order, so the outputs equal the serial run's whatever the
number of workers and the order tasks finish in. A worker that dies mid-run has its tasks
(and any results it held) recomputed elsewhere by the scheduler; each field's result is
stored once, by position, so no row is duplicated or missing.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections import Counter, OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from tqdm.auto import tqdm

from artseg.errors import ArtsegInputError

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "Engine",
    "LOCAL_CLUSTER_HTTP",
    "FieldTasks",
    "ModelRef",
    "add_engine_arguments",
    "cached_model",
    "cluster_client",
    "engine_from_args",
    "map_fields",
    "model_reference",
    "threads_by_host",
]

DEFAULT_CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a scheduler before giving up with one line."""
LOCAL_CLUSTER_HTTP = {"dashboard_address": None, "scheduler_kwargs": {"dashboard_address": "127.0.0.1:0"}}
"""No dashboard; the scheduler's small HTTP server (metrics, health) on a free loopback port, not 8787."""
# Models kept per worker process; a campaign uses one to three, a long-lived cluster may see more.
_MAX_CACHED_MODELS = 8
_MODELS: OrderedDict[tuple[str, str], Any] = OrderedDict()


@dataclass(frozen=True)
class Engine:
    """Where per-field tasks run: an existing scheduler or a local cluster of worker processes.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running Dask scheduler, e.g. ``tcp://10.0.0.5:8786``.
    workers : int, optional
        Number of worker processes of a LocalCluster on 127.0.0.1 (one thread each).
    fields_per_task : int
        Fields per task: 1 unless fields are so quick that the scheduler round trip
        (a few ms) matters.
    connect_timeout : float
        Seconds to wait for the scheduler.
    """

    scheduler: str | None = None
    workers: int | None = None
    fields_per_task: int = 1
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT


@dataclass(frozen=True)
class ModelRef:
    """A model folder on shared storage and the SHA-256 of its ``config.json``.

    ``config.json`` records the SHA-256 of every weight file, so the pair names one exact
    model: the worker cache is keyed by it and refuses a folder that changed.
    """

    folder: str
    config_sha256: str


def add_engine_arguments(parser) -> None:
    """Add ``--scheduler ADDRESS`` and ``--workers N`` to a command's parser."""
    group = parser.add_argument_group("campaign scale (dask.distributed)")
    group.add_argument("--scheduler", metavar="ADDRESS",
                       help="run the per-field work as tasks on this Dask scheduler (e.g. tcp://host:8786); "
                       "workers read images and model folders by path, so they must see the same files")
    group.add_argument("--workers", type=int, metavar="N",
                       help="run the per-field work on a local Dask cluster of N worker processes (127.0.0.1)")


def engine_from_args(args) -> Engine | None:
    """The :class:`Engine` asked for by ``--scheduler`` / ``--workers``; None = the serial loop.

    Raises
    ------
    ArtsegInputError
        Both flags given, or ``--workers`` below 1.

    Examples
    --------
    >>> from argparse import Namespace
    >>> engine_from_args(Namespace(scheduler=None, workers=None)) is None
    True
    >>> engine_from_args(Namespace(scheduler=None, workers=2)).workers
    2
    """
    scheduler, workers = getattr(args, "scheduler", None), getattr(args, "workers", None)
    if scheduler and workers is not None:
        raise ArtsegInputError("--scheduler and --workers: give one or the other (a cluster or a local one)")
    if workers is not None and workers < 1:
        raise ArtsegInputError(f"--workers: expected at least 1 worker process, got {workers}")
    if not scheduler and workers is None:
        return None
    return Engine(scheduler=scheduler or None, workers=workers, connect_timeout=DEFAULT_CONNECT_TIMEOUT)


def _one_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


@contextmanager
def cluster_client(engine: Engine) -> Iterator[Any]:
    """Yield a :class:`distributed.Client` for ``engine``; closed (and a local cluster stopped) after.

    Raises
    ------
    ArtsegInputError
        The scheduler cannot be reached within ``engine.connect_timeout`` seconds, or its
        address is malformed.
    """
    from distributed import Client, LocalCluster

    if engine.scheduler:
        try:
            client = Client(engine.scheduler, timeout=engine.connect_timeout, set_as_default=False)
        except Exception as err:  # OSError, TimeoutError, ValueError for a malformed address ...
            raise ArtsegInputError(f"--scheduler {engine.scheduler}: cannot connect to a Dask scheduler "
                                   f"within {engine.connect_timeout:g} s ({_one_line(err)})") from None
        try:
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(n_workers=engine.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                           silence_logs=logging.ERROR, **LOCAL_CLUSTER_HTTP)
    try:
        with Client(cluster, set_as_default=False) as client:
            yield client
    finally:
        cluster.close()


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _worker_facts(dask_worker) -> tuple[str, int, int]:
    from distributed.comm import get_address_host

    return get_address_host(dask_worker.address), _usable_cores(), int(dask_worker.state.nthreads)


def threads_by_host(client) -> dict[str, int]:
    """Torch intra-op threads per task for each host: its cores over its worker threads, at least 1.

    Dask's nanny starts workers with ``OMP_NUM_THREADS=1``; a host with 16 cores and 2 workers
    of 1 thread is better served by 8 torch threads per task, a host with 2 cores and 2
    workers by 1 (no oversubscription).
    """
    host_threads: Counter[str] = Counter()
    host_cores: dict[str, int] = {}
    for host, cores, nthreads in client.run(_worker_facts).values():
        host_threads[host] += nthreads
        host_cores[host] = cores
    return {host: max(1, host_cores[host] // max(1, n)) for host, n in host_threads.items()}


def _set_torch_threads(threads: int) -> None:
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def cached_model(ref: ModelRef):
    """The model of ``ref``, loaded once per process and kept (on a worker: once per worker).

    Raises
    ------
    ArtsegInputError
        The folder is missing here or its ``config.json`` differs from the one the driver saw
        (the folder is not on shared storage, or it changed during the run).
    """
    from artseg.model_io import CONFIG_NAME, file_sha256
    from artseg.segmenter import load_segmenter

    key = (ref.folder, ref.config_sha256)
    model = _MODELS.get(key)
    if model is None:
        config = Path(ref.folder) / CONFIG_NAME
        if not config.is_file():
            raise ArtsegInputError(f"{ref.folder}: model folder not found on this worker (is it on shared storage?)")
        if file_sha256(config) != ref.config_sha256:
            raise ArtsegInputError(f"{config}: differs on this worker from the driver's copy; "
                                   "the model folder changed during the run or is not the same file")
        model = load_segmenter(ref.folder)
        _MODELS[key] = model
        while len(_MODELS) > _MAX_CACHED_MODELS:
            _MODELS.popitem(last=False)
    _MODELS.move_to_end(key)
    return model


def model_reference(model, folder: str | os.PathLike | None = None) -> ModelRef | None:
    """The :class:`ModelRef` workers load ``model`` from.

    Parameters
    ----------
    model : ArtifactSegmenter or None
        The model as loaded on the driver (a ``RememberedMasks`` wrapper is unwrapped: workers
        run the model itself).
    folder : path, optional
        The folder ``model`` was loaded from. Without it (a default model picked by the
        analyses), the model is saved once under ``<cache>/distributed/models/<digest>``,
        which workers must see (the cache on shared storage: ``ARTSEG_CACHE``).
    """
    from artseg.cache import cache_dir
    from artseg.io import atomic_folder
    from artseg.model_io import CONFIG_NAME, file_sha256, model_digest

    if model is None:
        return None
    if folder is None:
        folder = cache_dir() / "distributed" / "models" / model_digest(model)
        if not (folder / CONFIG_NAME).is_file():
            with atomic_folder(folder, replace=True) as staging:
                getattr(model, "segmenter", model).save(staging)
    folder = Path(folder).resolve()
    return ModelRef(str(folder), file_sha256(folder / CONFIG_NAME))


def _run_batch(function: Callable, batch: Sequence[tuple[int, Any]], model_refs: Mapping[str, ModelRef | None],
               options: Mapping[str, Any], threads: Mapping[str, int]) -> tuple[str, list[tuple[int, Any]]]:
    """One task on a worker: the per-field function on each (position, field) of ``batch``."""
    from distributed import get_worker
    from distributed.comm import get_address_host

    worker = get_worker()
    host_threads = threads.get(get_address_host(worker.address))
    _set_torch_threads(host_threads or max(1, _usable_cores() // max(1, worker.state.nthreads)))
    models = {name: None if ref is None else cached_model(ref) for name, ref in model_refs.items()}
    return worker.address, [(position, function(field, **models, **options)) for position, field in batch]


def _field_name(field) -> str:
    """The first path of a field description, for messages."""
    if isinstance(field, Mapping):
        for column in ("image", "brightfield"):
            if column in field:
                return str(field[column])
    return repr(field)[:200]


class FieldTasks:
    """Submit a per-field function over fields as tasks; iterate ``(position, result)`` as they finish.

    Parameters
    ----------
    client : distributed.Client
    function : callable
        ``function(field, **models, **options) -> result``, importable by name on the workers
        (a module-level function), pure apart from writing the field's own output files.
    fields : sequence
        Small picklable descriptions of the fields (rows of paths).
    models : mapping
        Keyword name -> :class:`ModelRef` or None; workers pass the loaded models.
    options : mapping, optional
        Further keyword arguments of ``function``.
    fields_per_task : int
    desc, unit : str
        Progress bar text.
    progress : bool

    Attributes
    ----------
    tasks_by_worker : collections.Counter
        Worker address -> number of tasks whose result came from it.
    """

    def __init__(self, client, function: Callable, fields: Sequence, *, models: Mapping[str, ModelRef | None],
                 options: Mapping[str, Any] | None = None, fields_per_task: int = 1, desc: str = "fields",
                 unit: str = "field", progress: bool = True):
        if fields_per_task < 1:
            raise ArtsegInputError(f"fields_per_task: expected at least 1, got {fields_per_task}")
        self.client, self.function, self.fields = client, function, list(fields)
        self.models, self.options = dict(models), dict(options or {})
        self.fields_per_task, self.desc, self.unit, self.progress = fields_per_task, desc, unit, progress
        self.tasks_by_worker: Counter[str] = Counter()

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        step = self.fields_per_task
        numbered = list(enumerate(self.fields))
        batches = [numbered[start:start + step] for start in range(0, len(numbered), step)]
        if not batches:
            return
        threads = threads_by_host(self.client)
        name = f"artseg-{self.function.__name__.strip('_').replace('_', '-')}"
        token = uuid.uuid4().hex[:8]
        futures = self.client.map(_run_batch, [self.function] * len(batches), batches,
                                  model_refs=self.models, options=self.options, threads=threads,
                                  key=[f"{name}-{token}-{index}" for index in range(len(batches))], pure=False)
        first_field = {future.key: _field_name(batch[0][1]) for future, batch in zip(futures, batches)}
        try:
            with tqdm(total=len(numbered), desc=self.desc, unit=self.unit, disable=not self.progress) as bar:
                for future in as_completed(futures, loop=self.client.loop):
                    try:
                        worker, results = future.result()
                    except KilledWorker:
                        raise ArtsegInputError(
                            f"{first_field[future.key]}: the workers running this field's task kept dying "
                            "(out of memory? see the workers' logs)") from None
                    self.tasks_by_worker[worker] += 1
                    yield from results
                    bar.update(len(results))
        finally:
            self.client.cancel(futures)

    def summary(self) -> str:
        """One line: how many tasks ran on which workers (the scheduler's evidence, for the log)."""
        counts = ", ".join(f"{worker} {n}" for worker, n in sorted(self.tasks_by_worker.items()))
        return f"{sum(self.tasks_by_worker.values())} task(s) on {len(self.tasks_by_worker)} Dask worker(s): {counts}"


def map_fields(function: Callable, fields: Sequence, *, models: Mapping[str, Any] | None = None,
               model_folders: Mapping[str, Any] | None = None, options: Mapping[str, Any] | None = None,
               engine: Engine | None = None, desc: str = "fields", unit: str = "field",
               progress: bool = True) -> list:
    """``[function(field, **models, **options) for field in fields]``, serially or on a Dask cluster.

    Parameters
    ----------
    function : callable
        The per-field function (module level, so workers import it by name).
    fields : sequence
        Picklable field descriptions (e.g. manifest rows as dicts of paths).
    models : mapping, optional
        Keyword name -> loaded model (or None). Serially they are passed as they are; on a
        cluster each is shipped as a :class:`ModelRef` and loaded once per worker.
    model_folders : mapping, optional
        Keyword name -> the folder that model was loaded from (None: saved to the cache, see
        :func:`model_reference`).
    options : mapping, optional
        Further keyword arguments of ``function``.
    engine : Engine, optional
        None: the serial loop in this process, as without ``--scheduler`` / ``--workers``.
    desc, unit : str
        Progress bar text.
    progress : bool

    Returns
    -------
    list
        One result per field, in the order of ``fields``.

    Examples
    --------
    >>> def area(field, *, scale):
    ...     return field["width"] * field["height"] * scale
    >>> map_fields(area, [{"width": 2, "height": 3}, {"width": 4, "height": 1}], options={"scale": 2},
    ...            progress=False)
    [12, 8]
    """
    models, options = dict(models or {}), dict(options or {})
    if engine is None:
        return [function(field, **models, **options)
                for field in tqdm(fields, desc=desc, unit=unit, disable=not progress)]
    folders = dict(model_folders or {})
    refs = {name: model_reference(model, folders.get(name)) for name, model in models.items()}
    results: list = [None] * len(fields)
    with cluster_client(engine) as client:
        tasks = FieldTasks(client, function, fields, models=refs, options=options,
                           fields_per_task=engine.fields_per_task, desc=desc, unit=unit, progress=progress)
        for position, result in tasks:
            results[position] = result
    print(tasks.summary(), flush=True)
    return results
