"""Small inputs on one intra-op thread: the torch encoder's forward at inference.

A forward of the encoder is about a hundred torch ops, and with more than one intra-op
thread each op wakes torch's OpenMP threads. For one sentence the waking costs more than
the work: single `nlp(text)` requests on the default eager NER pipeline (untrained
configs/ner.cfg with 4 layers, CoNLL-03 test sentences, 2 cores, nothing else running)
took 3.4-3.6 ms with one torch thread, 3.6-4.1 ms with two spinning threads and 10-11 ms
with two threads under `OMP_WAIT_POLICY=PASSIVE`. So at inference a forward of at most
`small_input_tokens()` padded positions (batch × tokens, 256 unless the environment says
otherwise) runs on one thread, and the calling thread's own setting is put back
afterwards.

Why 256 positions: on one thread the NER tok2vec's forward cost 2.5 ms plus about 0.05
ms per position up to 256 positions (one doc of N tokens, fastest of 21, 2-core AMD EPYC
while two trainings ran: an upper bound). Under PASSIVE a second thread costs about 7 ms
of waking per forward (the figures above) and saves at most half the per-position part,
so it pays only above about 7 / 0.025 = 280 positions. With spinning threads
(`OMP_WAIT_POLICY=ACTIVE`, or libgomp's default spin) waking is cheap and one thread loses
up to about 0.025 ms per position: a few ms at 256, nothing for one sentence. A
one-sentence request is 10-60 positions; the buckets of `nlp.pipe` are 2,048-8,192
(`buckets.py`), where nothing changes. `SPACY_ENCODER_SMALL_INPUT_TOKENS` sets the
threshold (read on every call): 0 turns the policy off.

Thread safety: `torch.set_num_threads` is not one process-wide switch. With torch's
OpenMP backend (the CPU builds for Linux) it sets the calling thread's own OpenMP thread
count, and also the default that a thread takes when it runs its first parallel op.
`one_intra_op_thread` sets and restores both from the calling thread, so concurrent
`nlp()` calls in other threads keep their own settings; but a thread that runs its very
first parallel torch op while a small forward is in flight in another thread starts
with one thread and keeps it. A server that runs requests on a thread pool should set
the threads it wants in each worker (or turn the policy off). Each switch also clears
oneDNN's primitive cache (torch does that in `set_num_threads`); the float and int8
encoders run on MKL and fbgemm, which keep nothing there.

No torch import at the top: the ONNX pipelines run without torch and may read the policy.
"""
import contextlib
import functools
import logging
import os
from typing import Iterator, Optional

logger = logging.getLogger("spacy_encoder")

ENV_VAR = "SPACY_ENCODER_SMALL_INPUT_TOKENS"
# Padded positions (batch × tokens) of one forward at or below which it runs on one
# intra-op thread, unless ENV_VAR says otherwise (see the module docstring for why 256).
SMALL_INPUT_TOKENS = 256


def small_input_tokens() -> int:
    """The threshold in padded positions: `SPACY_ENCODER_SMALL_INPUT_TOKENS` when set (0
    turns the policy off), else `SMALL_INPUT_TOKENS`. Read on every call, so that a test
    or a server can change it."""
    return _parse(os.environ.get(ENV_VAR))


@functools.lru_cache(maxsize=8)
def _parse(value: Optional[str]) -> int:
    if value is None or not value.strip():
        return SMALL_INPUT_TOKENS
    try:
        tokens = int(value)
    except ValueError:
        tokens = -1
    if tokens < 0:
        logger.warning(
            "spacy-encoder: %s=%r is not a number of tokens (0 turns the policy off); using %d.",
            ENV_VAR, value, SMALL_INPUT_TOKENS,
        )
        return SMALL_INPUT_TOKENS
    return tokens


def is_small(n_positions: int) -> bool:
    """Whether a forward of `n_positions` padded positions runs on one thread."""
    return 0 < n_positions <= small_input_tokens()


@contextlib.contextmanager
def one_intra_op_thread(enabled: bool = True) -> Iterator[None]:
    """Run the block on one torch intra-op thread, then restore the calling thread's own
    setting (also when the block raises). Does nothing when `enabled` is False or torch
    already runs one thread."""
    if not enabled:
        yield
        return
    import torch

    own = torch.get_num_threads()
    if own == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(own)


def small_input_threads(n_positions: int) -> "contextlib.AbstractContextManager[None]":
    """The policy in one call: one intra-op thread for the block when the forward has at
    most `small_input_tokens()` padded positions, else nothing."""
    return one_intra_op_thread(is_small(n_positions))
