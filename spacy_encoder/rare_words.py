"""Rare and unknown words for the hashed NORM feature (`TransformerTok2Vec.v3`'s
`rare_word_dropout`), after Lample et al. (2016): in training, the NORM of a word seen
only once in the training data is replaced by one unknown-word id with probability
`rare_word_dropout`; at inference, every NORM the training data never had is.

Why: a hashed table has no out-of-vocabulary row. A word never seen in training gets
the sum of rows that other words trained (a collision), which tells the encoder
something wrong about it; with this, it gets the one row the encoder learned to read
as "look at the spelling, the vector and the context instead".

The training words are counted once, before training, by the
`spacy-encoder.count_training_words.v1` callback (`[initialize] before_init`), and saved
with the layer (its attrs `norm_ids`, sorted, and `norm_counts`), so that a loaded
pipeline maps unknown words exactly as the trained one did. No torch import.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Iterable, Optional, Tuple

import numpy
from spacy.attrs import NORM
from spacy.language import Language
from spacy.strings import get_string_id
from spacy.tokens import Doc, DocBin

logger = logging.getLogger("spacy_encoder")

# The NORM id every unknown (inference) or dropped rare (training) word gets.
UNKNOWN_WORD = get_string_id("<spacy-encoder:unknown-word>")
# The layer attrs that carry this (copied when a deploy form replaces the layer).
LAYER_ATTRS = ("rare_word_dropout", "norm_ids", "norm_counts")
# Words seen at most this often in the training data are "rare" (Lample et al.: singletons).
RARE_COUNT = 1

COUNTS_MISSING = (
    "rare_word_dropout is {rate} but the training words were not counted, so it does nothing: "
    "add [initialize.before_init] @callbacks = \"spacy-encoder.count_training_words.v1\" with "
    "path = ${{paths.train}} (see docs/configuration.md)"
)


def count_norms(docs: Iterable[Doc]) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """Each NORM id of `docs` and how often it occurs.

    :return: (ids sorted ascending as uint64, counts as uint32), the same length.
    """
    arrays = [doc.to_array(NORM) for doc in docs if len(doc)]
    if not arrays:
        return numpy.zeros(0, dtype="uint64"), numpy.zeros(0, dtype="uint32")
    ids, counts = numpy.unique(numpy.concatenate(arrays).astype("uint64"), return_counts=True)
    return ids, counts.astype("uint32")


def lookup_counts(norm_ids: numpy.ndarray, norm_counts: numpy.ndarray, column: numpy.ndarray) -> numpy.ndarray:
    """The training count of each id in `column` (uint64), 0 for ids never seen."""
    if not len(norm_ids):
        return numpy.zeros(len(column), dtype="uint32")
    where = numpy.searchsorted(norm_ids, column).clip(0, len(norm_ids) - 1)
    found = norm_ids[where] == column
    return numpy.where(found, norm_counts[where], 0).astype("uint32")


def replace_rare(
    ids: numpy.ndarray,
    column_index: int,
    norm_ids: numpy.ndarray,
    norm_counts: numpy.ndarray,
    rate: float,
    is_train: bool,
    random: Optional[numpy.random.RandomState] = None,
) -> numpy.ndarray:
    """`ids` (n, F) int64 (uint64 ids viewed as int64) with the NORM column's unknown
    words (inference) or some rare ones (training, each with probability `rate`)
    replaced by `UNKNOWN_WORD`. Returns a new array; `ids` is not changed.
    """
    if not len(ids):
        return ids
    column = ids[:, column_index].view("uint64")
    counts = lookup_counts(norm_ids, norm_counts, column)
    if is_train:
        draw = (random or numpy.random).random_sample(len(column))
        replace = (counts <= RARE_COUNT) & (draw < rate)
    else:
        replace = counts == 0
    if not replace.any():
        return ids
    out = ids.copy()
    out[replace, column_index] = numpy.uint64(UNKNOWN_WORD).view("int64")
    return out


def create_count_training_words_v1(path: Optional[Path], component: str = "tok2vec", layer: str = "") -> Callable[[Language], Language]:
    """`spacy-encoder.count_training_words.v1`, an `[initialize] before_init` callback:
    count the NORM of every token in the training corpus at `path` (a `.spacy` file or
    a folder of them, usually `${paths.train}`) and give the counts to each
    `TransformerTok2Vec.v3` with `rare_word_dropout` > 0 in `component` (and its `layer`
    ref)."""
    from .nodes import component_model, encoder_nodes

    def before_init(nlp: Language) -> Language:
        if path is None:  # e.g. `spacy pretrain`, or nlp.initialize() without a corpus
            logger.warning(
                "spacy-encoder.count_training_words.v1: path is null, so no training words were counted and "
                "rare_word_dropout does nothing in this run (set --paths.train)"
            )
            return nlp
        source = Path(str(path))
        files = sorted(source.rglob("*.spacy")) if source.is_dir() else [source]
        if not files or not all(f.is_file() for f in files):
            raise ValueError(f"spacy-encoder.count_training_words.v1: no .spacy training corpus at {source}")
        model = component_model(nlp, component, layer, "spacy-encoder.count_training_words.v1")
        nodes = [node for node in encoder_nodes(model) if node.attrs.get("rare_word_dropout", 0.0) > 0.0]
        if not nodes:  # e.g. rare_word_dropout overridden to 0: nothing to count for
            logger.warning(
                "spacy-encoder.count_training_words.v1: %r has no TransformerTok2Vec.v3 with rare_word_dropout > 0; nothing counted",
                component,
            )
            return nlp
        docs = [doc for f in files for doc in DocBin().from_disk(f).get_docs(nlp.vocab)]
        norm_ids, norm_counts = count_norms(docs)
        for node in nodes:
            node.attrs["norm_ids"] = norm_ids
            node.attrs["norm_counts"] = norm_counts
        return nlp

    return before_init
