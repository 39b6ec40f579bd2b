"""A new LM backbone is one class implementing :class:`ouroboros.nets.lm.Backbone` plus one line in
``BACKBONES``: here a bigram model (a table of next-token log-probabilities fitted by counting, add-one smoothed),
the least network the protocol admits.  Registered, it runs through the LM target unchanged (fit, sample, the
paper's perplexity, save and load), its fit equals the closed form, and the chain gives the same numbers one
generation per job as in memory."""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import make_chain, run_chain, run_per_job_only  # noqa: E402
from ouroboros import io  # noqa: E402
from ouroboros import text as T  # noqa: E402
from ouroboros.chain import split_metrics  # noqa: E402
from ouroboros.nets.lm import BACKBONES, Backbone, join_items  # noqa: E402
from ouroboros.targets import make_target  # noqa: E402
from ouroboros.targets.base import Target  # noqa: E402
from ouroboros.targets.lm_settings import PARAMS  # noqa: E402
from ouroboros.torchdev import load_weights, save_tensors  # noqa: E402


class Bigram(Backbone):
    """``backbone: bigram``: row a of the table holds log p(b | a), fitted by counting the items' bigrams."""

    kind = "bigram"

    def tokenizer(self, attached):
        return T.build_tokenizer("char", 0, self.corpus_key)

    def eot_id(self, tokenizer):
        return 0

    def describe(self):
        return "char"

    def check(self, tokenizer, corpus):
        return None

    def new_net(self, vocab):
        return torch.nn.Embedding(vocab, vocab)

    def fit(self, items, *, tokenizer, seed, device, attached, valid=None):
        stream = join_items(items, 0)
        counts = np.ones((tokenizer.vocab_size,) * 2)
        np.add.at(counts, (stream[:-1], stream[1:]), 1)
        net = self.new_net(tokenizer.vocab_size)
        with torch.no_grad():
            net.weight.copy_(torch.as_tensor(np.log(counts / counts.sum(1, keepdims=True))))
        nll, mask = self.token_nll(net, [stream], device)
        return net, [(1, float(nll.sum() / mask.sum()))]

    def generate(self, net, prompts, max_new, *, temperature, seed, device, eot):
        gen = torch.Generator().manual_seed(seed)
        x, out = torch.as_tensor(prompts[:, -1]), []
        with torch.no_grad():
            for _ in range(max_new):
                logits = net.weight[x]
                if temperature == 0:
                    x = logits.argmax(-1)
                else:
                    x = torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=gen)[:, 0]
                out.append(x)
        return torch.stack(out, 1).numpy()

    def eval_device(self):
        return "cpu"

    def token_nll(self, net, rows, device):
        width = max(len(r) for r in rows)
        x = torch.zeros((len(rows), width), dtype=torch.long)
        mask = torch.zeros((len(rows), width - 1))
        for i, r in enumerate(rows):
            x[i, : len(r)] = torch.as_tensor(np.asarray(r))
            mask[i, : len(r) - 1] = 1
        with torch.no_grad():
            logp = torch.log_softmax(net.weight, -1)
            return -logp[x[:, :-1], x[:, 1:]] * mask, mask

    def stream_nll(self, net, stream, max_tokens, device):
        nll, mask = self.token_nll(net, [stream[: max_tokens + 1] if max_tokens else stream], device)
        return float(nll.sum() / mask.sum())

    def sequence_ppl(self, net, seqs, eot, device):
        nll, mask = self.token_nll(net, [[eot, *s] for s in seqs], device)
        return np.exp((nll.sum(1) / mask.sum(1)).numpy())

    def save(self, directory, net, tokenizer, state):
        save_tensors(state(), directory / "model.pt")
        io.save_text(directory / "tokenizer.json", tokenizer.to_json())

    def load(self, directory, meta):
        tokenizer = T.tokenizer_from_json((directory / "tokenizer.json").read_text(encoding="utf-8"))
        return load_weights(self.new_net(tokenizer.vocab_size), directory / "model.pt", "lm"), tokenizer, None

    def shape(self, vocab):
        return {"layers": 0, "hidden": vocab(), "mlp": 0, "heads": 0, "vocab": vocab()}

    def parameters(self, vocab):
        return vocab() ** 2

    def row_tokens(self):
        return self.p["block_size"]

    def steps(self, n, tokens):
        return 1


SETTINGS = {"backbone": "bigram", "seq_len": 8, "prompt_len": 4, "block_size": 16, "device": "cpu", "gen_batch": 32}


@pytest.fixture
def bigram(monkeypatch):
    """The registry line (``"bigram": Bigram`` in ``BACKBONES``), and the setting's values, which
    ouroboros.targets.lm_settings reads from the registry when it is imported."""
    monkeypatch.setitem(BACKBONES, "bigram", Bigram)
    monkeypatch.setitem(PARAMS["properties"]["backbone"], "enum", list(BACKBONES))


def test_a_bigram_backbone_runs_through_the_lm_target(bigram, tmp_path):
    target = make_target("lm", SETTINGS)
    assert isinstance(target.backbone_, Bigram) and target.check_data(32) is None
    rng = np.random.default_rng(0)
    real = target.real_data(rng, 32, 1)
    model = target.clone().fit(real["train"], rng)
    # the fit is the closed form: add-one smoothed bigram frequencies of the items joined after end-of-text
    stream = join_items(target.tokenizer.encode_batch(list(real["train"][0])), 0)
    V = target.tokenizer.vocab_size
    counts = np.ones((V, V))
    np.add.at(counts, (stream[:-1], stream[1:]), 1)
    table = np.log(counts / counts.sum(1, keepdims=True))
    np.testing.assert_allclose(model.net_.weight.detach().numpy(), table, rtol=1e-6, atol=1e-6)
    # the paper's perplexity, through the target's blocks, equals the table's by hand
    test_stream = join_items(target.tokenizer.encode_batch(list(real["test"][0])), 0)[1:]
    blocks = test_stream[: len(test_stream) // 8 * 8].reshape(-1, 8)
    by_hand = math.exp(np.mean([-table[b[:-1], b[1:]].mean() for b in blocks]))
    assert model.ppl_blocks(list(real["test"][0])) == pytest.approx(by_hand, rel=1e-5)
    samples = model.sample(16, 1.0, np.random.default_rng(1))
    assert samples.shape == (1, 16) and all(len(s) for s in samples[0])
    metrics = model.evaluate(samples, real, model.reference(rng), model)
    assert np.isfinite(metrics["ppl_real"]) and np.isfinite(metrics["ppl_gen0_mean"])
    model.save(tmp_path / "m")
    again = Target.load(tmp_path / "m", like=target)
    assert isinstance(again.backbone_, Bigram)
    assert (again.sample(16, 1.0, np.random.default_rng(1)) == samples).all()
    assert target.parameters() == V * V  # the cost estimate reads the backbone's sizes


def test_a_bigram_chain_gives_the_same_numbers_per_job_and_in_memory(bigram, tmp_path):
    chain = make_chain(target="lm", params=SETTINGS, n=16, replicates=1, generations=2)
    per_job = run_per_job_only(chain, tmp_path, 2)
    metrics, _ = run_chain(chain, 2)
    in_memory = [(g, k, v) for g, m in enumerate(metrics) for k, v in split_metrics(m)[0].items()]
    assert len(per_job) > 2 and sorted(per_job) == sorted(in_memory)


def test_an_unregistered_backbone_is_refused_naming_the_registered_ones():
    from ouroboros.settings import ConfigError, check

    with pytest.raises(ConfigError, match="params.backbone.*allowed values: gpt, pretrained"):
        check(PARAMS, dict(SETTINGS), "experiments[0].params")  # what the config's check runs
    with pytest.raises(ConfigError, match="unknown backbone 'bigram'; allowed values: gpt, pretrained"):
        make_target("lm", SETTINGS)
