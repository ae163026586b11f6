"""Write configs/<task>_pretrained.cfg from configs/<task>.cfg: the same pipeline, with
TransformerTok2Vec.v2 (no vectors, output_scale 3.0) started from the encoder that ships
in spacy_encoder/pretrained/, and the [pretraining] objective that encoder was made with;
and configs/<task>_vectors_pretrained.cfg from configs/<task>_vectors.cfg: static vectors
in the input, started from the same encoder (spacy-encoder.start_from_pretrained.v1, the
vector columns at zero).

    python tools/make_pretrained_configs.py      # rewrites the six files
"""
from __future__ import annotations

import re
from pathlib import Path

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
NAME = "en-wiki-128"


def pretrained_variant(text: str, task: str) -> str:
    head, _, rest = text.partition("[paths]")
    lines = [line for line in head.splitlines() if not line.startswith("# CPU:")]
    cpu = next(line for line in head.splitlines() if line.startswith("# CPU:"))
    head = "\n".join(
        lines[:1]
        + [
            "# Started from the encoder pretrained on English Wikipedia that ships with the",
            f"# package ({NAME}: spacy-encoder.pretrained_tok2vec.v1, no network, no vectors",
            "# needed; README \"Pretrained encoder\").",
        ]
        + lines[1:]
        + [cpu.replace(f"configs/{task}.cfg", f"configs/{task}_pretrained.cfg")]
    )
    text = head + "\n[paths]" + rest
    text = text.replace('"spacy-encoder.TransformerTok2Vec.v1"', '"spacy-encoder.TransformerTok2Vec.v2"')
    extra = (
        "vectors_width = 0\nvectors_dropout = 0.0\n"
        "# Larger inputs make spaCy's heads learn faster early (docs/benchmarks.md, output_scale).\n"
        "output_scale = 3.0\n"
    )
    if "\nfeature_dropout = " not in text.split("[components.tok2vec.model]")[1].split("\n[")[0]:
        extra = "feature_dropout = 0.0\n" + extra  # v1's default, required in v2
    text = re.sub(r"(\[components\.tok2vec\.model\]\n(?:.*\n)*?)(max_length = )", lambda m: m.group(1) + extra + m.group(2), text, count=1)
    start = text.index("[pretraining.objective]")
    end = text.index("[pretraining.optimizer]")
    text = text[:start] + (
        "[pretraining.objective]\n"
        "# How the shipped encoder was pretrained: predict each masked word's en_core_web_md\n"
        "# vector (cosine) from its context, so the vectors' knowledge ends up in the encoder\n"
        "# and no vectors are needed afterwards.\n"
        '@architectures = "spacy.PretrainVectors.v1"\nmaxout_pieces = 3\nhidden_size = 300\nloss = "cosine"\n\n'
    ) + text[end:]
    text = re.sub(
        r"(# init_tok2vec when this section is empty\.)[^\n]*\n(#[^\n]*\n)*",
        lambda m: m.group(1) + "\n",
        text,
        count=1,
    )
    return text.replace(
        "init_tok2vec = ${paths.init_tok2vec}\n",
        "# The shipped encoder, by name; `--initialize.init_tok2vec PATH` takes any `spacy\n"
        "# pretrain` output of the same architecture instead.\n"
        f'init_tok2vec = {{"@misc":"spacy-encoder.pretrained_tok2vec.v1","name":"{NAME}"}}\n',
    )


def vectors_pretrained_variant(text: str, task: str) -> str:
    head, _, rest = text.partition("[paths]")
    lines = head.splitlines()
    cpu = next(i for i, line in enumerate(lines) if line.startswith("# CPU:"))
    lines[cpu] = lines[cpu].replace(f"configs/{task}_vectors.cfg", f"configs/{task}_vectors_pretrained.cfg")
    head = "\n".join(
        lines[:1]
        + [
            f"# Started from the shipped encoder ({NAME}, pretrained without vectors): the",
            "# embedding mixer's static-vector columns start at zero, so step 0 computes what",
            "# the pretrained encoder did (spacy-encoder.start_from_pretrained.v1).",
        ]
        + lines[1:]
    )
    text = head + "\n[paths]" + rest
    assert "\nafter_init = null\n" in text and "init_tok2vec = ${paths.init_tok2vec}\n" in text
    text = text.replace(
        "init_tok2vec = ${paths.init_tok2vec}\n",
        "# Not init_tok2vec: spaCy loads that only into the exact pretrained architecture.\n"
        "init_tok2vec = null\n",
    )
    text = text.replace("\nafter_init = null\n", "\n")
    return text.replace(
        "\n[initialize.components]\n",
        "\n[initialize.after_init]\n"
        '@callbacks = "spacy-encoder.start_from_pretrained.v1"\n'
        f'name = "{NAME}"\n'
        "# Or path = a `spacy pretrain` output of the vector-free configs' architecture.\n"
        "path = null\n"
        'component = "tok2vec"\n'
        'layer = ""\n'
        "\n[initialize.components]\n",
        1,
    )


if __name__ == "__main__":
    for task in ("ner", "textcat", "textcat_multilabel"):
        out = CONFIGS / f"{task}_pretrained.cfg"
        out.write_text(pretrained_variant((CONFIGS / f"{task}.cfg").read_text(), task))
        print(out)
        out = CONFIGS / f"{task}_vectors_pretrained.cfg"
        out.write_text(vectors_pretrained_variant((CONFIGS / f"{task}_vectors.cfg").read_text(), task))
        print(out)
