"""Tiny random hub models (CLIP, ResNet-18, BERT) saved to a folder as the hub ships them: weights,
tokenizer and preprocessor config. Tests load them by folder (``clip:<folder>``); nothing touches the network."""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch
import transformers

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def _clip_tokenizer(folder: Path) -> None:
    """A byte-level BPE over lowercase letters, written as vocab.json + merges.txt files."""
    letters = string.ascii_lowercase
    vocab = {c: i for i, c in enumerate(letters)}
    vocab.update({f"{c}</w>": len(letters) + i for i, c in enumerate(letters)})
    for token in ["do", "dog</w>", "<|startoftext|>", "<|endoftext|>"]:
        vocab[token] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\nd o\ndo g</w>\n")
    tokenizer = transformers.CLIPTokenizerFast(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"))
    tokenizer.save_pretrained(folder)


def _bert_tokenizer(folder: Path) -> None:
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "dog", "cat", "on", "sofa", "##s"]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    transformers.BertTokenizerFast(vocab=str(folder / "vocab.txt")).save_pretrained(folder)


def _save_preprocessor(folder: Path, **config: object) -> None:
    common = {"resample": 3, "do_resize": True, "do_normalize": True, "do_rescale": True}
    (folder / "preprocessor_config.json").write_text(json.dumps(common | config))


def build_clip(folder: Path) -> Path:
    """A two-tower CLIP (projection dim 16, 32-pixel images) with its tokenizer, saved in ``folder``."""
    torch.manual_seed(0)
    config = transformers.CLIPConfig(
        text_config=dict(
            vocab_size=56, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=16, bos_token_id=54, eos_token_id=55, pad_token_id=55,
        ),
        vision_config=dict(
            image_size=32, patch_size=8, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
            num_attention_heads=4,
        ),
        projection_dim=16,
    )
    transformers.CLIPModel(config).save_pretrained(folder)
    _clip_tokenizer(folder)
    _save_preprocessor(
        folder, image_processor_type="CLIPImageProcessor", size={"shortest_edge": 32},
        crop_size={"height": 32, "width": 32}, image_mean=CLIP_MEAN, image_std=CLIP_STD, do_center_crop=True,
    )
    return folder


def build_resnet(folder: Path) -> Path:
    """Saved as the hub checkpoint is: a classification model whose backbone weights sit under `resnet.`."""
    torch.manual_seed(1)
    config = transformers.ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 12], depths=[1, 1], layer_type="basic", num_labels=3
    )
    transformers.ResNetForImageClassification(config).save_pretrained(folder)
    _save_preprocessor(
        folder, image_processor_type="ConvNextImageProcessor", crop_pct=0.875, size=32,
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
    )
    return folder


def build_bert(folder: Path) -> Path:
    """A 16-dimensional BERT with an 11-word WordPiece vocabulary, saved in ``folder``."""
    torch.manual_seed(2)
    config = transformers.BertConfig(
        vocab_size=11, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=20,
        max_position_embeddings=32,
    )
    transformers.BertModel(config).save_pretrained(folder)
    _bert_tokenizer(folder)
    return folder
