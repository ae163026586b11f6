"""Annotate a corpus with a spaCy pipeline: locally with `nlp.pipe`, or on a Ray cluster.

The two engines share everything but the loop that runs the pipeline:

- `scan_input` (records.py) reads the input once on the driver (JSONL or Parquet, one
  file or a folder), checks every record (an id and a text field, a string text,
  unique ids) and counts the docs, so a bad corpus fails before any work starts.
- `CorpusAnnotator` (annotator.py) turns a batch of records into rows (id, entities,
  cats, optionally the serialized Doc). It loads the pipeline itself: give it to
  `Dataset.map_batches` and each Ray worker loads its own copy (a loaded `nlp` must
  never travel through Ray's object store, spaCy#13506).
- `ShardWriter` (records.py) writes rows in shards to a staging folder,
  `OUTPUT.staging/`, each shard written to a temporary name and renamed when
  complete; when every doc is done the staging folder is renamed to OUTPUT. A crashed
  run never leaves a half output under the final name, and `resume=True` finishes it:
  the ids of the shards already written are skipped, so nothing is redone or
  duplicated.
- `_run_local` (local.py) is the reference (`nlp.pipe` in this process); `_run_ray`
  (ray_engine.py) reads with Ray Data, annotates with an actor pool of
  `CorpusAnnotator`s and streams the rows back to the driver, which writes them. Ray
  restarts a killed worker and retries its batch; rows that arrive twice (a retried
  batch whose first result also arrived) are dropped by id, so the output holds each
  id exactly once.

`annotate_corpus` (run.py) checks the options and the input, prepares or resumes the
staging folder, runs one engine and finishes the output; both engines hand their rows
to a `_Collector` (collector.py), which drops repeats, writes full shards and fills the
`Summary`. Errors are in errors.py. Ray is the optional extra `spacy-encoder[ray]`,
imported only by the Ray engine.
"""
from .annotator import CorpusAnnotator
from .collector import Progress, Summary
from .errors import AnnotateError, MissingExtraError
from .ray_engine import DEFAULT_OBJECT_STORE_MB, POOL_CPU_SHARE, RAY_PIN, READ_TASK_CPUS, plan_cpus, require_ray
from .records import (
    EXTENSIONS,
    INPUT_SUFFIXES,
    JSON_SUFFIXES,
    OUTPUT_COLUMNS,
    STAGING_SUFFIX,
    InputScan,
    ShardWriter,
    input_files,
    iter_records,
    read_output,
    read_output_ids,
    scan_input,
    staging_path,
)
from .run import ENGINES, FAILURES_FILE, FORMATS, RUN_FILE, SUCCESS_FILE, annotate_corpus, require_pyarrow

__all__ = [
    "DEFAULT_OBJECT_STORE_MB",
    "ENGINES",
    "EXTENSIONS",
    "FAILURES_FILE",
    "FORMATS",
    "INPUT_SUFFIXES",
    "JSON_SUFFIXES",
    "OUTPUT_COLUMNS",
    "POOL_CPU_SHARE",
    "RAY_PIN",
    "READ_TASK_CPUS",
    "RUN_FILE",
    "STAGING_SUFFIX",
    "SUCCESS_FILE",
    "AnnotateError",
    "CorpusAnnotator",
    "InputScan",
    "MissingExtraError",
    "Progress",
    "ShardWriter",
    "Summary",
    "annotate_corpus",
    "input_files",
    "iter_records",
    "plan_cpus",
    "read_output",
    "read_output_ids",
    "require_pyarrow",
    "require_ray",
    "scan_input",
    "staging_path",
]
