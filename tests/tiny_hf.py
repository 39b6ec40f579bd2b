"""A tiny randomly initialised Llama-architecture causal LM for the pretrained-backbone tests: a byte-level
BPE tokenizer trained with ``tokenizers`` on the pydoc topics and a config of a few thousand parameters,
saved with ``save_pretrained`` (safetensors)."""
from __future__ import annotations

from pathlib import Path


def make_tiny_llama(directory, vocab_size: int = 320, hidden: int = 16, layers: int = 2, seed: int = 0,
                    eos: bool = True) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    import pydoc_data.topics as topics

    directory = Path(directory)
    texts = [topics.topics[k] for k in sorted(topics.topics)][:120]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    special = {"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"} if eos else {}
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **special)
    config = LlamaConfig(vocab_size=len(fast), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         eos_token_id=fast.eos_token_id, bos_token_id=fast.bos_token_id, pad_token_id=fast.pad_token_id)
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(directory, safe_serialization=True)
    fast.save_pretrained(directory)
    return directory
