from dataclasses import replace

import numpy as np

from picsearch.bench.multilingual import teacher_scores
from picsearch.models.matching import CaptionTransferMatcher, MatcherMemo, RidgeMatcher
from picsearch.models.matching_head import MatchingHead
from synthetic_models import LAYOUT, synthetic_training_set

DATA = synthetic_training_set(n_images=50)


def head() -> MatchingHead:
    matchers = {"ridge": lambda: RidgeMatcher(LAYOUT, 1.0), "transfer": lambda: CaptionTransferMatcher(LAYOUT, k=5)}
    return MatchingHead(matchers, inner_folds=3, n_estimators=30, memo=MatcherMemo()).fit(DATA)


def test_teacher_scores_are_the_boosters_own_view_of_each_pair_and_a_booster_distilled_from_them_agrees() -> None:
    """Each pair's score comes from the inner fold that held its image out (so not the head's in-sample score),
    and a booster learnt on those scores, on the same texts, scores new pairs as the head does."""
    teacher = head()
    scores = teacher_scores(teacher, DATA)
    assert scores.shape == (len(DATA.pairs),) and np.all((scores >= 0) & (scores <= 1))
    in_sample = teacher.predict(*DATA.pair_feats(DATA.pairs))
    assert not np.allclose(scores, in_sample, atol=1e-3)
    assert not np.allclose(scores, DATA.pairs["target"], atol=1e-3)  # the head's scores, not the humans'
    assert np.corrcoef(scores, DATA.pairs["target"])[0, 1] > 0.5
    images, texts = DATA.pair_feats(DATA.evaluation)
    reference = teacher.predict(images, texts)

    def distilled(targets: np.ndarray) -> np.ndarray:
        taught = replace(DATA, pairs=DATA.pairs.assign(target=targets))
        return teacher.with_booster_for(taught, DATA.text_feats).predict(images, texts)

    student, shuffled = distilled(scores), distilled(np.random.default_rng(0).permutation(scores))
    assert np.corrcoef(student, reference)[0, 1] > 0.99
    assert np.abs(student - reference).mean() < np.abs(shuffled - reference).mean() / 2
