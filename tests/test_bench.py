"""The speed benchmark's pure parts (its timings are printed by `spacy-encoder bench`,
never asserted in tests)."""
from spacy_encoder import bench
from spacy_encoder.cli.bench import _markdown

from .conftest import dropout_kinds


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
    # Small training batches fit in one bucket (a split costs more than their padding);
    # nlp.pipe's batches of 256 docs are split by length.
    pipe, train = bench.padding_waste(texts, "pipe"), bench.padding_waste(texts, "train")
    assert 0.0 <= pipe["bucketed"] < 0.5 * pipe["pad_to_longest"]
    assert 0.0 <= train["bucketed"] <= train["pad_to_longest"]


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


def test_busy_machine_is_named_and_quiet_one_passes(monkeypatch):
    monkeypatch.setattr(bench, "load_average", lambda: 1.5)
    assert "load average 1.50 on 2 CPUs" in bench.busy_reason(0.25, cpus=2)
    monkeypatch.setattr(bench, "load_average", lambda: 0.2)
    assert bench.busy_reason(0.25, cpus=2) is None


def test_bench_refuses_a_busy_machine_without_allow_busy(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from spacy_encoder.cli import app

    for name in ("conll2003/test.txt", "conll2003/train.txt", "sst2/dev.tsv", "sst2/train.tsv"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("x", encoding="utf8")
    monkeypatch.setattr(bench, "load_average", lambda: 64.0)
    result = CliRunner().invoke(app, ["bench", "speed", "--corpora-dir", str(tmp_path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "Not benchmarking: load average 64.00" in result.output and "--allow-busy" in result.output
    assert not (tmp_path / "out").exists()


def test_other_work_counts_other_processes_not_ours():
    import time

    other = bench.OtherWork()
    other.start()
    end = time.perf_counter() + 0.3
    while time.perf_counter() < end:  # our own CPU time must not count as other work
        pass
    share = other.share()
    if share is None:
        return  # no /proc/stat on this OS
    assert 0.0 <= share < 2.0


def test_markdown_sections_without_accuracy_column():
    row = {"wps": 100.0, "peak_rss_mb": 10.0}
    results = {
        "machine": {"cpus": 2, "torch_threads": 2, "OMP_WAIT_POLICY": "PASSIVE"},
        "rounds": 1,
        "batch_size": 64,
        "load_average_at_start": 0.1,
        "other_cpu_share": 0.5,
        "inference_ner_vectors": {"ner-ours-vectors": {**row, "wps": 80.0}, "ner-cnn-efficiency-vectors": row},
        "doc_length": {k: {"seconds": 0.1, "peak_rss_mb": 1.0} for k in ("1000", "10000", "100000")} | {"ratio_100k_vs_100x1k": 1.0},
        "padding": {},
    }
    table = _markdown(results)
    assert "| ner-ours-vectors | 80 | 0.80 | 10 |" in table
    assert "NOT quiet" in table and "batch size 64" in table


def test_the_fast_dropout_rows_swap_the_masks_and_the_plain_rows_keep_torchs():
    """The configs train with torch's own dropout; the bench's "-fast-dropout" rows
    measure FastDropout beside them, so each row must build what its name says."""
    assert set(dropout_kinds(bench.build_pipeline("ner-ours"))) == {"Dropout"}
    assert set(dropout_kinds(bench.build_pipeline("ner-ours-fast-dropout"))) == {"FastDropout"}


def test_the_rows_build_the_configs_depth_and_every_section_names_known_pipelines():
    from spacy_encoder.cli.bench import INFERENCE_SECTIONS
    from spacy_encoder.nodes import TOK2VEC, encoder_nodes, torch_module
    from spacy_encoder.weights import encoder_depth

    def layers(nlp):
        return encoder_depth(torch_module(next(encoder_nodes(nlp.get_pipe("tok2vec").model, (TOK2VEC,)))).state_dict())

    assert layers(bench.build_pipeline("ner-ours")) == 2  # configs/ner.cfg
    assert layers(bench.build_pipeline("ner-ours-depth4")) == 4
    assert layers(bench.build_pipeline("ner-ours-depth1")) == 1
    for _, _, names, _ in INFERENCE_SECTIONS:
        assert set(names) <= set(bench.PIPELINES)
