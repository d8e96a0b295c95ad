"""Relevance models, grouped evaluation, selection, child-image detector and the saved bundle.

Search code uses :class:`RelevanceBundle`: ``RelevanceBundle.load(artifacts_dir)``, then
``joint_image`` / ``joint_text`` (retrieval space), ``score`` (relevance in [0, 1]) and
``child_probability`` / ``is_child``; ``check_encoders`` raises :class:`EncoderMismatchError`.
"""

from picsearch.models.artifacts import ArtifactError, EncoderMismatchError, RelevanceBundle

__all__ = ["ArtifactError", "EncoderMismatchError", "RelevanceBundle"]
