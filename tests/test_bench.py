"""The speed benchmark's pure parts (its timings are printed by `spacy-encoder bench`,
never asserted in tests)."""
from spacy_encoder import bench
from spacy_encoder.cli.bench import _markdown


def test_column_texts_groups_sentences(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("-DOCSTART- -X- O O\n\nEU I-ORG\nrejects O\n\nPeter I-PER\n\nGerman I-MISC", encoding="utf8")
    assert bench.column_texts(path, 2) == ["EU rejects Peter", "German"]
    assert bench.column_texts(path, 1, limit=1) == ["EU rejects"]


def test_tsv_texts_skips_header_and_strips(tmp_path):
    path = tmp_path / "x.tsv"
    path.write_text("sentence\tlabel\nit 's fine \t1\nbad \t0\n", encoding="utf8")
    assert bench.tsv_texts(path) == ["it 's fine", "bad"]


def test_padding_waste_buckets_beat_pad_to_longest():
    texts = ["word " * n for n in [3, 40, 5, 38, 2, 300, 7, 9] * 40]
    for batcher in ("pipe", "train"):
        waste = bench.padding_waste(texts, batcher)
        assert 0.0 <= waste["bucketed"] < waste["pad_to_longest"]


def test_markdown_reports_ratios():
    row = {"wps": 100.0, "peak_rss_mb": 10.0}
    results = {
        "machine": {"cpus": 2, "torch_threads": 2, "OMP_WAIT_POLICY": "PASSIVE"},
        "rounds": 1,
        "inference_ner": {
            "ner-ours": {**row, "wps": 50.0},
            "ner-ours-torchscript": {**row, "wps": 60.0},
            "ner-cnn-efficiency": row,
            "ner-cnn-accuracy": {**row, "wps": 25.0},
        },
        "doc_length": {
            "1000": {"seconds": 0.1, "peak_rss_mb": 1.0},
            "10000": {"seconds": 1.0, "peak_rss_mb": 1.0},
            "100000": {"seconds": 10.0, "peak_rss_mb": 1.0},
            "ratio_100k_vs_100x1k": 1.0,
        },
        "padding": {"x": {"bucketed": 0.05, "pad_to_longest": 0.5, "batches": 3}},
    }
    table = _markdown(results)
    assert "| ner-ours | 50 | 0.50 | 2.00 |" in table
    assert "TorchScript / eager: 1.20" in table
