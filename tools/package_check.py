"""A packaged pipeline, installed in a fresh venv, checked from a folder with no
../shared beside it: load it by package name, `spacy-encoder deploy script` and `export`
it there, assert that the scripted pipeline predicts the same entities and the
exported TorchScript file the same vectors, and save doc.tensor and the entities
(OUT, OUT.ents.json) to compare with the pipeline run in the development venv.

    python tools/package_check.py PACKAGE_NAME TEXTS.json OUT.npz

Works for pipelines with static vectors (the exported module then takes each
token's vector rows too) and without."""
import json, subprocess, sys
import numpy, spacy, torch
name, texts_path, out = sys.argv[1:]
texts = json.load(open(texts_path))
nlp = spacy.load(name)
print("vectors in the loaded pipeline:", nlp.vocab.vectors.shape)
docs = list(nlp.pipe(texts))
ents = [[(e.start_char, e.end_char, e.label_) for e in d.ents] for d in docs]
print("entities:", sum(map(len, ents)), ents[:2])
path = spacy.util.get_package_path(name)
model_dir = next(p for p in path.iterdir() if (p / "config.cfg").exists())
subprocess.run(["spacy-encoder", "script", str(model_dir), "scripted"], check=True)
scripted = spacy.load("scripted")
sdocs = list(scripted.pipe(texts))
print("scripted max |diff|:", max(float(numpy.abs(a.tensor - b.tensor).max()) for a, b in zip(docs, sdocs) if len(a)))
assert [[(e.start_char, e.end_char, e.label_) for e in d.ents] for d in sdocs] == ents
subprocess.run(["spacy-encoder", "export", str(model_dir), "encoder.pt"], check=True)
info = json.load(open("encoder.pt.json"))
enc = torch.jit.load("encoder.pt")
from spacy.attrs import ORTH
worst = 0.0
for d in [d for d in docs if len(d)]:
    ids = torch.from_numpy(d.to_array(info["attrs"]).astype("uint64").view("int64").reshape(len(d), -1))
    with torch.no_grad():
        if info.get("vectors_width"):
            rows = nlp.vocab.vectors.find(keys=d.to_array(ORTH).astype("uint64"))
            vec = nlp.vocab.vectors.data[rows].astype("float32").reshape(len(d), -1)
            vec[rows < 0] = 0
            y = enc(ids, torch.from_numpy(vec)).numpy()
        else:
            y = enc(ids).numpy()
    if len(d):
        worst = max(worst, float(numpy.abs(y - d.tensor).max()))
print("export max |diff|:", worst)
numpy.savez(out, *[d.tensor for d in docs])
json.dump(ents, open(out + ".ents.json", "w"))
print("OK")
