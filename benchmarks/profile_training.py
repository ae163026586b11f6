"""Where the time of NER training goes: cProfile over 20 `nlp.update` calls of about
1,000 words (the bench's training batches), untrained, configs/ner.cfg's settings
(issue 20).

    python benchmarks/profile_training.py
"""
import cProfile
import io
import pstats
import time
from pathlib import Path

from spacy_encoder import bench
from spacy.training import Example
from spacy.training.batchers import minibatch_by_words
texts = bench.column_texts(Path("../shared/corpora/conll2003/train.txt"), 10, 300)
nlp = bench.build_pipeline("ner-ours")
examples = []
for text in texts:
    doc = nlp.make_doc(text)
    ents = [(t.idx, t.idx + len(t), bench.NER_LABELS[t.i % 4]) for t in doc if t.is_title]
    examples.append(Example.from_dict(doc, {"entities": ents}))
opt = nlp.resume_training()
batches = [b for b in minibatch_by_words(examples, size=1000) if b]
for b in batches[:3]: nlp.update(b, sgd=opt)
pr = cProfile.Profile()
words = 0; t = time.perf_counter()
pr.enable()
for b in batches[3:23]:
    nlp.update(b, sgd=opt, losses={}); words += sum(len(e) for e in b)
pr.disable()
wall = time.perf_counter() - t
print(f"{words} words in {wall:.2f} s = {words/wall:.0f} words/s (under cProfile)")
st = pstats.Stats(pr)
want = {
 "nlp.update total": ("language.py", "update"),
 "tok2vec component update (spaCy)": ("tok2vec.py", "update"),
 "our tok2vec forward": ("layers.py", "_tok2vec_forward"),
 "torch forward (shim begin_update)": ("pytorch.py", "begin_update"),
 "backprop into tok2vec (torch autograd)": ("pytorch.py", "backprop"),
 "ner component update": ("transition_parser.pyx", "update"),
 "finish_update (our torch shim: Adam on torch params)": ("shims.py", "finish_update"),
 "optimizer calls (thinc Adam, all params)": ("optimizers.py", "__call__"),
 "listener receive/backprop": ("tok2vec.py", "backprop"),
}
rows = {}
for (fn, line, name), (cc, nc, tt, ct, callers) in st.stats.items():
    for label, (f, n) in want.items():
        if fn.endswith(f) and name == n:
            rows[label] = max(rows.get(label, 0), ct)
for label in want:
    if label in rows:
        print(f"| {label} | {rows[label]:.2f} s | {rows[label]/wall:.0%} |")
s = io.StringIO(); pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(12); print(s.getvalue()[-3500:])
