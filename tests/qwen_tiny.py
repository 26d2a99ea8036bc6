"""A tiny random Qwen3-TTS-12Hz Base model of the real architecture, saved in the official layout.

No package ships Qwen3-TTS weights, so the tests build one: qwen-tts' own classes (talker,
code predictor, speaker encoder, the 12 Hz speech tokenizer with its Mimi encoder and causal
decoder) with a few hundred thousand random parameters, and a byte-level BPE text tokenizer
trained here, offline, on a few sentences. `save_tiny_model(dir)` writes what the official
checkpoints hold (config.json, generation_config.json, model.safetensors, the tokenizer
files, speech_tokenizer/{config.json, model.safetensors, preprocessor_config.json}), so the
backend loads it through exactly the path a user's download takes. The audio is noise, and the talker never says "end" (its end token's logit is 0 against
codes scaled far above it), so a sentence always runs to the backend's frame bound: tests
know how many frames, hence samples, each sentence gives.
"""

from __future__ import annotations

import json
from pathlib import Path

CODEBOOK = 64            # codes per codebook (the real model: 2048)
GROUPS = 16              # codebooks per 12.5 Hz frame (as the real model)
HIDDEN = 32
SPECIAL_BASE = CODEBOOK + 1024 - 20   # the talker's special codec tokens sit in its top 1024 ids
TALKER_VOCAB = CODEBOOK + 1024
CORPUS = [
    "Some call me nature, others call me mother nature.",
    "The washing machine is done. Turned on the kitchen light.",
    "Hello, ready. How are you today? It is a quiet and sunny morning.",
    "assistant assistant assistant user system",
]
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tts_pad>", "<tts_text_bos>", "<tts_text_eod>"]


def _tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 20, trainer)
    return Qwen2TokenizerFast(tokenizer_object=tok, unk_token=None, bos_token=None, eos_token="<|endoftext|>",
                              pad_token="<|endoftext|>", additional_special_tokens=SPECIALS[1:])


def _talker_config(text_vocab: int) -> dict:
    return {
        "vocab_size": TALKER_VOCAB, "hidden_size": HIDDEN, "intermediate_size": 64, "num_hidden_layers": 1,
        "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16,
        "rope_scaling": {"interleaved": True, "mrope_section": [4, 2, 2], "rope_type": "default", "type": "default"},
        "num_code_groups": GROUPS, "text_hidden_size": HIDDEN, "text_vocab_size": text_vocab,
        "codec_eos_token_id": SPECIAL_BASE, "codec_think_id": SPECIAL_BASE + 1,
        "codec_nothink_id": SPECIAL_BASE + 2, "codec_think_bos_id": SPECIAL_BASE + 3,
        "codec_think_eos_id": SPECIAL_BASE + 4, "codec_pad_id": SPECIAL_BASE + 5, "codec_bos_id": SPECIAL_BASE + 6,
        "codec_language_id": {"english": SPECIAL_BASE + 10, "chinese": SPECIAL_BASE + 11,
                              "german": SPECIAL_BASE + 12},
        "spk_id": {}, "spk_is_dialect": {},
        "code_predictor_config": {
            "vocab_size": CODEBOOK, "hidden_size": HIDDEN, "intermediate_size": 64, "num_hidden_layers": 1,
            "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16, "num_code_groups": GROUPS,
        },
    }


def _speech_tokenizer_config() -> dict:
    return {
        "model_type": "qwen3_tts_tokenizer_12hz",
        "encoder_valid_num_quantizers": GROUPS, "input_sample_rate": 24000, "output_sample_rate": 24000,
        "decode_upsample_rate": 1920, "encode_downsample_rate": 1920,
        "encoder_config": {
            "hidden_size": HIDDEN, "num_filters": 4, "num_residual_layers": 1, "num_hidden_layers": 1,
            "intermediate_size": 64, "num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": 16,
            "codebook_size": CODEBOOK, "codebook_dim": 16, "num_quantizers": GROUPS,
            "vector_quantization_hidden_dimension": 16, "upsample_groups": HIDDEN, "sliding_window": 250,
        },
        "decoder_config": {
            "codebook_size": CODEBOOK, "hidden_size": HIDDEN, "latent_dim": HIDDEN, "codebook_dim": 16,
            "num_attention_heads": 2, "num_key_value_heads": 2, "intermediate_size": 64, "num_hidden_layers": 1,
            "num_quantizers": GROUPS, "decoder_dim": 32, "sliding_window": 72,
        },
    }


def save_tiny_model(target: Path, seed: int = 0) -> Path:
    """Build the tiny model with random weights (fixed seed) and save it to `target`."""
    import torch
    from qwen_tts.core import Qwen3TTSTokenizerV2Config, Qwen3TTSTokenizerV2Model
    from qwen_tts.core.models import Qwen3TTSConfig, Qwen3TTSForConditionalGeneration, Qwen3TTSProcessor

    torch.manual_seed(seed)
    target.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer()
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIALS}
    config = Qwen3TTSConfig(
        talker_config=_talker_config(len(tokenizer)),
        speaker_encoder_config={"mel_dim": 128, "enc_dim": HIDDEN, "enc_channels": [16, 16, 16, 16, 48],
                                "enc_attention_channels": 8, "enc_res2net_scale": 2, "enc_se_channels": 8},
        tokenizer_type="qwen3_tts_tokenizer_12hz", tts_model_size="tiny", tts_model_type="base",
        im_start_token_id=ids["<|im_start|>"], im_end_token_id=ids["<|im_end|>"],
        tts_pad_token_id=ids["<tts_pad>"], tts_bos_token_id=ids["<tts_text_bos>"],
        tts_eos_token_id=ids["<tts_text_eod>"],
    )
    model = Qwen3TTSForConditionalGeneration(config).eval()
    with torch.no_grad():  # codes far likelier than "end": every sentence runs to the backend's frame bound
        head = model.talker.codec_head.weight
        head.mul_(400.0)
        head[SPECIAL_BASE].zero_()
    model.save_pretrained(target)
    # save_pretrained writes the speaker encoder's sub-config with a "model_type" key, which the
    # official config.json has not (and Qwen3TTSSpeakerEncoderConfig does not accept): as published.
    saved = json.loads((target / "config.json").read_text())
    saved["speaker_encoder_config"].pop("model_type", None)
    (target / "config.json").write_text(json.dumps(saved, indent=2))
    Qwen3TTSProcessor(tokenizer=tokenizer).save_pretrained(target)
    generation = {"do_sample": True, "top_k": 50, "top_p": 1.0, "temperature": 0.9, "repetition_penalty": 1.05,
                  "subtalker_dosample": True, "subtalker_top_k": 50, "subtalker_top_p": 1.0,
                  "subtalker_temperature": 0.9, "max_new_tokens": 4096}
    (target / "generation_config.json").write_text(json.dumps(generation, indent=2))

    speech = Qwen3TTSTokenizerV2Model(Qwen3TTSTokenizerV2Config(**{
        k: v for k, v in _speech_tokenizer_config().items() if k != "model_type"})).eval()
    speech_dir = target / "speech_tokenizer"
    speech.save_pretrained(speech_dir)
    (speech_dir / "preprocessor_config.json").write_text(json.dumps({
        "chunk_length_s": None, "feature_extractor_type": "EncodecFeatureExtractor", "feature_size": 1,
        "overlap": None, "padding_side": "right", "padding_value": 0.0, "return_attention_mask": True,
        "sampling_rate": 24000,
    }, indent=2))
    return target


def parameter_count(directory: Path) -> int:
    """Parameters saved in the model and the speech tokenizer (what 'tiny' means here)."""
    from safetensors import safe_open

    total = 0
    for path in (directory / "model.safetensors", directory / "speech_tokenizer" / "model.safetensors"):
        with safe_open(str(path), "pt") as handle:
            for key in handle.keys():
                total += handle.get_slice(key).get_shape().numel() if hasattr(
                    handle.get_slice(key).get_shape(), "numel") else _prod(handle.get_slice(key).get_shape())
    return total


def _prod(shape) -> int:
    out = 1
    for n in shape:
        out *= n
    return out
