"""Saved weights: loading them safely, and saying which file is damaged when a
pipeline does not load.

`load_weights_safely` is the eager encoder's deserializer (tensors only, never
pickled objects). `load_pipeline` is `spacy.load` for our pipelines: where loading
fails, it reads the pipeline's files to name the damaged one in one line. spaCy's
own classes are not changed: a plain `spacy.load` raises spaCy's and thinc's errors
(and ours, from the encoder's deserializer, which does not know the file's path).
Nothing here imports torch at module level: a pipeline's files can be checked, and
loaded through `load_pipeline`, by code that does not use it.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

if TYPE_CHECKING:
    import torch


class WeightsError(ValueError):
    """Saved encoder weights that cannot be loaded: damaged, or not written for this model."""


def error_summary(err: BaseException) -> str:
    """`Type: first sentence` of an error, for a one-line message (torch's errors on a
    damaged file go on with several sentences of advice, and some with a C++ trace)."""
    text = str(err).splitlines()[0] if str(err) else ""
    return f"{type(err).__name__}: {text.split('. ')[0][:200]}"


def load_weights_safely(module: "torch.nn.Module", state_bytes: bytes, device: "torch.device") -> "torch.nn.Module":
    """Load saved weights with `weights_only=True`: tensors and plain containers only,
    never arbitrary pickled objects. Anything else fails with a clear error."""
    import torch

    try:
        state = torch.load(io.BytesIO(state_bytes), map_location=device, weights_only=True)
    except Exception as err:
        raise WeightsError(
            "spacy-encoder: the encoder weights could not be loaded as a plain state_dict "
            f"({error_summary(err)}). The file is "
            "corrupted or was not written by spacy-encoder; nothing in it was executed."
        ) from None
    try:
        module.load_state_dict(state)
    except Exception as err:
        theirs, ours = shape_summary(state), shape_summary(module.state_dict())
        detail = f"weights: {theirs}; config: {ours}" if theirs != ours else " ".join(str(err).split())[:400]
        raise WeightsError(
            "spacy-encoder: the saved encoder weights do not fit the architecture in the "
            f"config ({detail}). Was config.cfg edited after saving, the pipeline saved by a "
            "different spacy-encoder version, or init_tok2vec pretrained with other settings?"
        ) from None
    return module.to(device)


def encoder_depth(keys: Any) -> int:
    """The number of encoder layers a state_dict's keys hold."""
    return len({key.split(".")[2] for key in keys if key.startswith("encoder.layers.")})


def shape_summary(state: Any) -> str:
    """The architecture settings that a state_dict's shapes show, in config terms."""
    if not isinstance(state, dict):
        return "not a state_dict"
    shapes = {key: tuple(getattr(value, "shape", ())) for key, value in state.items()}
    table = shapes.get("embed.table.weight")
    hidden = shapes.get("encoder.layers.0.feed_forward.hidden.weight")
    parts = []
    if table:
        parts += [f"width {table[1]}", f"hash rows {table[0]} in all"]
    parts.append(f"depth {encoder_depth(shapes)}")
    if hidden:
        parts.append(f"ff_width {hidden[0]}")
    vectors = next((shape for key, shape in shapes.items() if key.startswith("embed.") and "vectors" in key and len(shape) == 2), None)
    parts.append(f"vectors_width {vectors[1] if vectors else 0}")
    return ", ".join(parts)


# --- Damaged pipeline files ------------------------------------------------------------


def load_pipeline(name: Union[str, Path], **kwargs: Any) -> Any:
    """`spacy.load(name, **kwargs)`; where a pipeline directory with spacy-encoder
    layers fails to load because a component's `model` file is damaged (cut short,
    emptied, replaced by another file or by another model's weights), one
    `WeightsError` naming the file and the component instead. Any other error, and
    every error of other pipelines, is raised unchanged."""
    import spacy

    try:
        return spacy.load(name, **kwargs)
    except Exception as err:
        damaged = damaged_model_file(Path(name), err) if isinstance(name, (str, Path)) else None
        if damaged is None:
            raise
    # Raised outside the handler: no chained traceback, and the frames of the failed
    # load (holding the file's bytes) are let go.
    raise damaged


def damaged_model_file(path: Path, err: Optional[BaseException] = None) -> Optional[WeightsError]:
    """The one-line error naming `<path>/<component>/model` of the first component
    whose model file is damaged, for a pipeline directory with spacy-encoder layers;
    None where the pipeline is not ours or every model file loads. `err`, the error
    the load raised, is quoted where it came from our encoder's deserializer."""
    from spacy.util import load_config

    config_path = path / "config.cfg"
    if not config_path.is_file():
        return None
    try:
        config = load_config(config_path, interpolate=False)
    except Exception:
        return None
    if not uses_spacy_encoder(config.get("components", {})):
        return None
    names = [name for name in config.get("nlp", {}).get("pipeline", []) if (path / name / "model").is_file()]
    for name in names:
        problem = _file_problem(path / name / "model", name)
        if problem is not None:
            return problem
    return _component_that_fails(path, config, names, err)


def uses_spacy_encoder(section: Any) -> bool:
    """Whether a config section names a spacy-encoder architecture anywhere inside."""
    if isinstance(section, dict):
        if str(section.get("@architectures", "")).startswith("spacy-encoder."):
            return True
        return any(uses_spacy_encoder(value) for value in section.values())
    return False


def _expected(component: str) -> str:
    return f"expected the weights of the pipeline's '{component}' component, as nlp.to_disk writes them"


def _file_problem(file: Path, component: str) -> Optional[WeightsError]:
    """Why `file` is not a thinc model file at all (empty, cut short, something else),
    or None where it is one."""
    import srsly

    data = file.read_bytes()
    if not data:
        return WeightsError(
            f"spacy-encoder: {file} is empty; {_expected(component)}. Copy the pipeline again from where it was saved."
        )
    try:
        msg: Any = srsly.msgpack_loads(data)
    except Exception as unpack_error:
        if "incomplete input" in str(unpack_error):
            return WeightsError(
                f"spacy-encoder: {file} is cut short (its data stops after {len(data):,} bytes); "
                f"{_expected(component)}. Copy the pipeline again from where it was saved."
            )
        msg = unpack_error
    if isinstance(msg, dict) and "nodes" in msg:
        return None
    try:
        text = data.decode("utf8")
    except UnicodeDecodeError:
        text = ""
    if text and all(c.isprintable() or c.isspace() for c in text):
        content = "it holds text"
    elif isinstance(msg, Exception):
        content = "it is not in thinc's msgpack format"
    else:
        content = f"it holds a {type(msg).__name__}, not a model"
    return WeightsError(
        f"spacy-encoder: {file} is not a model file ({content}); {_expected(component)} (thinc msgpack). "
        "Was it replaced by another file?"
    )


def _component_that_fails(path: Path, config: Any, names: list, err: Optional[BaseException]) -> Optional[WeightsError]:
    """Every model file is a thinc model file: load each component of a pipeline built
    from the config, as `spacy.load` does, and name the first one that fails."""
    from spacy.util import load_model_from_config

    try:
        nlp = load_model_from_config(config, auto_fill=False, validate=False)
    except Exception:
        return None
    components = dict(nlp.components)
    for name in names:
        try:
            components[name].from_disk(path / name, exclude=["vocab"])
        except Exception as failure:
            file = path / name / "model"
            ours = next((e for e in _chain(failure, err) if isinstance(e, WeightsError)), None)
            if ours is not None:
                return WeightsError(f"spacy-encoder: {file}: {str(ours).removeprefix('spacy-encoder: ')}")
            return WeightsError(
                f"spacy-encoder: {file} holds the weights of another model ({error_summary(failure)}); "
                f"{_expected(name)}, for the architecture in config.cfg. Was it copied from another "
                "component or pipeline, or config.cfg edited after saving?"
            )
    return None


def _chain(*errors: Optional[BaseException]) -> list:
    """The errors and those each was raised from or while handling."""
    seen: dict = {}
    for error in errors:
        while error is not None and id(error) not in seen:
            seen[id(error)] = error
            error = error.__cause__ or error.__context__
    return list(seen.values())
