"""The language-model target: model, decoding, perplexity, text metrics, corpora, a tracked end-to-end study."""
import math

import numpy as np
import pytest
from conftest import SHARED_DATA, assert_shared_gen0, make_chain, run_chain

from ouroboros import text as T
from ouroboros.seeding import generator
from ouroboros.chain import METRICS as ENGINE_METRICS
from ouroboros.targets import make_target

torch = pytest.importorskip("torch")
from ouroboros.nets.gpt import (  # noqa: E402
    beam_search,
    build_gpt,
    generate,
    lr_at,
    sequence_ppl,
    stream_nll,
    train_lm,
)

TINY = {"n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 48, "seq_len": 16, "prompt_len": 16, "epochs": 2,
        "batch_size": 16, "device": "cpu", "log_every": 5}


def toy_net(vocab=11, block=16, seed=0):
    torch.manual_seed(seed)
    return build_gpt(vocab, block, n_layer=2, n_head=2, n_embd=16).eval()


# -- model and training ------------------------------------------------------------------
def test_tiny_model_overfits_a_short_text():
    text = ("The for statement is used to iterate over the elements of a sequence "
            "(such as a string, tuple or list) or other iterable object.")
    tok = T.CharTokenizer.train([text])
    stream = np.asarray(tok.encode(text), dtype=np.int64)
    torch.manual_seed(0)
    net = build_gpt(tok.vocab_size, 32, n_layer=2, n_head=2, n_embd=64)
    losses = train_lm(net, stream, steps=300, batch_size=16, lr=3e-3, warmup=10, min_lr=3e-4, weight_decay=0.0,
                      grad_clip=1.0, device="cpu", amp=False, seed=0, log_every=100)
    assert losses[0] > 2.5  # about log(vocab) at the start
    assert np.mean(losses[-10:]) < 0.1
    nll, count = stream_nll(net, stream)
    assert count == len(stream) - 1 and nll < 0.25  # windows restart context every 32 tokens


def test_warmup_then_cosine_schedule():
    lrs = [lr_at(s, 100, 1.0, 10, 0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0) and lrs[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


def test_same_seed_same_weights_on_cpu():
    t = make_target("lm", TINY)
    real = t.real_data(generator("lm-det"), 60, 1)
    a = t.clone().fit(real["train"], generator("fit")).net_.state_dict()
    b = t.clone().fit(real["train"], generator("fit")).net_.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_loss_lines_in_the_log(caplog):
    caplog.set_level("INFO", logger="ouroboros")
    t = make_target("lm", TINY)
    t.fit(t.real_data(generator("lm-log"), 60, 1)["train"], generator("fit"))
    steps = t.backbone_.steps(60, 60 * 17)
    assert f"step {steps}/{steps} loss" in caplog.text and "validation:" in caplog.text


# -- decoding ----------------------------------------------------------------------------------
def greedy_by_hand(net, prompt, steps):
    seq = prompt.clone()
    with torch.no_grad():
        for _ in range(steps):
            logits = net(seq)[:, -1].clone()
            logits[:, 0] = -float("inf")  # the end-of-text token is never emitted
            seq = torch.cat([seq, logits.argmax(-1, keepdim=True)], dim=1)
    return seq[:, prompt.shape[1]:]


def test_temperature_to_zero_and_top_k_1_are_greedy():
    net = toy_net()
    prompt = torch.randint(1, 11, (5, 4), generator=torch.Generator().manual_seed(1))
    greedy = greedy_by_hand(net, prompt, 10)
    assert torch.equal(generate(net, prompt, 10, temperature=0.0), greedy)
    assert torch.equal(generate(net, prompt, 10, temperature=1e-6, generator=torch.Generator().manual_seed(3)), greedy)
    assert torch.equal(generate(net, prompt, 10, temperature=1.5, top_k=1, generator=torch.Generator().manual_seed(4)),
                       greedy)
    sampled = generate(net, prompt, 10, temperature=1.0, generator=torch.Generator().manual_seed(5))
    assert not torch.equal(sampled, greedy)


@pytest.mark.parametrize("settings", [dict(temperature=1.0), dict(temperature=0.8, top_k=5, top_p=0.9,
                                                                   repetition_penalty=1.3), dict(temperature=0.0)])
def test_kv_cache_generation_equals_no_cache(settings):
    net = toy_net(block=24)
    prompt = torch.randint(1, 11, (8, 6), generator=torch.Generator().manual_seed(2))
    a = generate(net, prompt, 18, use_cache=True, generator=torch.Generator().manual_seed(7), **settings)
    b = generate(net, prompt, 18, use_cache=False, generator=torch.Generator().manual_seed(7), **settings)
    assert a.shape == (8, 18) and torch.equal(a, b)
    assert not (a == 0).any()


def test_cached_prefix_then_several_tokens_matches_one_pass():
    net = toy_net()
    x = torch.randint(0, 11, (3, 12), generator=torch.Generator().manual_seed(0))
    full = net(x)
    cache = net.new_cache()
    part = torch.cat([net(x[:, :5], cache), net(x[:, 5:9], cache), net(x[:, 9:10], cache), net(x[:, 10:], cache)], 1)
    assert torch.allclose(full, part, atol=1e-5)


def test_beam_search_finds_the_most_probable_continuation():
    import itertools

    net = toy_net(vocab=5, block=16, seed=4)
    prompt = torch.randint(1, 5, (3, 4), generator=torch.Generator().manual_seed(6))
    assert torch.equal(beam_search(net, prompt, 6, beams=1), greedy_by_hand(net, prompt, 6))

    def logprob(row, cont):
        seq = torch.cat([row, torch.tensor(cont)])
        with torch.no_grad():
            logp = torch.log_softmax(net(seq[None, :-1])[0].double(), -1)
        return float(sum(logp[len(row) - 1 + j, c] for j, c in enumerate(cont)))

    best = beam_search(net, prompt, 3, beams=16)  # 16 = 4 ** 2 beams: exact for 3 tokens of 4 allowed ids
    for row, found in zip(prompt, best):
        exhaustive = max(itertools.product(range(1, 5), repeat=3), key=lambda c: logprob(row, list(c)))
        assert found.tolist() == list(exhaustive)


def test_top_p_keeps_the_smallest_nucleus():
    from ouroboros.nets.gpt import next_token

    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    picks = {int(next_token(logits, None, temperature=1.0, top_k=0, top_p=0.7, repetition_penalty=1.0,
                            generator=torch.Generator().manual_seed(s))) for s in range(200)}
    assert picks == {0, 1}


def test_repetition_penalty_lowers_seen_tokens():
    from ouroboros.nets.gpt import next_token

    logits = torch.tensor([[2.0, 1.9, -1.0]])
    history = torch.tensor([[0, 0]])
    assert int(next_token(logits, history, temperature=0, top_k=0, top_p=1.0, repetition_penalty=1.0)) == 0
    assert int(next_token(logits, history, temperature=0, top_k=0, top_p=1.0, repetition_penalty=1.5)) == 1


# -- perplexity ------------------------------------------------------------------------------------
def test_perplexity_of_a_zero_model_is_the_vocabulary_size():
    net = toy_net(vocab=7)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
    assert sequence_ppl(net, [[1, 2, 3], [4, 5, 6, 6, 6]]) == pytest.approx([7.0, 7.0])
    assert math.exp(stream_nll(net, np.array([1, 2, 3, 4, 5, 6] * 10))[0]) == pytest.approx(7.0)


def test_perplexity_matches_a_hand_computation():
    net = toy_net(vocab=9, block=16, seed=3)
    seqs = [[3, 1, 4, 1, 5], [2, 6], [8, 8, 8, 7, 1, 2, 3, 4]]

    def by_hand(seq):
        tokens = [0] + seq
        nll = 0.0
        for i in range(1, len(tokens)):
            with torch.no_grad():
                logits = net(torch.tensor([tokens[:i]]))[0, -1].double().numpy()
            logp = logits - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
            nll -= logp[tokens[i]]
        return math.exp(nll / len(seq))

    assert sequence_ppl(net, seqs, batch=2) == pytest.approx([by_hand(s) for s in seqs], rel=1e-5)
    stream = np.array([0] + seqs[0] + [0] + seqs[2], dtype=np.int64)
    nll, count = stream_nll(net, stream)
    expect = 0.0
    for i in range(1, len(stream)):
        with torch.no_grad():
            logits = net(torch.tensor([stream[:i].tolist()]))[0, -1].double()
        expect -= float(torch.log_softmax(logits, 0)[stream[i]])
    assert count == len(stream) - 1 and nll == pytest.approx(expect / count, rel=1e-5)


# -- text metrics -------------------------------------------------------------------------------------
def test_text_metrics_on_hand_made_samples():
    seqs = [[1, 2, 1, 2, 1], [3, 3, 3]]
    assert T.distinct_n(seqs, 1) == pytest.approx(3 / 8)
    assert T.distinct_n(seqs, 2) == pytest.approx(3 / 6)  # (1,2) (2,1) (3,3)
    assert T.distinct_n(seqs, 3) == pytest.approx(3 / 4)  # (1,2,1) (2,1,2) (3,3,3)
    # bigrams: sample 1 has (1,2),(2,1),(1,2),(2,1): 2 repeats; sample 2 has (3,3),(3,3): 1 repeat
    assert T.repetition_rate(seqs, 2) == pytest.approx(3 / 6)
    assert T.repetition_rate([[1, 2, 3, 4]], 2) == 0.0
    p = np.array([3, 3, 2]) / 8
    assert T.unigram_entropy(seqs) == pytest.approx(float(-(p * np.log(p)).sum()))
    counts = np.array([0, 50, 30, 8, 6, 4, 2])  # total 100: 10% of the mass = ids 6, 5, 4 (2 + 4 + 6 = 12 > 10: 6, 5)
    assert sorted(T.tail_tokens(counts, 0.1).tolist()) == [5, 6]
    assert T.tail_coverage([[1, 5], [2]], np.array([5, 6])) == 0.5


def test_samples_file_round_trips_newlines_and_backslashes(tmp_path):
    texts = ["plain", "two\nlines", "back\\slash \\n literal", "", "tab\tand\r\nend\n"]
    T.write_lines(tmp_path / "s.txt", texts)
    raw = (tmp_path / "s.txt").read_text()
    assert raw.count("\n") == len(texts)
    assert T.read_lines(tmp_path / "s.txt") == texts


def test_truncated_samples_file_is_reported(tmp_path):
    from ouroboros.io import IntermediateFileError

    (tmp_path / "s.txt").write_text("one\ntwo")
    with pytest.raises(IntermediateFileError, match="truncated"):
        T.read_lines(tmp_path / "s.txt")


# -- corpora and tokenizers ------------------------------------------------------------------------------
def test_pydoc_corpus_is_split_by_topic_with_a_fixed_seed():
    from pydoc_data.topics import topics

    c = T.load_corpus("pydoc", split_seed=0, valid_fraction=0.1, test_fraction=0.1)
    docs = {k: set(v) for k, v in c.items()}
    assert not (docs["train"] & docs["test"]) and not (docs["train"] & docs["valid"])
    assert len(c["train"]) + len(c["valid"]) + len(c["test"]) == len({v.strip() for v in topics.values() if v.strip()})
    total = sum(len(d) for v in c.values() for d in v)
    assert 0.08 < sum(map(len, c["test"])) / total < 0.3
    assert T.load_corpus.__wrapped__("pydoc", "", "", "", "", "", 0, 0.1, 0.1) == c
    assert T.load_corpus.__wrapped__("pydoc", "", "", "", "", "", 1, 0.1, 0.1)["test"] != c["test"]


def test_bpe_tokenizer_is_deterministic_and_round_trips():
    docs = T.load_corpus("pydoc")["train"]
    a = T.BPETokenizer.train(docs[:20], 400)
    b = T.BPETokenizer.train(docs[:20], 400)
    assert a.to_json() == b.to_json() and a.vocab_size == 400
    s = docs[0][:500]
    assert a.decode(a.encode(s)) == s
    assert a.encode(T.EOT) == [0]
    c = T.tokenizer_from_json(a.to_json())
    assert c.encode(s) == a.encode(s)


def test_missing_corpus_files_and_datasets_are_named(tmp_path):
    t = make_target("lm", {"corpus": "files", "train": str(tmp_path / "nope.txt"), "test": str(tmp_path / "t.txt")})
    msg = t.check_experiment(10, 1)
    assert "nope.txt" in msg and "does not exist" in msg
    try:
        import datasets  # noqa: F401
    except ImportError:
        msg = make_target("lm", {"corpus": "hf"}).check_experiment(10, 1)
        assert "datasets" in msg and "corpus: files" in msg


def test_check_names_bad_settings():
    assert "replicates: 1" in make_target("lm", TINY).check_experiment(10, 2)
    assert "block_size (" in make_target("lm", dict(TINY, prompt_len=40, seq_len=20)).check_experiment(10, 1)
    assert "multiple of n_head" in make_target("lm", dict(TINY, n_embd=30, n_head=4)).check_experiment(10, 1)
    assert "exceeds" in make_target("lm", TINY).check_experiment(10**7, 1)


@pytest.mark.skipif(not (SHARED_DATA / "wikitext-2" / "test.txt").is_file(),
                    reason="WikiText-2 files not in ../shared/data/wikitext-2")
def test_wikitext_files_corpus_on_shared_data():
    root = SHARED_DATA / "wikitext-2"
    t = make_target("lm", dict(TINY, corpus="files", train=str(root / "valid.txt"), test=str(root / "test.txt"),
                               tokenizer="bpe", vocab_size=512))
    assert t.check_experiment(500, 1) is None
    real = t.real_data(generator("wt"), 500, 1)
    assert real["train"].shape == (1, 500) and real["test"].shape[1] > 100
    assert "<unk>" in "".join(real["train"][0]) and real["test"][0][0].startswith("= Robert <unk> =")


# -- the target in a chain ---------------------------------------------------------------------------------
def test_short_chain_metrics_and_samples_text():
    chain = make_chain("lm", dict(TINY, epochs=4), regime="mix", rho=0.25, n=80, replicates=1, label="lm")
    metrics, run = run_chain(chain, 2)
    assert set(metrics[0]) == set(make_target("lm").metrics) | {"ppl_gen0"} | set(ENGINE_METRICS)
    for m in metrics:
        assert len(m["ppl_gen0"]) == 60 and np.isfinite(m["ppl_gen0"]).all()
        assert m["ppl_gen0_p05"] <= m["ppl_gen0_mean"] <= m["ppl_gen0_p95"]
        assert 0 < m["distinct_1"] <= 1 and 0 <= m["tail_coverage"] <= 1 and 1 < m["ppl_real"] < 200
    samples = run.held[len(metrics) - 1]  # S_G, which the chain holds for the next generation
    assert samples.shape == (1, 60) and samples.dtype.kind == "U"


def test_save_and_load_with_weights_only(tmp_path):
    t = make_target("lm", TINY)
    t.fit(t.real_data(generator("lm-save"), 40, 1)["train"], generator("fit"))
    t.save(tmp_path / "m")
    assert {p.name for p in (tmp_path / "m").iterdir()} == {"model.pt", "tokenizer.json", "target.json",
                                                            "training_curve.csv"}
    from ouroboros.targets.base import Target

    u = Target.load(tmp_path / "m")
    a = t.generate_tokens(3, 1.0, np.random.default_rng(0))[1]
    b = u.generate_tokens(3, 1.0, np.random.default_rng(0))[1]
    assert np.array_equal(a, b)
    (tmp_path / "m" / "model.pt").write_bytes(b"not a model")
    from ouroboros.io import IntermediateFileError

    with pytest.raises(IntermediateFileError, match="model.pt|corrupt"):
        Target.load(tmp_path / "m")


@pytest.mark.e2e
def test_tiny_lm_study_with_two_regimes_tracked_to_mlflow(tmp_path, snakemake_run):
    import os

    import mlflow
    import pandas as pd

    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    cfg = {"study": "lm-tiny", "seeds": [0], "generations": 2,
           "experiments": [{"name": "lm", "target": "lm", "n": 100, "regimes": ["replace", {"kind": "mix", "rho": 0.1}],
                            "params": TINY}]}
    snakemake_run(tmp_path, cfg, "--cores", "2")
    results = tmp_path / "results/lm-tiny"
    table = pd.read_csv(results / "metrics.csv")
    names = set(make_target("lm").metrics) | set(ENGINE_METRICS)
    assert set(table["metric"]) == names and len(table) == 2 * 3 * len(names)
    assert (results / "plots/distributions/lm/ppl_gen0.png").stat().st_size > 5000
    assert (results / "plots/lm/ppl_real.png").is_file()
    for regime, synthetic in (("replace", 100), ("mix-rho0.1", 90)):
        gen1 = results / f"lm/{regime}/seed0/gen1"
        lines = T.read_lines(gen1 / "samples/samples.txt")
        assert len(lines) == synthetic and len(T.read_lines(gen1 / "samples/prompts.txt")) == synthetic
        assert np.load(gen1 / "distributions.npz")["ppl_gen0"].shape == (synthetic,)
        assert "step" in (results / f"logs/lm/{regime}/seed0/gen1/train.log").read_text()
    uri = f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    from ouroboros.tracking import experiment_name

    exp = client.get_experiment_by_name(experiment_name("lm-tiny"))
    runs = client.search_runs([exp.experiment_id], "tags.`ouroboros.kind` = 'generation'")
    assert len(runs) == 5 + 2  # generation 0 once, shared by both regimes, and each chain's run of it
    assert_shared_gen0(results, client, exp.experiment_id, "lm", ["replace", "mix-rho0.1"], runs)
    run = next(r for r in runs if r.data.tags["ouroboros.chain"] == "lm/replace/seed0" and r.data.tags["generation"] == "2")
    assert set(names) <= set(run.data.metrics)
    assert "samples/samples.txt" in [a.path for a in client.list_artifacts(run.info.run_id, "samples")]
    curve = client.get_metric_history(run.info.run_id, "train_loss")  # one point per optimiser step
    assert len(curve) >= 2 and [m.step for m in curve] == list(range(1, len(curve) + 1))
    study_run = client.search_runs([exp.experiment_id], "tags.`ouroboros.kind` = 'study'")[0]
    assert [a.path for a in client.list_artifacts(study_run.info.run_id, "plots/distributions/lm")] == [
        "plots/distributions/lm/ppl_gen0.png"]
    models = {m.name: m.model_id for m in client.search_logged_models(experiment_ids=[exp.experiment_id])}
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(f"models:/{models['gen2-s0-replace-lm']}")
    out = model.predict(pd.DataFrame({"prompt": ["The for statement", "A class"]}),
                        params={"max_new_tokens": 12, "seed": 0})
    assert list(out.columns) == ["prompt", "continuation"] and out["continuation"].str.len().min() > 0


def test_curation_by_generation0_perplexity_and_minhash_dedup():
    chain = make_chain("lm", TINY, n=60, replicates=1, label="lm",
                       curation={"selector": "top", "q": 0.5, "scorer": "gen0"})
    metrics, run = run_chain(chain, 1)
    assert metrics[1]["curation_kept_fraction"] == 0.5
    assert metrics[1]["curation_score_kept"] > metrics[1]["curation_score_all"]
    texts = np.array([["abc abc abc abc", "the same sentence here", "abc abc abc abc", "zzz"]])
    ll = run.gen0.loglik(texts)
    assert ll.shape == (1, 4) and ll[0, 0] == ll[0, 2] and np.all(ll < 0)
    seqs = run.gen0.tokenizer.encode_batch([str(t) for t in texts[0]])
    np.testing.assert_allclose(-np.log(sequence_ppl(run.gen0.net_, seqs)), ll[0])
    assert run.gen0.duplicates(texts, {"similarity": 0.8}, {}).tolist() == [[False, False, True, False]]
