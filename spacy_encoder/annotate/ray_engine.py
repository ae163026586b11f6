"""The Ray engine: Ray Data reads the input, an actor pool of `CorpusAnnotator`s
annotates it, and the rows stream back to the driver's collector. Ray (the optional
extra `spacy-encoder[ray]`) is imported only when the engine runs."""
from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from typing import Any, Optional

from .annotator import CorpusAnnotator
from .collector import _Collector, _Options
from .errors import AnnotateError, MissingExtraError
from .records import InputScan

# Ray: CPUs a read task asks for, and the share of the cluster's CPUs the annotator pool
# may take. A pool that takes every CPU leaves the read tasks unscheduled and the job
# hangs (ray#44687), so the pool asks for fractional CPUs.
READ_TASK_CPUS = 0.05
POOL_CPU_SHARE = 0.9
DEFAULT_OBJECT_STORE_MB = 400
RAY_PIN = "ray[data]>=2.60,<2.61"


def require_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as err:
        raise MissingExtraError(
            f"The Ray engine needs Ray: pip install \"spacy-encoder[ray]\" (that is {RAY_PIN}); import failed: {err}"
        ) from None
    return ray


def plan_cpus(cluster_cpus: float, workers: Optional[int], cpus_per_worker: Optional[float] = None) -> tuple[int, float, int]:
    """(workers, CPUs each worker asks Ray for, torch threads each) for a cluster of
    `cluster_cpus`. Unless told otherwise the pool takes POOL_CPU_SHARE of the CPUs,
    so the read tasks (READ_TASK_CPUS each) always find room (ray#44687)."""
    if cluster_cpus <= 0:
        raise AnnotateError("the Ray cluster has no CPUs")
    n = workers or max(1, int(cluster_cpus))
    if n < 1:
        raise AnnotateError(f"--workers must be at least 1, not {n}")
    share = cpus_per_worker if cpus_per_worker else min(1.0, POOL_CPU_SHARE * cluster_cpus / n)
    if share * n > cluster_cpus - READ_TASK_CPUS + 1e-9:
        raise AnnotateError(
            f"{n} workers x {share:g} CPUs leave no CPU of the cluster's {cluster_cpus:g} for reading the input "
            "(the job would hang, ray#44687); use fewer workers or fractional --cpus-per-worker"
        )
    return n, share, max(1, int(share))


def _parquet_pieces(files: Sequence[str]) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    return [{"path": f, "row_group": g} for f in files for g in range(pq.ParquetFile(f).num_row_groups)]


class _ParquetPieceReader:
    """Read the id and text columns of the row groups named by a batch of pieces."""

    def __init__(self, id_field: str, text_field: str) -> None:
        self.columns = [id_field, text_field]

    def __call__(self, batch):
        import pyarrow as pa
        import pyarrow.parquet as pq

        pieces = batch.to_pylist()
        return pa.concat_tables(pq.ParquetFile(p["path"]).read_row_group(p["row_group"], columns=self.columns) for p in pieces)


def _local_ray_env() -> None:
    """Ray >= 2.59 turns on token authentication for a new local cluster and, without
    a token, writes one to ~/.ray/auth_token. Keep token auth but with a token of this
    process (inherited by the cluster it starts), unless the user chose a mode. Ray
    reads the mode when it is imported, so this must run first; once Ray is imported,
    its own default applies."""
    import sys

    if "RAY_AUTH_MODE" not in os.environ and "ray" not in sys.modules:
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))


def _run_ray(scan: InputScan, options: _Options, skip: frozenset[str], collector: _Collector, *, address: Optional[str], workers: Optional[int], cpus_per_worker: Optional[float], object_store_mb: int) -> None:
    ray = require_ray()
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(
                num_cpus=os.cpu_count(),
                object_store_memory=object_store_mb * 1024 * 1024,  # the default is 30% of RAM
                include_dashboard=False,
                log_to_driver=False,
            )
        started = True
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        n, share, threads = plan_cpus(ray.cluster_resources().get("CPU", 0), workers, cpus_per_worker)
        collector.summary.workers = n
        collector.summary.details.update(cpus_per_worker=share, torch_threads=threads)
        files = [str(p.resolve()) for p in scan.files]
        if scan.files[0].suffix == ".parquet":
            # One read task per row group, with pyarrow, rather than read_parquet: in Ray
            # 2.60 read_parquet's file indexer fails in a background thread and the job
            # hangs when fsspec is installed without aiohttp (ImportError from
            # fsspec.implementations.http, which Ray expects as ModuleNotFoundError).
            pieces = _parquet_pieces(files)
            ds = ray.data.from_items(pieces, override_num_blocks=len(pieces)).map_batches(
                _ParquetPieceReader(options.id_field, options.text_field), batch_size=1, batch_format="pyarrow", num_cpus=READ_TASK_CPUS
            )
        else:
            ds = ray.data.read_json(files, file_extensions=None, num_cpus=READ_TASK_CPUS)
        ds = ds.map_batches(
            CorpusAnnotator,
            fn_constructor_kwargs=dict(
                model=options.model, text_field=options.text_field, id_field=options.id_field,
                doc_bytes=options.annotator_doc_bytes, batch_size=options.batch_size,
                torch_threads=threads, skip_ids=skip,
            ),
            batch_size=options.batch_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=n),
            num_cpus=share,
        )
        for table in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            collector.add(table)
    finally:
        if started:
            ray.shutdown()
