"""Complete training configs with our tok2vec, from a list of components: what `spacy
init config` does for spaCy's CNN, for `spacy-encoder init config`.

spaCy's own `init_config` writes the skeleton (paths, corpora, components, scorers,
score weights), so the output is laid out as users know it; then the shared `tok2vec`
becomes `spacy-encoder.TransformerTok2Vec`, every component listens to it, and the
training schedule becomes the one our encoder was tuned with (a warmup, a lower rate).
The settings are those of the project's configs (`configs/<task>.cfg` for
`efficiency`, `configs/<task>_pretrained.cfg` for `accuracy`, and their `_vectors`
variants with `vectors_width`; tests keep them equal).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional

from .pretrained import DEFAULT as PRETRAINED

if TYPE_CHECKING:
    from thinc.api import Config

__all__ = ["SUPPORTED", "OPTIMIZE", "VECTORS_WIDTH", "InitConfigError", "make_config"]

# The components whose models we know how to point at a shared tok2vec.
SUPPORTED = ("ner", "textcat", "textcat_multilabel", "tagger", "morphologizer", "parser", "senter", "spancat")
OPTIMIZE = ("efficiency", "accuracy")
# en_core_web_md's width, that of configs/*_vectors.cfg.
VECTORS_WIDTH = 300


def default_optimize(lang: str) -> str:
    """What `spacy-encoder init config` starts from when `--optimize` is not given: the
    shipped pretrained encoder where there is one for the language (English), else a
    random start. On the demo's WikiGold NER and GoEmotions sentiment trainings the
    pretrained start scored 58.7 against 39.0 entity F and 53.0 against 48.8 macro F
    (two seeds each, docs/benchmarks.md) at the same cost per step."""
    return "accuracy" if lang == "en" else "efficiency"


class InitConfigError(ValueError):
    """A pipeline or option that `make_config` cannot turn into a config."""


# NER with static vectors: rare training words and unknown words share one NORM id
# (`TransformerTok2Vec.v3`), which the CoNLL-03 GloVe recipe gained from
# (docs/benchmarks.md, "Unseen names with the whole GloVe table"); not measured for
# text classification, whose configs keep v2.
RARE_WORD_DROPOUT = 0.5


def rare_words(pipeline: List[str], vectors_width: int) -> bool:
    """Whether the config gets `TransformerTok2Vec.v3`'s rare-word dropout."""
    return vectors_width > 0 and "ner" in pipeline


# Fewer encoder layers for NER where they scored as four (docs/benchmarks.md, "A cheaper
# encoder"): with static vectors from the shipped encoder, its bottom one
# (`start_from_pretrained.v2`) with spaCy's maxout mixer (CoNLL-03, GloVe 400k: as two
# layers over four seeds); from a random start without vectors, two (`configs/ner.cfg`).
# Four elsewhere: from the shipped encoder without vectors two layers scored lower
# (CoNLL-03, one seed), and a random start with vectors and text classification were
# not measured.
SHALLOW_LAYERS = [0]
SHALLOW_SCRATCH_DEPTH = 2


def shallow_depth(pipeline: List[str], optimize: str, vectors_width: int) -> Optional[int]:
    """The depth of a config that gets fewer than four layers, else None: as many as
    `SHALLOW_LAYERS` from the shipped encoder (`accuracy` with vectors), or
    `SHALLOW_SCRATCH_DEPTH` from a random start (`efficiency` without vectors)."""
    if "ner" not in pipeline:
        return None
    if optimize == "accuracy":
        return len(SHALLOW_LAYERS) if vectors_width > 0 else None
    return SHALLOW_SCRATCH_DEPTH if vectors_width == 0 else None


def _tok2vec_block(pipeline: List[str], optimize: str, vectors_width: int, gpu: bool) -> Dict[str, Any]:
    v2 = optimize == "accuracy" or vectors_width > 0
    v3 = rare_words(pipeline, vectors_width)
    name = "spacy-encoder.TransformerTok2Vec.v3" if v3 else "spacy-encoder.TransformerTok2Vec.v2"
    block: Dict[str, Any] = {
        "@architectures": name if v2 else "spacy-encoder.TransformerTok2Vec.v1",
        "width": 128,
        "depth": 4,
        "n_heads": 4,
        "ff_width": 512,
        "attrs": ["NORM", "PREFIX", "SUFFIX", "SHAPE"],
        "rows": [5000, 1000, 2500, 2500],
        "n_hashes": 2,
        "positions": "rotary",
        "local_window": 3,
        "norm_first": True,
        "dropout": 0.1,
        "embed_dropout": 0.1,
        # Word dropout helped NER and SST-2; the multi-label config was tuned without.
        "feature_dropout": 0.0 if pipeline == ["textcat_multilabel"] else 0.15,
        "max_length": 256,
        "window_stride": 192,
        "mixed_precision": gpu,
        "grad_scaler_config": {},
        "torchscript": False,
    }
    if v2:
        block.update({"vectors_width": vectors_width, "vectors_dropout": 0.1 if vectors_width else 0.0, "output_scale": 3.0})
    if v3:
        block.update({"mix_pieces": 1, "rare_word_dropout": RARE_WORD_DROPOUT})
    depth = shallow_depth(pipeline, optimize, vectors_width)
    if depth is not None:
        block["depth"] = depth
        if v3:
            block["mix_pieces"] = 3
    return block


def _listener() -> Dict[str, Any]:
    return {"@architectures": "spacy.Tok2VecListener.v1", "width": "${components.tok2vec.model.width}", "upstream": "tok2vec"}


def _textcat_model(exclusive: bool) -> Dict[str, Any]:
    return {
        "@architectures": "spacy.TextCatReduce.v1",
        "exclusive_classes": exclusive,
        "use_reduce_first": False,
        "use_reduce_last": False,
        "use_reduce_max": False,
        "use_reduce_mean": True,
        "nO": None,
        "tok2vec": _listener(),
    }


def _pretraining() -> Dict[str, Any]:
    """What `spacy pretrain` needs, and what spaCy needs to honour `init_tok2vec`."""
    return {
        "max_epochs": 20,
        "dropout": 0.2,
        "n_save_every": None,
        "n_save_epoch": None,
        "component": "tok2vec",
        "layer": "",
        "corpus": "corpora.pretrain",
        "batcher": {
            "@batchers": "spacy.batch_by_words.v1",
            "size": 3000,
            "discard_oversize": False,
            "tolerance": 0.2,
            "get_length": None,
        },
        # Predict each masked word's static vector (needs --paths.vectors when
        # pretraining); how the shipped encoder was made.
        "objective": {"@architectures": "spacy.PretrainVectors.v1", "maxout_pieces": 3, "hidden_size": 300, "loss": "cosine"},
        "optimizer": {
            "@optimizers": "Adam.v1",
            "beta1": 0.9,
            "beta2": 0.999,
            "L2_is_weight_decay": True,
            "L2": 0.01,
            "grad_clip": 1.0,
            "use_averages": True,
            "eps": 1e-08,
            "learn_rate": 0.0005,
        },
    }


def make_config(
    pipeline: List[str], *, optimize: str = "efficiency", vectors_width: int = 0, gpu: bool = False, lang: str = "en"
) -> Config:
    """A complete, validated training config for `pipeline` with our tok2vec.

    optimize: `efficiency` trains the encoder from scratch; `accuracy` starts it from
        the shipped pretrained encoder (`pretrained.DEFAULT`; English only).
    vectors_width: > 0 reads static vectors of that width (`--paths.vectors` at
        training time); 0 for none.
    gpu: mixed precision and the PyTorch allocator (train with `--gpu-id 0`).
    """
    from spacy.cli.init_config import init_config
    from spacy.util import load_model_from_config
    from thinc.api import Config

    pipeline = [name.strip() for name in pipeline if name.strip() and name.strip() != "tok2vec"]
    unknown = [name for name in pipeline if name not in SUPPORTED]
    if not pipeline or unknown:
        problem = f"unknown components {', '.join(unknown)}" if unknown else "no components"
        raise InitConfigError(f"--pipeline: {problem}; choose from {', '.join(SUPPORTED)}")
    if len(set(pipeline)) != len(pipeline):
        raise InitConfigError(f"--pipeline: a component is named twice ({', '.join(pipeline)})")
    if optimize not in OPTIMIZE:
        raise InitConfigError(f"--optimize: {optimize!r}; choose efficiency or accuracy")
    if optimize == "accuracy" and lang != "en":
        raise InitConfigError(f"--optimize accuracy starts from the English encoder {PRETRAINED}; --lang is {lang!r}")
    if vectors_width < 0:
        raise InitConfigError(f"--vectors-width: {vectors_width} (0 for no vectors)")
    # spaCy's own skeleton; never its GPU (spacy-transformers) variant.
    config = init_config(lang=lang, pipeline=pipeline, optimize="efficiency", gpu=False, pretraining=False, silent=True)
    config = Config(config).copy()
    config["nlp"]["pipeline"] = ["tok2vec"] + pipeline
    config["nlp"]["batch_size"] = 256
    components = config["components"]
    components["tok2vec"] = {"factory": "tok2vec", "model": _tok2vec_block(pipeline, optimize, vectors_width, gpu)}
    for name in pipeline:
        model = components[name]["model"]
        if name in ("textcat", "textcat_multilabel"):
            components[name]["model"] = _textcat_model(exclusive=name == "textcat")
        elif "tok2vec" in model:
            model["tok2vec"] = _listener()
    only_textcat = all(name.startswith("textcat") for name in pipeline)
    training = config["training"]
    training["max_steps"] = 4000 if only_textcat else 8000
    training["patience"] = 2000
    training["dropout"] = 0.1
    training["before_update"] = {"@callbacks": "spacy-encoder.StopCleanly.v1"}
    training["batcher"]["size"] = {
        "@schedules": "compounding.v1",
        "start": 200 if only_textcat else 100,
        "stop": 2000 if only_textcat else 1000,
        "compound": 1.001,
        "t": 0.0,
    }
    training["logger"] = {"@loggers": "spacy.ConsoleLogger.v3", "progress_bar": "eval", "console_output": True, "output_file": "${paths.log}"}
    training["optimizer"]["learn_rate"] = {
        "@schedules": "warmup_linear.v1",
        "warmup_steps": 250,
        "total_steps": "${training.max_steps}",
        "initial_rate": 0.0005,
    }
    config["paths"].update({"vectors": None, "raw_text": None, "log": None})
    if gpu:
        config["system"]["gpu_allocator"] = "pytorch"
    config["corpora"]["pretrain"] = {
        "@readers": "spacy.JsonlCorpus.v1",
        "path": "${paths.raw_text}",
        "min_length": 5,
        "max_length": 500,
        "limit": 0,
    }
    config["pretraining"] = _pretraining()
    if rare_words(pipeline, vectors_width):
        config["initialize"]["before_init"] = {
            "@callbacks": "spacy-encoder.count_training_words.v1",
            "path": "${paths.train}",
            "component": "tok2vec",
            "layer": "",
        }
    if optimize == "accuracy":
        if vectors_width:
            config["initialize"]["init_tok2vec"] = None
            config["initialize"]["after_init"] = {
                "@callbacks": "spacy-encoder.start_from_pretrained.v1",
                "name": PRETRAINED,
                "path": None,
                "component": "tok2vec",
                "layer": "",
            }
            if shallow_depth(pipeline, optimize, vectors_width) is not None:
                config["initialize"]["after_init"].update(
                    {"@callbacks": "spacy-encoder.start_from_pretrained.v2", "layers": list(SHALLOW_LAYERS)}
                )
        else:
            config["initialize"]["init_tok2vec"] = {"@misc": "spacy-encoder.pretrained_tok2vec.v1", "name": PRETRAINED}
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    return nlp.config
