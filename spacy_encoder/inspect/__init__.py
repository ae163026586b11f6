"""Looking inside a trained pipeline: the encoder's hidden states and attention
weights for one text (`trace`), pictures of them and of a training log (`plots`,
`spacy_encoder.training_log`), entity recall on names and tag accuracy on words seen
and unseen in training (`evaluation`).

No typer here (the commands live in `spacy_encoder.cli.inspect_cmds`); matplotlib is
the optional extra `viz` and is imported only by the plotting functions.
"""
from .errors import InspectError, MissingExtraError  # noqa: F401
from .evaluation import (  # noqa: F401
    MISS_KINDS, RecallSplit, TagSplit, annotate_copies, entity_names, miss_kind, seen_unseen_recall, seen_unseen_tags,
)
from .plots import (  # noqa: F401
    VIZ_HINT, attention_figure_size, attention_grid, plot_attention, plot_training, require_matplotlib, token_label,
)
from .trace import (  # noqa: F401
    TOK2VEC_NODE, Inspection, Window, describe_array, doc_for, fast_path_output, feature_strings, find_tok2vec,
    head_summaries, input_stage_description, inspect_doc, inspect_window, stage_names, torch_module,
)
from ..training_log import LOG_FILE_NAME, TrainingLogError, losses_per_step, read_training_log, resolve_log  # noqa: F401
