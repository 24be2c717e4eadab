"""Real Hugging Face `transformers` models, built from small configs (nothing is downloaded).

    for entry in CORPUS:                      # ModelEntry(name, family, build)
        model, inputs = entry.build()         # fresh weights from a fixed seed, eval mode
        out = model(**inputs)                 # has .loss and the model's outputs

Every entry returns a model with a loss head (causal LM, masked LM, seq2seq LM, image
classification, CLIP contrastive loss), so one call gives both the forward outputs and a
loss for a training step. Configs are tiny (hidden size 32-64, two layers) so that the
whole corpus translates in minutes on a CPU; the code paths are the library's real ones.
`family` is one of "decoder", "encoder", "encoder-decoder", "vision", "audio", "multimodal";
decoders also get a greedy `generate` check (tests/models/check.py).

Example: `build("llama")` -> (LlamaForCausalLM with 2 layers, {"input_ids", "labels"}).
"""
import dataclasses
from typing import Callable

import torch

BATCH, SEQ, VOCAB = 2, 8, 96
# dropout off so that the training step compares exactly with eager (random streams differ)
_NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    build: Callable[[], tuple]

    def __repr__(self):
        return f"<model {self.name} ({self.family})>"


def _ids(vocab=VOCAB, seq=SEQ, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(3, vocab, (BATCH, seq), generator=gen)


def _finish(model, inputs):
    model.eval()  # no dropout; the training step still computes every gradient
    return model, inputs


def _causal(config_cls_name, **kw):
    def build():
        import transformers

        torch.manual_seed(0)
        config = getattr(transformers, config_cls_name)(**kw)
        model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager")
        ids = _ids()
        return _finish(model, {"input_ids": ids, "labels": ids})
    return build


def _masked(config_cls_name, model_cls_name=None, **kw):
    def build():
        import transformers

        torch.manual_seed(0)
        config = getattr(transformers, config_cls_name)(**kw)
        if model_cls_name:
            model = getattr(transformers, model_cls_name)(config)
        else:
            model = transformers.AutoModelForMaskedLM.from_config(config, attn_implementation="eager")
        ids = _ids()
        return _finish(model, {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids})
    return build


def _seq2seq(config_cls_name, **kw):
    def build():
        import transformers

        torch.manual_seed(0)
        config = getattr(transformers, config_cls_name)(**kw)
        model = transformers.AutoModelForSeq2SeqLM.from_config(config, attn_implementation="eager")
        ids, labels = _ids(seed=1), _ids(seed=2, seq=6)
        return _finish(model, {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels})
    return build


def _vision(config_cls_name, model_cls_name, image_size=32, **kw):
    def build():
        import transformers

        torch.manual_seed(0)
        # image_size is harmless where a config does not use it (resnet, convnext)
        config = getattr(transformers, config_cls_name)(num_labels=5, image_size=image_size, **kw)
        model = getattr(transformers, model_cls_name)(config)
        gen = torch.Generator().manual_seed(3)
        pixels = torch.randn(BATCH, 3, image_size, image_size, generator=gen)
        return _finish(model, {"pixel_values": pixels, "labels": torch.tensor([1, 3])})
    return build


def _whisper():
    import transformers

    torch.manual_seed(0)
    config = transformers.WhisperConfig(
        vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=16,
        max_source_positions=16, max_target_positions=32, pad_token_id=0, bos_token_id=1,
        eos_token_id=2, decoder_start_token_id=1, dropout=0.0)
    model = transformers.WhisperForConditionalGeneration(config)
    gen = torch.Generator().manual_seed(3)
    features = torch.randn(BATCH, 16, 32, generator=gen)
    return _finish(model, {"input_features": features, "labels": _ids(seq=6, seed=2)})


def _clip():
    import transformers

    torch.manual_seed(0)
    text = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=16, bos_token_id=1, eos_token_id=2)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  image_size=32, patch_size=8)
    config = transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    model = transformers.CLIPModel(config)
    gen = torch.Generator().manual_seed(3)
    return _finish(model, {"input_ids": _ids(), "pixel_values": torch.randn(BATCH, 3, 32, 32, generator=gen),
                           "return_loss": True})


# the shape every decoder config shares: two layers, 64 wide, 4 heads (2 key/value heads
# where the architecture groups them), a vocabulary of 96
_LM = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
           num_attention_heads=4, max_position_embeddings=64, bos_token_id=1, eos_token_id=2)
_GQA = dict(_LM, num_key_value_heads=2)
_ENC = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=64, **_NO_DROPOUT)
_S2S = dict(vocab_size=VOCAB, d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
            decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128, max_position_embeddings=64,
            dropout=0.0, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)

CORPUS = [
    # decoder LMs
    ModelEntry("gpt2", "decoder", _causal("GPT2Config", vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=4,
                                          n_positions=64, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                          bos_token_id=1, eos_token_id=2)),
    ModelEntry("llama", "decoder", _causal("LlamaConfig", **_GQA)),
    ModelEntry("mistral", "decoder", _causal("MistralConfig", **_GQA)),
    ModelEntry("qwen2", "decoder", _causal("Qwen2Config", **_GQA)),
    ModelEntry("qwen3", "decoder", _causal("Qwen3Config", head_dim=16, **_GQA)),
    ModelEntry("gemma", "decoder", _causal("GemmaConfig", head_dim=16, **_GQA)),
    ModelEntry("gemma2", "decoder", _causal("Gemma2Config", head_dim=16, sliding_window=4, **_GQA)),
    ModelEntry("phi", "decoder", _causal("PhiConfig", resid_pdrop=0.0, embd_pdrop=0.0, **_LM)),
    ModelEntry("phi3", "decoder", _causal("Phi3Config", pad_token_id=0, **_GQA)),
    ModelEntry("gpt_neox", "decoder", _causal("GPTNeoXConfig", **_LM)),
    ModelEntry("opt", "decoder", _causal("OPTConfig", vocab_size=VOCAB, hidden_size=64, ffn_dim=128,
                                         num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=64,
                                         word_embed_proj_dim=64, dropout=0.0, pad_token_id=1)),
    ModelEntry("bloom", "decoder", _causal("BloomConfig", vocab_size=VOCAB, hidden_size=64, n_layer=2, n_head=4)),
    ModelEntry("falcon", "decoder", _causal("FalconConfig", vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2,
                                            num_attention_heads=4)),
    ModelEntry("gptj", "decoder", _causal("GPTJConfig", vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=4,
                                          n_positions=64, rotary_dim=8, resid_pdrop=0.0, embd_pdrop=0.0,
                                          attn_pdrop=0.0)),
    ModelEntry("stablelm", "decoder", _causal("StableLmConfig", **_GQA)),
    ModelEntry("olmo", "decoder", _causal("OlmoConfig", **_GQA)),
    ModelEntry("starcoder2", "decoder", _causal("Starcoder2Config", residual_dropout=0.0, embedding_dropout=0.0,
                                                **_GQA)),
    # encoders
    ModelEntry("bert", "encoder", _masked("BertConfig", **_ENC)),
    ModelEntry("roberta", "encoder", _masked("RobertaConfig", pad_token_id=1, **_ENC)),
    ModelEntry("distilbert", "encoder", _masked("DistilBertConfig", vocab_size=VOCAB, dim=64, hidden_dim=128,
                                                n_layers=2, n_heads=4, max_position_embeddings=64, dropout=0.0,
                                                attention_dropout=0.0)),
    ModelEntry("albert", "encoder", _masked("AlbertConfig", embedding_size=32, **_ENC)),
    ModelEntry("electra", "encoder", _masked("ElectraConfig", embedding_size=32, **_ENC)),
    ModelEntry("deberta_v2", "encoder", _masked("DebertaV2Config", **_ENC)),
    # encoder-decoders
    ModelEntry("t5", "encoder-decoder", _seq2seq("T5Config", vocab_size=VOCAB, d_model=64, d_kv=16, d_ff=128,
                                                 num_layers=2, num_heads=4, dropout_rate=0.0,
                                                 decoder_start_token_id=0)),
    ModelEntry("bart", "encoder-decoder", _seq2seq("BartConfig", **_S2S)),
    ModelEntry("marian", "encoder-decoder", _seq2seq("MarianConfig", **_S2S)),
    ModelEntry("pegasus", "encoder-decoder", _seq2seq("PegasusConfig", **_S2S)),
    # vision
    ModelEntry("vit", "vision", _vision("ViTConfig", "ViTForImageClassification", hidden_size=32,
                                        intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                        image_size=32, patch_size=8, **_NO_DROPOUT)),
    ModelEntry("resnet", "vision", _vision("ResNetConfig", "ResNetForImageClassification", embedding_size=16,
                                           hidden_sizes=[16, 32], depths=[1, 1])),
    ModelEntry("convnext", "vision", _vision("ConvNextConfig", "ConvNextForImageClassification",
                                             num_stages=2, hidden_sizes=[16, 32], depths=[1, 1])),
    ModelEntry("swin", "vision", _vision("SwinConfig", "SwinForImageClassification", embed_dim=16, depths=[1, 1],
                                         num_heads=[2, 2], window_size=4, patch_size=4, hidden_dropout_prob=0.0,
                                         attention_probs_dropout_prob=0.0, drop_path_rate=0.0)),
    # audio, multimodal
    ModelEntry("whisper", "audio", _whisper),
    ModelEntry("clip", "multimodal", _clip),
]

BY_NAME = {e.name: e for e in CORPUS}

# the bounded subset CI runs (tests/models/test_models.py): one per family, small and quick
CI_SUBSET = ("gpt2", "llama", "bert", "t5", "vit")


def build(name):
    return BY_NAME[name].build()
