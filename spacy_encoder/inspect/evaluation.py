"""Evaluation by what training had: entity recall on names seen and unseen in training,
and tag accuracy on words seen and unseen in training."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from spacy.language import Language
from spacy.tokens import Doc


# A gold entity that was not found was given another label on the same span ("label"),
# overlapped by a predicted entity with other bounds ("bounds"), or not touched ("none").
MISS_KINDS = ("label", "bounds", "none")


def miss_kind(start: int, end: int, predicted: Sequence[Tuple[int, int, str]]) -> str:
    """How the gold entity [start, end) was missed, given the predicted (start, end, label)."""
    if any(s == start and e == end for s, e, _ in predicted):
        return "label"
    if any(s < end and start < e for s, e, _ in predicted):
        return "bounds"
    return "none"


def annotate_copies(nlp: Language, eval_docs: Sequence[Doc]) -> List[Doc]:
    """The pipeline's annotation of fresh copies of `eval_docs` (words and spaces only,
    so no gold annotation reaches it), in order: what the splits below compare with
    the gold docs. Computed once, it serves both splits of a pipeline that sets
    entities and tags."""
    fresh = (Doc(nlp.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc]) for doc in eval_docs)
    return list(nlp.pipe(fresh))


def _share(part: int, whole: int) -> Optional[float]:
    return part / whole if whole else None


@dataclass
class RecallSplit:
    """Gold entities of one evaluation set, split by whether their text was a gold
    entity in training, and how many of each the pipeline found (same span, same label)."""

    name: str
    seen: int = 0
    seen_found: int = 0
    unseen: int = 0
    unseen_found: int = 0
    # How each gold entity that was not found was missed (`miss_kind`), per group.
    seen_misses: Dict[str, int] = field(default_factory=lambda: dict.fromkeys(MISS_KINDS, 0))
    unseen_misses: Dict[str, int] = field(default_factory=lambda: dict.fromkeys(MISS_KINDS, 0))

    def as_dict(self) -> Dict[str, Any]:
        total = self.seen + self.unseen
        return {
            "name": self.name,
            "entities": total,
            "seen": self.seen,
            "unseen": self.unseen,
            "unseen_share": _share(self.unseen, total),
            "seen_recall": _share(self.seen_found, self.seen),
            "unseen_recall": _share(self.unseen_found, self.unseen),
            "seen_misses": dict(self.seen_misses),
            "unseen_misses": dict(self.unseen_misses),
        }


def entity_names(docs: Sequence[Doc]) -> Set[str]:
    """The texts of the gold entities of `docs`, of any label: what makes a name *seen*
    in training (`seen_unseen_recall`, `spacy-encoder vectors coverage`)."""
    return {ent.text for doc in docs for ent in doc.ents}


def seen_unseen_recall(
    nlp: Language, train_docs: Sequence[Doc], eval_docs: Sequence[Doc], name: str = "", predicted: Optional[Sequence[Doc]] = None
) -> RecallSplit:
    """Entity recall on names seen and unseen in training.

    A gold entity of `eval_docs` is *seen* when its exact text is a gold entity (of
    any label) somewhere in `train_docs`. The pipeline annotates fresh copies of the
    eval docs (`annotate_copies`, unless `predicted` holds them already); a gold entity
    is found when a predicted entity has the same start, end and label. Where a model
    loses to another on test but not on dev, this tells whether the loss is on names
    it could have memorised or on new ones. Each gold entity not found is counted by
    how it was missed (`miss_kind`): wrong label, wrong bounds, or not found at all.
    """
    train_names = entity_names(train_docs)
    split = RecallSplit(name=name)
    if predicted is None:
        predicted = annotate_copies(nlp, eval_docs)
    for gold, doc in zip(eval_docs, predicted):
        found = {(ent.start, ent.end, ent.label_) for ent in doc.ents}
        for ent in gold.ents:
            hit = (ent.start, ent.end, ent.label_) in found
            seen = ent.text in train_names
            if seen:
                split.seen += 1
                split.seen_found += hit
            else:
                split.unseen += 1
                split.unseen_found += hit
            if not hit:
                misses = split.seen_misses if seen else split.unseen_misses
                misses[miss_kind(ent.start, ent.end, list(found))] += 1
    return split


@dataclass
class TagSplit:
    """Tokens of one evaluation set, split by whether their text was a token in
    training, and how many of each the pipeline tagged as gold (`token.tag_`)."""

    name: str
    seen: int = 0
    seen_correct: int = 0
    unseen: int = 0
    unseen_correct: int = 0

    def as_dict(self) -> Dict[str, Any]:
        total = self.seen + self.unseen
        return {
            "name": self.name,
            "tokens": total,
            "seen": self.seen,
            "unseen": self.unseen,
            "unseen_share": _share(self.unseen, total),
            "accuracy": _share(self.seen_correct + self.unseen_correct, total),
            "seen_accuracy": _share(self.seen_correct, self.seen),
            "unseen_accuracy": _share(self.unseen_correct, self.unseen),
        }


def seen_unseen_tags(
    nlp: Language, train_docs: Sequence[Doc], eval_docs: Sequence[Doc], name: str = "", predicted: Optional[Sequence[Doc]] = None
) -> TagSplit:
    """Tag accuracy on words seen and unseen in training.

    A token of `eval_docs` is *seen* when its exact text is a token somewhere in
    `train_docs` (the out-of-vocabulary split of the tagging literature). Tokens
    without a gold tag are not counted. The pipeline annotates fresh copies of the
    eval docs, as in `seen_unseen_recall`; a token is correct when its predicted
    `tag_` equals the gold one.
    """
    train_words = {token.text for doc in train_docs for token in doc}
    split = TagSplit(name=name)
    if predicted is None:
        predicted = annotate_copies(nlp, eval_docs)
    for gold, doc in zip(eval_docs, predicted):
        for gold_token, token in zip(gold, doc):
            if not gold_token.tag_:
                continue
            correct = token.tag_ == gold_token.tag_
            if gold_token.text in train_words:
                split.seen += 1
                split.seen_correct += correct
            else:
                split.unseen += 1
                split.unseen_correct += correct
    return split
