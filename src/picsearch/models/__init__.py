"""Relevance models, grouped evaluation, selection, child-image detector and the saved bundle.

Estimators: ``concat.py`` (baselines on [image | text]), ``matching.py`` (matchers and the joint space),
``matching_head.py`` (LightGBM on matcher similarities), ``relevance.py`` (the protocol and registry),
``child.py`` (the child-image detector and its training), on ``layout.py`` (image vector layout, JSON
hyperparameters), ``linear.py`` (scikit-learn scaler and ridge, saved as arrays), ``lgbm.py``, ``vectors.py`` and
``export.py`` (the safe on-disk form). Training: ``trainset.py``, ``splits.py``, ``evaluate.py`` (grouped CV),
``selection.py`` (candidates and the rules that choose), ``retrieval_cv.py``, ``card.py``, ``train.py``
(orchestration); ``artifacts.py`` is the bundle search loads.

Search code uses :class:`RelevanceBundle`: ``RelevanceBundle.load(artifacts_dir)``, then
``joint_image`` / ``joint_text`` (retrieval space), ``score`` (relevance in [0, 1]) and
``child_probability`` / ``is_child``; ``check_encoders`` raises :class:`EncoderMismatchError`.
"""

from picsearch.models.artifacts import ArtifactError, EncoderMismatchError, RelevanceBundle

__all__ = ["ArtifactError", "EncoderMismatchError", "RelevanceBundle"]
